/**
 * What the client wants and what it holds, per type URL; it outlives every stream, which is
 * how a reconnect resumes with all subscriptions and the last accepted resources. A type's
 * resource map is replaced, never mutated, so a map handed to a listener stays as it was.
 */
import type { Message } from '@bufbuild/protobuf';
import { getResourceType, pushOrder, type ResourceType } from '../resources/registry.ts';
import { InvalidArgumentError } from './errors.ts';

/** An accepted resource. SotW: version is the version_info of the response that last carried it. */
export interface XdsResource {
  readonly version: string;
  readonly message: Message;
}

export type ResourceMap = ReadonlyMap<string, XdsResource>;

export const WILDCARD = '*';
const EMPTY: ResourceMap = new Map();

export class TypeRecord {
  readonly type: ResourceType;
  wildcard = false;
  readonly names = new Set<string>();
  /** Last accepted version (SotW version_info, delta system_version_info); '' before any. */
  version = '';
  resources: ResourceMap = EMPTY;

  constructor(type: ResourceType) {
    this.type = type;
  }

  /** True when the subscription asks for `name`. */
  covers(name: string): boolean {
    return this.wildcard || this.names.has(name);
  }

  get active(): boolean {
    return this.wildcard || this.names.size > 0;
  }

  /** SotW resource_names: '*' first when wildcard, then the names, sorted. */
  resourceNames(): string[] {
    const names = [...this.names].sort();
    return this.wildcard ? [WILDCARD, ...names] : names;
  }

  /** Delta initial_resource_versions: name → version of every held resource. */
  heldVersions(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [name, r] of this.resources) out[name] = r.version;
    return out;
  }
}

/** Names added to or removed from a subscription ('*' for the wildcard). */
export interface SubscriptionChange {
  readonly subscribe: readonly string[];
  readonly unsubscribe: readonly string[];
}

function parseNames(names: readonly string[] | '*', method: string): string[] {
  if (names === WILDCARD) return [WILDCARD];
  if (!Array.isArray(names) || names.some((n) => typeof n !== 'string' || n === '')) {
    throw new InvalidArgumentError(`${method}: names must be "*" or an array of non-empty strings, got ${JSON.stringify(names)}`);
  }
  return names;
}

export class SubscriptionStore {
  /** Kept in push order (CDS → EDS → LDS → RDS): a new stream subscribes in that order. */
  #types = new Map<string, TypeRecord>();

  get(typeUrl: string): TypeRecord | undefined {
    return this.#types.get(typeUrl);
  }

  records(): IterableIterator<TypeRecord> {
    return this.#types.values();
  }

  /** Adds names (or the wildcard); returns what actually changed. Throws on an unknown type URL. */
  subscribe(typeUrl: string, names: readonly string[] | '*'): SubscriptionChange {
    const type = getResourceType(typeUrl);
    const list = parseNames(names, 'subscribe');
    let rec = this.#types.get(typeUrl);
    const added: string[] = [];
    for (const name of list) {
      if (name === WILDCARD) {
        if (rec?.wildcard) continue;
        rec ??= this.#add(type);
        rec.wildcard = true;
      } else {
        if (rec?.names.has(name)) continue;
        rec ??= this.#add(type);
        rec.names.add(name);
      }
      added.push(name);
    }
    return { subscribe: added, unsubscribe: [] };
  }

  /**
   * Removes names (or the wildcard) and drops the held resources no longer covered. A type
   * left with no subscription is forgotten, version included.
   */
  unsubscribe(typeUrl: string, names: readonly string[] | '*'): SubscriptionChange {
    getResourceType(typeUrl);
    const list = parseNames(names, 'unsubscribe');
    const rec = this.#types.get(typeUrl);
    if (!rec) return { subscribe: [], unsubscribe: [] };
    const removed: string[] = [];
    for (const name of list) {
      if (name === WILDCARD ? !rec.wildcard : !rec.names.has(name)) continue;
      if (name === WILDCARD) rec.wildcard = false;
      else rec.names.delete(name);
      removed.push(name);
    }
    if (removed.length > 0) {
      if (!rec.active) this.#types.delete(typeUrl);
      else if ([...rec.resources.keys()].some((n) => !rec.covers(n))) {
        rec.resources = new Map([...rec.resources].filter(([n]) => rec.covers(n)));
      }
    }
    return { subscribe: [], unsubscribe: removed };
  }

  #add(type: ResourceType): TypeRecord {
    const rec = new TypeRecord(type);
    this.#types.set(type.typeUrl, rec);
    this.#types = new Map([...this.#types].sort(([a], [b]) => pushOrder(a, b)));
    return rec;
  }
}
