/**
 * The trace context the upstream request carries: set by the tracer (tracing.ts) when it starts
 * a request's span, read by upstream-headers.ts, which then sends these `traceparent` /
 * `tracestate` instead of the downstream's. Without tracing nothing is set and the downstream's
 * headers pass through untouched; the forwarder pays one property read.
 */
import { ROOT_CONTEXT, trace, type Context } from '@opentelemetry/api';
import { TraceState } from '@opentelemetry/core';
import type { DownstreamRequest } from '../listeners/http-listener.ts';

const TRACE_HEADERS = Symbol('palisade.traceHeaders');

/** Header name → value (`traceparent`, and `tracestate` when there is one). */
export type TraceHeaders = Readonly<Record<string, string>>;

type WithTrace = DownstreamRequest & { [TRACE_HEADERS]?: TraceHeaders };

export function setTraceHeaders(req: DownstreamRequest, headers: TraceHeaders): void {
  (req as WithTrace)[TRACE_HEADERS] = headers;
}

/** The trace headers to send upstream instead of the downstream's; undefined when tracing is off. */
export function traceHeadersOf(req: DownstreamRequest): TraceHeaders | undefined {
  return (req as WithTrace)[TRACE_HEADERS];
}

/*
 * Reading the downstream's trace context, by the W3C Trace Context rules
 * (https://www.w3.org/TR/trace-context/, sections 3.2 and 3.3), stricter than
 * @opentelemetry/core's W3CTraceContextPropagator.extract, which accepts at most one space
 * of OWS around traceparent and keeps the valid members of a tracestate the spec says to
 * discard as a whole (a bad member, a duplicate key, more than 32 members).
 *
 *   traceparent  version "-" trace-id "-" parent-id "-" trace-flags, lowercase hex only:
 *                version 00 is exactly 55 characters; a higher version (not ff) is parsed the
 *                same way and may go on after the flags only with "-" (future fields);
 *                all-zero trace-id or parent-id is invalid. Invalid: a new trace.
 *   tracestate   only with a valid traceparent; every header, joined by ",", is one list of
 *                key=value members (empty members ignored); any invalid member, a duplicate
 *                key or more than 32 members discards it all. Over 512 characters, whole
 *                members are dropped: those over 128 characters first, then from the end.
 */

/** A valid traceparent's fields. `traceFlags` keeps the sampled bit only (unknown flags are not propagated). */
export interface Traceparent {
  readonly version: string;
  readonly traceId: string;
  readonly parentId: string;
  readonly traceFlags: number;
}

/** The spec's limits on tracestate. */
export const TRACESTATE_MAX_MEMBERS = 32;
export const TRACESTATE_MAX_LENGTH = 512;
const TRACESTATE_LARGE_MEMBER = 128;

const HEX_LC = /^[0-9a-f]+$/;
const ZERO = /^0+$/;
/** simple-key, or tenant-id "@" system-id. */
const TRACESTATE_KEY = /^(?:[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})$/;
/** 0*255(chr) nblk-chr: printable ASCII and space, no "," or "=", not ending in a space. */
const TRACESTATE_VALUE = /^[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$/;

/** Strips OWS (spaces and tabs) at both ends. */
function trimOws(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && (s.charCodeAt(a) === 0x20 || s.charCodeAt(a) === 0x09)) a++;
  while (b > a && (s.charCodeAt(b - 1) === 0x20 || s.charCodeAt(b - 1) === 0x09)) b--;
  return a === 0 && b === s.length ? s : s.slice(a, b);
}

/** Parses one traceparent value; null when invalid (the request then starts a new trace). */
export function parseTraceparent(header: string): Traceparent | null {
  const v = trimOws(header);
  if (v.length < 55 || v[2] !== '-' || v[35] !== '-' || v[52] !== '-') return null;
  const version = v.slice(0, 2);
  if (!HEX_LC.test(version) || version === 'ff') return null;
  if (version === '00' ? v.length !== 55 : v.length > 55 && v[55] !== '-') return null;
  const traceId = v.slice(3, 35);
  const parentId = v.slice(36, 52);
  const flags = v.slice(53, 55);
  if (!HEX_LC.test(traceId) || !HEX_LC.test(parentId) || !HEX_LC.test(flags)) return null;
  if (ZERO.test(traceId) || ZERO.test(parentId)) return null;
  return { version, traceId, parentId, traceFlags: parseInt(flags, 16) & 0x01 };
}

/**
 * Parses the tracestate header(s) into the value to propagate (members joined by ",", OWS
 * removed); null when there is none or it is discarded.
 */
export function parseTracestate(header: string | readonly string[] | undefined): string | null {
  if (header === undefined) return null;
  const joined = typeof header === 'string' ? header : header.join(',');
  const members: string[] = [];
  const keys = new Set<string>();
  for (const raw of joined.split(',')) {
    const m = trimOws(raw);
    if (m === '') continue;
    const eq = m.indexOf('=');
    if (eq <= 0) return null;
    const key = m.slice(0, eq);
    if (!TRACESTATE_KEY.test(key) || !TRACESTATE_VALUE.test(m.slice(eq + 1)) || keys.has(key)) return null;
    keys.add(key);
    members.push(m);
    if (members.length > TRACESTATE_MAX_MEMBERS) return null;
  }
  if (members.length === 0) return null;
  let length = members.length - 1;
  for (const m of members) length += m.length;
  if (length > TRACESTATE_MAX_LENGTH) {
    // Drop the large members first (from the end), then from the end, until it fits.
    for (let i = members.length - 1; i >= 0 && length > TRACESTATE_MAX_LENGTH; i--) {
      if (members[i]!.length > TRACESTATE_LARGE_MEMBER) length -= members.splice(i, 1)[0]!.length + 1;
    }
    while (length > TRACESTATE_MAX_LENGTH) length -= members.pop()!.length + 1;
    if (members.length === 0) return null;
  }
  return members.join(',');
}

/** Request headers as Node gives them (IncomingHttpHeaders, HTTP/1.1 and HTTP/2). */
export type HeaderMap = { readonly [name: string]: string | readonly string[] | undefined };

/** The downstream's trace context: traceparent (exactly one header) and tracestate; null: none valid. */
export function traceContextOf(headers: HeaderMap): (Traceparent & { readonly tracestate: string | null }) | null {
  const tp = headers['traceparent'];
  if (tp === undefined || (typeof tp !== 'string' && tp.length !== 1)) return null;
  const parsed = parseTraceparent(typeof tp === 'string' ? tp : tp[0]!);
  if (parsed === null) return null;
  return { ...parsed, tracestate: parseTracestate(headers['tracestate']) };
}

/** The parent context for the request's span: the downstream's valid trace context, remote; else the root (a new trace). */
export function parentContextOf(headers: HeaderMap): Context {
  const tc = traceContextOf(headers);
  if (tc === null) return ROOT_CONTEXT;
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId: tc.traceId, spanId: tc.parentId, traceFlags: tc.traceFlags, isRemote: true,
    ...(tc.tracestate !== null ? { traceState: new TraceState(tc.tracestate) } : {}),
  });
}
