/**
 * Where desired state comes from. The translator and the xDS server hold a `ResourceSource`
 * and never learn which one: a watched directory today (`DirectorySource`), the store behind
 * the REST API later.
 *
 * DirectorySource watches directories, not files, so an editor's atomic save (write a temp
 * file, rename it over the original) is seen like any other write. Any event starts a
 * debounce timer; when it fires the whole tree is reloaded (cheap next to a translation,
 * and immune to missed or coalesced events). Reloads never overlap: an event during a reload
 * schedules one more. A valid result that differs from the last good state (canonical JSON)
 * becomes current() and is emitted as 'update'; an invalid one is emitted as 'rejected' and
 * current() keeps the last good state, as an xDS client keeps its config after a NACK.
 *
 * Why not `fs.watch(dir, { recursive: true })`: on Linux, Node 24 (measured on v24.21.0)
 * implements it with a watch per file and loses a file once another file is renamed over it,
 * so after one atomic save, later in-place writes to that file raise no event at all. A
 * plain `fs.watch` per directory (inotify on the directory) reports them. Each reload lists
 * the tree anyway, so the set of watched directories is reconciled with it after every load;
 * a newly watched directory triggers one more reload to cover writes made before its watch.
 *
 * Limits: renaming or deleting the watched directory itself ends the watch ('rejected' says
 * so); create it again and restart the source.
 */
import { EventEmitter } from 'node:events';
import { watch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import type { ConfigError } from './config-error.ts';
import { InvalidConfigError, InvalidOptionError, SourceClosedError, SourceNotStartedError } from './errors.ts';
import { readConfigDirectory } from './load-directory.ts';
import { PolicyCompiler } from './policy-compiler.ts';
import { canonicalJson, canonicalState } from './state.ts';
import type { DesiredState } from './state.ts';

/** Events of every `ResourceSource`. */
export interface ResourceSourceEvents {
  /** A new desired state, valid and different from the previous one; `current()` already returns it. */
  update: [state: DesiredState];
  /** A change was read and refused; `current()` still returns the last good state. */
  rejected: [errors: ConfigError[]];
  /** After 'rejected', the files are valid again and say what the last good state said. */
  recovered: [];
}

/**
 * A feed of desired state. `start()` resolves once a first valid state is loaded (and
 * `current()` returns it; no 'update' is emitted for it) or rejects with a PalisadeError
 * `PAL_ERR_CONFIG_INVALID`. Then every accepted change is emitted as 'update', every refused
 * one as 'rejected'. After `close()` resolves no more events are emitted.
 */
export interface ResourceSource {
  /** The last good state. Throws `PAL_ERR_CONFIG_NOT_STARTED` before `start()` has resolved. */
  current(): DesiredState;
  on(event: 'update', listener: (state: DesiredState) => void): this;
  on(event: 'rejected', listener: (errors: ConfigError[]) => void): this;
  on(event: 'recovered', listener: () => void): this;
  off(event: 'update', listener: (state: DesiredState) => void): this;
  off(event: 'rejected', listener: (errors: ConfigError[]) => void): this;
  off(event: 'recovered', listener: () => void): this;
  start(): Promise<void>;
  close(): Promise<void>;
}

export interface DirectorySourceOptions {
  /** Directory to load and watch, recursively. */
  dir: string;
  /** Quiet time after the last file-system event before reloading, in milliseconds. Default 100. */
  debounceMs?: number;
  /** Compiles Policies given as inline Rego; without one (default null) such a Policy is refused. */
  policyCompiler?: PolicyCompiler | null;
}

const DEFAULT_OPTIONS = Object.freeze({ debounceMs: 100, policyCompiler: null });
const MAX_DEBOUNCE_MS = 60_000;
const KNOWN_OPTIONS = new Set(['dir', 'debounceMs', 'policyCompiler']);

/** A `ResourceSource` reading every `*.yaml`, `*.yml` and `*.json` below a directory (see `loadDirectory`). */
export class DirectorySource extends EventEmitter<ResourceSourceEvents> implements ResourceSource {
  readonly options: Readonly<Required<DirectorySourceOptions>>;

  #state: DesiredState | null = null;
  #canonical = '';
  #lastRejected: string | null = null;
  #watchers = new Map<string, FSWatcher>();
  #timer: NodeJS.Timeout | null = null;
  #reloading: Promise<void> | null = null;
  #dirty = false;
  #ready = false;
  #closed = false;
  #starting: Promise<void> | null = null;
  #watchError: Error | null = null;

  /** Throws `PAL_ERR_CONFIG_INVALID_OPTION` naming the option and value if `options` is invalid. */
  constructor(options: DirectorySourceOptions) {
    super();
    this.options = validateOptions(options);
  }

  current(): DesiredState {
    if (this.#state === null) throw new SourceNotStartedError();
    return this.#state;
  }

  /** Loads the directory and starts watching it. Calling it again returns the same promise. */
  start(): Promise<void> {
    this.#starting ??= this.#start();
    return this.#starting;
  }

  /** Stops watching and waits for a reload in progress; emits nothing afterwards. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#unwatchAll();
    await this.#reloading;
  }

  async #start(): Promise<void> {
    const { dir } = this.options;
    if (this.#closed) throw new SourceClosedError();
    // Watch the root before the first read so that no change slips between the two; the
    // directories below it are watched once the read has listed them.
    this.#watch(dir);
    const { result, directories } = await readConfigDirectory(dir, { policyCompiler: this.options.policyCompiler });
    const errors = result.valid ? [] : result.errors;
    if (errors.length === 0 && !this.#watchers.has(dir)) {
      errors.push({ file: dir, index: 0, path: '', message: `cannot watch the directory: ${this.#watchError?.message ?? 'unknown error'}` });
    }
    if (!result.valid || errors.length > 0) {
      this.#unwatchAll();
      throw new InvalidConfigError(`invalid configuration in ${dir} (${errors.length} ${errors.length === 1 ? 'error' : 'errors'})`, errors);
    }
    if (this.#closed) throw new SourceClosedError();
    this.#state = result.result;
    this.#canonical = canonicalState(result.result);
    this.#ready = true;
    if (this.#reconcileWatchers(directories) || this.#dirty) {
      this.#dirty = false;
      this.#schedule();
    }
  }

  #schedule(): void {
    if (this.#closed) return;
    if (!this.#ready) {
      this.#dirty = true; // the first load is running; look again once it is done
      return;
    }
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = null;
      if (this.#closed) return;
      if (this.#reloading !== null) this.#dirty = true;
      else this.#reloading = this.#reloadLoop();
    }, this.options.debounceMs);
  }

  async #reloadLoop(): Promise<void> {
    try {
      do {
        this.#dirty = false;
        await this.#reload();
      } while (this.#dirty && !this.#closed);
    } finally {
      this.#reloading = null;
    }
  }

  async #reload(): Promise<void> {
    const { result, directories } = await readConfigDirectory(this.options.dir, { policyCompiler: this.options.policyCompiler });
    if (this.#closed) return;
    if (this.#reconcileWatchers(directories)) this.#dirty = true;
    if (!result.valid) {
      // The same refusal again (an editor touching a swap file next to a broken one) is not news.
      const key = canonicalJson(result.errors);
      if (key === this.#lastRejected) return;
      this.#lastRejected = key;
      this.emit('rejected', result.errors);
      return;
    }
    const wasRejected = this.#lastRejected !== null;
    this.#lastRejected = null;
    const canonical = canonicalState(result.result);
    if (canonical === this.#canonical) {
      if (wasRejected) this.emit('recovered');
      return;
    }
    this.#state = result.result;
    this.#canonical = canonical;
    this.emit('update', result.result);
  }

  /** Watches exactly `directories`; true if a directory was newly watched (its early writes may have been missed). */
  #reconcileWatchers(directories: readonly string[]): boolean {
    const wanted = new Set(directories);
    for (const [path, watcher] of this.#watchers) {
      if (!wanted.has(path)) {
        watcher.close();
        this.#watchers.delete(path);
      }
    }
    let added = false;
    for (const path of directories) {
      if (!this.#watchers.has(path)) added = this.#watch(path) || added;
    }
    return added;
  }

  #watch(path: string): boolean {
    try {
      const watcher = watch(path, { persistent: true }, () => this.#schedule());
      watcher.on('error', () => {
        // The directory went away (or became unreadable); the reload finds out which and re-watches what is left.
        watcher.close();
        if (this.#watchers.get(path) === watcher) this.#watchers.delete(path);
        this.#schedule();
      });
      this.#watchers.set(path, watcher);
      return true;
    } catch (err) {
      this.#watchError = err as Error;
      return false; // gone already: the reload that follows sees the same
    }
  }

  #unwatchAll(): void {
    for (const watcher of this.#watchers.values()) watcher.close();
    this.#watchers.clear();
  }
}

function validateOptions(options: DirectorySourceOptions): Readonly<Required<DirectorySourceOptions>> {
  if (options === null || typeof options !== 'object') throw new InvalidOptionError(`options must be an object, got ${options === null ? 'null' : typeof options}`);
  for (const key of Object.keys(options)) {
    if (!KNOWN_OPTIONS.has(key)) throw new InvalidOptionError(`unknown option ${JSON.stringify(key)}; known options: ${[...KNOWN_OPTIONS].join(', ')}`);
  }
  const merged = { ...DEFAULT_OPTIONS, ...stripUndefined(options) };
  if (typeof merged.dir !== 'string' || merged.dir === '') throw new InvalidOptionError(`dir must be a non-empty string, got ${JSON.stringify(merged.dir) ?? String(merged.dir)}`);
  const d = merged.debounceMs;
  if (typeof d !== 'number' || !Number.isInteger(d) || d < 0 || d > MAX_DEBOUNCE_MS) {
    throw new InvalidOptionError(`debounceMs must be an integer from 0 to ${MAX_DEBOUNCE_MS}, got ${typeof d === 'string' ? JSON.stringify(d) : String(d)}`);
  }
  const compiler = merged.policyCompiler;
  if (compiler !== null && !(compiler instanceof PolicyCompiler)) throw new InvalidOptionError(`policyCompiler must be a PolicyCompiler or null, got ${typeof compiler}`);
  return Object.freeze({ dir: merged.dir, debounceMs: d, policyCompiler: compiler });
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
