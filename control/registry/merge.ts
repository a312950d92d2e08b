/** Desired state + sidecar-registered endpoints → the state the translator sees. */
import type { Endpoint } from '../config/schema.ts';
import type { DesiredState } from '../config/state.ts';

/**
 * Each Service's endpoints become its static ones plus those its sidecars registered
 * (a registered address:port already listed statically is not added twice). Registrations
 * for a Service that does not exist are left out. The input state is not modified.
 */
export function withRegisteredEndpoints(state: DesiredState, registered: ReadonlyMap<string, readonly Endpoint[]>): DesiredState {
  if (registered.size === 0) return state;
  const services = new Map(state.services);
  for (const [key, extra] of registered) {
    const svc = services.get(key);
    if (!svc) continue;
    const seen = new Set(svc.spec.endpoints.map((e) => `${e.address}|${e.port}`));
    const added = extra.filter((e) => !seen.has(`${e.address}|${e.port}`));
    if (added.length === 0) continue;
    services.set(key, { ...svc, spec: { ...svc.spec, endpoints: [...svc.spec.endpoints, ...added] } });
  }
  return { ...state, services };
}
