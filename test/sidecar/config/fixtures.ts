/** Real translated sidecar resources for the fixture config, as an AdsClient would hold them. */
import { createHash } from 'node:crypto';
import { clone, toBinary, type Message } from '@bufbuild/protobuf';
import { fixtureFiles, stateFrom } from '../../helpers/desired-state.ts';
import { translate } from '../../../control/translate/translator.ts';
import type { XdsResource } from '../../../xds/client/subscriptions.ts';
import { getResourceType } from '../../../xds/resources/registry.ts';
import { ClusterLoadAssignmentSchema, type ClusterLoadAssignment } from '../../../xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import {
  CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL, LISTENER_TYPE_URL, ROUTE_TYPE_URL,
} from '../../../xds/resources/type-urls.ts';
import type { SnapshotInput } from '../../../sidecar/config/sidecar-snapshot.ts';

export const ECHO = 'outbound|50051||echo.default';
export const WEB = 'outbound|8080||web.default';

export { fixtureFiles };

/** A resource as the AdsClient holds it; the version is a hash of its bytes, as delta xDS gives. */
export function held(typeUrl: string, message: Message): XdsResource {
  const bytes = toBinary(getResourceType(typeUrl).schema, message as never);
  return Object.freeze({ version: createHash('sha256').update(bytes).digest('hex').slice(0, 12), message });
}

function byName(typeUrl: string, list: Message[] | undefined): Map<string, XdsResource> {
  return new Map((list ?? []).map((m) => {
    const name = (m as { name?: string; clusterName?: string }).name ?? (m as ClusterLoadAssignment).clusterName;
    return [name, held(typeUrl, m)];
  }));
}

/** The real translator's output for the fixture config, for a sidecar in `default`, as snapshot input. */
export function fixtureInput(): { listeners: Map<string, XdsResource>; routes: Map<string, XdsResource>; clusters: Map<string, XdsResource>; endpoints: Map<string, XdsResource> } {
  const out = translate(stateFrom(fixtureFiles()), { kind: 'sidecar', namespace: 'default' });
  return {
    listeners: byName(LISTENER_TYPE_URL, out[LISTENER_TYPE_URL]),
    routes: byName(ROUTE_TYPE_URL, out[ROUTE_TYPE_URL]),
    clusters: byName(CLUSTER_TYPE_URL, out[CLUSTER_TYPE_URL]),
    endpoints: byName(ENDPOINT_TYPE_URL, out[ENDPOINT_TYPE_URL]),
  };
}

/** `input` with the EDS assignment `name` given one more endpoint, 127.0.0.1:`port` (a new version). */
export function withExtraEndpoint(input: SnapshotInput, name: string, port: number): SnapshotInput {
  const cla = clone(ClusterLoadAssignmentSchema, input.endpoints.get(name)!.message as ClusterLoadAssignment);
  const extra = clone(ClusterLoadAssignmentSchema, cla).endpoints[0]!.lbEndpoints[0]!;
  const ep = extra.hostIdentifier.case === 'endpoint' ? extra.hostIdentifier.value : null;
  const sa = ep?.address?.address.case === 'socketAddress' ? ep.address.address.value : null;
  if (sa === null) throw new Error('unexpected fixture shape');
  sa.portSpecifier = { case: 'portValue', value: port };
  cla.endpoints[0]!.lbEndpoints.push(extra);
  return { ...input, endpoints: new Map([...input.endpoints, [name, held(ENDPOINT_TYPE_URL, cla)]]) };
}

/** `input` without the named resources of one kind. */
export function without(input: SnapshotInput, kind: 'listeners' | 'routes' | 'clusters' | 'endpoints', ...names: string[]): SnapshotInput {
  const m = new Map(input[kind]);
  for (const n of names) m.delete(n);
  return { ...input, [kind]: m };
}
