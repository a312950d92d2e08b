/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/) vectors for the sidecar's reading of
 * traceparent and tracestate (sidecar/telemetry/trace-headers.ts), one row per rule of the
 * spec's sections 3.2 (traceparent) and 3.3 (tracestate) and of its test suite's cases
 * (w3c/trace-context test/test.py, strict level 2): version 00 exact length, version ff
 * invalid, future versions with extra fields, lowercase hex only, all-zero ids invalid, OWS,
 * tracestate keys and values, duplicates, 32 members and 512 characters. Then the same rules
 * through RequestTracer: what the upstream request carries.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { DownstreamRequest } from '../../../sidecar/listeners/http-listener.ts';
import { parseTraceparent, parseTracestate, traceContextOf, traceHeadersOf } from '../../../sidecar/telemetry/trace-headers.ts';
import { RequestTracer } from '../../../sidecar/telemetry/tracing.ts';

const TRACE = '12345678901234567890123456789012';
const PARENT = '1234567890123456';
const VALID = `00-${TRACE}-${PARENT}-01`;

describe('traceparent', () => {
  it.each([
    ['version 00, sampled', VALID, 1],
    ['version 00, not sampled', `00-${TRACE}-${PARENT}-00`, 0],
    ['version 00, unknown flags kept to the sampled bit', `00-${TRACE}-${PARENT}-ff`, 1],
    ['version 00, unknown flag without the sampled bit', `00-${TRACE}-${PARENT}-02`, 0],
    ['future version cc, 55 characters', `cc-${TRACE}-${PARENT}-01`, 1],
    ['future version cc with extra fields after a dash', `cc-${TRACE}-${PARENT}-01-what-the-future-will-be-like`, 1],
    ['future version 01 with an extra field', `01-${TRACE}-${PARENT}-00-0123`, 0],
    ['leading space', ` ${VALID}`, 1],
    ['leading tab', `\t${VALID}`, 1],
    ['trailing space', `${VALID} `, 1],
    ['trailing tab', `${VALID}\t`, 1],
    ['several OWS characters on both ends', `\t ${VALID} \t`, 1],
  ])('accepts %s', (_name, header, sampled) => {
    const p = parseTraceparent(header);
    expect(p).not.toBeNull();
    expect(p!.traceId).toBe(TRACE);
    expect(p!.parentId).toBe(PARENT);
    expect(p!.traceFlags).toBe(sampled);
  });

  it.each([
    ['version 00 with a trailing character', `${VALID}.`],
    ['version 00 with extra fields', `${VALID}-what-the-future-will-be-like`],
    ['future version with no dash before the extra part', `cc-${TRACE}-${PARENT}-01.what-the-future-will-be-like`],
    ['version ff', `ff-${TRACE}-${PARENT}-01`],
    ['illegal character in version (first)', `.0-${TRACE}-${PARENT}-01`],
    ['illegal character in version (second)', `0.-${TRACE}-${PARENT}-01`],
    ['version of 3 digits', `000-${TRACE}-${PARENT}-01`],
    ['version of 4 digits', `0000-${TRACE}-${PARENT}-01`],
    ['version of 1 digit', `0-${TRACE}-${PARENT}-01`],
    ['uppercase version', `CC-${TRACE}-${PARENT}-01`],
    ['all-zero trace-id', `00-${'0'.repeat(32)}-${PARENT}-01`],
    ['illegal character at the start of trace-id', `00-.${TRACE.slice(1)}-${PARENT}-01`],
    ['illegal character at the end of trace-id', `00-${TRACE.slice(0, 31)}.-${PARENT}-01`],
    ['uppercase trace-id', `00-${'ABCDEF'.padEnd(32, '1')}-${PARENT}-01`],
    ['trace-id of 33 digits', `00-${TRACE}3-${PARENT}-01`],
    ['trace-id of 31 digits', `00-${TRACE.slice(1)}-${PARENT}-01`],
    ['all-zero parent-id', `00-${TRACE}-${'0'.repeat(16)}-01`],
    ['illegal character at the start of parent-id', `00-${TRACE}-.${PARENT.slice(1)}-01`],
    ['illegal character at the end of parent-id', `00-${TRACE}-${PARENT.slice(0, 15)}.-01`],
    ['uppercase parent-id', `00-${TRACE}-ABCDEF7890123456-01`],
    ['parent-id of 17 digits', `00-${TRACE}-${PARENT}7-01`],
    ['parent-id of 15 digits', `00-${TRACE}-${PARENT.slice(1)}-01`],
    ['illegal character in trace-flags (first)', `00-${TRACE}-${PARENT}-.0`],
    ['illegal character in trace-flags (second)', `00-${TRACE}-${PARENT}-0.`],
    ['uppercase trace-flags', `00-${TRACE}-${PARENT}-0A`],
    ['trace-flags of 3 digits', `00-${TRACE}-${PARENT}-001`],
    ['trace-flags of 1 digit', `00-${TRACE}-${PARENT}-1`],
    ['future version shorter than 55 characters', `cc-${TRACE}-${PARENT}-1`],
    ['two headers joined by Node', `${VALID}, 00-${TRACE.replace('1', '9')}-${PARENT}-01`],
    ['two future-version headers joined by Node', `cc-${TRACE}-${PARENT}-01, cc-${TRACE}-${PARENT}-01`],
    ['a value with other whitespace than OWS', `\n${VALID}`],
    ['an empty value', ''],
  ])('rejects %s', (_name, header) => {
    expect(parseTraceparent(header)).toBeNull();
  });

  it('rejects a traceparent sent as more than one header (an array)', () => {
    expect(traceContextOf({ traceparent: [VALID, VALID] })).toBeNull();
    expect(traceContextOf({ traceparent: [VALID] })).toMatchObject({ traceId: TRACE });
  });
});

const ALL_KEY_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789_-*/';
/** Every value character: %x20-2B, %x2D-3C, %x3E-7E. */
const ALL_VALUE_CHARS = [...Array(0x7f - 0x20).keys()].map((i) => String.fromCharCode(0x20 + i)).filter((c) => c !== ',' && c !== '=').join('');
const members = (n: number, from = 1) => Array.from({ length: n }, (_, i) => `bar${String(i + from).padStart(2, '0')}=${String(i + from).padStart(2, '0')}`);

describe('tracestate', () => {
  it.each<[string, string | string[], string]>([
    ['one member', 'foo=1', 'foo=1'],
    ['two members', 'foo=1,bar=2', 'foo=1,bar=2'],
    ['members over several headers, in order', ['foo=1,bar=2', 'rojo=1,congo=2', 'baz=3'], 'foo=1,bar=2,rojo=1,congo=2,baz=3'],
    ['headers joined by Node with ", "', 'foo=1,bar=2, rojo=1', 'foo=1,bar=2,rojo=1'],
    ['OWS around members', 'foo=1 \t , \t bar=2, \t baz=3', 'foo=1,bar=2,baz=3'],
    ['OWS at both ends', '\t foo=1 \t', 'foo=1'],
    ['an empty header among others', ['foo=1', ''], 'foo=1'],
    ['an empty header first', ['', 'foo=1'], 'foo=1'],
    ['empty members', 'foo=1,,bar=2,', 'foo=1,bar=2'],
    ['every key and value character', `${ALL_KEY_CHARS}=${ALL_VALUE_CHARS}`, `${ALL_KEY_CHARS}=${ALL_VALUE_CHARS}`],
    ['a multi-tenant key with every character', `${ALL_KEY_CHARS}@a-z0-9_-*/=${ALL_VALUE_CHARS}`, `${ALL_KEY_CHARS}@a-z0-9_-*/=${ALL_VALUE_CHARS}`],
    ['a tenant id starting with a digit', '1tenant@vendor=x', '1tenant@vendor=x'],
    ['a value with an inner space', 'foo=a b', 'foo=a b'],
    ['32 members over four headers', [members(10).join(','), members(10, 11).join(','), members(10, 21).join(','), members(2, 31).join(',')], members(32).join(',')],
    ['exactly 512 characters', `a=${'x'.repeat(254)},b=${'y'.repeat(253)}`, `a=${'x'.repeat(254)},b=${'y'.repeat(253)}`],
    ['513 characters cut to the members that fit', `a=${'x'.repeat(254)},b=${'y'.repeat(254)}`, `a=${'x'.repeat(254)}`],
  ])('keeps %s', (_name, header, expected) => {
    expect(parseTracestate(header)).toBe(expected);
  });

  it.each<[string, string | string[] | undefined]>([
    ['no header', undefined],
    ['an empty header', ''],
    ['only OWS and commas', ' , \t,'],
    ['a key with a space before "="', 'foo =1'],
    ['an uppercase key', 'FOO=1'],
    ['a key with "."', 'foo.bar=1'],
    ['a key starting with a digit (no tenant)', '1foo=1'],
    ['an empty system id', 'foo@=1,bar=2'],
    ['an empty tenant id', '@foo=1,bar=2'],
    ['two "@"', 'foo@@bar=1,bar=2'],
    ['two "@" apart', 'foo@bar@baz=1,bar=2'],
    ['a system id of 15 characters', `t@${'a'.repeat(15)}=1`],
    ['a key of 257 characters', `${'a'.repeat(257)}=1`],
    ['a member without "="', 'foo=1,bar'],
    ['an empty value', 'foo='],
    ['a value ending in a space inside the member', 'foo=1 ,bar=2'.replace(' ,', '\u00a0,')],
    ['a value with "="', 'foo=a=b'],
    ['a value of 257 characters', `foo=${'x'.repeat(257)}`],
    ['a non-ASCII value', 'foo=é'],
    ['a duplicated key in one header', 'foo=1,foo=1'],
    ['a duplicated key with different values', 'foo=1,foo=2'],
    ['a duplicated key over two headers', ['foo=1', 'foo=2']],
    ['33 members', [members(10).join(','), members(10, 11).join(','), members(10, 21).join(','), members(3, 31).join(',')]],
  ])('discards the whole tracestate for %s', (_name, header) => {
    expect(parseTracestate(header)).toBeNull();
  });

  it('drops whole members over 512 characters: those over 128 characters first, then from the end', () => {
    const big = `big=${'b'.repeat(200)}`;
    const small = (i: number) => `k${i}=${'v'.repeat(60)}`;
    // 7 small (7 × 63 + 6 commas = 447) + 1 big (204) + 1 comma = 652 > 512: the big one goes.
    const header = [small(1), small(2), small(3), big, small(4), small(5), small(6), small(7)].join(',');
    expect(parseTracestate(header)).toBe([1, 2, 3, 4, 5, 6, 7].map(small).join(','));
    // 9 small: 9 × 63 + 8 = 575 > 512: from the end until 8 × 63 + 7 = 511.
    expect(parseTracestate([1, 2, 3, 4, 5, 6, 7, 8, 9].map(small).join(','))).toBe([1, 2, 3, 4, 5, 6, 7, 8].map(small).join(','));
    const result = parseTracestate([1, 2, 3, 4, 5, 6, 7, 8, 9].map(small).join(','))!;
    expect(result.length).toBeLessThanOrEqual(512);
  });

  it('ignores tracestate when traceparent is invalid', () => {
    expect(traceContextOf({ traceparent: `ff-${TRACE}-${PARENT}-01`, tracestate: 'foo=1' })).toBeNull();
    expect(traceContextOf({ tracestate: 'foo=1' })).toBeNull();
    expect(traceContextOf({ traceparent: VALID, tracestate: 'foo=1' })).toMatchObject({ traceId: TRACE, tracestate: 'foo=1' });
  });
});

describe('RequestTracer with the spec vectors', () => {
  // Nothing is sampled (rate 0, unsampled parents), so nothing is exported to the unused endpoint.
  const tracer = new RequestTracer({ config: { otlpEndpoint: 'http://127.0.0.1:9/v1/traces', sampleRate: 0 }, service: 'web', namespace: 'default', instance: 'web-1' });
  afterAll(() => tracer.close());

  function upstream(headers: Record<string, string | string[]>): { traceparent: string; tracestate: string | undefined } {
    const req = { headers, httpVersionMajor: 1 } as unknown as DownstreamRequest;
    tracer.start(req, 'outbound', 'GET', '/', 'api').end();
    const h = traceHeadersOf(req)!;
    expect(h.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
    return { traceparent: h.traceparent!, tracestate: h.tracestate };
  }

  it.each([
    ['version 00', `00-${TRACE}-${PARENT}-00`],
    ['a future version with extra fields', `cc-${TRACE}-${PARENT}-00-future`],
    ['several OWS characters', `\t ${`00-${TRACE}-${PARENT}-00`} \t`],
  ])('continues the trace of a valid traceparent (%s) with a new parent id', (_name, traceparent) => {
    const out = upstream({ traceparent });
    expect(out.traceparent.slice(3, 35)).toBe(TRACE);
    expect(out.traceparent.slice(36, 52)).not.toBe(PARENT);
    expect(out.traceparent.slice(53)).toBe('00');
  });

  it.each([
    ['version 00 with extra fields', `00-${TRACE}-${PARENT}-00-future`],
    ['version ff', `ff-${TRACE}-${PARENT}-00`],
    ['an uppercase trace-id', `00-${TRACE.replace('1', 'A')}-${PARENT}-00`],
    ['an all-zero parent-id', `00-${TRACE}-${'0'.repeat(16)}-00`],
  ])('starts a new trace for an invalid traceparent (%s)', (_name, traceparent) => {
    const out = upstream({ traceparent, tracestate: 'foo=1' });
    expect(out.traceparent.slice(3, 35)).not.toBe(TRACE);
    expect(out.tracestate).toBeUndefined();
  });

  it('passes on a valid tracestate normalized, and none for a discarded one', () => {
    expect(upstream({ traceparent: `00-${TRACE}-${PARENT}-00`, tracestate: ['foo=1 , bar=2', 'baz=3'] }).tracestate).toBe('foo=1,bar=2,baz=3');
    expect(upstream({ traceparent: `00-${TRACE}-${PARENT}-00`, tracestate: 'foo=1,foo=2' }).tracestate).toBeUndefined();
    expect(upstream({ traceparent: `00-${TRACE}-${PARENT}-00`, tracestate: 'foo@=1,bar=2' }).tracestate).toBeUndefined();
    expect(upstream({ traceparent: `00-${TRACE}-${PARENT}-00`, tracestate: members(33).join(',') }).tracestate).toBeUndefined();
    expect(upstream({ traceparent: `00-${TRACE}-${PARENT}-00`, tracestate: members(32).join(',') }).tracestate).toBe(members(32).join(','));
  });
});
