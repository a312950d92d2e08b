/**
 * RFC 6902 JSON Patch on plain JSON documents, as Kubernetes mutating webhooks answer it:
 * `add`, `remove`, `replace`, `move`, `copy`, `test`, paths as RFC 6901 JSON pointers. The
 * patch applies to a copy, all or nothing: the first failing operation fails the whole patch
 * (RFC 6902 §5) and the message names it by index.
 */
import type { Result } from '../config/config-error.ts';

/** One operation, as a policy writes it. */
export interface PatchOperation {
  readonly op: 'add' | 'remove' | 'replace' | 'move' | 'copy' | 'test';
  readonly path: string;
  readonly value?: unknown;
  readonly from?: string;
}

const OPS = new Set(['add', 'remove', 'replace', 'move', 'copy', 'test']);

/** Reads a policy's answer as a list of operations; the problem names the first bad one. */
export function parsePatch(value: unknown): Result<PatchOperation[], string> {
  if (!Array.isArray(value)) return { valid: false, errors: `must be an array of JSON Patch operations, got ${typeName(value)}` };
  const out: PatchOperation[] = [];
  for (const [i, v] of value.entries()) {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return { valid: false, errors: `operation ${i} must be an object, got ${typeName(v)}` };
    const o = v as Record<string, unknown>;
    if (typeof o.op !== 'string' || !OPS.has(o.op)) return { valid: false, errors: `operation ${i}: op must be one of ${[...OPS].join(', ')}, got ${JSON.stringify(o.op)}` };
    if (typeof o.path !== 'string') return { valid: false, errors: `operation ${i}: path must be a JSON pointer string` };
    if ((o.op === 'add' || o.op === 'replace' || o.op === 'test') && !Object.hasOwn(o, 'value')) return { valid: false, errors: `operation ${i} (${o.op}) needs a value` };
    if ((o.op === 'move' || o.op === 'copy') && typeof o.from !== 'string') return { valid: false, errors: `operation ${i} (${o.op}) needs from` };
    out.push(o as unknown as PatchOperation);
  }
  return { valid: true, result: out };
}

/** `doc` with `ops` applied (a new value; `doc` is not touched), or why an operation failed. */
export function applyPatch(doc: unknown, ops: readonly PatchOperation[]): Result<unknown, string> {
  let root: unknown = structuredClone(doc);
  for (const [i, op] of ops.entries()) {
    try {
      root = applyOne(root, op);
    } catch (err) {
      return { valid: false, errors: `operation ${i} (${op.op} ${op.path}): ${(err as Error).message}` };
    }
  }
  return { valid: true, result: root };
}

function applyOne(root: unknown, op: PatchOperation): unknown {
  switch (op.op) {
    case 'add':
      return add(root, op.path, structuredClone(op.value));
    case 'remove':
      return remove(root, op.path);
    case 'replace':
      get(root, op.path);
      return add(remove(root, op.path), op.path, structuredClone(op.value));
    case 'move': {
      if (op.path.startsWith(`${op.from!}/`)) throw new Error('cannot move a value into one of its children');
      const value = get(root, op.from!);
      return add(remove(root, op.from!), op.path, value);
    }
    case 'copy':
      return add(root, op.path, structuredClone(get(root, op.from!)));
    case 'test':
      if (!deepEqual(get(root, op.path), op.value)) throw new Error(`value is ${JSON.stringify(get(root, op.path))}, not ${JSON.stringify(op.value)}`);
      return root;
  }
}

/** RFC 6901 tokens of a pointer; '' is the whole document. */
function tokens(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) throw new Error(`${JSON.stringify(pointer)} is not a JSON pointer (must start with "/")`);
  return pointer.slice(1).split('/').map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function isContainer(v: unknown): v is Record<string, unknown> | unknown[] {
  return v !== null && typeof v === 'object';
}

function index(arr: unknown[], token: string, forAdd: boolean): number {
  if (forAdd && token === '-') return arr.length;
  if (!/^(0|[1-9][0-9]*)$/.test(token)) throw new Error(`${JSON.stringify(token)} is not an array index`);
  const i = Number(token);
  if (i > arr.length || (!forAdd && i === arr.length)) throw new Error(`index ${i} is out of range (length ${arr.length})`);
  return i;
}

/** The container holding the pointer's last token, and that token. */
function parent(root: unknown, pointer: string): { container: Record<string, unknown> | unknown[]; key: string } {
  const t = tokens(pointer);
  const key = t.pop()!;
  let cur = root;
  for (const token of t) {
    if (!isContainer(cur)) throw new Error(`path not found: ${pointer}`);
    if (Array.isArray(cur)) cur = cur[index(cur, token, false)];
    else if (Object.hasOwn(cur, token)) cur = cur[token];
    else throw new Error(`path not found: ${pointer}`);
  }
  if (!isContainer(cur)) throw new Error(`path not found: ${pointer}`);
  return { container: cur, key };
}

function get(root: unknown, pointer: string): unknown {
  if (pointer === '') return root;
  const { container, key } = parent(root, pointer);
  if (Array.isArray(container)) return container[index(container, key, false)];
  if (!Object.hasOwn(container, key)) throw new Error(`path not found: ${pointer}`);
  return container[key];
}

function add(root: unknown, pointer: string, value: unknown): unknown {
  if (pointer === '') return value;
  const { container, key } = parent(root, pointer);
  if (Array.isArray(container)) container.splice(index(container, key, true), 0, value);
  else container[key] = value;
  return root;
}

function remove(root: unknown, pointer: string): unknown {
  if (pointer === '') throw new Error('cannot remove the whole document');
  const { container, key } = parent(root, pointer);
  if (Array.isArray(container)) container.splice(index(container, key, false), 1);
  else if (!Object.hasOwn(container, key)) throw new Error(`path not found: ${pointer}`);
  else delete container[key];
  return root;
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (!isContainer(a) || !isContainer(b) || Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) return a.length === (b as unknown[]).length && a.every((v, i) => deepEqual(v, (b as unknown[])[i]));
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

function typeName(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'an array' : v === undefined ? 'nothing' : typeof v;
}
