/**
 * Audit events for identity: every certificate issue, renewal and revocation, every root
 * rotation phase, an intermediate replaced offline, and every join token minted, redeemed, refused or revoked goes through one
 * interface, `AuditSink`. The ledger (a later issue) will implement it; until then
 * `JsonLinesAuditSink` appends one JSON object per line to a file.
 *
 * Durability: `emit()` resolves only after the line is written and fsync'd, so an
 * acknowledged event survives a crash of the process. Order: emits are serialized through a
 * promise chain, so lines appear in the order `emit()` was called.
 *
 * Secrets: no event type has a field for a secret, and `validateAuditEvent()` refuses extra
 * fields (an accidental `{ ...token }` spread) and any string value that looks like a join
 * token, so a sink never writes one.
 */
import { open, mkdir, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { AuditEventInvalidError, AuditSinkClosedError } from './token-errors.ts';

/** Fields every audit event carries. */
export interface AuditEventBase {
  /** When it happened, ISO 8601 UTC (`Date#toISOString()`). */
  time: string;
  /** Who did it: an operator (`operator:alice`), a component (`control-plane`) or a SPIFFE ID. */
  actor: string;
}

/** A workload certificate was signed (first issue). */
export interface CertIssuedEvent extends AuditEventBase {
  type: 'cert.issued';
  /** Certificate serial number, hex. */
  serial: string;
  spiffeId: string;
  /** Certificate `notAfter`, ISO 8601. */
  notAfter: string;
  /** Key algorithm of the certified key, e.g. `ECDSA-P256`. */
  keyType: string;
}

/** A workload certificate was renewed: a new certificate replaces `previousSerial`. */
export interface CertRenewedEvent extends AuditEventBase {
  type: 'cert.renewed';
  serial: string;
  previousSerial: string;
  spiffeId: string;
  notAfter: string;
  keyType: string;
}

/** A certificate was revoked. */
export interface CertRevokedEvent extends AuditEventBase {
  type: 'cert.revoked';
  serial: string;
  /** Why, in words (`key compromise`, `workload deleted`, …). */
  reason: string;
}

/** Phases of a root rotation, in order. */
export type RootRotationPhase = 'published-both' | 'reissued' | 'retired';

/** A root-rotation phase completed. Fingerprints are SHA-256 of the root certificate's DER, hex. */
export interface RootRotationEvent extends AuditEventBase {
  type: 'root.rotation';
  phase: RootRotationPhase;
  oldRootFingerprint: string;
  newRootFingerprint: string;
}

/**
 * The online intermediate was replaced offline (`palisade certs new-intermediate`), after its
 * key or the KEK was lost: same root, new intermediate. Fingerprints are SHA-256 of the DER, hex.
 */
export interface IntermediateReplacedEvent extends AuditEventBase {
  type: 'ca.intermediate.replaced';
  rootFingerprint: string;
  /** The replaced intermediate; absent when its certificate was gone too. */
  oldIntermediateFingerprint?: string;
  newIntermediateFingerprint: string;
  /** `kept`, or `replaced` when a new KEK was created (`--new-kek`). */
  kek: string;
}

/** A join token was minted. Never the secret: the id only. */
export interface TokenMintedEvent extends AuditEventBase {
  type: 'token.minted';
  id: string;
  namespace: string;
  serviceAccount: string;
  /** ISO 8601. */
  expiresAt: string;
}

/** A join token was redeemed (and is now used). */
export interface TokenRedeemedEvent extends AuditEventBase {
  type: 'token.redeemed';
  id: string;
  namespace: string;
  serviceAccount: string;
}

/** A join token was refused. `id` is present when the presented token was well-formed. */
export interface TokenRefusedEvent extends AuditEventBase {
  type: 'token.refused';
  id?: string;
  /** `malformed` | `unknown` | `used` | `expired` | `revoked` | `scope-mismatch`. */
  reason: string;
  /** The refusal's `PAL_ERR_CERTS_TOKEN_*` code. */
  code: string;
}

/** An operator revoked an unused join token. */
export interface TokenRevokedEvent extends AuditEventBase {
  type: 'token.revoked';
  id: string;
}

/** Every audit event, discriminated by `type`. */
export type AuditEvent =
  | CertIssuedEvent
  | CertRenewedEvent
  | CertRevokedEvent
  | RootRotationEvent
  | IntermediateReplacedEvent
  | TokenMintedEvent
  | TokenRedeemedEvent
  | TokenRefusedEvent
  | TokenRevokedEvent;

/** Where audit events go. `emit` resolves once the event is durable (for the ledger: appended). */
export interface AuditSink {
  emit(event: AuditEvent): Promise<void>;
}

/** Per type, the fields after `type`, `time`, `actor`, in output order; `?` marks optional. */
const FIELDS: Readonly<Record<AuditEvent['type'], readonly string[]>> = {
  'cert.issued': ['serial', 'spiffeId', 'notAfter', 'keyType'],
  'cert.renewed': ['serial', 'previousSerial', 'spiffeId', 'notAfter', 'keyType'],
  'cert.revoked': ['serial', 'reason'],
  'root.rotation': ['phase', 'oldRootFingerprint', 'newRootFingerprint'],
  'ca.intermediate.replaced': ['rootFingerprint', 'oldIntermediateFingerprint?', 'newIntermediateFingerprint', 'kek'],
  'token.minted': ['id', 'namespace', 'serviceAccount', 'expiresAt'],
  'token.redeemed': ['id', 'namespace', 'serviceAccount'],
  'token.refused': ['id?', 'reason', 'code'],
  'token.revoked': ['id'],
};

const ISO_FIELDS = new Set(['time', 'notAfter', 'expiresAt']);
const ROTATION_PHASES: readonly string[] = ['published-both', 'reissued', 'retired'];
const KEK_OUTCOMES: readonly string[] = ['kept', 'replaced'];
const ISO_8601 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
/** Anything shaped like a join token's secret part (see join-token.ts): never written. */
const LOOKS_LIKE_TOKEN = /pal1\.[0-9a-f]{16}\.[A-Za-z0-9_-]{43}/;

/**
 * Checks an event against its type's schema: known `type`, every required field a non-empty
 * string, ISO times, a known rotation phase and KEK outcome, no extra fields, no value shaped like a join
 * token. On success `result` is a copy with fields in schema order (stable output).
 */
export function validateAuditEvent(event: unknown): { valid: true; result: AuditEvent } | { valid: false; errors: string[] } {
  if (typeof event !== 'object' || event === null || Array.isArray(event)) return { valid: false, errors: [`event must be an object, got ${JSON.stringify(event)}`] };
  const e = event as Record<string, unknown>;
  const type = e.type;
  if (typeof type !== 'string' || !Object.hasOwn(FIELDS, type)) {
    return { valid: false, errors: [`type must be one of ${Object.keys(FIELDS).join(', ')}, got ${JSON.stringify(type)}`] };
  }
  const errors: string[] = [];
  const spec = FIELDS[type as AuditEvent['type']];
  const names = ['time', 'actor', ...spec.map((f) => f.replace('?', ''))];
  const out: Record<string, string> = { type };
  for (const raw of ['time', 'actor', ...spec]) {
    const optional = raw.endsWith('?');
    const name = optional ? raw.slice(0, -1) : raw;
    const value = e[name];
    if (value === undefined && optional) continue;
    if (typeof value !== 'string' || value === '') {
      errors.push(`${type}.${name} must be a non-empty string, got ${JSON.stringify(value) ?? 'undefined'}`);
      continue;
    }
    if (ISO_FIELDS.has(name) && (!ISO_8601.test(value) || Number.isNaN(Date.parse(value)))) errors.push(`${type}.${name} must be an ISO 8601 time, got ${JSON.stringify(value)}`);
    if (name === 'phase' && !ROTATION_PHASES.includes(value)) errors.push(`${type}.phase must be one of ${ROTATION_PHASES.join(', ')}, got ${JSON.stringify(value)}`);
    if (name === 'kek' && !KEK_OUTCOMES.includes(value)) errors.push(`${type}.kek must be one of ${KEK_OUTCOMES.join(', ')}, got ${JSON.stringify(value)}`);
    if (LOOKS_LIKE_TOKEN.test(value)) errors.push(`${type}.${name} holds a join token; audit events never carry secrets`);
    out[name] = value;
  }
  for (const key of Object.keys(e)) {
    if (key !== 'type' && !names.includes(key)) errors.push(`${type} has no field ${JSON.stringify(key)}`);
  }
  return errors.length > 0 ? { valid: false, errors } : { valid: true, result: out as unknown as AuditEvent };
}

function checked(event: AuditEvent): AuditEvent {
  const v = validateAuditEvent(event);
  if (!v.valid) throw new AuditEventInvalidError(v.errors);
  return v.result;
}

/**
 * Appends each event as one JSON line to `file` (created 0600 with its directory if missing),
 * opened with O_APPEND. `emit` resolves after write + fsync; concurrent emits are written in
 * call order. An invalid event is a bug: `emit` rejects with `PAL_ERR_CERTS_AUDIT_INVALID_EVENT`
 * and writes nothing. One process should own the file (the control plane).
 */
export class JsonLinesAuditSink implements AuditSink {
  readonly file: string;
  #handle: Promise<FileHandle> | null = null;
  #tail: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(file: string) {
    this.file = file;
  }

  emit(event: AuditEvent): Promise<void> {
    if (this.#closed) return Promise.reject(new AuditSinkClosedError(this.file));
    let line: Buffer;
    try {
      line = Buffer.from(`${JSON.stringify(checked(event))}\n`, 'utf8');
    } catch (err) {
      return Promise.reject(err);
    }
    const run = this.#tail.then(() => this.#append(line));
    this.#tail = run.catch(() => undefined);
    return run;
  }

  /** Waits for pending emits, then closes the file. Later emits reject with `PAL_ERR_CERTS_AUDIT_SINK_CLOSED`. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#tail;
    const handle = this.#handle;
    this.#handle = null;
    if (handle) await (await handle).close();
  }

  async #append(line: Buffer): Promise<void> {
    this.#handle ??= this.#open();
    let fh: FileHandle;
    try {
      fh = await this.#handle;
    } catch (err) {
      this.#handle = null; // retry the open on the next emit
      throw err;
    }
    let written = 0;
    while (written < line.length) {
      const { bytesWritten } = await fh.write(line, written, line.length - written);
      written += bytesWritten;
    }
    await fh.sync();
  }

  async #open(): Promise<FileHandle> {
    await mkdir(dirname(this.file), { recursive: true, mode: 0o700 });
    return open(this.file, 'a', 0o600);
  }
}

/**
 * Keeps events in an array, validated like any sink. A real implementation for embedding
 * (a process that forwards events elsewhere, or inspects them in place); it is not durable.
 */
export class MemoryAuditSink implements AuditSink {
  readonly events: AuditEvent[] = [];

  async emit(event: AuditEvent): Promise<void> {
    this.events.push(checked(event));
  }
}
