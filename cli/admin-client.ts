/** GETs on the control plane's admin API for the read-only commands (proxies, usage, slo). */

/** How long one admin request may take, ms. */
export const ADMIN_TIMEOUT_MS = 5000;

/**
 * GET http://<admin><path> and its JSON body. Throws with the address when the endpoint cannot
 * be reached, and with the status (and the API's `error` text) for a non-2xx answer.
 */
export async function getAdminJson<T>(admin: string, path: string): Promise<T> {
  let res: Response;
  try {
    res = await fetch(`http://${admin}${path}`, { signal: AbortSignal.timeout(ADMIN_TIMEOUT_MS) });
  } catch (err) {
    throw new Error(`cannot reach the control plane's admin endpoint at ${admin}: ${(err as Error).cause ?? (err as Error).message}`, { cause: err });
  }
  const body = (await res.json().catch(() => null)) as (T & { error?: unknown }) | null;
  if (!res.ok || body === null) {
    const detail = typeof body?.error === 'string' ? `: ${body.error}` : '';
    throw new Error(`admin endpoint ${admin} answered ${res.status}${detail}`);
  }
  return body;
}
