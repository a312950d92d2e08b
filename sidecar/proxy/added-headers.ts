/**
 * Response headers a filter adds to whatever response its request gets (the quota gate's
 * rate-limit headers), carried on the response to the code that writes its head instead of
 * set one by one with setHeader. Each writer merges them into the object it gives writeHead:
 * node:http then validates every header once on its fast path, where headers set earlier
 * would make it copy the upstream's headers in through setHeader too, one call each.
 *
 * Every writer after the filters merges them: the exchange (the workload's response), local
 * replies, direct responses and redirects, fault aborts. A writer that sets headers with
 * setHeader (gRPC trailers-only) calls setAddedHeaders.
 */
type Pairs = readonly (readonly [string, string])[];

const ADDED = Symbol('palisade.addedResponseHeaders');

interface Carrier {
  [ADDED]?: Pairs;
}

/** Adds `pairs` to the response's head, whoever writes it (after any added before). */
export function addResponseHeaders(res: object, pairs: Pairs): void {
  if (pairs.length === 0) return;
  const c = res as Carrier;
  const before = c[ADDED];
  c[ADDED] = before === undefined ? pairs : [...before, ...pairs];
}

/** `headers` with the added headers put in (mutated and returned); an added name replaces the same key. */
export function withAddedHeaders<T extends Record<string, unknown>>(res: object, headers: T): T {
  const pairs = (res as Carrier)[ADDED];
  if (pairs === undefined) return headers;
  const out = headers as Record<string, unknown>;
  for (let i = 0; i < pairs.length; i++) out[pairs[i]![0]] = pairs[i]![1];
  return headers;
}

/** Sets the added headers with setHeader, for a writer that does not pass writeHead an object. */
export function setAddedHeaders(res: { setHeader(name: string, value: string): unknown }): void {
  const pairs = (res as Carrier)[ADDED];
  if (pairs === undefined) return;
  for (const [k, v] of pairs) res.setHeader(k, v);
}
