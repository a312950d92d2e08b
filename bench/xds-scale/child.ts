/**
 * A child process the benchmark owns: stdout read as lines, stderr kept as a
 * short tail for error messages, a hard deadline after which it is killed, and
 * a registry so that every child still alive is killed when the run ends, even
 * on error or Ctrl-C.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

const live = new Set<Child>();

export interface ChildOptions {
  cwd?: string;
  /** Hard deadline for the whole life of the process, ms; it is SIGKILLed past it. */
  deadlineMs: number;
  /** Keep stdin open for writing (default: ignored). */
  stdin?: boolean;
  /** Echo stderr lines to ours, prefixed with the name. */
  echoStderr?: boolean;
}

export class Child {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly pid: number;
  readonly #lines: string[] = [];
  readonly #waiters = new Set<() => void>();
  readonly #stderrTail: string[] = [];
  readonly #deadline: NodeJS.Timeout;
  #exited = false;
  #exitCode: number | null = null;
  #exitSignal: NodeJS.Signals | null = null;
  readonly exited: Promise<void>;

  constructor(name: string, command: string, args: readonly string[], options: ChildOptions) {
    this.name = name;
    this.proc = spawn(command, args, {
      cwd: options.cwd,
      stdio: [options.stdin === true ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    });
    if (this.proc.pid === undefined) throw new Error(`${name}: could not start ${command}`);
    this.pid = this.proc.pid;
    live.add(this);
    this.exited = new Promise((resolve) => {
      this.proc.once('exit', (code, signal) => {
        this.#exited = true;
        this.#exitCode = code;
        this.#exitSignal = signal;
        live.delete(this);
        clearTimeout(this.#deadline);
        this.#wake();
        resolve();
      });
      this.proc.once('error', (err) => {
        this.#stderrTail.push(String(err));
        if (!this.#exited) {
          this.#exited = true;
          live.delete(this);
          clearTimeout(this.#deadline);
          this.#wake();
          resolve();
        }
      });
    });
    createInterface({ input: this.proc.stdout! }).on('line', (line) => {
      this.#lines.push(line);
      this.#wake();
    });
    createInterface({ input: this.proc.stderr! }).on('line', (line) => {
      this.#stderrTail.push(line);
      if (this.#stderrTail.length > 40) this.#stderrTail.shift();
      if (options.echoStderr === true) process.stderr.write(`  [${name}] ${line}\n`);
    });
    this.#deadline = setTimeout(() => {
      process.stderr.write(`  [${name}] deadline of ${options.deadlineMs} ms passed, killing pid ${this.pid}\n`);
      this.proc.kill('SIGKILL');
    }, options.deadlineMs);
    this.#deadline.unref();
  }

  get isAlive(): boolean {
    return !this.#exited;
  }

  #wake(): void {
    for (const w of this.#waiters) w();
  }

  /** Describes how the process ended and the tail of its stderr, for error messages. */
  describe(): string {
    const status = this.#exited ? `exited (code ${this.#exitCode}, signal ${this.#exitSignal})` : 'running';
    const tail = this.#stderrTail.slice(-15).join('\n    ');
    return `${this.name} pid ${this.pid} ${status}${tail === '' ? '' : `; stderr tail:\n    ${tail}`}`;
  }

  /**
   * Resolves with the first stdout line (from the start of the process) that
   * `match` accepts; rejects if the process exits first or `timeoutMs` passes.
   */
  waitForLine<T>(what: string, timeoutMs: number, match: (line: string) => T | undefined): Promise<T> {
    let scanned = 0;
    return new Promise<T>((resolve, reject) => {
      const check = (): void => {
        for (; scanned < this.#lines.length; scanned++) {
          let hit: T | undefined;
          try {
            hit = match(this.#lines[scanned]!);
          } catch (err) {
            done();
            reject(err instanceof Error ? err : new Error(String(err)));
            return;
          }
          if (hit !== undefined) {
            done();
            resolve(hit);
            return;
          }
        }
        if (this.#exited) {
          done();
          reject(new Error(`waiting for ${what}: ${this.describe()}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`waiting for ${what}: timed out after ${timeoutMs} ms; ${this.describe()}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
      check();
    });
  }

  /** Resolves with the first JSON line whose `event` is `event`. */
  waitForEvent(event: string, timeoutMs: number): Promise<Record<string, unknown>> {
    return this.waitForLine(`"${event}" from ${this.name}`, timeoutMs, (line) => {
      if (!line.startsWith('{')) return undefined;
      try {
        const v = JSON.parse(line) as Record<string, unknown>;
        if (v.event === 'error') throw new Error(`${this.name} reported: ${line}`);
        return v.event === event ? v : undefined;
      } catch (err) {
        if (err instanceof SyntaxError) return undefined;
        throw err;
      }
    });
  }

  write(text: string): void {
    this.proc.stdin?.write(text);
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it is gone. */
  async stop(graceMs = 5000): Promise<void> {
    if (this.#exited) return;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

/** Kills every child still alive (SIGKILL), e.g. on the way out after an error. */
export function killAll(): void {
  for (const c of live) c.proc.kill('SIGKILL');
}

export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((c) => c.stop(3000)));
}
