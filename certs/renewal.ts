/** When to renew a certificate: the timer arithmetic shared by workloads and the control plane. */

/** The longest delay a Node timer takes (about 24.8 days); a later renewal re-arms on wake. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** How long to wait before renewing: until `renewAt`, at least `minMs`, at most a timer's range. */
export function renewalDelayMs(renewAt: Date, now: number, minMs = 1000): number {
  return Math.min(Math.max(renewAt.getTime() - now, minMs), MAX_TIMER_MS);
}

/** After a failed renewal: every 30 s, or sooner when little time is left (a quarter of it), at least 1 s. */
export function retryDelayMs(notAfter: Date, now: number): number {
  return Math.max(1000, Math.min(30_000, Math.floor((notAfter.getTime() - now) / 4)));
}
