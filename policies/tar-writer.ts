/**
 * A minimal ustar writer, gzip-compressed: what palisade writes back when it signs a bundle
 * (policies/sign.ts). Regular files only, names up to 100 bytes, as `opa build` names them.
 */
import { gzipSync } from 'node:zlib';

export interface TarFile {
  readonly name: string;
  readonly data: Uint8Array;
  /** ustar typeflag; default '0' (a regular file). Tests write others to check the reader refuses them. */
  readonly type?: string;
  /** Link target, for type '2'. */
  readonly linkname?: string;
}

function octal(n: number, width: number): string {
  return `${n.toString(8).padStart(width - 1, '0')}\0`;
}

export function writeTarGz(files: readonly TarFile[]): Uint8Array {
  const blocks: Buffer[] = [];
  for (const f of files) {
    if (Buffer.byteLength(f.name) > 100) throw new RangeError(`tar entry name longer than 100 bytes: ${f.name}`);
    const h = Buffer.alloc(512);
    h.write(f.name, 0, 100, 'utf8');
    h.write(octal(0o644, 8), 100);
    h.write(octal(0, 8), 108);
    h.write(octal(0, 8), 116);
    h.write(octal(f.data.length, 12), 124);
    h.write(octal(0, 12), 136);
    h.write(' '.repeat(8), 148);
    h.write(f.type ?? '0', 156);
    if (f.linkname !== undefined) h.write(f.linkname, 157, 100);
    h.write('ustar\0', 257);
    h.write('00', 263);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
    blocks.push(h, Buffer.from(f.data), Buffer.alloc((512 - (f.data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return new Uint8Array(gzipSync(Buffer.concat(blocks)));
}
