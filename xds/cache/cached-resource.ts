/**
 * A resource marshalled once for every stream that will ever carry it. Its version is a
 * hash of its bytes, so an unchanged resource keeps its version across snapshots and is
 * never resent (go-control-plane's cached_resource.go does the same).
 */
import { createHash } from 'node:crypto';
import { create, toBinary, type DescMessage, type Message } from '@bufbuild/protobuf';
import { AnySchema } from '@bufbuild/protobuf/wkt';
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import { TYPE_PREFIX } from '../resources/type-urls.ts';

export class CachedResource {
  readonly name: string;
  readonly typeUrl: string;
  /** Content hash of the resource's bytes (16 hex digits). */
  readonly version: string;
  /** The decoded resource, for consistency checks, config dumps and tests. */
  readonly message: Message;
  /** google.protobuf.Any bytes, as a SotW DiscoveryResponse carries them. */
  readonly any: Uint8Array;
  #delta: Uint8Array | undefined;

  constructor(name: string, schema: DescMessage, message: Message) {
    this.name = name;
    this.typeUrl = TYPE_PREFIX + schema.typeName;
    this.message = message;
    const value = toBinary(schema, message);
    this.version = createHash('sha256').update(value).digest('hex').slice(0, 16);
    this.any = toBinary(AnySchema, create(AnySchema, { typeUrl: this.typeUrl, value }));
  }

  /** envoy.service.discovery.v3.Resource bytes, as a delta response carries them. */
  get deltaBytes(): Uint8Array {
    // Resource{version = 1, resource = 2, name = 3}, reusing the Any bytes as they are.
    this.#delta ??= new BinaryWriter()
      .tag(1, WireType.LengthDelimited).string(this.version)
      .tag(2, WireType.LengthDelimited).bytes(this.any)
      .tag(3, WireType.LengthDelimited).string(this.name)
      .finish();
    return this.#delta;
  }
}
