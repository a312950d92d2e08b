/**
 * Every connected proxy: who it is, what it was sent, what it ACKed and what it NACKed,
 * like `istioctl proxy-status`. Fed by the ADS server's callbacks.
 */
import type { ServerCallbacks, StreamInfo } from '../../xds/server/callbacks.ts';
import { findResourceType } from '../../xds/resources/registry.ts';
import { clientKind, type ClientKind } from '../translate/node-kind.ts';

export interface TypeStatus {
  type: string;
  sentVersion: string;
  sentNonce: string;
  ackedVersion: string;
  ackedNonce: string;
  lastNack: { version: string; nonce: string; error: string; at: string } | null;
}

export interface ProxyRecord {
  streamId: number;
  nodeId: string;
  cluster: string;
  kind: ClientKind;
  group: string;
  protocol: 'sotw' | 'delta';
  clientVersion: string;
  peer: string;
  connectedAt: string;
  types: Record<string, TypeStatus>;
}

export class Inventory implements ServerCallbacks {
  readonly #proxies = new Map<number, ProxyRecord>();

  onStreamNode(info: StreamInfo): void {
    const node = info.node!;
    const version = node.userAgentVersionType.case === 'userAgentVersion'
      ? node.userAgentVersionType.value
      : node.userAgentVersionType.case === 'userAgentBuildVersion'
        ? `${node.userAgentVersionType.value.version?.majorNumber ?? 0}.${node.userAgentVersionType.value.version?.minorNumber ?? 0}.${node.userAgentVersionType.value.version?.patch ?? 0}`
        : '';
    this.#proxies.set(info.id, {
      streamId: info.id,
      nodeId: node.id,
      cluster: node.cluster,
      kind: clientKind(node),
      group: info.group ?? '',
      protocol: info.protocol,
      clientVersion: [node.userAgentName, version].filter(Boolean).join('/'),
      peer: info.peer,
      connectedAt: info.openedAt.toISOString(),
      types: {},
    });
  }

  onStreamClosed(info: StreamInfo): void {
    this.#proxies.delete(info.id);
  }

  onResponse(info: StreamInfo, typeUrl: string, version: string, nonce: string): void {
    const t = this.#type(info, typeUrl);
    if (!t) return;
    t.sentVersion = version;
    t.sentNonce = nonce;
  }

  onAck(info: StreamInfo, typeUrl: string, version: string, nonce: string): void {
    const t = this.#type(info, typeUrl);
    if (!t) return;
    t.ackedVersion = version;
    t.ackedNonce = nonce;
  }

  onNack(info: StreamInfo, typeUrl: string, version: string, nonce: string, error: string): void {
    const t = this.#type(info, typeUrl);
    if (t) t.lastNack = { version, nonce, error, at: new Date().toISOString() };
  }

  #type(info: StreamInfo, typeUrl: string): TypeStatus | undefined {
    const p = this.#proxies.get(info.id);
    if (!p) return undefined;
    const short = findResourceType(typeUrl)?.shortName ?? typeUrl;
    return (p.types[short] ??= { type: short, sentVersion: '', sentNonce: '', ackedVersion: '', ackedNonce: '', lastNack: null });
  }

  list(): ProxyRecord[] {
    return [...this.#proxies.values()].sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : a.streamId - b.streamId));
  }

  get size(): number {
    return this.#proxies.size;
  }
}

/** SYNCED when ACKed = sent, NACKED when the last response was refused, else STALE (sent, unanswered). */
export function syncStatus(t: TypeStatus | undefined): 'SYNCED' | 'NACKED' | 'STALE' | 'NOT SENT' {
  if (!t || t.sentNonce === '') return 'NOT SENT';
  if (t.lastNack && t.lastNack.nonce === t.sentNonce) return 'NACKED';
  if (t.ackedNonce === t.sentNonce) return 'SYNCED';
  return 'STALE';
}
