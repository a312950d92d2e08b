/**
 * Builders for Cluster / ClusterLoadAssignment protos, real upstream servers on 127.0.0.1:0
 * (HTTP/1.1 and h2c) that answer with their name, and a helper that sends one request
 * through a cluster the way the router will.
 */
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { anyPack, DurationSchema, type Duration } from '@bufbuild/protobuf/wkt';
import { ClusterSchema, Cluster_DiscoveryType, Cluster_LbPolicy, type Cluster } from '../../../xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { ClusterLoadAssignmentSchema, type ClusterLoadAssignment } from '../../../xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import type { LbEndpointSchema, LocalityLbEndpointsSchema } from '../../../xds/gen/envoy/config/endpoint/v3/endpoint_components_pb.js';
import { HealthStatus } from '../../../xds/gen/envoy/config/core/v3/health_check_pb.js';
import { HttpProtocolOptionsSchema } from '../../../xds/gen/envoy/extensions/upstreams/http/v3/http_protocol_options_pb.js';
import { compileCluster } from '../../../sidecar/upstream/compile-cluster.ts';
import type { ClusterConfig } from '../../../sidecar/upstream/cluster-config.ts';
import type { UpstreamCluster } from '../../../sidecar/upstream/upstream-cluster.ts';
import type { Host } from '../../../sidecar/upstream/host.ts';
import { classifyUpstreamError } from '../../../sidecar/upstream/upstream-result.ts';

export type LbEndpointInit = MessageInitShape<typeof LbEndpointSchema>;
export type LocalityInit = MessageInitShape<typeof LocalityLbEndpointsSchema>;
export type ClusterInit = MessageInitShape<typeof ClusterSchema>;

export const ms = (n: number): Duration => create(DurationSchema, { seconds: BigInt(Math.floor(n / 1000)), nanos: (n % 1000) * 1e6 });

export function ep(address: string, port: number, opts: { weight?: number; health?: HealthStatus } = {}): LbEndpointInit {
  return {
    loadBalancingWeight: opts.weight,
    healthStatus: opts.health ?? HealthStatus.UNKNOWN,
    hostIdentifier: {
      case: 'endpoint',
      value: { address: { address: { case: 'socketAddress', value: { address, portSpecifier: { case: 'portValue', value: port } } } } },
    },
  };
}

export function locality(endpoints: LbEndpointInit[], opts: { zone?: string; weight?: number; priority?: number } = {}): LocalityInit {
  return { locality: { region: 'r', zone: opts.zone ?? '' }, loadBalancingWeight: opts.weight, priority: opts.priority ?? 0, lbEndpoints: endpoints };
}

export function cla(name: string, localities: LocalityInit[]): ClusterLoadAssignment {
  return create(ClusterLoadAssignmentSchema, { clusterName: name, endpoints: localities });
}

export function edsCluster(name: string, init: ClusterInit = {}): Cluster {
  return create(ClusterSchema, {
    name,
    clusterDiscoveryType: { case: 'type', value: Cluster_DiscoveryType.EDS },
    edsClusterConfig: { serviceName: name, edsConfig: { configSourceSpecifier: { case: 'ads', value: {} } } },
    ...(init as object),
  } as ClusterInit);
}

export function staticCluster(name: string, localities: LocalityInit[], init: ClusterInit = {}): Cluster {
  return create(ClusterSchema, {
    name,
    clusterDiscoveryType: { case: 'type', value: Cluster_DiscoveryType.STATIC },
    loadAssignment: { clusterName: name, endpoints: localities },
    ...(init as object),
  } as ClusterInit);
}

export const http2Options = (): ClusterInit['typedExtensionProtocolOptions'] => ({
  'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': anyPack(HttpProtocolOptionsSchema, create(HttpProtocolOptionsSchema, {
    upstreamProtocolOptions: { case: 'explicitHttpConfig', value: { protocolConfig: { case: 'http2ProtocolOptions', value: {} } } },
  })),
});

/** compileCluster that must succeed. */
export function compiled(cluster: Cluster, assignment?: ClusterLoadAssignment): ClusterConfig {
  const r = compileCluster(cluster, assignment);
  if (!r.valid) throw new Error(r.errors.join('\n'));
  return r.result;
}

/** A STATIC round-robin (unless `init` says otherwise) cluster over 127.0.0.1 ports. */
export function staticConfig(ports: number[], init: ClusterInit = {}, weights?: number[]): ClusterConfig {
  return compiled(staticCluster('svc', [locality(ports.map((p, i) => ep('127.0.0.1', p, { weight: weights?.[i] })))], init));
}

export { Cluster_LbPolicy, HealthStatus };

export interface TestServer {
  readonly name: string;
  readonly port: number;
  /** Requests received. */
  hits: number;
  /** Status to answer with. */
  status: number;
  /** Delay before answering, ms. */
  delayMs: number;
  /** When true, requests wait until `release()`. */
  hold: boolean;
  /** HTTP versions of the requests received. */
  readonly versions: string[];
  release(): void;
  close(): Promise<void>;
}

/** An HTTP/1.1 server (or, with `h2c`, a cleartext HTTP/2 one) answering `status` with its name. */
export async function startServer(name: string, opts: { status?: number; delayMs?: number; h2c?: boolean } = {}): Promise<TestServer> {
  const held: (() => void)[] = [];
  const s: TestServer = {
    name,
    port: 0,
    hits: 0,
    status: opts.status ?? 200,
    delayMs: opts.delayMs ?? 0,
    hold: false,
    versions: [],
    release: () => {
      for (const f of held.splice(0)) f();
    },
    close: async () => {},
  };
  type Req = { httpVersion: string; resume(): unknown };
  type Res = { writeHead(status: number, headers: Record<string, string>): unknown; end(body: string): unknown };
  const handler = (req: Req, res: Res): void => {
    s.hits++;
    s.versions.push(req.httpVersion);
    const answer = (): void => {
      res.writeHead(s.status, { 'content-type': 'text/plain' });
      res.end(name);
    };
    req.resume();
    if (s.hold) held.push(answer);
    else if (s.delayMs > 0) setTimeout(answer, s.delayMs);
    else answer();
  };
  if (opts.h2c) {
    const server = http2.createServer(handler);
    const sessions = new Set<http2.ServerHttp2Session>();
    server.on('session', (session) => {
      sessions.add(session);
      session.on('close', () => sessions.delete(session));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    (s as { port: number }).port = (server.address() as AddressInfo).port;
    s.close = async () => {
      s.release();
      for (const session of sessions) session.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    };
  } else {
    const server = http.createServer(handler);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    (s as { port: number }).port = (server.address() as AddressInfo).port;
    s.close = async () => {
      s.release();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    };
  }
  return s;
}

export interface Exchange {
  readonly host: Host;
  readonly status: number | string;
  readonly body: string;
}

/** Picks a host and sends GET / through its pool, reporting the result as the router will. */
export async function send(cluster: UpstreamCluster): Promise<Exchange> {
  const host = cluster.pick();
  if (host === null) throw new Error('no healthy host');
  cluster.startRequest(host);
  try {
    const res = await host.pool.request({ path: '/', method: 'GET' });
    const body = await res.body.text();
    cluster.reportResult(host, res.statusCode);
    return { host, status: res.statusCode, body };
  } catch (err) {
    const outcome = classifyUpstreamError(err);
    cluster.reportResult(host, outcome);
    return { host, status: outcome, body: '' };
  } finally {
    cluster.endRequest(host);
  }
}

/** How many of `picks` went to each host key. */
export function countKeys(hosts: readonly (Host | null)[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const h of hosts) {
    const k = h === null ? 'null' : h.key;
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}
