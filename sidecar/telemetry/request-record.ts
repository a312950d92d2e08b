/**
 * What the telemetry wrapper knows of one finished request: made once when the response is
 * over and handed to metrics, the access log and every sink (usage meter, SLO counters).
 */
import type { RequestFacts } from './request-facts.ts';

export interface RequestRecord {
  /** `inbound` or `outbound`. */
  readonly listener: string;
  readonly method: string;
  /** The request target as received (origin form; absolute form as sent by the workload). */
  readonly path: string;
  readonly authority: string;
  readonly protocol: 'HTTP/1.1' | 'HTTP/2';
  /** The status sent downstream; 0 when none was (the downstream went away first). */
  readonly status: number;
  /** Epoch ms at which the request arrived. */
  readonly startTime: number;
  /** From arrival to the response's end (or the downstream's disconnect), ms. */
  readonly durationMs: number;
  /** Request body bytes read from the downstream (HTTP/1 and HTTP/2; no heads or framing; request-telemetry.ts). */
  readonly bytesIn: number;
  /** Response body bytes written downstream (HTTP/1 and HTTP/2; no heads or framing; request-telemetry.ts). */
  readonly bytesOut: number;
  /** x-request-id (the client's, else the one the forwarder generated); null when none was set. */
  readonly requestId: string | null;
  readonly userAgent: string | null;
  /** The downstream peer's address. */
  readonly remoteAddress: string | null;
  /** x-forwarded-for as received. */
  readonly forwardedFor: string | null;
  readonly facts: RequestFacts;
  /** The trace this request's span belongs to (tracing on and sampled); else null. */
  readonly traceId: string | null;
}

/** Something that wants every finished request (a usage meter, SLO counters). Called synchronously: keep it cheap, never throw. */
export type RequestSink = (record: RequestRecord) => void;
