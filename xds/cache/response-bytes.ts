/**
 * Hand-assembled DiscoveryResponse / DeltaDiscoveryResponse bytes. Resources arrive
 * pre-marshalled (CachedResource), so a response is a concatenation: no per-stream
 * re-encoding of resources, and a SotW body is shared by every stream that wants it, with
 * only the nonce appended (protobuf allows fields in any order).
 */
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import type { CachedResource } from './cached-resource.ts';

/** DiscoveryResponse{version_info = 1, resources = 2, type_url = 4} without nonce (5). */
export function encodeSotwBody(typeUrl: string, version: string, resources: readonly CachedResource[]): Uint8Array {
  const w = new BinaryWriter();
  if (version) w.tag(1, WireType.LengthDelimited).string(version);
  for (const r of resources) w.tag(2, WireType.LengthDelimited).bytes(r.any);
  w.tag(4, WireType.LengthDelimited).string(typeUrl);
  return w.finish();
}

/**
 * Appends nonce (field 5) to a SotW body in one allocation. Runs once per stream per push,
 * so no BinaryWriter: nonces are short ASCII (base-36 counters), one length byte suffices.
 */
export function withNonce(body: Uint8Array, nonce: string): Buffer {
  if (nonce.length > 127) throw new RangeError(`nonce too long: ${nonce.length} characters`);
  const out = Buffer.allocUnsafe(body.length + 2 + nonce.length);
  out.set(body, 0);
  let at = body.length;
  out[at++] = (5 << 3) | 2; // field 5, length-delimited
  out[at++] = nonce.length;
  out.write(nonce, at, 'latin1');
  return out;
}

/**
 * DeltaDiscoveryResponse{system_version_info = 1, resources = 2, type_url = 4, nonce = 5,
 * removed_resources = 6}.
 */
export function encodeDelta(
  typeUrl: string, systemVersion: string, resources: readonly CachedResource[], removed: readonly string[], nonce: string,
): Buffer {
  const w = new BinaryWriter();
  if (systemVersion) w.tag(1, WireType.LengthDelimited).string(systemVersion);
  for (const r of resources) w.tag(2, WireType.LengthDelimited).bytes(r.deltaBytes);
  w.tag(4, WireType.LengthDelimited).string(typeUrl);
  w.tag(5, WireType.LengthDelimited).string(nonce);
  for (const name of removed) w.tag(6, WireType.LengthDelimited).string(name);
  return Buffer.from(w.finish());
}
