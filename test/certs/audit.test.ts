import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { JsonLinesAuditSink, MemoryAuditSink, validateAuditEvent, type AuditEvent } from '../../certs/audit.ts';
import { JoinTokenStore } from '../../certs/join-token.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const TIME = '2026-03-01T10:00:00.000Z';
const FP_OLD = 'a'.repeat(64);
const FP_NEW = 'b'.repeat(64);

let dir: string;
let file: string;
let sinks: JsonLinesAuditSink[];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'palisade-audit-'));
  file = join(dir, 'logs', 'audit.jsonl');
  sinks = [];
});

afterEach(async () => {
  for (const s of sinks) await s.close();
  await rm(dir, { recursive: true, force: true });
});

function sink(): JsonLinesAuditSink {
  const s = new JsonLinesAuditSink(file);
  sinks.push(s);
  return s;
}

async function lines(): Promise<string[]> {
  return (await readFile(file, 'utf8')).split('\n').filter((l) => l !== '');
}

const EVERY_TYPE: AuditEvent[] = [
  { type: 'cert.issued', time: TIME, actor: 'control-plane', serial: '01ab', spiffeId: 'spiffe://example.org/ns/shop/sa/web', notAfter: '2026-03-02T10:00:00.000Z', keyType: 'ECDSA-P256' },
  { type: 'cert.renewed', time: TIME, actor: 'control-plane', serial: '02cd', previousSerial: '01ab', spiffeId: 'spiffe://example.org/ns/shop/sa/web', notAfter: '2026-03-03T10:00:00.000Z', keyType: 'ECDSA-P256' },
  { type: 'cert.revoked', time: TIME, actor: 'operator:alice', serial: '02cd', reason: 'key compromise' },
  { type: 'root.rotation', time: TIME, actor: 'operator:alice', phase: 'published-both', oldRootFingerprint: FP_OLD, newRootFingerprint: FP_NEW },
  { type: 'root.rotation', time: TIME, actor: 'control-plane', phase: 'reissued', oldRootFingerprint: FP_OLD, newRootFingerprint: FP_NEW },
  { type: 'root.rotation', time: TIME, actor: 'operator:alice', phase: 'retired', oldRootFingerprint: FP_OLD, newRootFingerprint: FP_NEW },
  { type: 'ca.intermediate.replaced', time: TIME, actor: 'operator:alice', rootFingerprint: FP_OLD, oldIntermediateFingerprint: FP_NEW, newIntermediateFingerprint: FP_OLD, kek: 'kept' },
  { type: 'ca.intermediate.replaced', time: TIME, actor: 'operator:alice', rootFingerprint: FP_OLD, newIntermediateFingerprint: FP_NEW, kek: 'replaced' },
  { type: 'token.minted', time: TIME, actor: 'operator:alice', id: '0123456789abcdef', namespace: 'shop', serviceAccount: 'web', expiresAt: '2026-03-01T11:00:00.000Z' },
  { type: 'token.redeemed', time: TIME, actor: 'control-plane', id: '0123456789abcdef', namespace: 'shop', serviceAccount: 'web' },
  { type: 'token.refused', time: TIME, actor: 'control-plane', id: '0123456789abcdef', reason: 'used', code: 'PAL_ERR_CERTS_TOKEN_USED' },
  { type: 'token.refused', time: TIME, actor: 'control-plane', reason: 'malformed', code: 'PAL_ERR_CERTS_TOKEN_MALFORMED' },
  { type: 'token.revoked', time: TIME, actor: 'operator:alice', id: '0123456789abcdef' },
];

describe('JsonLinesAuditSink', () => {
  it('appends one JSON line per event, in order, for every event type (round trip)', async () => {
    const s = sink();
    for (const e of EVERY_TYPE) await s.emit(e);
    const got = await lines();
    expect(got.map((l) => JSON.parse(l) as unknown)).toEqual(EVERY_TYPE);
    expect(got[0]).toBe(
      '{"type":"cert.issued","time":"2026-03-01T10:00:00.000Z","actor":"control-plane","serial":"01ab","spiffeId":"spiffe://example.org/ns/shop/sa/web","notAfter":"2026-03-02T10:00:00.000Z","keyType":"ECDSA-P256"}',
    );
  });

  it('writes fields in schema order whatever order the caller built them in', async () => {
    const s = sink();
    await s.emit({ keyType: 'ECDSA-P256', notAfter: TIME, spiffeId: 'spiffe://x/ns/a/sa/b', serial: '01', actor: 'me', time: TIME, type: 'cert.issued' });
    expect(await lines()).toEqual(['{"type":"cert.issued","time":"2026-03-01T10:00:00.000Z","actor":"me","serial":"01","spiffeId":"spiffe://x/ns/a/sa/b","notAfter":"2026-03-01T10:00:00.000Z","keyType":"ECDSA-P256"}']);
  });

  it('keeps call order for concurrent emits', async () => {
    const s = sink();
    await Promise.all(Array.from({ length: 200 }, (_, i) => s.emit({ type: 'cert.revoked', time: TIME, actor: 'control-plane', serial: i.toString(16), reason: `r${i}` })));
    expect((await lines()).map((l) => (JSON.parse(l) as { reason: string }).reason)).toEqual(Array.from({ length: 200 }, (_, i) => `r${i}`));
  });

  it('creates the file 0600 (and its directory) and appends to an existing file', async () => {
    const first = sink();
    await first.emit(EVERY_TYPE[0]!);
    await first.close();
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const second = sink();
    await second.emit(EVERY_TYPE[1]!);
    expect((await lines()).map((l) => (JSON.parse(l) as { type: string }).type)).toEqual(['cert.issued', 'cert.renewed']);
  });

  it('has an acknowledged event in the file even when the process is SIGKILLed right after emit resolves', async () => {
    const script = join(dir, 'emit-then-die.mjs');
    await writeFile(
      script,
      [
        `import { JsonLinesAuditSink } from ${JSON.stringify(pathToFileURL(join(ROOT, 'certs/audit.ts')).href)};`,
        `const sink = new JsonLinesAuditSink(process.argv[2]);`,
        `await sink.emit({ type: 'cert.revoked', time: '${TIME}', actor: 'child', serial: '01', reason: 'first' });`,
        `await sink.emit({ type: 'cert.revoked', time: '${TIME}', actor: 'child', serial: '02', reason: 'second' });`,
        `process.kill(process.pid, 'SIGKILL');`,
      ].join('\n'),
    );
    const run = await new Promise<{ signal: NodeJS.Signals | null; err: string }>((done, fail) => {
      const child = spawn(process.execPath, [script, file], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
      child.on('error', fail);
      child.on('close', (_code, signal) => done({ signal, err }));
    });
    expect(run.signal, run.err).toBe('SIGKILL');
    expect(await lines()).toEqual([
      `{"type":"cert.revoked","time":"${TIME}","actor":"child","serial":"01","reason":"first"}`,
      `{"type":"cert.revoked","time":"${TIME}","actor":"child","serial":"02","reason":"second"}`,
    ]);
  });

  it('never writes a join token secret: the file of a mint, redeem and reuse holds no part of it', async () => {
    const s = sink();
    const store = await JoinTokenStore.open({ file: join(dir, 'tokens.json'), audit: s, clock: () => new Date(TIME) });
    const { token } = await store.mint({ namespace: 'shop', serviceAccount: 'web', ttlMs: 60_000 });
    await store.redeem(token);
    await store.redeem(token);
    const [, id, secret] = token.split('.') as [string, string, string];
    const text = await readFile(file, 'utf8');
    expect(text.split('\n').filter((l) => l !== '').length).toBe(3);
    expect(text.includes(id)).toBe(true);
    expect(text.includes(secret)).toBe(false);
    expect(text.includes(secret.slice(0, 16))).toBe(false);
    expect(text.includes(Buffer.from(secret, 'base64url').toString('hex'))).toBe(false);
  });

  it.each([
    ['an unknown type', { type: 'cert.stolen', time: TIME, actor: 'x' }, ['type must be one of cert.issued, cert.renewed, cert.revoked, root.rotation, ca.intermediate.replaced, token.minted, token.redeemed, token.refused, token.revoked, got "cert.stolen"']],
    ['a missing field', { type: 'cert.revoked', time: TIME, actor: 'x', serial: '01' }, ['cert.revoked.reason must be a non-empty string, got undefined']],
    ['an empty actor', { type: 'token.revoked', time: TIME, actor: '', id: '0123456789abcdef' }, ['token.revoked.actor must be a non-empty string, got ""']],
    ['a non-ISO time', { type: 'token.revoked', time: 'yesterday', actor: 'x', id: '0123456789abcdef' }, ['token.revoked.time must be an ISO 8601 time, got "yesterday"']],
    ['an unknown KEK outcome', { type: 'ca.intermediate.replaced', time: TIME, actor: 'x', rootFingerprint: FP_OLD, newIntermediateFingerprint: FP_NEW, kek: 'lost' }, ['ca.intermediate.replaced.kek must be one of kept, replaced, got "lost"']],
    ['an unknown rotation phase', { type: 'root.rotation', time: TIME, actor: 'x', phase: 'done', oldRootFingerprint: FP_OLD, newRootFingerprint: FP_NEW }, ['root.rotation.phase must be one of published-both, reissued, retired, got "done"']],
    [
      'an extra field (a spread token)',
      { type: 'token.minted', time: TIME, actor: 'x', id: '0123456789abcdef', namespace: 'shop', serviceAccount: 'web', expiresAt: TIME, secret: 'hunter2' },
      ['token.minted has no field "secret"'],
    ],
    [
      'a value holding a join token',
      { type: 'token.refused', time: TIME, actor: 'x', reason: `bad pal1.0123456789abcdef.${'A'.repeat(43)}`, code: 'PAL_ERR_CERTS_TOKEN_USED' },
      ['token.refused.reason holds a join token; audit events never carry secrets'],
    ],
    ['a number for a string', { type: 'cert.revoked', time: TIME, actor: 'x', serial: 1, reason: 'r' }, ['cert.revoked.serial must be a non-empty string, got 1']],
    ['not an object', 'cert.issued', ['event must be an object, got "cert.issued"']],
  ])('refuses %s with PAL_ERR_CERTS_AUDIT_INVALID_EVENT and writes nothing', async (_name, event, errors) => {
    expect(validateAuditEvent(event)).toEqual({ valid: false, errors });
    const s = sink();
    await expect(s.emit(event as AuditEvent)).rejects.toMatchObject({ code: 'PAL_ERR_CERTS_AUDIT_INVALID_EVENT', message: `invalid audit event: ${errors.join('; ')}` });
    await s.emit(EVERY_TYPE[2]!);
    expect((await lines()).map((l) => (JSON.parse(l) as { type: string }).type)).toEqual(['cert.revoked']);
  });

  it('keeps writing in order after a refused event among concurrent emits', async () => {
    const s = sink();
    const results = await Promise.allSettled([
      s.emit({ type: 'cert.revoked', time: TIME, actor: 'x', serial: '01', reason: 'a' }),
      s.emit({ type: 'cert.revoked', time: TIME, actor: 'x', serial: '02' } as AuditEvent),
      s.emit({ type: 'cert.revoked', time: TIME, actor: 'x', serial: '03', reason: 'c' }),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((await lines()).map((l) => (JSON.parse(l) as { serial: string }).serial)).toEqual(['01', '03']);
  });

  it('rejects emits after close with PAL_ERR_CERTS_AUDIT_SINK_CLOSED, after finishing pending ones', async () => {
    const s = sink();
    const pending = s.emit(EVERY_TYPE[0]!);
    await s.close();
    await pending;
    await expect(s.emit(EVERY_TYPE[1]!)).rejects.toMatchObject({ code: 'PAL_ERR_CERTS_AUDIT_SINK_CLOSED', message: `audit sink ${file} is closed` });
    expect((await lines()).length).toBe(1);
  });
});

describe('MemoryAuditSink (an in-memory implementation for embedding)', () => {
  it('keeps validated events in order and refuses invalid ones like any sink', async () => {
    const s = new MemoryAuditSink();
    for (const e of EVERY_TYPE) await s.emit(e);
    expect(s.events).toEqual(EVERY_TYPE);
    await expect(s.emit({ type: 'token.revoked', time: TIME, actor: 'x' } as AuditEvent)).rejects.toMatchObject({ code: 'PAL_ERR_CERTS_AUDIT_INVALID_EVENT' });
    expect(s.events.length).toBe(EVERY_TYPE.length);
  });
});
