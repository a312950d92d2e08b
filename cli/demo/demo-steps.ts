/**
 * What `palisade demo` does, in order. Each step builds on what the earlier ones left in the
 * DemoContext; a later stage of the project appends its steps here (sidecars, mTLS,
 * policies, quotas) and the e2e test (test/e2e/demo.test.ts) expects a ✓ line for each.
 */
import type { DemoStep } from './step.ts';
import { authorizeWithPolicy } from './steps/authorize-with-policy.ts';
import { callThroughSidecars } from './steps/call-through-sidecars.ts';
import { changeWeights } from './steps/change-weights.ts';
import { limitWithQuota } from './steps/limit-with-quota.ts';
import { listProxies } from './steps/list-proxies.ts';
import { showMetrics } from './steps/show-metrics.ts';
import { registerSidecars } from './steps/register-sidecars.ts';
import { resolveClient } from './steps/resolve-client.ts';
import { splitCalls } from './steps/split-calls.ts';
import { startBackends } from './steps/start-backends.ts';
import { startControlPlane } from './steps/start-control-plane.ts';
import { startSidecars } from './steps/start-sidecars.ts';
import { startWorkloads } from './steps/start-workloads.ts';
import { writeConfig } from './steps/write-config.ts';

export const DEMO_STEPS: readonly DemoStep[] = Object.freeze([
  startBackends,
  writeConfig,
  startControlPlane,
  resolveClient,
  splitCalls,
  changeWeights,
  startWorkloads,
  startSidecars,
  registerSidecars,
  callThroughSidecars,
  authorizeWithPolicy,
  limitWithQuota,
  showMetrics,
  listProxies,
]);
