/**
 * Knobs of bench/tls, read from the environment once (the only place this benchmark touches
 * `process.env`), validated, frozen.
 *
 *   CONCURRENCY  concurrent connect → request → close loops of the load generator  default 16
 *   DURATION     seconds measured per target and mode                               default 8
 *   WARMUP       seconds of load before each measurement (not counted)              default 2
 *   TARGETS      comma list: palisade,nginx                                         default both
 *   AUTH         comma list: server (server-auth TLS), mutual (mTLS)                default both
 *   RESUME       comma list: full (new session each time), resumed (TLS 1.3 ticket) default both
 *   GROUPS       key-exchange groups the client offers (node:tls `ecdhCurve`), so that
 *                both servers do the same key exchange whatever their OpenSSL offers;
 *                `default` = the client's defaults (Node 24.21 / OpenSSL 3.5.8 still
 *                negotiated X25519 with both targets)                              default X25519
 *   PROFILE      1 = also run the Palisade server-auth target under --cpu-prof
 *                (full handshakes) and print where its time goes                    default 0
 */
import { readKnob, intKnob } from '../common/environment.ts';

export const ALL_TARGETS = ['palisade', 'nginx'] as const;
export type TargetName = (typeof ALL_TARGETS)[number];
export const ALL_AUTH = ['server', 'mutual'] as const;
export type AuthMode = (typeof ALL_AUTH)[number];
export const ALL_RESUME = ['full', 'resumed'] as const;
export type ResumeMode = (typeof ALL_RESUME)[number];

export interface BenchEnvironment {
  readonly concurrency: number;
  readonly durationS: number;
  readonly warmupS: number;
  readonly targets: readonly TargetName[];
  readonly auth: readonly AuthMode[];
  readonly resume: readonly ResumeMode[];
  /** null = the client's defaults. */
  readonly groups: string | null;
  readonly profile: boolean;
}

const DEFAULTS = {
  CONCURRENCY: '16',
  DURATION: '8',
  WARMUP: '2',
  TARGETS: ALL_TARGETS.join(','),
  AUTH: ALL_AUTH.join(','),
  RESUME: ALL_RESUME.join(','),
  GROUPS: 'X25519',
  PROFILE: '0',
} as const;

function read(name: keyof typeof DEFAULTS): string {
  return readKnob(DEFAULTS, name);
}

const int = intKnob;

/** The members of `all` named in the comma list of `name`, in `all`'s order. */
function subset<T extends string>(name: string, all: readonly T[]): readonly T[] {
  const asked = read(name as keyof typeof DEFAULTS).split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const a of asked) {
    if (!(all as readonly string[]).includes(a)) throw new TypeError(`${name}: unknown value ${JSON.stringify(a)}; known: ${all.join(', ')}`);
  }
  return Object.freeze(all.filter((v) => asked.includes(v)));
}

export function loadEnvironment(): BenchEnvironment {
  const groups = read('GROUPS');
  const profile = read('PROFILE');
  if (profile !== '0' && profile !== '1') throw new TypeError(`PROFILE must be 0 or 1, got ${JSON.stringify(profile)}`);
  return Object.freeze({
    concurrency: int('CONCURRENCY', read('CONCURRENCY'), 1, 4096),
    durationS: int('DURATION', read('DURATION'), 1, 3600),
    warmupS: int('WARMUP', read('WARMUP'), 0, 600),
    targets: subset('TARGETS', ALL_TARGETS),
    auth: subset('AUTH', ALL_AUTH),
    resume: subset('RESUME', ALL_RESUME),
    groups: groups === 'default' ? null : groups,
    profile: profile === '1',
  });
}
