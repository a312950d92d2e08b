/**
 * Runs a route's compiled fault on the outbound path, as Envoy's fault filter does before the
 * router (its `decodeHeaders`):
 *
 *   headers match (all of them) ─ no → forward
 *     → delay rolled (percentage) and a fault slot free (max_active_faults) → flag DI, hold the
 *       request for the fixed delay (cancelled when the client goes away), then roll the abort:
 *       abort → answer, else forward
 *     → else abort rolled and a slot free → flag FI, answer
 *     → else forward
 *
 * One slot of `max_active_faults` is held from the first fault injected until the response is
 * over, however many faults the request gets (Envoy counts one active fault per stream); when
 * every slot is taken the request is forwarded untouched and `overflow` counts it.
 *
 * The answer is Envoy's local reply: HTTP `<status>` with the body `fault filter abort`; a gRPC
 * request (content-type application/grpc…) gets a trailers-only response, HTTP 200 with
 * `grpc-status` and `grpc-message: fault filter abort`. An HTTP status abort on a gRPC request
 * maps the status to gRPC, a gRPC status abort on a plain HTTP request maps it to HTTP, with the
 * mappings of gRPC's HTTP/2 spec (doc/http-grpc-status-mapping.md) and Envoy's `grpcToHttpStatus`.
 *
 * Only requests that meet a fault allocate (a timer and a close listener); others pay a null
 * check for the route's fault and, with header matchers, the matching.
 */
import { setAddedHeaders, withAddedHeaders } from '../proxy/added-headers.ts';
import type { DownstreamRequest, DownstreamResponse } from '../listeners/http-listener.ts';
import { type HeaderLookup, headerMatches } from '../routing/header-matcher.ts';
import { flag } from '../telemetry/request-facts.ts';
import type { CompiledFault } from './http-fault.ts';

export const FAULT_ABORT_BODY = 'fault filter abort';

/** Counters for /stats, as Envoy's fault filter stats. */
export interface FaultStats {
  delaysInjected: number;
  abortsInjected: number;
  /** Faults not injected because max_active_faults was reached. */
  overflow: number;
  /** Requests in a fault now. */
  active: number;
}

/** Envoy's `Grpc::Utility::httpToGrpcStatus`. */
export function httpToGrpcStatus(status: number): number {
  switch (status) {
    case 400: return 13; // INTERNAL
    case 401: return 16; // UNAUTHENTICATED
    case 403: return 7; // PERMISSION_DENIED
    case 404: return 12; // UNIMPLEMENTED
    case 429: case 502: case 503: case 504: return 14; // UNAVAILABLE
    default: return 2; // UNKNOWN
  }
}

/** Envoy's `Grpc::Utility::grpcToHttpStatus`. */
export function grpcToHttpStatus(code: number): number {
  switch (code) {
    case 0: return 200;
    case 1: return 499;
    case 2: return 500;
    case 3: return 400;
    case 4: return 504;
    case 5: return 404;
    case 6: return 409;
    case 7: return 403;
    case 8: return 429;
    case 9: return 400;
    case 10: return 409;
    case 11: return 400;
    case 12: return 501;
    case 13: return 500;
    case 14: return 503;
    case 15: return 500;
    case 16: return 401;
    default: return 500;
  }
}

/** Envoy's `Grpc::Common::hasGrpcContentType`. */
function isGrpc(contentType: string | string[] | undefined): boolean {
  if (typeof contentType !== 'string' || !contentType.startsWith('application/grpc')) return false;
  return contentType.length === 16 || contentType.charCodeAt(16) === 43 /* + */;
}

/** Whether the response is over (closed or destroyed): its 'close' has fired or never will. */
function isOver(res: DownstreamResponse): boolean {
  const r = res as { destroyed?: boolean; closed?: boolean; stream?: { destroyed: boolean } };
  return r.destroyed === true || r.closed === true || r.stream?.destroyed === true;
}

export interface FaultInjectorOptions {
  /** [0, 1); the percentage rolls. Default Math.random. */
  readonly random?: () => number;
}

/** What a request's method, authority, path and headers are, for the fault's header matchers. */
export interface FaultRequestView {
  readonly method: string;
  readonly authority: string;
  readonly path: string;
  readonly lookup: HeaderLookup;
}

/**
 * Applies faults for one forwarder (one listener's requests): the `max_active_faults` count is
 * shared by all its routes, as Envoy's is by one HCM's fault filter.
 */
export class FaultInjector {
  readonly #random: () => number;
  readonly #stats: FaultStats = { delaysInjected: 0, abortsInjected: 0, overflow: 0, active: 0 };

  constructor(options: FaultInjectorOptions = {}) {
    this.#random = options.random ?? Math.random;
  }

  stats(): FaultStats {
    return { ...this.#stats };
  }

  /**
   * Runs `fault` for a request. Returns true when the request goes on now (no fault, or none
   * rolled); false when the injector took it: it is answered (abort) or `proceed` is called
   * after the delay (unless the client went away first, or an abort follows the delay).
   */
  apply(fault: CompiledFault, req: DownstreamRequest, res: DownstreamResponse, view: FaultRequestView, proceed: () => void): boolean {
    const hs = fault.headers;
    if (hs !== null) {
      for (let i = 0; i < hs.length; i++) if (!headerMatches(hs[i]!, view.method, view.authority, view.path, view.lookup)) return true;
    }
    if (fault.delayMs > 0 && this.#roll(fault.delayNumerator, fault.delayDenominator) && this.#acquire(fault, res)) {
      this.#stats.delaysInjected++;
      flag(req, 'DI');
      this.#delay(fault, req, res, proceed);
      return false;
    }
    if (this.#abortRolled(fault) && this.#acquire(fault, res)) {
      this.#abort(fault, req, res);
      return false;
    }
    return true;
  }

  #roll(numerator: number, denominator: number): boolean {
    if (numerator <= 0) return false;
    if (numerator >= denominator) return true;
    return Math.floor(this.#random() * denominator) < numerator;
  }

  #abortRolled(fault: CompiledFault): boolean {
    return (fault.abortHttpStatus !== 0 || fault.abortGrpcStatus >= 0) && this.#roll(fault.abortNumerator, fault.abortDenominator);
  }

  /** Takes a fault slot until the response is over; false (overflow) when none is free. */
  #acquire(fault: CompiledFault, res: DownstreamResponse): boolean {
    const s = this.#stats;
    // Already over: 'close' has fired (or never will), so a slot taken now would never come back.
    if (isOver(res)) return false;
    if (s.active >= fault.maxActiveFaults) {
      s.overflow++;
      return false;
    }
    s.active++;
    res.once('close', () => {
      s.active--;
    });
    return true;
  }

  #delay(fault: CompiledFault, req: DownstreamRequest, res: DownstreamResponse, proceed: () => void): void {
    const timer = setTimeout(() => {
      // Delays can be followed by aborts (Envoy's postDelayInjection); the slot is already held.
      if (this.#abortRolled(fault)) this.#abort(fault, req, res);
      else proceed();
    }, fault.delayMs);
    // The client went away while held: nothing is forwarded (clearing a fired timer is a no-op).
    res.once('close', () => clearTimeout(timer));
  }

  #abort(fault: CompiledFault, req: DownstreamRequest, res: DownstreamResponse): void {
    // Nothing to inject into (the response started or is over): neither counted nor flagged.
    if (res.headersSent || isOver(res)) return;
    this.#stats.abortsInjected++;
    flag(req, 'FI');
    if (isGrpc(req.headers['content-type'])) {
      const code = fault.abortGrpcStatus >= 0 ? fault.abortGrpcStatus : httpToGrpcStatus(fault.abortHttpStatus);
      // Headers set, not written: end() then sends them as one HEADERS frame with END_STREAM on
      // HTTP/2 (trailers-only); writeHead() would send them apart from the end of the stream.
      res.statusCode = 200;
      res.setHeader('content-type', 'application/grpc');
      res.setHeader('grpc-status', String(code));
      res.setHeader('grpc-message', FAULT_ABORT_BODY);
      setAddedHeaders(res);
      res.end();
      return;
    }
    const status = fault.abortHttpStatus !== 0 ? fault.abortHttpStatus : grpcToHttpStatus(fault.abortGrpcStatus);
    res.writeHead(status, withAddedHeaders(res, { 'content-type': 'text/plain', 'content-length': FAULT_ABORT_BODY.length }));
    res.end(FAULT_ABORT_BODY);
  }
}
