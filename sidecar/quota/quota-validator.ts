/**
 * The sidecar's check of a pushed palisade.v1.Quota before it ACKs (an AdsClient resource
 * validator; PGV's rules have already passed). It collects every problem with its field path,
 * so one NACK says all that is wrong:
 *
 *   - name `<namespace>/<name>`; descriptor keys, limit, route and priority class names unique;
 *   - jwt_claim `<provider>.<claim path>`; header names lower case; route methods upper case;
 *   - every limit match key is a descriptor key; intervals whole seconds;
 *   - priority classes need priority_attribute (and the reverse), a value selects one class,
 *     default_priority_class names a class;
 *   - a GLOBAL quota that selects this sidecar needs the bootstrap's quota.redis;
 *   - a `--workers N` sidecar refuses every quota that selects it (each worker process would
 *     keep its own LOCAL buckets, so the workload would get N times the limit).
 */
import type { Message } from '@bufbuild/protobuf';
import { Quota_Scope, type Quota, type RequestAttribute } from '../../xds/gen/palisade/v1/quota_pb.js';
import type { ResourceValidator } from '../../xds/client/options.ts';

export interface QuotaValidatorOptions {
  /** This sidecar's Service and namespace (bootstrap node). */
  readonly service: string;
  readonly namespace: string;
  /** Whether the bootstrap configures quota.redis (GLOBAL quotas need it). */
  readonly redis: boolean;
  /** The number of worker processes (`--workers N`); 1 for a single-process sidecar. */
  readonly workers?: number;
}

const NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?\/[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/;
const METHOD = /^[A-Z][A-Z0-9_-]*$/;
const show = (v: unknown) => JSON.stringify(v);

/** Whether `q` applies to the workloads of `service` in `namespace` (services empty: all of the namespace). */
export function quotaSelects(q: Quota, service: string, namespace: string): boolean {
  const slash = q.name.indexOf('/');
  if (slash !== -1 && q.name.slice(0, slash) !== namespace) return false;
  return q.services.length === 0 || q.services.includes(service);
}

/** Problems of one attribute at `path` (PGV checked that one source is set). */
function attributeProblems(a: RequestAttribute | undefined, path: string, out: string[]): void {
  const s = a?.source;
  if (s === undefined || s.case === undefined) {
    out.push(`${path}: must set one source (header, jwt_claim, principal, route, remote_address, method)`);
    return;
  }
  if (s.case === 'jwtClaim') {
    const dot = s.value.indexOf('.');
    if (dot <= 0 || dot === s.value.length - 1 || s.value.split('.').some((p) => p === '')) {
      out.push(`${path}.jwt_claim: must be "<provider>.<claim path>" (e.g. "keycloak.tenant"), got ${show(s.value)}`);
    }
  } else if (s.case === 'header' && s.value !== s.value.toLowerCase()) {
    out.push(`${path}.header: must be lower case, got ${show(s.value)}`);
  } else if (typeof s.value === 'boolean' && !s.value) {
    const field = s.case.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    out.push(`${path}.${field}: must be true when set, got false`);
  }
}

function duplicates(names: readonly string[], path: (i: number) => string, what: string, out: string[]): void {
  const seen = new Set<string>();
  names.forEach((n, i) => {
    if (seen.has(n)) out.push(`${path(i)}: duplicate ${what} ${show(n)}`);
    seen.add(n);
  });
}

/** Every structural problem of `q`, with field paths; empty when valid (selection rules aside). */
export function quotaProblems(q: Quota): string[] {
  const out: string[] = [];
  if (!NAME.test(q.name)) out.push(`name: must be <namespace>/<name>, got ${show(q.name)}`);
  q.services.forEach((s, i) => {
    if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(s)) out.push(`services[${i}]: must be a Service name (lowercase DNS label), got ${show(s)}`);
  });
  duplicates(q.routes.map((r) => r.name), (i) => `routes[${i}].name`, 'route name', out);
  q.routes.forEach((r, i) => r.methods.forEach((m, j) => {
    if (!METHOD.test(m)) out.push(`routes[${i}].methods[${j}]: must be an HTTP method in upper case, got ${show(m)}`);
  }));
  const keys = q.descriptors.map((d) => d.key);
  duplicates(keys, (i) => `descriptors[${i}].key`, 'descriptor key', out);
  q.descriptors.forEach((d, i) => attributeProblems(d.value, `descriptors[${i}].value`, out));
  duplicates(q.limits.map((l) => l.name), (i) => `limits[${i}].name`, 'limit name', out);
  q.limits.forEach((l, i) => {
    for (const k of Object.keys(l.match)) {
      if (!keys.includes(k)) out.push(`limits[${i}].match[${show(k)}]: not a descriptor key of the quota (descriptors: ${keys.join(', ')})`);
    }
    if (l.interval !== undefined && l.interval.nanos !== 0) {
      out.push(`limits[${i}].interval: must be whole seconds, got ${Number(l.interval.seconds) + l.interval.nanos / 1e9}s`);
    }
  });
  const classes = q.priorityClasses.map((c) => c.name);
  duplicates(classes, (i) => `priority_classes[${i}].name`, 'priority class', out);
  const valueOwner = new Map<string, string>();
  q.priorityClasses.forEach((c, i) => c.values.forEach((v, j) => {
    const owner = valueOwner.get(v);
    if (owner !== undefined && owner !== c.name) out.push(`priority_classes[${i}].values[${j}]: ${show(v)} already selects class ${show(owner)}`);
    else valueOwner.set(v, c.name);
  }));
  if (q.priorityAttribute !== undefined) {
    attributeProblems(q.priorityAttribute, 'priority_attribute', out);
    if (classes.length === 0) out.push('priority_classes: priority_attribute is set but no priority class is defined');
  } else if (classes.length > 0) {
    out.push('priority_attribute: must be set when priority_classes are defined (it chooses the class)');
  }
  if (q.defaultPriorityClass !== '' && !classes.includes(q.defaultPriorityClass)) {
    out.push(`default_priority_class: ${show(q.defaultPriorityClass)} is not a priority class (classes: ${classes.join(', ') || 'none'})`);
  }
  return out;
}

/** The AdsClient validator for palisade.v1.Quota on this sidecar. */
export function createQuotaValidator(o: QuotaValidatorOptions): ResourceValidator {
  const workers = o.workers ?? 1;
  return (resource: Message): string[] => {
    const q = resource as Quota;
    const out = quotaProblems(q);
    if (!quotaSelects(q, o.service, o.namespace)) return out;
    if (workers > 1) {
      out.push(`${q.name} selects this workload, but a sidecar with --workers ${workers} does not enforce quotas: each worker process would keep its own buckets, so the workload would get up to ${workers} times the limit; run this workload's sidecar as one process (--workers 1)`);
    }
    if (q.scope === Quota_Scope.GLOBAL && !o.redis) {
      out.push(`scope: ${q.name} is GLOBAL but this sidecar has no quota store: configure quota.redis (address: host:port, or nodes with cluster: true) in the sidecar bootstrap, or make the quota LOCAL`);
    }
    return out;
  };
}
