/**
 * The routing step the forwarder and the upgrade relay share: match the route, pick the
 * cluster (weighted: one by weight), find it and take a request slot in its circuit. Local
 * answers (no route, direct responses, redirects, unknown cluster, overflow) are handed to the
 * caller's `answer`, which writes them the way its protocol needs.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { HeaderLookup, MatchedRoute, RouteTable } from '../routing/route-table.ts';
import type { UpstreamCluster } from '../upstream/upstream-cluster.ts';

/** A routed request: its route and its cluster, with one request slot of the cluster's circuit held. */
export interface UpstreamTarget {
  readonly route: MatchedRoute;
  readonly cluster: UpstreamCluster;
}

/**
 * Writes a local answer: `body` null for none (a string is one of the sidecar's own messages,
 * bytes a route's direct response; both text/plain); `location` set for redirects.
 */
export type LocalAnswer = (status: number, body: string | Uint8Array | null, location: string | null) => void;

export interface RouteRequest {
  readonly authority: string;
  readonly path: string;
  readonly method: string;
  readonly headers: IncomingHttpHeaders;
  /** `http` or `https`: the scheme redirects keep. */
  readonly scheme: string;
}

/**
 * Routes `r` to a cluster, or answers it locally (and returns null): 404 `no route`, a direct
 * response, a redirect, 503 `cluster not found`, 503 `upstream overflow`.
 */
export function routeToCluster(
  table: RouteTable,
  r: RouteRequest,
  getCluster: (name: string) => UpstreamCluster | undefined,
  random: () => number,
  answer: LocalAnswer,
): UpstreamTarget | null {
  const route = matchRoute(table, r, headerLookup(r.headers));
  if (route === null) {
    answer(404, 'no route', null);
    return null;
  }
  return targetOf(route, r, getCluster, random, answer);
}

/** A request's header value by lowercase name, repeated headers joined with ",". */
export function headerLookup(headers: IncomingHttpHeaders): HeaderLookup {
  return (name) => {
    const v = headers[name];
    return typeof v === 'string' || v === undefined ? v : v.join(',');
  };
}

/** The route `r` matches, or null (the caller answers 404 `no route`). */
export function matchRoute(table: RouteTable, r: RouteRequest, lookup: HeaderLookup): MatchedRoute | null {
  return table.match(r.authority, r.path, r.method, lookup);
}

/**
 * The second half of routeToCluster, for a route already matched (filters such as the fault
 * filter run between the two, as Envoy's run before its router): direct responses, redirects,
 * the cluster and its circuit.
 */
export function targetOf(
  route: MatchedRoute,
  r: RouteRequest,
  getCluster: (name: string) => UpstreamCluster | undefined,
  random: () => number,
  answer: LocalAnswer,
): UpstreamTarget | null {
  const action = route.action;
  let clusterName: string;
  switch (action.kind) {
    case 'cluster':
      clusterName = action.cluster;
      break;
    case 'weighted':
      clusterName = action.pick(random());
      break;
    case 'direct':
      answer(action.status, action.body, null);
      return null;
    case 'redirect':
      answer(action.status, null, action.location(r.scheme, r.authority, r.path));
      return null;
  }
  const cluster = getCluster(clusterName);
  if (cluster === undefined) {
    answer(503, 'cluster not found', null);
    return null;
  }
  if (!cluster.circuit.tryAcquireRequest()) {
    answer(503, 'upstream overflow', null);
    return null;
  }
  return { route, cluster };
}
