/**
 * `palisade certs rotate-root start|status|finish`: drives a root rotation in the running
 * control plane through its admin API (POST /api/v1/certs/root-rotation/start|finish, GET
 * /api/v1/certs/root-rotation); see certs/root-rotation.ts for the phases.
 *
 * The root key goes where init-root's went, said explicitly: `--root-key-out FILE` (alias
 * `--key-out`) asks the control plane to return the new root key once, and writes it to FILE
 * (created 0600, never overwritten: FILE is checked before anything changes); `--keep-root-key`
 * keeps it in the control plane's keyring.
 */
import { open } from 'node:fs/promises';
import { resolve } from 'node:path';
import { DEFAULT_KEY_TYPE, isKeyType, KEY_TYPES } from '../../certs/keys.ts';
import type { RotationStatus, RootInfo } from '../../control/certs/certs-service.ts';
import { checkAddress, checkOutput, parseFlags, UsageError } from '../args.ts';
import { call, codedRefusal } from './certs-admin.ts';

export const rotateRootHelp = `  rotate-root start (--root-key-out FILE | --keep-root-key) [--key-type TYPE]
                    [--root-ttl DURATION] [--intermediate-ttl DURATION]
                     start a root rotation in the running control plane: a new root and
                     intermediate; the trust bundle becomes old + new root (pushed to every
                     proxy) and new certificates come from the new intermediate
  rotate-root status phase (none|rotating), both roots, live certificates per root
  rotate-root finish [--force]
                     trust only the new root; the old root and intermediate are archived.
                     Refused (exit 1) while live certificates chain to the old root, unless --force
`;

export const rotateRootFlagsHelp = `  --key-out FILE             rotate-root start: same as --root-key-out
  --force                    rotate-root finish: even while old-root certificates are live
`;

function exists(file: string): Promise<boolean> {
  return open(file, 'r').then(
    async (fh) => {
      await fh.close();
      return true;
    },
    (err: NodeJS.ErrnoException) => err.code !== 'ENOENT',
  );
}

function rootLines(label: string, r: RootInfo | null): string {
  if (r === null) return `${label}(none)\n`;
  return `${label}${r.subject}\n  SHA-256:       ${r.fingerprintSha256}\n  Not after:     ${r.notAfter}\n`;
}

function statusText(s: RotationStatus): string {
  return (
    `Phase:           ${s.phase}\n` +
    rootLines(s.phase === 'rotating' ? 'New root:        ' : 'Root:            ', s.root) +
    (s.phase === 'rotating' ? rootLines('Old root:        ', s.oldRoot) : '') +
    `Live certificates: ${s.liveCerts.root} chain to the ${s.phase === 'rotating' ? 'new ' : ''}root` +
    (s.phase === 'rotating' ? `, ${s.liveCerts.oldRoot} to the old root` : '') +
    (s.liveCerts.retired > 0 ? `, ${s.liveCerts.retired} to a retired root` : '') +
    '\n'
  );
}

/** `palisade certs rotate-root …`. */
export async function rotateRoot(argv: string[]): Promise<number> {
  const [phase, ...rest] = argv;
  const flags = parseFlags(rest, {
    'root-key-out': { type: 'string' },
    'key-out': { type: 'string' },
    'keep-root-key': { type: 'boolean', default: false },
    'key-type': { type: 'string' },
    'root-ttl': { type: 'string' },
    'intermediate-ttl': { type: 'string' },
    force: { type: 'boolean', default: false },
    'admin-address': { type: 'string', default: '127.0.0.1:18001' },
    output: { type: 'string', short: 'o', default: 'table' },
  });
  const output = checkOutput(flags.output);
  const admin = checkAddress('--admin-address', flags['admin-address']);
  const print = (json: unknown, text: string) => process.stdout.write(output === 'json' ? `${JSON.stringify(json, null, 2)}\n` : text);
  const onlyFor = (names: string[], sub: string) => {
    for (const n of names) {
      const v = flags[n as keyof typeof flags];
      if (v !== undefined && v !== false) throw new UsageError(`--${n} is not a flag of rotate-root ${sub}`);
    }
  };

  switch (phase) {
    case 'status': {
      onlyFor(['root-key-out', 'key-out', 'keep-root-key', 'key-type', 'root-ttl', 'intermediate-ttl', 'force'], 'status');
      const { status, json } = await call(admin, 'GET', '/api/v1/certs/root-rotation');
      if (status !== 200) throw codedRefusal(status, json);
      const s = json.status as RotationStatus;
      print(s, statusText(s));
      return 0;
    }
    case 'start': {
      onlyFor(['force'], 'start');
      if (flags['root-key-out'] !== undefined && flags['key-out'] !== undefined) throw new UsageError('--root-key-out and --key-out are the same flag: give one');
      const keyOut = flags['root-key-out'] ?? flags['key-out'];
      const keep = flags['keep-root-key'];
      if (keyOut === undefined && !keep) {
        throw new UsageError(
          'say where the new root private key goes: --root-key-out FILE writes it to a file (mode 0600) to keep offline; ' +
            '--keep-root-key keeps it encrypted in the control plane\'s keyring',
        );
      }
      if (keyOut !== undefined && keep) throw new UsageError('--root-key-out and --keep-root-key exclude each other: choose one');
      if (keyOut === '') throw new UsageError('--root-key-out must be a file path, got ""');
      const keyType = flags['key-type'];
      if (keyType !== undefined && !isKeyType(keyType)) throw new UsageError(`--key-type must be one of ${KEY_TYPES.join(', ')}, got ${JSON.stringify(keyType)} (default: the current root's, else ${DEFAULT_KEY_TYPE})`);
      const keyPath = keyOut === undefined ? undefined : resolve(keyOut);
      // Refuse before anything changes: the key file is never overwritten.
      if (keyPath !== undefined && (await exists(keyPath))) throw new Error(`--root-key-out ${keyPath} already exists; rotate-root never overwrites a key file`);
      const body = {
        rootKey: keyPath === undefined ? 'keyring' : 'return',
        ...(keyType === undefined ? {} : { keyType }),
        ...(flags['root-ttl'] === undefined ? {} : { rootTtl: flags['root-ttl'] }),
        ...(flags['intermediate-ttl'] === undefined ? {} : { intermediateTtl: flags['intermediate-ttl'] }),
      };
      const { status, json } = await call(admin, 'POST', '/api/v1/certs/root-rotation/start', body);
      if (status === 400) throw new UsageError((json.errors as string[]).join('\n'));
      if (status !== 200) throw codedRefusal(status, json);
      if (keyPath !== undefined) {
        const fh = await open(keyPath, 'wx', 0o600);
        try {
          await fh.chmod(0o600);
          await fh.writeFile(String(json.rootKeyPem));
          await fh.sync();
        } finally {
          await fh.close();
        }
      }
      const s = json.status as RotationStatus;
      const rootKey = keyPath === undefined ? { location: 'keyring' } : { location: 'file', path: keyPath };
      print(
        { status: s, rootKey, archive: json.archive },
        `Started the root rotation: the trust bundle now holds the old and the new root, and new certificates come from the new intermediate.\n\n${statusText(s)}\n` +
          (keyPath === undefined ? 'New root key:    kept in the control plane\'s keyring\n' : `New root key:    written to ${keyPath} (mode 0600): move it offline\n`) +
          `Old CA archived: ${String(json.archive)}\n` +
          'Next: wait until the live certificates of the old root have renewed (rotate-root status), then rotate-root finish.\n',
      );
      return 0;
    }
    case 'finish': {
      onlyFor(['root-key-out', 'key-out', 'keep-root-key', 'key-type', 'root-ttl', 'intermediate-ttl'], 'finish');
      const { status, json } = await call(admin, 'POST', '/api/v1/certs/root-rotation/finish', { force: flags.force });
      if (status !== 200) throw codedRefusal(status, json);
      const s = json.status as RotationStatus;
      const stranded = Number(json.stranded);
      print(
        { status: s, archive: json.archive, stranded },
        `Finished the root rotation: the trust bundle holds only the new root.\n\n${statusText(s)}\n` +
          `Retired CA archived: ${String(json.archive)}\n` +
          (stranded > 0 ? `Forced: ${stranded} live certificate(s) of the old root are no longer trusted; their workloads must enroll again.\n` : ''),
      );
      return 0;
    }
    default:
      throw new UsageError(phase === undefined ? 'rotate-root needs a phase: start, status or finish' : `unknown rotate-root phase ${JSON.stringify(phase)}: use start, status or finish`);
  }
}
