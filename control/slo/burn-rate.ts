/**
 * Multi-window, multi-burn-rate alert rules (Google SRE workbook, "Alerting on SLOs", recipe 6).
 *
 * The burn rate of a window is how fast the error budget goes: the window's bad fraction
 * divided by the budget (1 - target); 1 spends exactly the budget over the SLO window. A rule
 * fires when both its long and its short window burn faster than its threshold: the long one
 * says enough budget is gone to matter, the short one that it is still going (so the alert
 * resolves minutes after the burn stops, not hours).
 *
 * Thresholds are derived from the share of the budget a rule guards: spending `budgetShare`
 * of the budget within `longMs` means a burn rate of budgetShare × window / longMs, which for
 * a 30-day window gives the workbook's 14.4 (2 % in 1h), 6 (5 % in 6h) and 1 (10 % in 3d).
 */

export type Severity = 'page' | 'ticket';

/** Window lengths the engine computes burn rates for, by label; ms at time scale 1. */
export const BURN_WINDOWS = Object.freeze({
  '5m': 5 * 60_000,
  '30m': 30 * 60_000,
  '1h': 3_600_000,
  '6h': 6 * 3_600_000,
  '3d': 3 * 86_400_000,
});

export type WindowLabel = keyof typeof BURN_WINDOWS;

export const WINDOW_LABELS = Object.freeze(Object.keys(BURN_WINDOWS) as WindowLabel[]);

export interface BurnRateRule {
  readonly severity: Severity;
  readonly long: WindowLabel;
  readonly short: WindowLabel;
  /** Share of the whole error budget spent within the long window that the rule guards against. */
  readonly budgetShare: number;
}

/** The workbook's rules: page on 2 % of the budget in 1h or 5 % in 6h, ticket on 10 % in 3d. */
export const DEFAULT_RULES: readonly BurnRateRule[] = Object.freeze([
  Object.freeze({ severity: 'page', long: '1h', short: '5m', budgetShare: 0.02 }),
  Object.freeze({ severity: 'page', long: '6h', short: '30m', budgetShare: 0.05 }),
  Object.freeze({ severity: 'ticket', long: '3d', short: '6h', budgetShare: 0.1 }),
] as const);

export const SEVERITIES: readonly Severity[] = Object.freeze(['page', 'ticket']);

/** The burn-rate threshold of `rule` for an SLO window of `windowMs` (14.4 for the 1h rule of a 30d SLO). */
export function ruleThreshold(rule: BurnRateRule, windowMs: number): number {
  return (rule.budgetShare * windowMs) / BURN_WINDOWS[rule.long];
}

/** Burn rate of `bad` out of `total` against `target` (a fraction); 0 when there was no traffic. */
export function burnRate(bad: number, total: number, target: number): number {
  return total > 0 ? bad / total / (1 - target) : 0;
}
