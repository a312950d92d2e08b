import { describe, expect, it } from 'vitest';
import { Pool, errors } from 'undici';
import { classifyUpstreamError } from '../../../sidecar/upstream/upstream-result.ts';

const coded = (code: string): Error => Object.assign(new Error(code), { code });

describe('classifyUpstreamError', () => {
  it.each([
    ['a refused connection', coded('ECONNREFUSED'), 'connect-failure'],
    ['a connect timeout', new errors.ConnectTimeoutError(), 'connect-failure'],
    ['a headers timeout', new errors.HeadersTimeoutError(), 'timeout'],
    ['a body timeout', new errors.BodyTimeoutError(), 'timeout'],
    ['a socket closed mid-response', new errors.SocketError('other side closed'), 'reset'],
    ['ECONNRESET', coded('ECONNRESET'), 'reset'],
    ['an AggregateError of refused attempts', new AggregateError([coded('ECONNREFUSED'), coded('ECONNREFUSED')]), 'connect-failure'],
    ['a wrapped cause', new Error('fetch failed', { cause: coded('ENOTFOUND') }), 'connect-failure'],
    ['something without a code', new Error('boom'), 'reset'],
    ['not an error at all', 'boom', 'reset'],
  ])('maps %s', (_what, err, want) => {
    expect(classifyUpstreamError(err)).toBe(want);
  });

  it('maps what undici really throws for a port nobody listens on', async () => {
    const pool = new Pool('http://127.0.0.1:1');
    try {
      await expect(pool.request({ path: '/', method: 'GET' }).catch(classifyUpstreamError)).resolves.toBe('connect-failure');
    } finally {
      await pool.destroy();
    }
  });
});
