/**
 * The control plane's admin HTTP endpoint (loopback by default): readiness, the proxy
 * inventory, the snapshots per node group and the state of the configuration.
 *
 *   GET /ready              200 "ready" once the first configuration is served
 *   GET /api/v1/proxies     every connected proxy and its per-type sync status
 *   GET /api/v1/snapshots   per node group: each type's version and resource names
 *   GET /api/v1/state       last applied / last refused configuration
 *   GET /api/v1/endpoints   endpoints registered by sidecars, serving or in their grace period
 *   /api/v1/certs/tokens    join tokens: mint (POST), list (GET), revoke (DELETE …/<id>); certs-routes.ts
 *   GET /api/v1/usage?tenant=T&day=YYYY-MM-DD
 *                           usage per tenant and route of a UTC day (default today); 400 for a
 *                           bad parameter, 503 without a usage store (no state dir)
 *   GET /api/v1/slo         every SLO objective: target, budget left, burn rates per window, alerts
 *   GET /metrics            Prometheus text: the SLO gauges (palisade_slo_*)
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { CertsService } from '../certs/certs-service.ts';
import type { ControlPlane } from '../control-plane.ts';
import { handleCertsRoute } from './certs-routes.ts';
import { listenOn } from '../http-server.ts';

export class AdminServer {
  readonly #cp: ControlPlane;
  readonly #certs: CertsService | null;
  readonly #server: Server;
  #ready = false;

  /** `certs` serves /api/v1/certs/*; null answers those routes 503. */
  constructor(cp: ControlPlane, certs: CertsService | null = null) {
    this.#cp = cp;
    this.#certs = certs;
    this.#server = createServer((req, res) => this.#handle(req, res));
  }

  markReady(): void {
    this.#ready = true;
  }

  /** Listens on host:port (port 0 picks one); resolves with the bound address. */
  listen(address: string): Promise<string> {
    return listenOn(this.#server, address);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://admin');
    if (url.pathname.startsWith('/api/v1/certs/')) {
      handleCertsRoute(this.#certs, req, res, url.pathname, send).then((handled) => {
        if (!handled) send(res, 404, { error: `no such path ${url.pathname}` });
      }, (err: unknown) => {
        if (!res.headersSent) send(res, 500, { error: (err as Error).message, code: (err as { code?: string }).code ?? null });
        else res.destroy();
      });
      return;
    }
    if (req.method !== 'GET') return send(res, 405, { error: `method ${req.method} not allowed` });
    switch (url.pathname) {
      case '/ready':
        res.writeHead(this.#ready ? 200 : 503, { 'content-type': 'text/plain' }).end(this.#ready ? 'ready\n' : 'starting\n');
        return;
      case '/api/v1/proxies':
        return send(res, 200, { proxies: this.#cp.inventory.list() });
      case '/api/v1/endpoints':
        return send(res, 200, { endpoints: this.#cp.registry.list() });
      case '/api/v1/usage':
        return this.#usage(url, res);
      case '/api/v1/slo':
        return send(res, 200, this.#cp.slo.status());
      case '/metrics':
        this.#cp.slo.evaluate();
        this.#cp.slo.registry.metrics().then((text) => {
          res.writeHead(200, { 'content-type': this.#cp.slo.registry.contentType }).end(text);
        }, (err: unknown) => send(res, 500, { error: (err as Error).message }));
        return;
      case '/api/v1/snapshots':
        return send(res, 200, { groups: this.#snapshots() });
      case '/api/v1/state':
        return send(res, 200, {
          ...this.#cp.status,
          resources: this.#cp.state ? {
            mesh: this.#cp.state.mesh?.metadata.name ?? null,
            services: [...this.#cp.state.services.keys()],
            routes: [...this.#cp.state.routes.keys()],
          } : null,
        });
      default:
        return send(res, 404, { error: `no such path ${url.pathname}`, paths: ['/ready', '/api/v1/proxies', '/api/v1/snapshots', '/api/v1/state', '/api/v1/endpoints', '/api/v1/certs/tokens', '/api/v1/usage', '/api/v1/slo', '/metrics'] });
    }
  }

  #usage(url: URL, res: ServerResponse): void {
    const usage = this.#cp.usage;
    if (usage === null) return send(res, 503, { error: 'usage metering needs a state dir', code: null });
    try {
      return send(res, 200, usage.query({ tenant: url.searchParams.get('tenant'), day: url.searchParams.get('day') }));
    } catch (err) {
      const e = err as { code?: string; parameter?: string; message: string };
      if (e.code === 'PAL_ERR_METERING_INVALID_QUERY') return send(res, 400, { error: e.message, code: e.code, parameter: e.parameter ?? null });
      throw err;
    }
  }

  #snapshots() {
    return this.#cp.cache.groups().sort().map((group) => {
      const snap = this.#cp.cache.getSnapshot(group)!;
      return {
        group,
        streams: this.#cp.cache.watcherCount(group),
        types: Object.fromEntries(snap.typeUrls().map((t) => [t, { version: snap.version(t), resources: [...snap.resources(t).keys()] }])),
      };
    });
  }
}

function send(res: ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { 'content-type': 'application/json' }).end(`${JSON.stringify(body, null, 2)}\n`);
}
