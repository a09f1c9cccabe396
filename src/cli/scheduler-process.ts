import { createServer, type Server } from 'node:http';
import { hostname } from 'node:os';
import { Scheduler, type SchedulerOptions } from '../scheduler/scheduler.js';
import { createApiServer } from '../api/server.js';
import type { AccessPolicy } from '../api/access.js';
import { SentinelEndpoint, type SentinelEndpointOptions } from '../sentinel/endpoint.js';
import { SchedulerMetrics } from '../scheduler/metrics.js';
import { WorkMetrics } from '../scheduler/work-metrics.js';

export interface SchedulerProcessOptions extends SchedulerOptions {
  apiHost: string;
  apiPort: number;
  sentinelHost: string;
  sentinelPort: number;
  access?: AccessPolicy;
  /** Limits and the optional password of the Sentinel-compatible endpoint. */
  sentinel?: SentinelEndpointOptions;
  /** `--metrics HOST:PORT`: /metrics on its own address too, without a token. */
  metrics?: { host: string; port: number };
}

const LOOPBACK = /^(127\.|::1$|localhost$)/;

/**
 * What `redfleet scheduler` runs: a Scheduler with its two public faces, the HTTP API (with the
 * agents' endpoint mounted on it) and the Sentinel-compatible endpoint. Both are served by every
 * scheduler, leader or standby, from its watched store; both listen before it campaigns.
 */
export class SchedulerProcess {
  readonly scheduler: Scheduler;
  private server?: Server;
  private sentinel?: SentinelEndpoint;
  /** The scheduler's Prometheus metrics, served at /metrics. */
  metrics?: SchedulerMetrics;
  private metricsServer?: Server;
  /** Offers, placements and etcd requests, counted from the scheduler's start: SchedulerMetrics serves them. */
  private readonly work = new WorkMetrics();

  constructor(private readonly opts: SchedulerProcessOptions) {
    this.scheduler = new Scheduler({ ...opts, meter: this.work });
  }

  /**
   * Opens the scheduler, starts the API and the Sentinel endpoint and begins campaigning.
   * Resolves with the addresses once they listen (as a standby until the election is won).
   * Throws FleetKeyError, before campaigning, when the fleet key is not this fleet's.
   */
  async start(): Promise<{ host: string; port: number; sentinelPort: number }> {
    const { scheduler, opts } = this;
    await scheduler.open();
    const access: AccessPolicy = opts.access ?? { adminTokens: [], trustedProxies: new Set() };
    const apiHost = this.apiHost(access);
    const service = scheduler.service();
    const sentinelView = scheduler.sentinelView();
    this.metrics = new SchedulerMetrics(this.work.registry, service, scheduler.role, sentinelView.events);
    const server = createApiServer({ service, log: scheduler.log, access, role: scheduler.role, mounts: [scheduler.agentCalls], metrics: this.metrics });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.apiPort, apiHost, () => resolve());
    });
    const addr = server.address();
    const port = typeof addr === 'object' && addr ? addr.port : opts.apiPort;
    this.sentinel = new SentinelEndpoint(sentinelView, scheduler.log, opts.sentinel);
    const sentinelPort = await this.sentinel.listen(opts.sentinelHost, opts.sentinelPort);
    const sentinel = this.sentinel;
    this.metrics.countSentinelClients(() => sentinel.clientCount);
    if (opts.metrics) this.metricsServer = await serveMetrics(this.metrics, opts.metrics.host, opts.metrics.port);
    scheduler.log.info('scheduler started', { api: `${apiHost}:${port}`, sentinel: `${opts.sentinelHost}:${sentinelPort}`, etcd: opts.etcd, prefix: opts.prefix });
    scheduler.campaign(`http://${apiHost === '0.0.0.0' ? hostname() : apiHost}:${opts.apiPort}`);
    return { host: apiHost, port, sentinelPort };
  }

  /** Hands leadership over, then closes the API and the Sentinel endpoint, then the store. */
  async stop(): Promise<void> {
    await this.scheduler.standDown();
    await this.sentinel?.close();
    this.metricsServer?.closeAllConnections();
    await new Promise<void>((r) => (this.metricsServer ? this.metricsServer.close(() => r()) : r()));
    const server = this.server;
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
    await this.scheduler.close();
  }

  /** Where the API may listen: beyond loopback only with an admin token. */
  private apiHost(access: AccessPolicy): string {
    const { log } = this.scheduler;
    const apiHost = this.opts.apiHost;
    if (access.anonymous) log.warn('anonymous mode: creates without a token are allowed within the anonymous limits', { ...access.anonymous });
    if (access.adminTokens.length > 0) return apiHost;
    if (!LOOPBACK.test(apiHost)) {
      log.error(`NO ADMIN TOKEN IS CONFIGURED: refusing to expose the API on ${apiHost}; it listens on 127.0.0.1 only. Give --api-token, REDFLEET_API_TOKEN or --api-token-file to serve other hosts.`);
      return '127.0.0.1';
    }
    log.warn('NO ADMIN TOKEN IS CONFIGURED: the API is open to anyone on this machine (loopback only). Give --api-token, REDFLEET_API_TOKEN or --api-token-file to require one.');
    return apiHost;
  }
}

/** GET /metrics on its own address, without a token (the operator picks who reaches it); 404 for anything else. */
async function serveMetrics(metrics: SchedulerMetrics, host: string, port: number): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') return void res.writeHead(404).end();
    metrics.render().then((text) => res.writeHead(200, { 'Content-Type': metrics.contentType }).end(text), () => res.writeHead(500).end());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}
