import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { JsonLinesAuditSink } from '../../certs/audit.ts';
import {
  JoinTokenStore,
  MAX_JOIN_TOKEN_TTL_MS,
  refusalError,
  validateMintRequest,
  type RedeemRefusal,
} from '../../certs/join-token.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const T0 = new Date('2026-03-01T10:00:00.000Z');
const HOUR = 60 * 60 * 1000;
const at = (ms: number): Date => new Date(T0.getTime() + ms);

let dir: string;
let stateFile: string;
let auditFile: string;
let sinks: JsonLinesAuditSink[];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'palisade-join-token-'));
  stateFile = join(dir, 'state', 'join-tokens.json');
  auditFile = join(dir, 'audit.jsonl');
  sinks = [];
});

afterEach(async () => {
  for (const s of sinks) await s.close();
  await rm(dir, { recursive: true, force: true });
});

async function openStore(options: { retentionMs?: number } = {}): Promise<JoinTokenStore> {
  const audit = new JsonLinesAuditSink(auditFile);
  sinks.push(audit);
  return JoinTokenStore.open({ file: stateFile, audit, clock: () => T0, actor: 'test-operator', ...options });
}

async function auditLines(): Promise<Record<string, unknown>[]> {
  const text = await readFile(auditFile, 'utf8');
  return text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
}

function secretOf(token: string): string {
  return token.split('.')[2]!;
}

describe('JoinTokenStore', () => {
  it('mints pal1.<16 hex id>.<43 base64url> and redeems it once for its namespace and service account', async () => {
    const store = await openStore();
    const { token, info } = await store.mint({ namespace: 'shop', serviceAccount: 'web', ttlMs: HOUR });
    expect(token).toMatch(/^pal1\.[0-9a-f]{16}\.[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(secretOf(token), 'base64url')).toHaveLength(32);
    expect(info).toEqual({
      id: token.split('.')[1],
      namespace: 'shop',
      serviceAccount: 'web',
      createdAt: '2026-03-01T10:00:00.000Z',
      expiresAt: '2026-03-01T11:00:00.000Z',
      usedAt: null,
      revokedAt: null,
      state: 'active',
    });
    const r = await store.redeem(token, { namespace: 'shop', serviceAccount: 'web', now: at(1000) });
    expect(r).toEqual({ ok: true, id: info.id, identity: { namespace: 'shop', serviceAccount: 'web' }, redeemedAt: '2026-03-01T10:00:01.000Z' });
  });

  it('refuses a reused token with reason used and the time it was used', async () => {
    const store = await openStore();
    const { token, info } = await store.mint({ namespace: 'shop', serviceAccount: 'web', ttlMs: HOUR });
    expect((await store.redeem(token, { now: at(5000) })).ok).toBe(true);
    const second = await store.redeem(token, { now: at(6000) });
    expect(second).toEqual({
      ok: false,
      reason: 'used',
      code: 'PAL_ERR_CERTS_TOKEN_USED',
      message: `join token ${info.id} was already used at 2026-03-01T10:00:05.000Z`,
      id: info.id,
      usedAt: '2026-03-01T10:00:05.000Z',
    });
  });

  it('accepts a token until its expiry and refuses it from the expiry on, with the expiry time (injected clock)', async () => {
    const store = await openStore();
    const a = await store.mint({ namespace: 'shop', serviceAccount: 'web', ttlMs: HOUR });
    const b = await store.mint({ namespace: 'shop', serviceAccount: 'web', ttlMs: HOUR });
    expect(await store.redeem(a.token, { now: at(HOUR) })).toEqual({
      ok: false,
      reason: 'expired',
      code: 'PAL_ERR_CERTS_TOKEN_EXPIRED',
      message: `join token ${a.info.id} expired at 2026-03-01T11:00:00.000Z`,
      id: a.info.id,
      expiredAt: '2026-03-01T11:00:00.000Z',
    });
    expect((await store.redeem(b.token, { now: at(HOUR - 1) })).ok).toBe(true);
  });

  it('uses the store clock when a call passes no now', async () => {
    let now = T0;
    const audit = new JsonLinesAuditSink(auditFile);
    sinks.push(audit);
    const store = await JoinTokenStore.open({ file: stateFile, audit, clock: () => now });
    const { token } = await store.mint({ namespace: 'shop', serviceAccount: 'web', ttlMs: 1000 });
    now = at(1000);
    const r = await store.redeem(token);
    expect(r.ok === false && r.reason).toBe('expired');
  });

  const VALID_SECRET = 'A'.repeat(42) + 'A';
  it.each([
    ['empty', ''],
    ['no parts', 'pal1'],
    ['other version', `pal2.0123456789abcdef.${VALID_SECRET}`],
    ['upper-case id', `pal1.0123456789ABCDEF.${VALID_SECRET}`],
    ['short id', `pal1.0123456789abcde.${VALID_SECRET}`],
    ['short secret', `pal1.0123456789abcdef.${'A'.repeat(42)}`],
    ['standard base64 characters', `pal1.0123456789abcdef.${'A'.repeat(42)}+`],
    ['extra part', `pal1.0123456789abcdef.${VALID_SECRET}.x`],
    ['surrounding whitespace', ` pal1.0123456789abcdef.${VALID_SECRET}`],
    ['non-canonical last character', `pal1.0123456789abcdef.${'A'.repeat(42)}B`],
  ])('refuses a malformed token (%s)', async (_name, token) => {
    const store = await openStore();
    const r = await store.redeem(token);
    expect(r.ok).toBe(false);
    expect(r.ok === false && [r.reason, r.code]).toEqual(['malformed', 'PAL_ERR_CERTS_TOKEN_MALFORMED']);
    expect(r.ok === false && 'id' in r).toBe(false);
  });

  it('refuses a well-formed token that was never minted as unknown, naming its id', async () => {
    const store = await openStore();
    await store.mint({ namespace: 'shop', serviceAccount: 'web', ttlMs: HOUR });
    expect(await store.redeem(`pal1.0123456789abcdef.${VALID_SECRET}`)).toEqual({
      ok: false,
      reason: 'unknown',
      code: 'PAL_ERR_CERTS_TOKEN_UNKNOWN',
      message: 'join token 0123456789abcdef is unknown (never minted, pruned, or wrong secret)',
      id: '0123456789abcdef',
    });
  });

  it('refuses a known id with a different secret as unknown, and the real token still works', async () => {
    const store = await openStore();
    const { token, info } = await store.mint({ namespace: 'shop', serviceAccount: 'web', ttlMs: HOUR });
    const forged = `pal1.${info.id}.${Buffer.alloc(32, 7).toString('base64url')}`;
    const r = await store.redeem(forged);
    expect(r.ok === false && [r.reason, r.code, 'id' in r && r.id]).toEqual(['unknown', 'PAL_ERR_CERTS_TOKEN_UNKNOWN', info.id]);
    expect((await store.redeem(token)).ok).toBe(true);
  });

  it('refuses a CSR for another identity naming both, without consuming the token', async () => {
    const store = await openStore();
    const { token, info } = await store.mint({ namespace: 'shop', serviceAccount: 'web', ttlMs: HOUR });
    const r = await store.redeem(token, { namespace: 'shop', serviceAccount: 'db' });
    expect(r).toEqual({
      ok: false,
      reason: 'scope-mismatch',
      code: 'PAL_ERR_CERTS_TOKEN_SCOPE_MISMATCH',
      message: `join token ${info.id} is scoped to namespace "shop", service account "web", but the request asks for namespace "shop", service account "db"`,
      id: info.id,
      scope: { namespace: 'shop', serviceAccount: 'web' },
      requested: { namespace: 'shop', serviceAccount: 'db' },
    });
    const ns = await store.redeem(token, { namespace: 'billing' });
    expect(ns.ok === false && ns.message).toBe(`join token ${info.id} is scoped to namespace "shop", service account "web", but the request asks for namespace "billing"`);
    expect((await store.list())[0]!.state).toBe('active');
    expect((await store.redeem(token, { namespace: 'shop' })).ok).toBe(true);
  });

  it('keeps only the SHA-256 of the secret in a 0600 state file', async () => {
    const store = await openStore();
    const { token, info } = await store.mint({ namespace: 'shop', serviceAccount: 'web', ttlMs: HOUR });
    const text = await readFile(stateFile, 'utf8');
    expect(text.includes(secretOf(token))).toBe(false);
    expect(text.includes(Buffer.from(secretOf(token), 'base64url').toString('hex'))).toBe(false);
    expect(text.includes(token)).toBe(false);
    expect(JSON.parse(text)).toEqual({
      version: 1,
      tokens: [
        {
          id: info.id,
          secretSha256: createHash('sha256').update(Buffer.from(secretOf(token), 'base64url')).digest('hex'),
          namespace: 'shop',
          serviceAccount: 'web',
          createdAt: '2026-03-01T10:00:00.000Z',
          expiresAt: '2026-03-01T11:00:00.000Z',
          usedAt: null,
          revokedAt: null,
        },
      ],
    });
    expect((await stat(stateFile)).mode & 0o777).toBe(0o600);
    await store.redeem(token);
    expect((await stat(stateFile)).mode & 0o777).toBe(0o600);
    expect((await readFile(stateFile, 'utf8')).includes(secretOf(token))).toBe(false);
    expect((await readdir(join(dir, 'state'))).sort()).toEqual(['join-tokens.json']);
  });

  it('lets exactly one of two concurrent redeems of the same token win', async () => {
    const store = await openStore();
    const { token } = await store.mint({ namespace: 'shop', serviceAccount: 'web', ttlMs: HOUR });
    const results = await Promise.all([store.redeem(token), store.redeem(token)]);
    expect(results.map((r) => r.ok)).toEqual([true, false]);
    expect(results[1]!.ok === false && results[1]!.reason).toBe('used');
  });

  it('lets exactly one of many concurrent redeems win across interleaved tokens', async () => {
    const store = await openStore();
    const a = await store.mint({ namespace: 'shop', serviceAccount: 'web', ttlMs: HOUR });
    const b = await store.mint({ namespace: 'shop', serviceAccount: 'db', ttlMs: HOUR });
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => store.redeem(i % 2 === 0 ? a.token : b.token)));
    expect(results.filter((r) => r.ok).map((r) => r.ok && r.identity.serviceAccount)).toEqual(['web', 'db']);
    expect(results.filter((r) => !r.ok).every((r) => !r.ok && r.reason === 'used')).toBe(true);
  });

  it('still refuses a used token after a restart (a new store over the same file)', async () => {
    const first = await openStore();
    const { token, info } = await first.mint({ namespace: 'shop', serviceAccount: 'web', ttlMs: HOUR });
    const unused = await first.mint({ namespace: 'shop', serviceAccount: 'api', ttlMs: HOUR });
    await first.redeem(token, { now: at(2000) });
    const second = await openStore();
    const r = await second.redeem(token, { now: at(3000) });
    expect(r.ok === false && [r.reason, 'usedAt' in r && r.usedAt]).toEqual(['used', '2026-03-01T10:00:02.000Z']);
    expect((await second.list({ now: at(3000) })).map((t) => [t.id, t.state])).toEqual(
      [
        [info.id, 'used'],
        [unused.info.id, 'active'],
      ].sort((x, y) => x[0]!.localeCompare(y[0]!)),
    );
    expect((await second.redeem(unused.token, { now: at(3000) })).ok).toBe(true);
  });

  it('has the token marked used on disk once redeem resolves, even if the process is SIGKILLed right after', async () => {
    const store = await openStore();
    const { token, info } = await store.mint({ namespace: 'shop', serviceAccount: 'web', ttlMs: HOUR });
    const script = join(dir, 'redeem-then-die.mjs');
    await writeFile(
      script,
      [
        `import { writeSync } from 'node:fs';`,
        `import { JoinTokenStore } from ${JSON.stringify(pathToFileURL(join(ROOT, 'certs/join-token.ts')).href)};`,
        `import { JsonLinesAuditSink } from ${JSON.stringify(pathToFileURL(join(ROOT, 'certs/audit.ts')).href)};`,
        `const [file, auditFile, token, now] = process.argv.slice(2);`,
        `const store = await JoinTokenStore.open({ file, audit: new JsonLinesAuditSink(auditFile), actor: 'child' });`,
        `const r = await store.redeem(token, { now: new Date(now) });`,
        `writeSync(1, JSON.stringify(r) + '\\n');`,
        `process.kill(process.pid, 'SIGKILL');`,
      ].join('\n'),
    );
    const run = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string; err: string }>((done, fail) => {
      const child = spawn(process.execPath, [script, stateFile, auditFile, token, at(4000).toISOString()], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
      child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
      child.on('error', fail);
      child.on('close', (code, signal) => done({ code, signal, out, err }));
    });
    expect(run.signal, run.err).toBe('SIGKILL');
    expect(JSON.parse(run.out)).toEqual({ ok: true, id: info.id, identity: { namespace: 'shop', serviceAccount: 'web' }, redeemedAt: '2026-03-01T10:00:04.000Z' });
    const after = await openStore();
    const r = await after.redeem(token, { now: at(5000) });
    expect(r.ok === false && [r.reason, 'usedAt' in r && r.usedAt]).toEqual(['used', '2026-03-01T10:00:04.000Z']);
    expect((await auditLines()).map((e) => [e.type, e.actor])).toEqual([
      ['token.minted', 'test-operator'],
      ['token.redeemed', 'child'],
      ['token.refused', 'test-operator'],
    ]);
  });

  it('rejects a redeem whose state write fails, and the token is still unused afterwards', async () => {
    const store = await openStore();
    const { token } = await store.mint({ namespace: 'shop', serviceAccount: 'web', ttlMs: HOUR });
    await rm(stateFile);
    await mkdir(join(stateFile, 'blocker'), { recursive: true }); // rename over a non-empty directory fails
    await expect(store.redeem(token)).rejects.toMatchObject({ code: 'EISDIR' });
    expect((await store.list())[0]!.state).toBe('active');
    await rm(stateFile, { recursive: true });
    expect((await store.redeem(token)).ok).toBe(true);
    expect((await readdir(join(dir, 'state'))).sort()).toEqual(['join-tokens.json']);
  });

  it('rejects a redeem whose audit event cannot be recorded, and the token stays used (fail closed)', async () => {
    const store = await openStore();
    const { token } = await store.mint({ namespace: 'shop', serviceAccount: 'web', ttlMs: HOUR });
    await sinks[0]!.close();
    await expect(store.redeem(token, { now: at(1000) })).rejects.toMatchObject({ code: 'PAL_ERR_CERTS_AUDIT_SINK_CLOSED' });
    const r = await (await openStore()).redeem(token, { now: at(2000) });
    expect(r.ok === false && [r.reason, 'usedAt' in r && r.usedAt]).toEqual(['used', '2026-03-01T10:00:01.000Z']);
  });

  it('refuses a revoked token with the revocation time, and refuses revoking a used one', async () => {
    const store = await openStore();
    const a = await store.mint({ namespace: 'shop', serviceAccount: 'web', ttlMs: HOUR });
    const b = await store.mint({ namespace: 'shop', serviceAccount: 'db', ttlMs: HOUR });
    const revoked = await store.revoke(a.info.id, { now: at(1000) });
    expect(revoked).toEqual({ ok: true, info: { ...a.info, revokedAt: '2026-03-01T10:00:01.000Z', state: 'revoked' } });
    expect(await store.redeem(a.token, { now: at(2000) })).toEqual({
      ok: false,
      reason: 'revoked',
      code: 'PAL_ERR_CERTS_TOKEN_REVOKED',
      message: `join token ${a.info.id} was revoked at 2026-03-01T10:00:01.000Z`,
      id: a.info.id,
      revokedAt: '2026-03-01T10:00:01.000Z',
    });
    expect(await store.revoke(a.info.id)).toEqual({ ok: false, reason: 'revoked', message: `join token ${a.info.id} was already revoked at 2026-03-01T10:00:01.000Z` });
    await store.redeem(b.token, { now: at(3000) });
    expect(await store.revoke(b.info.id)).toEqual({ ok: false, reason: 'used', message: `join token ${b.info.id} was already used at 2026-03-01T10:00:03.000Z` });
    expect(await store.revoke('0123456789abcdef')).toEqual({ ok: false, reason: 'unknown', message: 'no join token with id 0123456789abcdef' });
    expect(await store.revoke('nope')).toEqual({ ok: false, reason: 'malformed', message: 'token id must be 16 hex characters, got "nope"' });
  });

  it('lists tokens without secrets, with their state at the given time', async () => {
    const store = await openStore();
    const a = await store.mint({ namespace: 'shop', serviceAccount: 'web', ttlMs: HOUR, now: T0 });
    const b = await store.mint({ namespace: 'shop', serviceAccount: 'db', ttlMs: 2 * HOUR, now: at(1) });
    const c = await store.mint({ namespace: 'shop', serviceAccount: 'api', ttlMs: 2 * HOUR, now: at(2) });
    const d = await store.mint({ namespace: 'shop', serviceAccount: 'cron', ttlMs: 2 * HOUR, now: at(3) });
    await store.redeem(b.token, { now: at(10) });
    await store.revoke(c.info.id, { now: at(20) });
    const list = await store.list({ now: at(HOUR) });
    expect(list.map((t) => [t.id, t.serviceAccount, t.state])).toEqual([
      [a.info.id, 'web', 'expired'],
      [b.info.id, 'db', 'used'],
      [c.info.id, 'api', 'revoked'],
      [d.info.id, 'cron', 'active'],
    ]);
    for (const t of list) expect(Object.keys(t).sort()).toEqual(['createdAt', 'expiresAt', 'id', 'namespace', 'revokedAt', 'serviceAccount', 'state', 'usedAt']);
  });

  it('prunes finished entries older than the retention and keeps active ones; a pruned token is unknown', async () => {
    const store = await openStore({ retentionMs: HOUR });
    const used = await store.mint({ namespace: 'shop', serviceAccount: 'web', ttlMs: 3 * HOUR });
    const expired = await store.mint({ namespace: 'shop', serviceAccount: 'db', ttlMs: HOUR });
    const active = await store.mint({ namespace: 'shop', serviceAccount: 'api', ttlMs: 7 * 24 * HOUR });
    await store.redeem(used.token, { now: at(1000) });
    expect(await store.prune({ now: at(HOUR) })).toEqual([]);
    expect((await store.prune({ now: at(2 * HOUR + 1) })).sort()).toEqual([used.info.id, expired.info.id].sort());
    expect((await store.list()).map((t) => t.id)).toEqual([active.info.id]);
    const r = await store.redeem(used.token, { now: at(2 * HOUR + 2) });
    expect(r.ok === false && r.reason).toBe('unknown');
    const reopened = await openStore();
    expect((await reopened.list()).map((t) => t.id)).toEqual([active.info.id]);
  });

  it('prunes with the store retention when minting', async () => {
    const store = await openStore({ retentionMs: 0 });
    const old = await store.mint({ namespace: 'shop', serviceAccount: 'web', ttlMs: 1000 });
    const fresh = await store.mint({ namespace: 'shop', serviceAccount: 'db', ttlMs: HOUR, now: at(1000) });
    expect((await store.list()).map((t) => t.id)).toEqual([fresh.info.id]);
    expect(old.info.id).not.toBe(fresh.info.id);
  });

  it('emits token.minted, token.redeemed and token.refused audit events without the secret', async () => {
    const store = await openStore();
    const { token, info } = await store.mint({ namespace: 'shop', serviceAccount: 'web', ttlMs: HOUR, actor: 'operator:alice' });
    await store.redeem(token, { now: at(1000), actor: 'spiffe://example.org/ns/shop/sa/web' });
    await store.redeem(token, { now: at(2000) });
    await store.redeem('garbage', { now: at(3000) });
    await store.revoke(info.id, { now: at(4000) });
    expect(await auditLines()).toEqual([
      { type: 'token.minted', time: '2026-03-01T10:00:00.000Z', actor: 'operator:alice', id: info.id, namespace: 'shop', serviceAccount: 'web', expiresAt: '2026-03-01T11:00:00.000Z' },
      { type: 'token.redeemed', time: '2026-03-01T10:00:01.000Z', actor: 'spiffe://example.org/ns/shop/sa/web', id: info.id, namespace: 'shop', serviceAccount: 'web' },
      { type: 'token.refused', time: '2026-03-01T10:00:02.000Z', actor: 'test-operator', id: info.id, reason: 'used', code: 'PAL_ERR_CERTS_TOKEN_USED' },
      { type: 'token.refused', time: '2026-03-01T10:00:03.000Z', actor: 'test-operator', reason: 'malformed', code: 'PAL_ERR_CERTS_TOKEN_MALFORMED' },
    ]);
    expect((await readFile(auditFile, 'utf8')).includes(secretOf(token))).toBe(false);
  });

  it.each([
    [{ namespace: 'Shop', serviceAccount: 'web', ttlMs: HOUR }, ['namespace must be a DNS label (lowercase letters, digits and \'-\', starting and ending with a letter or digit, at most 63 characters), got "Shop"']],
    [{ namespace: 'shop', serviceAccount: 'web_1', ttlMs: HOUR }, ['serviceAccount must be a DNS label (lowercase letters, digits and \'-\', starting and ending with a letter or digit, at most 63 characters), got "web_1"']],
    [{ namespace: '-shop', serviceAccount: 'web', ttlMs: HOUR }, ['namespace must be a DNS label (lowercase letters, digits and \'-\', starting and ending with a letter or digit, at most 63 characters), got "-shop"']],
    [{ namespace: 'a'.repeat(64), serviceAccount: 'web', ttlMs: HOUR }, [`namespace must be a DNS label (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters), got "${'a'.repeat(64)}"`]],
    [{ namespace: '', serviceAccount: 'web', ttlMs: HOUR }, ['namespace must be a DNS label (lowercase letters, digits and \'-\', starting and ending with a letter or digit, at most 63 characters), got ""']],
    [{ namespace: 'shop', serviceAccount: 'web', ttlMs: 0 }, ['ttlMs must be a positive integer number of milliseconds no greater than 604800000 (7d), got 0']],
    [{ namespace: 'shop', serviceAccount: 'web', ttlMs: -5 }, ['ttlMs must be a positive integer number of milliseconds no greater than 604800000 (7d), got -5']],
    [{ namespace: 'shop', serviceAccount: 'web', ttlMs: 1.5 }, ['ttlMs must be a positive integer number of milliseconds no greater than 604800000 (7d), got 1.5']],
    [{ namespace: 'shop', serviceAccount: 'web', ttlMs: MAX_JOIN_TOKEN_TTL_MS + 1 }, ['ttlMs must be a positive integer number of milliseconds no greater than 604800000 (7d), got 604800001']],
    [{ namespace: 'shop.x', serviceAccount: 'a b', ttlMs: '1h' }, [
      'namespace must be a DNS label (lowercase letters, digits and \'-\', starting and ending with a letter or digit, at most 63 characters), got "shop.x"',
      'serviceAccount must be a DNS label (lowercase letters, digits and \'-\', starting and ending with a letter or digit, at most 63 characters), got "a b"',
      'ttlMs must be a positive integer number of milliseconds no greater than 604800000 (7d), got "1h"',
    ]],
  ])('refuses to mint %j, naming every bad field and value', async (req, errors) => {
    expect(validateMintRequest(req)).toEqual({ valid: false, errors });
    const store = await openStore();
    await expect(store.mint(req as never)).rejects.toMatchObject({ code: 'PAL_ERR_CERTS_TOKEN_INVALID_ARGUMENT', message: errors.join('; ') });
    expect((await store.list()).length).toBe(0);
  });

  it.each([
    [{ namespace: 'shop', serviceAccount: 'web', ttlMs: 1 }],
    [{ namespace: 'a', serviceAccount: '0', ttlMs: MAX_JOIN_TOKEN_TTL_MS }],
    [{ namespace: 'kube-system', serviceAccount: 'a'.repeat(63), ttlMs: HOUR }],
    [{ namespace: 'team-1', serviceAccount: 'web-2-x', ttlMs: 60_000 }],
  ])('mints for a valid request %j and round-trips its scope', async (req) => {
    expect(validateMintRequest(req)).toEqual({ valid: true, result: req });
    const store = await openStore();
    const { token } = await store.mint(req);
    expect(await store.redeem(token, { namespace: req.namespace, serviceAccount: req.serviceAccount })).toMatchObject({ ok: true, identity: { namespace: req.namespace, serviceAccount: req.serviceAccount } });
  });

  it('refuses a store whose maxTtlMs exceeds 7 days, and mints only up to a lower maxTtlMs', async () => {
    const audit = new JsonLinesAuditSink(auditFile);
    sinks.push(audit);
    await expect(JoinTokenStore.open({ file: stateFile, audit, maxTtlMs: MAX_JOIN_TOKEN_TTL_MS + 1 })).rejects.toMatchObject({
      code: 'PAL_ERR_CERTS_TOKEN_INVALID_ARGUMENT',
      message: `maxTtlMs must be an integer in 1..604800000, got 604800001`,
    });
    const store = await JoinTokenStore.open({ file: stateFile, audit, maxTtlMs: HOUR, clock: () => T0 });
    await expect(store.mint({ namespace: 'shop', serviceAccount: 'web', ttlMs: HOUR + 1 })).rejects.toMatchObject({
      code: 'PAL_ERR_CERTS_TOKEN_INVALID_ARGUMENT',
      message: 'ttlMs must be a positive integer number of milliseconds no greater than 3600000 (3600000ms), got 3600001',
    });
  });

  it.each([
    ['not JSON', '{', 'is not valid JSON: '],
    ['wrong version', '{"version":2,"tokens":[]}', 'expected {"version": 1, "tokens": [...]}'],
    ['bad entry', '{"version":1,"tokens":[{"id":"xyz"}]}', 'tokens[0]: id must be 16 hex characters, got "xyz"'],
    ['duplicate id', JSON.stringify({ version: 1, tokens: [0, 1].map(() => ({ id: '0123456789abcdef', secretSha256: '0'.repeat(64), namespace: 'shop', serviceAccount: 'web', createdAt: T0.toISOString(), expiresAt: T0.toISOString(), usedAt: null, revokedAt: null })) }), 'tokens[1]: duplicate id 0123456789abcdef'],
  ])('refuses to open an invalid state file (%s)', async (_name, text, problem) => {
    stateFile = join(dir, 'bad.json');
    await writeFile(stateFile, text);
    const err = await openStore().catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'PAL_ERR_CERTS_TOKEN_STATE_INVALID' });
    expect((err as Error).message.startsWith(`join-token state file ${stateFile}: ${problem}`)).toBe(true);
  });

  it('removes temp files a crash left next to the state file when it opens', async () => {
    const store = await openStore();
    await store.mint({ namespace: 'shop', serviceAccount: 'web', ttlMs: HOUR });
    await writeFile(join(dir, 'state', '.join-tokens.json.tmp-1-abcdef'), '{"partial":');
    await openStore();
    expect(await readdir(join(dir, 'state'))).toEqual(['join-tokens.json']);
  });

  it('turns each refusal into the error with the same code', () => {
    const refusals: RedeemRefusal[] = [
      { ok: false, reason: 'malformed', code: 'PAL_ERR_CERTS_TOKEN_MALFORMED', message: 'm' },
      { ok: false, reason: 'unknown', code: 'PAL_ERR_CERTS_TOKEN_UNKNOWN', message: 'm', id: 'x' },
      { ok: false, reason: 'used', code: 'PAL_ERR_CERTS_TOKEN_USED', message: 'm', id: 'x', usedAt: 't' },
      { ok: false, reason: 'expired', code: 'PAL_ERR_CERTS_TOKEN_EXPIRED', message: 'm', id: 'x', expiredAt: 't' },
      { ok: false, reason: 'revoked', code: 'PAL_ERR_CERTS_TOKEN_REVOKED', message: 'm', id: 'x', revokedAt: 't' },
      { ok: false, reason: 'scope-mismatch', code: 'PAL_ERR_CERTS_TOKEN_SCOPE_MISMATCH', message: 'm', id: 'x', scope: { namespace: 'a', serviceAccount: 'b' }, requested: {} },
    ];
    expect(refusals.map((r) => [refusalError(r).code, refusalError(r).message])).toEqual(refusals.map((r) => [r.code, 'm']));
  });
});
