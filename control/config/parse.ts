/**
 * Text of one config file → validated resources. YAML streams (`---` between documents) and
 * JSON are both read with the `yaml` package (JSON is YAML 1.2), so every syntax error has a
 * line and column and duplicate keys are rejected in both. Each document is validated on its
 * own (`validateDocument`); the file is valid only if every document is.
 */
import { parseAllDocuments } from 'yaml';
import type { YAMLError } from 'yaml';
import type { ConfigError, Result } from './config-error.ts';
import type { Resource } from './schema.ts';
import { validateDocument } from './validate.ts';

export { formatConfigError } from './config-error.ts';
export type { ConfigError, Result, SourceRef } from './config-error.ts';

/** Aliases expanded per document at most this many times (a "billion laughs" guard). */
const MAX_ALIAS_COUNT = 100;

/**
 * Parses `text` (YAML, possibly multi-document, or JSON) read from `file` into resources with
 * defaults applied, each carrying `source: { file, index }` where index is the 0-based
 * position of its document in the file. Empty documents are skipped but still counted.
 * Returns every problem of every document when any is invalid.
 */
export function parseConfig(text: string, file: string): Result<Resource[], ConfigError[]> {
  const resources: Resource[] = [];
  const errors: ConfigError[] = [];
  const docs = parseAllDocuments(text, { prettyErrors: true, uniqueKeys: true, strict: true, merge: false });
  docs.forEach((doc, index) => {
    const problem = doc.errors[0] ?? doc.warnings[0];
    if (problem !== undefined) {
      errors.push({ file, index, path: '', message: yamlMessage(problem) });
      return;
    }
    if (doc.contents === null) return;
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (err) {
      errors.push({ file, index, path: '', message: `malformed YAML: ${(err as Error).message}` });
      return;
    }
    if (value === null || value === undefined) return;
    const result = validateDocument(value, { file, index });
    if (result.valid) resources.push(result.result);
    else errors.push(...result.errors);
  });
  return errors.length > 0 ? { valid: false, errors } : { valid: true, result: resources };
}

/** `prettyErrors` puts "at line L, column C:" and a code excerpt in the message; keep the first line. */
function yamlMessage(error: YAMLError): string {
  const first = (error.message.split('\n')[0] ?? '').replace(/:\s*$/, '');
  return `malformed YAML: ${first}`;
}
