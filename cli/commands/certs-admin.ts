/** The control plane's admin API as the `palisade certs` commands call it. */
import { PalisadeError } from '../../xds/errors.ts';

/** One admin API call; throws (exit 1) naming the address when the control plane cannot be reached. */
export async function call(admin: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  let res: Response;
  try {
    res = await fetch(`http://${admin}${path}`, {
      method,
      ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
      signal: AbortSignal.timeout(20_000),
    });
  } catch (err) {
    throw new Error(`cannot reach the control plane's admin endpoint at ${admin}: ${(err as Error).cause ?? (err as Error).message}`, { cause: err });
  }
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

/** The API's refusal as one message: its `errors`, `message` or `error`. */
export function refusal(status: number, json: Record<string, unknown>): Error {
  const list = Array.isArray(json.errors) ? (json.errors as string[]) : [String(json.message ?? json.error ?? `status ${status}`)];
  return new Error(list.join('\n'));
}

/** Like {@link refusal}, keeping the API's error `code` (the CLI prints it before the message). */
export function codedRefusal(status: number, json: Record<string, unknown>): Error {
  const plain = refusal(status, json);
  return typeof json.code === 'string' ? new PalisadeError(json.code, plain.message) : plain;
}
