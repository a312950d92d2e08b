/** Where a resource came from: the file and the 0-based position of its YAML document in it. */
export interface SourceRef {
  file: string;
  /** 0-based document index in the file, counting empty documents. File-level problems use 0. */
  index: number;
}

/**
 * One problem in the desired state, located precisely enough for an operator to fix it.
 * `path` is a JSON pointer (RFC 6901) into the document (`/spec/http/0/backends/0/weight`),
 * or `''` for the document (or file) as a whole.
 */
export interface ConfigError {
  file: string;
  index: number;
  path: string;
  message: string;
}

/** An expected failure is a value: the result, or every problem found. */
export type Result<T, E> = { valid: true; result: T } | { valid: false; errors: E };

/** One line: `FILE#INDEX /path: message` (`FILE#INDEX: message` when the path is empty). */
export function formatConfigError(e: ConfigError): string {
  const where = e.path === '' ? `${e.file}#${e.index}` : `${e.file}#${e.index} ${e.path}`;
  return `${where}: ${e.message.replace(/\s*\n\s*/g, ' ')}`;
}

/** Builds a JSON pointer from path segments, escaping `~` and `/` as RFC 6901 requires. */
export function pointer(...segments: ReadonlyArray<string | number>): string {
  let out = '';
  for (const s of segments) out += '/' + String(s).replace(/~/g, '~0').replace(/\//g, '~1');
  return out;
}
