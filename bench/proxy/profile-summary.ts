/**
 * Where a V8 CPU profile (`node --cpu-prof`) spends its time:
 *
 *   node bench/proxy/profile-summary.ts FILE.cpuprofile [TOP [FROM_MS TO_MS]]
 *
 * prints the TOP (default 25) functions by self time with their file:line and category,
 * the time per category (Palisade's sidecar code, Palisade's other code, undici, node:http,
 * node streams / net, other node internals, native code, other dependencies, GC, idle,
 * program), and the Palisade functions with the most inclusive time (self + callees).
 * run.ts calls summarizeProfile() / formatProfileSummary() after a PROFILE=1 run.
 *
 * Self time of a sample is the time until the next sample (timeDeltas[i + 1]), as Chrome
 * DevTools counts it. FROM_MS / TO_MS (ms from the profile's start) count only that part,
 * e.g. the measured load without start-up and shutdown.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export const CATEGORIES = [
  'sidecar', 'palisade-other', 'undici', 'node-http', 'node-net-streams', 'node-other', 'native', 'deps-other', 'gc', 'program', 'idle',
] as const;
export type Category = (typeof CATEGORIES)[number];

const CATEGORY_LABEL: Record<Category, string> = {
  sidecar: 'Palisade sidecar/ (our hot path)',
  'palisade-other': 'Palisade control/, xds/, cli/',
  undici: 'undici (upstream client)',
  'node-http': 'node:http (server, parser, OutgoingMessage)',
  'node-net-streams': 'node streams, net, timers, events',
  'node-other': 'other node: internals',
  native: 'native (V8 builtins, C++ bindings, no script)',
  'deps-other': 'other node_modules',
  gc: '(garbage collector)',
  program: '(program): VM / native work not attributed',
  idle: '(idle)',
};

export interface FunctionTime {
  name: string;
  /** Path relative to the repo (or node:…), :line (1-based). */
  location: string;
  category: Category;
  selfMs: number;
  selfPct: number;
  /** Inclusive (self + callees, recursion counted once), ms. */
  totalMs: number;
  totalPct: number;
}

export interface ProfileSummary {
  file: string;
  /** The part counted, ms from the profile's start; null = all. */
  window: ProfileWindow | null;
  /** Profile wall time, ms. */
  wallMs: number;
  /** Wall time minus idle, ms. */
  busyMs: number;
  samples: number;
  top: FunctionTime[];
  categories: { category: Category; label: string; ms: number; pctOfWall: number; pctOfBusy: number }[];
  /** Palisade functions by inclusive time. */
  topPalisadeInclusive: FunctionTime[];
}

function stripRepo(url: string, repoUrl: string): string {
  if (url.startsWith(repoUrl)) return url.slice(repoUrl.length);
  const nm = url.indexOf('/node_modules/');
  if (nm >= 0) return url.slice(nm + 1);
  return url.startsWith('file://') ? fileURLToPath(url) : url;
}

export function categorize(frame: CallFrame, repoUrl: string): Category {
  const { functionName: fn, url } = frame;
  if (fn === '(idle)') return 'idle';
  if (fn === '(garbage collector)') return 'gc';
  if (fn === '(program)' || fn === '(root)') return 'program';
  if (url === '') return 'native';
  if (url.includes('/node_modules/undici/')) return 'undici';
  if (url.includes('/node_modules/')) return 'deps-other';
  if (url.startsWith('node:')) {
    if (/^node:(_http_|http$|internal\/http|internal\/streams\/.*http)/.test(url)) return 'node-http';
    if (/^node:(net|stream|events|timers|internal\/(streams|stream_base_commons|net|timers|event_target|events|async_hooks|process\/task_queues|abort_controller))/.test(url)) return 'node-net-streams';
    return 'node-other';
  }
  if (url.startsWith(repoUrl)) return url.slice(repoUrl.length).startsWith('sidecar/') ? 'sidecar' : 'palisade-other';
  return 'deps-other';
}

function frameKey(f: CallFrame): string {
  return `${f.functionName}\u0000${f.url}\u0000${f.lineNumber}\u0000${f.columnNumber}`;
}

/** Part of the profile to count, ms from its start; default all of it. */
export interface ProfileWindow {
  fromMs: number;
  toMs: number;
}

export function summarizeProfile(file: string, topN = 25, repoDir = fileURLToPath(new URL('../../', import.meta.url)), window: ProfileWindow | null = null): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const repoUrl = `file://${repoDir.endsWith('/') ? repoDir : `${repoDir}/`}`;
  const byId = new Map<number, ProfileNode>();
  for (const n of profile.nodes) byId.set(n.id, n);

  // Self time per node id, µs.
  const selfUs = new Map<number, number>();
  const { samples, timeDeltas } = profile;
  const fromUs = window === null ? -Infinity : window.fromMs * 1000;
  const toUs = window === null ? Infinity : window.toMs * 1000;
  let t = 0;
  let counted = 0;
  for (let i = 0; i < samples.length; i++) {
    t += timeDeltas[i] ?? 0;
    if (t < fromUs || t > toUs) continue;
    counted++;
    const dt = i + 1 < timeDeltas.length ? timeDeltas[i + 1]! : 0;
    selfUs.set(samples[i]!, (selfUs.get(samples[i]!) ?? 0) + Math.max(0, dt));
  }

  // Per function (call frame): self, and inclusive without double counting recursion.
  const fnSelf = new Map<string, number>();
  const fnTotal = new Map<string, number>();
  const frames = new Map<string, CallFrame>();
  const onStack = new Map<string, number>();
  const root = profile.nodes[0]!;
  const walk = (node: ProfileNode): number => {
    const key = frameKey(node.callFrame);
    frames.set(key, node.callFrame);
    const self = selfUs.get(node.id) ?? 0;
    fnSelf.set(key, (fnSelf.get(key) ?? 0) + self);
    onStack.set(key, (onStack.get(key) ?? 0) + 1);
    let total = self;
    for (const c of node.children ?? []) total += walk(byId.get(c)!);
    const depth = onStack.get(key)! - 1;
    if (depth === 0) {
      onStack.delete(key);
      fnTotal.set(key, (fnTotal.get(key) ?? 0) + total);
    } else {
      onStack.set(key, depth);
    }
    return total;
  };
  // Iterative depth would be safer for huge profiles; sidecar stacks are shallow enough.
  walk(root);

  const wallUs = window === null ? profile.endTime - profile.startTime : Math.min(toUs, t) - Math.max(0, fromUs);
  let idleUs = 0;
  const catUs = new Map<Category, number>();
  for (const [key, us] of fnSelf) {
    const cat = categorize(frames.get(key)!, repoUrl);
    catUs.set(cat, (catUs.get(cat) ?? 0) + us);
    if (cat === 'idle') idleUs += us;
  }
  const sampledUs = [...fnSelf.values()].reduce((a, b) => a + b, 0);
  const busyUs = sampledUs - idleUs;
  const pct = (us: number, of: number) => Math.round((us / Math.max(1, of)) * 1000) / 10;
  const ms = (us: number) => Math.round(us / 100) / 10;

  const describe = (key: string): FunctionTime => {
    const f = frames.get(key)!;
    const loc = f.url === '' ? '(native)' : `${stripRepo(f.url, repoUrl)}:${f.lineNumber + 1}`;
    const self = fnSelf.get(key) ?? 0;
    const total = fnTotal.get(key) ?? 0;
    return {
      name: f.functionName === '' ? '(anonymous)' : f.functionName,
      location: loc,
      category: categorize(f, repoUrl),
      selfMs: ms(self),
      selfPct: pct(self, busyUs),
      totalMs: ms(total),
      totalPct: pct(total, busyUs),
    };
  };

  const keys = [...fnSelf.keys()];
  const top = keys
    .filter((k) => categorize(frames.get(k)!, repoUrl) !== 'idle')
    .sort((a, b) => fnSelf.get(b)! - fnSelf.get(a)!)
    .slice(0, topN)
    .map(describe);
  const topPalisadeInclusive = keys
    .filter((k) => { const c = categorize(frames.get(k)!, repoUrl); return c === 'sidecar' || c === 'palisade-other'; })
    .sort((a, b) => fnTotal.get(b)! - fnTotal.get(a)!)
    .slice(0, 15)
    .map(describe);
  const categories = CATEGORIES.map((category) => {
    const us = catUs.get(category) ?? 0;
    return { category, label: CATEGORY_LABEL[category], ms: ms(us), pctOfWall: pct(us, sampledUs), pctOfBusy: category === 'idle' ? 0 : pct(us, busyUs) };
  }).filter((c) => c.ms > 0);
  return { file, window, wallMs: ms(wallUs), busyMs: ms(busyUs), samples: counted, top, categories, topPalisadeInclusive };
}

export function formatProfileSummary(s: ProfileSummary): string {
  const lines: string[] = [];
  const part = s.window === null ? '' : ` between ${Math.round(s.window.fromMs)} and ${Math.round(s.window.toMs)} ms after its start (the measured load)`;
  lines.push(`profile ${s.file}${part}: ${s.samples} samples, ${s.wallMs} ms wall, ${s.busyMs} ms busy (not idle); % below are of busy time`);
  lines.push('', `Top ${s.top.length} functions by self time:`, '', '| # | self ms | self % | total % | function | where | category |', '|---:|---:|---:|---:|---|---|---|');
  s.top.forEach((f, i) => lines.push(`| ${i + 1} | ${f.selfMs.toFixed(1)} | ${f.selfPct.toFixed(1)} | ${f.totalPct.toFixed(1)} | ${f.name} | ${f.location} | ${f.category} |`));
  lines.push('', 'By category (self time):', '', '| category | ms | % of busy | % of wall |', '|---|---:|---:|---:|');
  for (const c of [...s.categories].sort((a, b) => b.ms - a.ms)) lines.push(`| ${c.label} | ${c.ms.toFixed(1)} | ${c.category === 'idle' ? '' : c.pctOfBusy.toFixed(1)} | ${c.pctOfWall.toFixed(1)} |`);
  lines.push('', 'Palisade functions by inclusive time (self + everything they call):', '', '| total % | self % | function | where |', '|---:|---:|---|---|');
  for (const f of s.topPalisadeInclusive) lines.push(`| ${f.totalPct.toFixed(1)} | ${f.selfPct.toFixed(1)} | ${f.name} | ${f.location} |`);
  return lines.join('\n');
}

const isMain = process.argv[1] !== undefined && import.meta.filename === process.argv[1];
if (isMain) {
  const [file, top, from, to] = process.argv.slice(2);
  if (file === undefined) {
    process.stderr.write('usage: node bench/proxy/profile-summary.ts FILE.cpuprofile [TOP [FROM_MS TO_MS]]\n');
    process.exitCode = 2;
  } else {
    const window = from !== undefined && to !== undefined ? { fromMs: Number(from), toMs: Number(to) } : null;
    console.log(formatProfileSummary(summarizeProfile(file, top === undefined ? 25 : Number(top), undefined, window)));
  }
}
