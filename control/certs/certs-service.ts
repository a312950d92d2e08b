/**
 * The control plane's certificate services, over one state directory it owns (single
 * writer): join tokens (`join-tokens.json`) and the audit log (`audit.jsonl`); the CA joins
 * them in the next step of issue #5. Nothing is created on disk until the first change.
 */
import { join } from 'node:path';
import { JsonLinesAuditSink, type AuditSink } from '../../certs/audit.ts';
import { JoinTokenStore } from '../../certs/join-token.ts';

export const JOIN_TOKENS_FILE = 'join-tokens.json';
export const AUDIT_FILE = 'audit.jsonl';
/** The CA's state directory (CertificateAuthority.writeState / load) under the state dir. */
export const CA_DIR = 'ca';
/** The key-encryption key file (FileKek) that protects the CA keyring. */
export const KEK_FILE = 'kek';

export class CertsService {
  readonly stateDir: string;
  readonly tokens: JoinTokenStore;
  readonly audit: AuditSink & { close(): Promise<void> };

  private constructor(stateDir: string, tokens: JoinTokenStore, audit: JsonLinesAuditSink) {
    this.stateDir = stateDir;
    this.tokens = tokens;
    this.audit = audit;
  }

  /** Opens (or prepares) the services under `stateDir`; throws PAL_ERR_CERTS_TOKEN_STATE_INVALID for a corrupt token file. */
  static async open(stateDir: string): Promise<CertsService> {
    const audit = new JsonLinesAuditSink(join(stateDir, AUDIT_FILE));
    const tokens = await JoinTokenStore.open({ file: join(stateDir, JOIN_TOKENS_FILE), audit });
    return new CertsService(stateDir, tokens, audit);
  }

  close(): Promise<void> {
    return this.audit.close();
  }
}
