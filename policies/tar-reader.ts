/**
 * A minimal, strict reader for the uncompressed ustar archives `opa build` writes (Go's
 * archive/tar: ustar headers, PAX `x` records for long or non-ASCII names). No dependency:
 * the sidecar reads bundles straight off the xDS stream and must refuse anything odd rather
 * than interpret it, so everything but regular files, directories and PAX `x` records is
 * refused: links, devices, FIFOs, GNU long names, global PAX headers, base-256 sizes.
 *
 * Names are normalized to `/a/b` (leading `/` and `./` dropped, empty and `.` segments
 * removed); `..` segments, backslashes, NULs and duplicates after normalization are refused.
 */
import { BundleInvalidError } from './errors.ts';

const BLOCK = 512;

/** A regular file of the archive. `name` is normalized: `/policy.wasm`, `/src/authz.rego`. */
export interface TarEntry {
  readonly name: string;
  readonly data: Uint8Array;
}

/** Bounds on what readTar accepts. */
export interface TarLimits {
  /** Maximum number of regular files. */
  readonly maxEntries: number;
}

const decoder = new TextDecoder('utf-8', { fatal: true });

function field(header: Uint8Array, offset: number, length: number): string {
  let end = offset;
  while (end < offset + length && header[end] !== 0) end++;
  try {
    return decoder.decode(header.subarray(offset, end));
  } catch (cause) {
    throw new BundleInvalidError('tar: header field is not UTF-8', { cause });
  }
}

function octal(header: Uint8Array, offset: number, length: number, what: string): number {
  if ((header[offset]! & 0x80) !== 0) throw new BundleInvalidError(`tar: base-256 ${what} is not supported`);
  const text = field(header, offset, length).trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new BundleInvalidError(`tar: ${what} ${JSON.stringify(text)} is not octal`);
  return Number.parseInt(text, 8);
}

function checksumOk(header: Uint8Array): boolean {
  const want = octal(header, 148, 8, 'checksum');
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i]!;
  return sum === want;
}

function isZeroBlock(block: Uint8Array): boolean {
  for (let i = 0; i < block.length; i++) if (block[i] !== 0) return false;
  return true;
}

/** Normalizes an archive path to `/a/b`; null for the archive root (`./`). */
export function normalizeTarPath(raw: string): string | null {
  if (raw.includes('\0') || raw.includes('\\')) throw new BundleInvalidError(`tar: invalid entry name ${JSON.stringify(raw)}`);
  const segments: string[] = [];
  for (const s of raw.split('/')) {
    if (s === '' || s === '.') continue;
    if (s === '..') throw new BundleInvalidError(`tar: entry name ${JSON.stringify(raw)} escapes the bundle`);
    segments.push(s);
  }
  return segments.length === 0 ? null : `/${segments.join('/')}`;
}

/** PAX extended header records: `"<len> <key>=<value>\n"`, length counting the whole record. */
function parsePax(data: Uint8Array): Map<string, string> {
  const out = new Map<string, string>();
  try {
    decoder.decode(data);
  } catch (cause) {
    throw new BundleInvalidError('tar: PAX header is not UTF-8', { cause });
  }
  const bytes = data;
  let pos = 0;
  while (pos < bytes.length) {
    let sp = pos;
    while (sp < bytes.length && bytes[sp] !== 0x20) sp++;
    const len = Number(decoder.decode(bytes.subarray(pos, sp)));
    if (!Number.isInteger(len) || len <= sp - pos + 1 || pos + len > bytes.length || bytes[pos + len - 1] !== 0x0a) {
      throw new BundleInvalidError('tar: malformed PAX record');
    }
    const record = decoder.decode(bytes.subarray(sp + 1, pos + len - 1));
    const eq = record.indexOf('=');
    if (eq <= 0) throw new BundleInvalidError('tar: malformed PAX record');
    out.set(record.slice(0, eq), record.slice(eq + 1));
    pos += len;
  }
  return out;
}

/** Reads the regular files of an uncompressed tar archive, in archive order. Throws BundleInvalidError. */
export function readTar(tar: Uint8Array, limits: TarLimits): TarEntry[] {
  const entries: TarEntry[] = [];
  const seen = new Set<string>();
  let pax: Map<string, string> | null = null;
  let pos = 0;
  for (;;) {
    if (pos + BLOCK > tar.length) throw new BundleInvalidError('tar: truncated archive (no end-of-archive marker)');
    const header = tar.subarray(pos, pos + BLOCK);
    if (isZeroBlock(header)) {
      if (pax !== null) throw new BundleInvalidError('tar: PAX header without an entry');
      return entries;
    }
    const magic = field(header, 257, 6);
    if (magic !== 'ustar' && magic !== 'ustar ') throw new BundleInvalidError('tar: not a ustar archive');
    if (!checksumOk(header)) throw new BundleInvalidError(`tar: header checksum mismatch at offset ${pos}`);
    const type = String.fromCharCode(header[156]!);
    let size = octal(header, 124, 12, 'size');
    const paxSize = pax?.get('size');
    if (paxSize !== undefined) {
      if (!/^[0-9]+$/.test(paxSize)) throw new BundleInvalidError('tar: invalid PAX size');
      size = Number(paxSize);
    }
    const start = pos + BLOCK;
    if (start + size > tar.length) throw new BundleInvalidError('tar: entry runs past the end of the archive');
    const data = tar.subarray(start, start + size);
    pos = start + Math.ceil(size / BLOCK) * BLOCK;

    if (type === 'x') {
      if (pax !== null) throw new BundleInvalidError('tar: two PAX headers in a row');
      pax = parsePax(data);
      continue;
    }
    const prefix = field(header, 345, 155);
    const rawName = pax?.get('path') ?? (prefix === '' ? field(header, 0, 100) : `${prefix}/${field(header, 0, 100)}`);
    pax = null;
    if (type === '5') {
      normalizeTarPath(rawName);
      continue;
    }
    if (type !== '0' && type !== '\0') {
      throw new BundleInvalidError(`tar: entry ${JSON.stringify(rawName)} has unsupported type ${JSON.stringify(type)} (only regular files and directories)`);
    }
    const name = normalizeTarPath(rawName);
    if (name === null) throw new BundleInvalidError(`tar: regular file with empty name ${JSON.stringify(rawName)}`);
    if (seen.has(name)) throw new BundleInvalidError(`tar: duplicate entry ${name}`);
    seen.add(name);
    if (entries.length >= limits.maxEntries) throw new BundleInvalidError(`tar: more than ${limits.maxEntries} files`);
    entries.push({ name, data });
  }
}
