/**
 * Private keys encrypted at rest.
 *
 * Envelope encryption: each stored private key gets a fresh 256-bit data key (DEK); the
 * PKCS#8 DER of the private key is sealed with AES-256-GCM under the DEK, and the DEK is
 * wrapped by the key-encryption key (KEK). Both seals bind the key's name as associated
 * data (`palisade-keyring:v1:<name>`), so a file renamed to another key's name does not
 * decrypt. A KMS-backed KEK only ever sees 32-byte DEKs, never key material.
 *
 *   <dir>/<name>.key.json  { v: 1, name, kek, wrappedDek, nonce, ciphertext }  (base64 fields, mode 0600)
 *
 * Decrypted keys exist only in memory, as WebCrypto `CryptoKey`s; the DEK and the PKCS#8
 * buffer are zeroed after use. `Keyring` and `FileKek` print no key material (`toJSON`,
 * `util.inspect`).
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { webcrypto, type CryptoKey } from './x509.ts';
import { CertsInvalidOptionError, KekInsecureError, KekInvalidError, KeyDecryptError, KeyNotFoundError } from './errors.ts';
import { importPrivateKey, type KeyPair } from './keys.ts';

/** A key-encryption key: wraps and unwraps small secrets (data keys). A KMS implements the same interface. */
export interface Kek {
  /** Stable identifier of the key in use (never the key itself), recorded in every blob it wraps. */
  readonly id: string;
  /** Encrypts `plaintext`, binding `aad`; the result is opaque. */
  wrap(plaintext: Uint8Array, aad: Uint8Array): Promise<Uint8Array>;
  /** Decrypts a blob from `wrap`; rejects with `PAL_ERR_CERTS_KEY_DECRYPT` if it or `aad` was altered or another key wrapped it. */
  unwrap(blob: Uint8Array, aad: Uint8Array): Promise<Uint8Array>;
}

const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;

function seal(key: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Buffer {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad);
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([nonce, body, cipher.getAuthTag()]);
}

function open_(key: Uint8Array, blob: Uint8Array, aad: Uint8Array, what: string): Buffer {
  if (blob.length < NONCE_BYTES + TAG_BYTES) throw new KeyDecryptError(`${what}: ciphertext is truncated`);
  const buf = Buffer.from(blob);
  const decipher = createDecipheriv('aes-256-gcm', key, buf.subarray(0, NONCE_BYTES), { authTagLength: TAG_BYTES });
  decipher.setAAD(aad);
  decipher.setAuthTag(buf.subarray(buf.length - TAG_BYTES));
  try {
    return Buffer.concat([decipher.update(buf.subarray(NONCE_BYTES, buf.length - TAG_BYTES)), decipher.final()]);
  } catch (cause) {
    throw new KeyDecryptError(`${what}: authentication failed (the data was altered or was encrypted under another key)`, { cause });
  }
}

/**
 * A KEK held in a local file of exactly 32 random bytes (AES-256-GCM, random 96-bit nonce per
 * wrap; blob = nonce ‖ ciphertext ‖ 16-byte tag). `FileKek.open` creates the file with mode
 * 0600 when absent and refuses one that group or others may access.
 */
export class FileKek implements Kek {
  readonly id: string;
  readonly path: string;
  readonly #key: Buffer;

  private constructor(path: string, key: Buffer) {
    this.path = path;
    this.#key = key;
    this.id = `file:${createHash('sha256').update('palisade-kek-id:v1:').update(key).digest('hex').slice(0, 16)}`;
  }

  /** Opens (or creates, mode 0600) the key file at `path`. Throws `PAL_ERR_CERTS_KEK_INSECURE` / `PAL_ERR_CERTS_KEK_INVALID`. */
  static async open(path: string): Promise<FileKek> {
    if (typeof path !== 'string' || path.length === 0) throw new CertsInvalidOptionError(`kek path must be a non-empty string, got ${JSON.stringify(path)}`);
    try {
      const fh = await open(path, 'wx', 0o600);
      try {
        await fh.writeFile(randomBytes(KEY_BYTES));
      } finally {
        await fh.close();
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new KekInvalidError(`cannot create KEK file ${path}`, { cause: err });
    }
    const st = await stat(path);
    if (!st.isFile()) throw new KekInvalidError(`KEK file ${path} is not a regular file`);
    if ((st.mode & 0o077) !== 0) throw new KekInsecureError(path, st.mode);
    const key = await readFile(path);
    if (key.length !== KEY_BYTES) throw new KekInvalidError(`KEK file ${path} must hold exactly ${KEY_BYTES} bytes, has ${key.length}`);
    return new FileKek(path, key);
  }

  async wrap(plaintext: Uint8Array, aad: Uint8Array): Promise<Uint8Array> {
    return seal(this.#key, plaintext, aad);
  }

  async unwrap(blob: Uint8Array, aad: Uint8Array): Promise<Uint8Array> {
    return open_(this.#key, blob, aad, `KEK ${this.id}`);
  }

  toJSON(): Record<string, string> {
    return { kind: 'file', id: this.id, path: this.path };
  }

  [inspect.custom](): string {
    return `FileKek { id: '${this.id}', path: '${this.path}' }`;
  }
}

const KEY_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const FORMAT_VERSION = 1;

interface StoredKey {
  v: number;
  name: string;
  kek: string;
  wrappedDek: string;
  sealed: string;
}

/** Private keys stored encrypted in a directory, decrypted only into memory. */
export class Keyring {
  readonly dir: string;
  readonly #kek: Kek;

  private constructor(dir: string, kek: Kek) {
    this.dir = dir;
    this.#kek = kek;
  }

  /** Opens the keyring at `dir` (created with mode 0700 when absent) using `kek`. */
  static async open(dir: string, kek: Kek): Promise<Keyring> {
    if (typeof dir !== 'string' || dir.length === 0) throw new CertsInvalidOptionError(`keyring dir must be a non-empty string, got ${JSON.stringify(dir)}`);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    return new Keyring(dir, kek);
  }

  /** The id of the KEK this keyring encrypts with. */
  get kekId(): string {
    return this.#kek.id;
  }

  /** The file a key named `name` is stored in. */
  pathOf(name: string): string {
    checkName(name);
    return join(this.dir, `${name}.key.json`);
  }

  /** Encrypts and stores `privateKey` under `name`, replacing any previous key of that name (written atomically, mode 0600). */
  async put(name: string, privateKey: CryptoKey): Promise<void> {
    const file = this.pathOf(name);
    const aad = aadFor(name);
    const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', privateKey));
    const dek = randomBytes(KEY_BYTES);
    try {
      const stored: StoredKey = {
        v: FORMAT_VERSION,
        name,
        kek: this.#kek.id,
        wrappedDek: Buffer.from(await this.#kek.wrap(dek, aad)).toString('base64'),
        sealed: seal(dek, pkcs8, aad).toString('base64'),
      };
      const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
      await writeFile(tmp, `${JSON.stringify(stored, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
      await chmod(tmp, 0o600);
      await rename(tmp, file);
    } finally {
      dek.fill(0);
      pkcs8.fill(0);
    }
  }

  /** True when a key named `name` is stored. */
  async has(name: string): Promise<boolean> {
    try {
      await stat(this.pathOf(name));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }

  /** Decrypts the key named `name`. Throws `PAL_ERR_CERTS_KEY_NOT_FOUND` or `PAL_ERR_CERTS_KEY_DECRYPT`. */
  async get(name: string): Promise<KeyPair> {
    const file = this.pathOf(name);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new KeyNotFoundError(name);
      throw err;
    }
    let stored: StoredKey;
    try {
      stored = JSON.parse(text) as StoredKey;
    } catch (cause) {
      throw new KeyDecryptError(`key file ${file} is not valid JSON`, { cause });
    }
    if (stored?.v !== FORMAT_VERSION || typeof stored.wrappedDek !== 'string' || typeof stored.sealed !== 'string') {
      throw new KeyDecryptError(`key file ${file} is not a version ${FORMAT_VERSION} keyring entry`);
    }
    if (stored.name !== name) throw new KeyDecryptError(`key file ${file} holds key ${JSON.stringify(stored.name)}, not ${JSON.stringify(name)}`);
    if (stored.kek !== this.#kek.id) {
      throw new KeyDecryptError(`key ${JSON.stringify(name)} was encrypted under KEK ${stored.kek}, but this keyring uses KEK ${this.#kek.id}`);
    }
    const aad = aadFor(name);
    const dek = Buffer.from(await this.#kek.unwrap(Buffer.from(stored.wrappedDek, 'base64'), aad));
    let pkcs8: Buffer | undefined;
    try {
      if (dek.length !== KEY_BYTES) throw new KeyDecryptError(`key ${JSON.stringify(name)}: unwrapped data key has the wrong length`);
      pkcs8 = open_(dek, Buffer.from(stored.sealed, 'base64'), aad, `key ${JSON.stringify(name)}`);
      return await importPrivateKey(pkcs8);
    } finally {
      dek.fill(0);
      pkcs8?.fill(0);
    }
  }

  /** Removes the key named `name` (no error when absent). */
  async delete(name: string): Promise<void> {
    await rm(this.pathOf(name), { force: true });
  }

  toJSON(): Record<string, string> {
    return { dir: this.dir, kek: this.#kek.id };
  }

  [inspect.custom](): string {
    return `Keyring { dir: '${this.dir}', kek: '${this.#kek.id}' }`;
  }
}

function checkName(name: string): void {
  if (typeof name !== 'string' || !KEY_NAME.test(name)) {
    throw new CertsInvalidOptionError(`key name must match ${KEY_NAME.source}, got ${JSON.stringify(name)}`);
  }
}

function aadFor(name: string): Buffer {
  return Buffer.from(`palisade-keyring:v${FORMAT_VERSION}:${name}`, 'utf8');
}
