/**
 * The record of every workload certificate the CA issued: what `palisade certs list` shows and
 * what `palisade certs revoke` marks. A JSON state file the control plane owns (single writer,
 * atomic writes, mode 0600); serials are lowercase hex without colons or leading zeros.
 *
 * Revocation is enforced where the control plane decides (a revoked certificate cannot renew)
 * and in every handshake: the control plane signs the revoked, unexpired serials into a CRL
 * (certs/crl.ts) and pushes it to Envoy and the sidecars with the trust bundle.
 */
import { readFile } from 'node:fs/promises';
import { writeAtomic } from './atomic-file.ts';

export interface IssuedCert {
  /** Lowercase hex. */
  readonly serial: string;
  readonly spiffeId: string;
  readonly issuedAt: string;
  readonly notAfter: string;
  /** The serial this one renewed, or null for a first issue. */
  readonly previousSerial: string | null;
  readonly revokedAt: string | null;
  readonly revokeReason: string | null;
  /**
   * SHA-256 fingerprint (lowercase hex) of the intermediate that signed it: which root it
   * chains to during a rotation, and which CRL lists it. Absent in records written before
   * root rotation existed.
   */
  readonly issuer?: string;
}

export type IssuedState = 'valid' | 'expired' | 'revoked';

export type RevokeCertResult =
  | { readonly ok: true; readonly cert: IssuedCert }
  | { readonly ok: false; readonly reason: 'unknown' | 'revoked'; readonly message: string };

/** Normalizes a serial as node, openssl and @peculiar/x509 print it (case, colons, leading zeros). */
export function normalizeSerial(serial: string): string {
  return serial.replace(/:/g, '').toLowerCase().replace(/^0+(?=.)/, '');
}

export class IssuedCertStore {
  readonly file: string;
  #certs: Map<string, IssuedCert>;
  #tail: Promise<unknown> = Promise.resolve();

  private constructor(file: string, certs: Map<string, IssuedCert>) {
    this.file = file;
    this.#certs = certs;
  }

  /** Opens the record (an absent file is an empty record). Throws naming the file when it is not a record. */
  static async open(file: string): Promise<IssuedCertStore> {
    let text: string | null = null;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`cannot read the issued-certificate record ${file}: ${(err as Error).message}`, { cause: err });
    }
    const certs = new Map<string, IssuedCert>();
    if (text !== null) {
      let doc: { version?: unknown; certs?: unknown };
      try {
        doc = JSON.parse(text) as typeof doc;
      } catch (err) {
        throw new Error(`the issued-certificate record ${file} is not JSON: ${(err as Error).message}`, { cause: err });
      }
      if (doc.version !== 1 || !Array.isArray(doc.certs)) throw new Error(`the issued-certificate record ${file} must be {"version": 1, "certs": [...]}`);
      for (const c of doc.certs as IssuedCert[]) certs.set(c.serial, c);
    }
    return new IssuedCertStore(file, certs);
  }

  /** Records an issued (or renewed) certificate; persisted before it resolves. */
  record(cert: { serial: string; spiffeId: string; notAfter: Date; previousSerial?: string | null; issuer?: string; now?: Date }): Promise<IssuedCert> {
    return this.#serialize(async () => {
      const rec: IssuedCert = {
        serial: normalizeSerial(cert.serial), spiffeId: cert.spiffeId, issuedAt: (cert.now ?? new Date()).toISOString(), notAfter: cert.notAfter.toISOString(),
        previousSerial: cert.previousSerial == null ? null : normalizeSerial(cert.previousSerial), revokedAt: null, revokeReason: null,
        ...(cert.issuer === undefined ? {} : { issuer: cert.issuer }),
      };
      const next = new Map(this.#certs).set(rec.serial, rec);
      await this.#commit(next);
      return rec;
    });
  }

  /** Marks `serial` revoked with `reason`; persisted before it resolves. */
  revoke(serial: string, reason: string, now = new Date()): Promise<RevokeCertResult> {
    return this.#serialize(async () => {
      const key = normalizeSerial(serial);
      const cur = this.#certs.get(key);
      if (cur === undefined) return { ok: false, reason: 'unknown', message: `no certificate with serial ${key} was issued by this CA` } as const;
      if (cur.revokedAt !== null) return { ok: false, reason: 'revoked', message: `certificate ${key} was already revoked at ${cur.revokedAt}` } as const;
      const rec: IssuedCert = { ...cur, revokedAt: now.toISOString(), revokeReason: reason };
      await this.#commit(new Map(this.#certs).set(key, rec));
      return { ok: true, cert: rec } as const;
    });
  }

  isRevoked(serial: string): boolean {
    return this.#certs.get(normalizeSerial(serial))?.revokedAt != null;
  }

  /** Every record, newest first, with its state at `now`. */
  list(now = new Date()): Array<IssuedCert & { state: IssuedState }> {
    return [...this.#certs.values()]
      .map((c) => ({ ...c, state: (c.revokedAt !== null ? 'revoked' : Date.parse(c.notAfter) <= now.getTime() ? 'expired' : 'valid') as IssuedState }))
      .sort((a, b) => b.issuedAt.localeCompare(a.issuedAt));
  }

  /**
   * Certificates still in use at `now`: not expired, not revoked, and not superseded (no
   * later record renewed them).
   */
  live(now = new Date()): IssuedCert[] {
    const renewed = new Set<string>();
    for (const c of this.#certs.values()) if (c.previousSerial !== null) renewed.add(c.previousSerial);
    return [...this.#certs.values()].filter((c) => c.revokedAt === null && Date.parse(c.notAfter) > now.getTime() && !renewed.has(c.serial));
  }

  /** Revoked certificates that have not expired at `now` (what a CRL lists). */
  revokedUnexpired(now = new Date()): IssuedCert[] {
    return [...this.#certs.values()].filter((c) => c.revokedAt !== null && Date.parse(c.notAfter) > now.getTime());
  }

  async #commit(next: Map<string, IssuedCert>): Promise<void> {
    await writeAtomic(this.file, `${JSON.stringify({ version: 1, certs: [...next.values()] }, null, 2)}\n`);
    this.#certs = next;
  }

  #serialize<T>(op: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(op);
    this.#tail = run.catch(() => undefined);
    return run;
  }
}
