import { gunzipSync as gunzip, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readBundle } from '../../policies/bundle.ts';
import { cleanup, opaBuild, rewrite, text, writeTarGz, type TarFile } from './support.ts';

const REGO = 'package envoy.authz\ndefault allow := false\nallow if input.x == data.want\n';
let built: Uint8Array;

beforeAll(async () => {
  built = await opaBuild({ 'authz.rego': REGO, 'data.json': '{"want": 1}' }, { entrypoints: ['envoy/authz/allow'], revision: 'rev-7' });
}, 60_000);

afterAll(cleanup);

const file = (name: string, data = 'x', extra: Partial<TarFile> = {}): TarFile => ({ name, data: text(data), ...extra });
const manifest = file('/.manifest', '{"revision":"r","wasm":[]}');

describe('readBundle', () => {
  it('reads the bundle opa build writes', () => {
    const b = readBundle(built);
    expect(b.revision).toBe('rev-7');
    expect(b.manifest).toEqual({ revision: 'rev-7', roots: [''], wasm: [{ entrypoint: 'envoy/authz/allow', module: '/policy.wasm' }], regoVersion: 1 });
    expect([...b.files.keys()].sort()).toEqual(['/.manifest', '/data.json', '/policy.wasm', '/src/authz.rego']);
    expect(b.data).toEqual({ want: 1 });
    expect(b.signatures).toBeNull();
    const wasm = b.wasm.get('/policy.wasm')!;
    expect([...wasm.subarray(0, 4)]).toEqual([0x00, 0x61, 0x73, 0x6d]);
    expect(new TextDecoder().decode(b.files.get('/src/authz.rego'))).toMatch(/^package envoy\.authz\n/);
  });

  it('normalizes ./ and duplicate slashes and skips directories', () => {
    const b = readBundle(writeTarGz([file('./', '', { type: '5' }), file('./a//b/./c.rego', 'p'), manifest]));
    expect([...b.files.keys()]).toEqual(['/a/b/c.rego', '/.manifest']);
    expect(b.data).toEqual({});
  });

  it.each<[string, () => Uint8Array, RegExp]>([
    ['not gzip', () => text('hello'), /not gzip-compressed/],
    ['a corrupt gzip stream', () => gzipSync(text('x'.repeat(2000))).subarray(0, 30), /gzip stream is corrupt/],
    ['a non-tar payload', () => gzipSync(text('x'.repeat(2000))), /not a ustar archive/],
    ['a path escaping the bundle', () => writeTarGz([file('../etc/passwd')]), /escapes the bundle/],
    ['a path escaping after normalization', () => writeTarGz([file('/a/../../b')]), /escapes the bundle/],
    ['a backslash in a name', () => writeTarGz([file('a\\b')]), /invalid entry name/],
    ['a duplicate entry', () => writeTarGz([file('/a.rego'), file('a.rego')]), /duplicate entry \/a\.rego/],
    ['a symlink', () => writeTarGz([file('/l', '', { type: '2', linkname: '/etc/passwd' })]), /unsupported type "2"/],
    ['a hard link', () => writeTarGz([file('/l', '', { type: '1', linkname: '/a' })]), /unsupported type "1"/],
    ['a GNU long name', () => writeTarGz([file('././@LongLink', 'x'.repeat(200), { type: 'L' })]), /unsupported type "L"/],
    ['a nested data.json', () => writeTarGz([file('/x/data.json', '{}')]), /only a root \/data\.json/],
    ['a data.yaml', () => writeTarGz([file('/data.yaml', 'a: 1')]), /only a root \/data\.json/],
    ['a data.json that is not an object', () => writeTarGz([file('/data.json', '[1]')]), /data\.json: not a JSON object/],
    ['a data.json that is not JSON', () => writeTarGz([file('/data.json', '{')]), /data\.json: not valid UTF-8 JSON/],
    ['a bad manifest', () => writeTarGz([file('/.manifest', '{"revision":3,"wasm":[{"entrypoint":1}]}')]), /\.manifest: revision must be a string; wasm must be/],
    ['a manifest naming a missing module', () => writeTarGz([file('/.manifest', '{"wasm":[{"entrypoint":"a/b","module":"/policy.wasm"}]}')]), /wasm module \/policy\.wasm \(entrypoint a\/b\) is not in the bundle/],
    ['a malformed .signatures.json', () => writeTarGz([file('/.signatures.json', '{"signatures":"x"}')]), /\.signatures\.json: expected/],
    ['a truncated archive', () => gzipSync(Buffer.from(writeTarGzRaw([file('/a', 'x'.repeat(600))]).subarray(0, 1024))), /runs past the end|truncated/],
  ])('refuses %s', (_what, make, reason) => {
    expect(() => readBundle(make())).toThrow(expect.objectContaining({ code: 'PAL_ERR_POLICY_BUNDLE_INVALID', message: expect.stringMatching(reason) }));
  });

  it('refuses a bundle that uncompresses past the limit', () => {
    const big = writeTarGz([file('/big.bin', 'a'.repeat(1 << 20))]);
    expect(big.length).toBeLessThan(1 << 16);
    expect(() => readBundle(big, { maxUncompressedBytes: 1 << 19 })).toThrow(expect.objectContaining({ code: 'PAL_ERR_POLICY_BUNDLE_INVALID', message: expect.stringMatching(/uncompresses to more than 524288 bytes/) }));
    expect(readBundle(big).files.get('/big.bin')!.length).toBe(1 << 20);
  });

  it('refuses more files than the limit', () => {
    expect(() => readBundle(writeTarGz([file('/a'), file('/b'), file('/c')]), { maxFiles: 2 })).toThrow(/more than 2 files/);
  });

  it('refuses a header with a bad checksum', () => {
    const raw = Buffer.from(writeTarGzRaw([file('/a.rego')]));
    raw[0] = 'b'.charCodeAt(0);
    expect(() => readBundle(gzipSync(raw))).toThrow(/checksum mismatch/);
  });

  it('reads PAX path records (Go archive/tar for long names)', () => {
    const long = `/${'d'.repeat(120)}/p.rego`;
    const record = (k: string, v: string): string => {
      const body = ` ${k}=${v}\n`;
      let len = body.length + 1;
      while (String(len).length + body.length !== len) len = String(len).length + body.length;
      return `${len}${body}`;
    };
    const b = readBundle(writeTarGz([file('PaxHeaders/x', record('path', long), { type: 'x' }), file('ignored-short-name', 'rego')]));
    expect([...b.files.keys()]).toEqual([long]);
  });

  it('round-trips through the test tar writer unchanged', () => {
    const again = readBundle(rewrite(built, (f) => f));
    expect([...again.files]).toEqual([...readBundle(built).files]);
  });
});

/** The uncompressed tar of writeTarGz, for byte-level corruption. */
function writeTarGzRaw(files: TarFile[]): Uint8Array {
  return new Uint8Array(gunzip(writeTarGz(files)));
}
