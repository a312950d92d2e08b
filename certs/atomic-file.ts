/**
 * Files that are either the old version or the new one, never half written: a temp file in
 * the same directory, fsynced, renamed over the target, then the directory fsynced, mode
 * 0600. For the certs state (join tokens, CA material) the control plane owns.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** The prefix of `file`'s temp files (removeStaleTemps clears those a crash left behind). */
export function tempPrefix(file: string): string {
  return `.${basename(file)}.tmp-`;
}

/** Write to a temp file in the same directory, fsync, rename over `file`, fsync the directory. Mode 0600. */
export async function writeAtomic(file: string, text: string): Promise<void> {
  const dir = dirname(file);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `${tempPrefix(file)}${process.pid}-${randomBytes(6).toString('hex')}`);
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.chmod(0o600); // whatever the umask
    await fh.writeFile(text, 'utf8');
    await fh.sync();
  } catch (err) {
    await fh.close();
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await fh.close();
  try {
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

export async function removeStaleTemps(file: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(dirname(file));
  } catch {
    return;
  }
  const prefix = tempPrefix(file);
  await Promise.all(names.filter((n) => n.startsWith(prefix)).map((n) => unlink(join(dirname(file), n)).catch(() => undefined)));
}
