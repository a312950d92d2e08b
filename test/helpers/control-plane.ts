/** Starts a real control plane on loopback over a temporary config directory. */
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DirectorySource } from '../../control/config/source.ts';
import { ControlPlane } from '../../control/control-plane.ts';
import { createLogger } from '../../control/log.ts';

export interface TestControlPlane {
  cp: ControlPlane;
  dir: string;
  address: string;
  /** Atomically replaces a config file (temp + rename, as editors save). */
  write(file: string, text: string): Promise<void>;
  close(): Promise<void>;
}

export async function startControlPlane(files: Record<string, string>, debounceMs = 20, endpointGraceMs = 10_000): Promise<TestControlPlane> {
  const dir = await mkdtemp(join(tmpdir(), 'palisade-cp-'));
  const write = async (file: string, text: string) => {
    const tmp = join(dir, `.${file}.tmp`);
    await writeFile(tmp, text);
    await rename(tmp, join(dir, file));
  };
  for (const [f, t] of Object.entries(files)) await write(f, t);
  const source = new DirectorySource({ dir, debounceMs });
  const cp = new ControlPlane({ source, xdsAddress: '127.0.0.1:0', logger: createLogger('silent'), endpointGraceMs });
  await cp.start();
  return {
    cp, dir, address: cp.xdsAddress, write,
    close: async () => {
      await cp.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
