/**
 * User and system CPU time of a process tree, from Linux /proc/PID/stat (utime, stime), so
 * that the report can tell the proxy's own work from the kernel's (socket reads and writes:
 * on loopback the sender's write also runs the receiver's TCP input path).
 */
import { readFileSync } from 'node:fs';
import { processTree } from '../xds-scale/proc-stats.ts';

/** Linux USER_HZ: 100 on every mainstream architecture. */
const TICKS_PER_SECOND = 100;

export interface CpuSplit {
  userMs: number;
  systemMs: number;
}

export function cpuSplitMs(pid: number): CpuSplit {
  let user = 0;
  let system = 0;
  for (const p of processTree(pid)) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      // Fields after "(comm)"; comm may hold spaces. utime and stime are fields 14 and 15.
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      user += Number(rest[11]);
      system += Number(rest[12]);
    } catch {
      // gone
    }
  }
  return { userMs: (user * 1000) / TICKS_PER_SECOND, systemMs: (system * 1000) / TICKS_PER_SECOND };
}
