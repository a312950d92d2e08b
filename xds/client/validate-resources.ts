/**
 * Decodes and checks every resource of one response, as Envoy does before applying any of
 * it: the Any's type URL must be the response's, the bytes must decode, the resource must
 * pass the PGV rules of Envoy's protos (Any payloads included, via TYPE_REGISTRY) and the
 * caller's extra validator, and no name may appear twice. Every problem is collected, each
 * prefixed with the resource it is about (`Cluster "x": connect_timeout: ...`), so one NACK
 * tells the operator everything that is wrong.
 */
import { fromBinary, type Message } from '@bufbuild/protobuf';
import type { Any } from '@bufbuild/protobuf/wkt';
import { TYPE_REGISTRY, type ResourceType } from '../resources/registry.ts';
import { validateMessage } from '../validate/pgv.ts';
import type { ResourceValidator } from './options.ts';

/** One resource as a response carries it. */
export interface RawResource {
  /** Delta's Resource.name; undefined in SotW, where the name comes from the message. */
  readonly name?: string | undefined;
  readonly version: string;
  readonly any: Any | undefined;
}

/** A resource that passed every check. */
export interface DecodedResource {
  readonly name: string;
  readonly version: string;
  readonly message: Message;
}

export type DecodeResult = { valid: true; result: DecodedResource[] } | { valid: false; errors: string[] };

/**
 * Checks all of `items` as resources of `type`. Valid only when every one passes; the
 * validator runs on a resource only once it passed PGV, so it may rely on PGV's rules.
 */
export function decodeResources(type: ResourceType, items: readonly RawResource[], validator?: ResourceValidator): DecodeResult {
  const errors: string[] = [];
  const result: DecodedResource[] = [];
  const seen = new Set<string>();
  const kind = type.schema.name;
  items.forEach((item, i) => {
    let label = item.name ? `${kind} ${JSON.stringify(item.name)}` : `${kind} #${i}`;
    const fail = (problem: string): void => void errors.push(`${label}: ${problem}`);
    const { any } = item;
    if (!any) {
      fail('the Resource carries no resource');
      return;
    }
    if (any.typeUrl !== type.typeUrl) {
      fail(`type URL ${JSON.stringify(any.typeUrl)} does not match the response's ${JSON.stringify(type.typeUrl)}`);
      return;
    }
    let message: Message;
    try {
      message = fromBinary(type.schema, any.value);
    } catch (err) {
      fail(`cannot be decoded as ${type.schema.typeName}: ${(err as Error).message}`);
      return;
    }
    const own = type.nameOf(message);
    if (item.name === undefined) label = `${kind} ${JSON.stringify(own)}`;
    else if (item.name !== own) {
      fail(`the Resource's name does not match the resource's own name ${JSON.stringify(own)}`);
      return;
    }
    if (seen.has(own)) {
      fail('name appears more than once in the response');
      return;
    }
    seen.add(own);
    const pgv = validateMessage(type.schema, message, { registry: TYPE_REGISTRY });
    if (!pgv.valid) {
      for (const e of pgv.errors) fail(e);
      return;
    }
    if (validator) {
      let extra: string[];
      try {
        extra = validator(message);
      } catch (err) {
        fail(`validator threw: ${(err as Error)?.message ?? String(err)}`);
        return;
      }
      if (!Array.isArray(extra)) {
        fail(`validator returned ${typeof extra}, not an array of problems`);
        return;
      }
      if (extra.length > 0) {
        for (const e of extra) fail(e);
        return;
      }
    }
    result.push({ name: own, version: item.version, message });
  });
  return errors.length > 0 ? { valid: false, errors } : { valid: true, result };
}
