import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chmod, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { FileKek, Keyring } from '../../certs/keyring.ts';
import { exportPrivateKeyPem, generateKeyPair, KEY_TYPES } from '../../certs/keys.ts';
import { webcrypto } from '../../certs/x509.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'palisade-keyring-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('FileKek', () => {
  it('creates a 32-byte key file with mode 0600 when absent, and reopens the same key', async () => {
    const path = join(dir, 'kek');
    const kek = await FileKek.open(path);
    const st = await stat(path);
    expect(st.mode & 0o777).toBe(0o600);
    expect((await readFile(path)).length).toBe(32);
    expect(kek.id).toMatch(/^file:[0-9a-f]{16}$/);
    const again = await FileKek.open(path);
    expect(again.id).toBe(kek.id);
    const aad = Buffer.from('aad');
    const blob = await kek.wrap(Buffer.from('secret'), aad);
    expect(blob.length).toBe(12 + 6 + 16);
    expect(Buffer.from(await again.unwrap(blob, aad)).toString()).toBe('secret');
  });

  it('uses a fresh nonce for every wrap', async () => {
    const kek = await FileKek.open(join(dir, 'kek'));
    const a = Buffer.from(await kek.wrap(Buffer.from('same'), Buffer.alloc(0)));
    const b = Buffer.from(await kek.wrap(Buffer.from('same'), Buffer.alloc(0)));
    expect(a.equals(b)).toBe(false);
  });

  it('refuses to unwrap with other associated data', async () => {
    const kek = await FileKek.open(join(dir, 'kek'));
    const blob = await kek.wrap(Buffer.from('secret'), Buffer.from('a'));
    await expect(kek.unwrap(blob, Buffer.from('b'))).rejects.toMatchObject({ code: 'PAL_ERR_CERTS_KEY_DECRYPT' });
  });

  it.each([0o640, 0o604, 0o660, 0o644, 0o620])('refuses a key file with mode 0%o (PAL_ERR_CERTS_KEK_INSECURE)', async (mode) => {
    const path = join(dir, 'kek');
    await writeFile(path, Buffer.alloc(32, 7), { mode: 0o600 });
    await chmod(path, mode);
    await expect(FileKek.open(path)).rejects.toMatchObject({
      code: 'PAL_ERR_CERTS_KEK_INSECURE',
      message: `KEK file ${path} has mode 0${mode.toString(8)}: it must not be accessible by group or others (chmod 600 ${path})`,
    });
  });

  it('refuses a key file that is not 32 bytes (PAL_ERR_CERTS_KEK_INVALID)', async () => {
    const path = join(dir, 'kek');
    await writeFile(path, Buffer.alloc(16), { mode: 0o600 });
    await expect(FileKek.open(path)).rejects.toMatchObject({
      code: 'PAL_ERR_CERTS_KEK_INVALID',
      message: `KEK file ${path} must hold exactly 32 bytes, has 16`,
    });
  });

  it('prints no key material', async () => {
    const path = join(dir, 'kek');
    const kek = await FileKek.open(path);
    const key = (await readFile(path)).toString('hex');
    expect(JSON.stringify(kek)).toBe(JSON.stringify({ kind: 'file', id: kek.id, path }));
    expect(inspect(kek, { showHidden: true, depth: 10 })).not.toContain(key);
    expect(inspect(kek)).toBe(`FileKek { id: '${kek.id}', path: '${path}' }`);
  });
});

describe('Keyring', () => {
  it.each(KEY_TYPES)('round-trips a %s private key through an encrypted file', async (type) => {
    const kek = await FileKek.open(join(dir, 'kek'));
    const ring = await Keyring.open(join(dir, 'keys'), kek);
    const pair = await generateKeyPair(type);
    await ring.put('intermediate', pair.privateKey);
    expect(await ring.has('intermediate')).toBe(true);
    expect(await ring.has('root')).toBe(false);
    const back = await ring.get('intermediate');
    expect(back.type).toBe(type);
    expect(await exportPrivateKeyPem(back.privateKey)).toBe(await exportPrivateKeyPem(pair.privateKey));
    // A reopened keyring (new process) reads it too.
    const reopened = await Keyring.open(join(dir, 'keys'), await FileKek.open(join(dir, 'kek')));
    expect(await exportPrivateKeyPem((await reopened.get('intermediate')).privateKey)).toBe(await exportPrivateKeyPem(pair.privateKey));
  });

  it('stores neither the PEM nor the key bytes, with mode 0600 in a 0700 directory', async () => {
    const kek = await FileKek.open(join(dir, 'kek'));
    const ring = await Keyring.open(join(dir, 'keys'), kek);
    const pair = await generateKeyPair('ecdsa-p256');
    await ring.put('root', pair.privateKey);
    const file = ring.pathOf('root');
    expect(file).toBe(join(dir, 'keys', 'root.key.json'));
    expect(await readdir(join(dir, 'keys'))).toEqual(['root.key.json']);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'keys'))).mode & 0o777).toBe(0o700);
    const stored = await readFile(file);
    const text = stored.toString('utf8');
    const pem = await exportPrivateKeyPem(pair.privateKey);
    const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', pair.privateKey));
    const jwk = await webcrypto.subtle.exportKey('jwk', pair.privateKey);
    const d = Buffer.from(jwk.d!, 'base64url');
    expect(text).not.toContain('PRIVATE KEY');
    expect(text).not.toContain(pem.split('\n')[1]!);
    expect(stored.includes(pkcs8)).toBe(false);
    expect(stored.includes(d)).toBe(false);
    expect(text).not.toContain(pkcs8.toString('base64'));
    expect(text).not.toContain(d.toString('base64'));
    expect(text).not.toContain(d.toString('hex'));
    expect(Object.keys(JSON.parse(text))).toEqual(['v', 'name', 'kek', 'wrappedDek', 'sealed']);
    expect(JSON.parse(text)).toMatchObject({ v: 1, name: 'root', kek: kek.id });
  });

  it('refuses a tampered file with PAL_ERR_CERTS_KEY_DECRYPT', async () => {
    const ring = await Keyring.open(join(dir, 'keys'), await FileKek.open(join(dir, 'kek')));
    await ring.put('intermediate', (await generateKeyPair()).privateKey);
    const file = ring.pathOf('intermediate');
    const stored = JSON.parse(await readFile(file, 'utf8')) as { sealed: string };
    const bytes = Buffer.from(stored.sealed, 'base64');
    bytes[20]! ^= 0x01;
    stored.sealed = bytes.toString('base64');
    await writeFile(file, JSON.stringify(stored));
    await expect(ring.get('intermediate')).rejects.toMatchObject({
      code: 'PAL_ERR_CERTS_KEY_DECRYPT',
      message: 'key "intermediate": authentication failed (the data was altered or was encrypted under another key)',
    });
  });

  it('refuses a tampered wrapped data key with PAL_ERR_CERTS_KEY_DECRYPT', async () => {
    const kek = await FileKek.open(join(dir, 'kek'));
    const ring = await Keyring.open(join(dir, 'keys'), kek);
    await ring.put('intermediate', (await generateKeyPair()).privateKey);
    const file = ring.pathOf('intermediate');
    const stored = JSON.parse(await readFile(file, 'utf8')) as { wrappedDek: string };
    const bytes = Buffer.from(stored.wrappedDek, 'base64');
    bytes[bytes.length - 1]! ^= 0x80;
    stored.wrappedDek = bytes.toString('base64');
    await writeFile(file, JSON.stringify(stored));
    await expect(ring.get('intermediate')).rejects.toMatchObject({
      code: 'PAL_ERR_CERTS_KEY_DECRYPT',
      message: `KEK ${kek.id}: authentication failed (the data was altered or was encrypted under another key)`,
    });
  });

  it('refuses a key file renamed to another key name', async () => {
    const ring = await Keyring.open(join(dir, 'keys'), await FileKek.open(join(dir, 'kek')));
    await ring.put('intermediate', (await generateKeyPair()).privateKey);
    const stored = JSON.parse(await readFile(ring.pathOf('intermediate'), 'utf8')) as { name: string };
    // Same name field forged too: the AAD binds the name, so decryption fails.
    stored.name = 'root';
    await writeFile(ring.pathOf('root'), JSON.stringify(stored));
    await expect(ring.get('root')).rejects.toMatchObject({ code: 'PAL_ERR_CERTS_KEY_DECRYPT' });
  });

  it('refuses a key written under another KEK with PAL_ERR_CERTS_KEY_DECRYPT naming both KEKs', async () => {
    const kekA = await FileKek.open(join(dir, 'kek-a'));
    const kekB = await FileKek.open(join(dir, 'kek-b'));
    await (await Keyring.open(join(dir, 'keys'), kekA)).put('intermediate', (await generateKeyPair()).privateKey);
    await expect((await Keyring.open(join(dir, 'keys'), kekB)).get('intermediate')).rejects.toMatchObject({
      code: 'PAL_ERR_CERTS_KEY_DECRYPT',
      message: `key "intermediate" was encrypted under KEK ${kekA.id}, but this keyring uses KEK ${kekB.id}`,
    });
  });

  it('refuses a wrong KEK even when the recorded KEK id is forged', async () => {
    const kekA = await FileKek.open(join(dir, 'kek-a'));
    const kekB = await FileKek.open(join(dir, 'kek-b'));
    const ring = await Keyring.open(join(dir, 'keys'), kekA);
    await ring.put('intermediate', (await generateKeyPair()).privateKey);
    const stored = JSON.parse(await readFile(ring.pathOf('intermediate'), 'utf8')) as { kek: string };
    stored.kek = kekB.id;
    await writeFile(ring.pathOf('intermediate'), JSON.stringify(stored));
    await expect((await Keyring.open(join(dir, 'keys'), kekB)).get('intermediate')).rejects.toMatchObject({
      code: 'PAL_ERR_CERTS_KEY_DECRYPT',
      message: `KEK ${kekB.id}: authentication failed (the data was altered or was encrypted under another key)`,
    });
  });

  it('reports a missing key with PAL_ERR_CERTS_KEY_NOT_FOUND and a bad name with PAL_ERR_CERTS_INVALID_OPTION', async () => {
    const ring = await Keyring.open(join(dir, 'keys'), await FileKek.open(join(dir, 'kek')));
    await expect(ring.get('root')).rejects.toMatchObject({ code: 'PAL_ERR_CERTS_KEY_NOT_FOUND', message: 'the keyring holds no key named "root"' });
    await expect(ring.put('../escape', (await generateKeyPair()).privateKey)).rejects.toMatchObject({ code: 'PAL_ERR_CERTS_INVALID_OPTION' });
  });

  it('deletes a key', async () => {
    const ring = await Keyring.open(join(dir, 'keys'), await FileKek.open(join(dir, 'kek')));
    await ring.put('root', (await generateKeyPair()).privateKey);
    await ring.delete('root');
    expect(await ring.has('root')).toBe(false);
    expect(await readdir(join(dir, 'keys'))).toEqual([]);
  });

  it('prints no key material through toJSON or inspect', async () => {
    const kek = await FileKek.open(join(dir, 'kek'));
    const ring = await Keyring.open(join(dir, 'keys'), kek);
    const pair = await generateKeyPair();
    await ring.put('root', pair.privateKey);
    await ring.get('root');
    expect(JSON.stringify(ring)).toBe(JSON.stringify({ dir: join(dir, 'keys'), kek: kek.id }));
    expect(inspect(ring)).toBe(`Keyring { dir: '${join(dir, 'keys')}', kek: '${kek.id}' }`);
    const key = (await readFile(join(dir, 'kek'))).toString('hex');
    expect(inspect(ring, { showHidden: true, depth: 10 })).not.toContain(key);
  });
});
