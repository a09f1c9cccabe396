import type { Server } from 'node:http';
import { randomUUID } from 'node:crypto';
import type { Campaign, Etcd3 } from 'etcd3';
import { hostname } from 'node:os';
import { campaignForLeadership } from '../store/leadership.js';
import { connectEtcd } from '../store/etcd.js';
import { FleetStore } from '../store/fleet-store.js';
import { createApiServer } from '../api/server.js';
import { createLogger } from '../logger.js';
import { OfferBroker } from './broker.js';
import { AgentEndpoint } from './agent-endpoint.js';
import { RedisFramework } from './framework.js';
import { Reaper } from './reaper.js';
import { RedisLinks } from './redis-links.js';
import { SentinelView } from './sentinel-view.js';
import { SentinelEndpoint } from '../api/sentinel.js';
import type { AccessPolicy } from '../api/access.js';

export interface SchedulerOptions {
  etcd: string;
  prefix: string;
  apiHost: string;
  apiPort: number;
  sentinelHost: string;
  sentinelPort: number;
  id: string;
  fleetKey: string;
  agentTimeoutMs?: number;
  access?: AccessPolicy;
  /** Seconds the leader's election lease lives without renewal (how fast a standby takes over). */
  leaderTtlSeconds?: number;
  /** Called when this scheduler loses its leadership; the process must stop acting at once. */
  onLeadershipLost?: (err: Error) => void;
}

const LOOPBACK = /^(127\.|::1$|localhost$)/;

/** One scheduler process: store, offer broker, Redis framework, reaper and the HTTP API. */
export class Scheduler {
  private readonly log;
  private etcd?: Etcd3;
  private store?: FleetStore;
  private broker?: OfferBroker;
  private framework?: RedisFramework;
  private reaper?: Reaper;
  private server?: Server;
  private links?: RedisLinks;
  private sentinel?: SentinelEndpoint;
  private campaign?: Campaign;

  constructor(private readonly opts: SchedulerOptions) {
    this.log = createLogger('scheduler', { scheduler: opts.id });
  }

  /** Resolves with the API address once it listens. */
  async start(): Promise<{ host: string; port: number; sentinelPort: number }> {
    this.etcd = connectEtcd(this.opts.etcd);
    // Only the elected scheduler acts; a standby waits here until the leader's lease lapses.
    const advertised = `http://${this.opts.apiHost === '0.0.0.0' ? hostname() : this.opts.apiHost}:${this.opts.apiPort}`;
    this.log.info('campaigning for leadership', { api: advertised });
    this.campaign = await campaignForLeadership(this.etcd, this.opts.prefix, { id: this.opts.id, api: advertised }, this.opts.leaderTtlSeconds ?? 5);
    this.campaign.on('error', (err: Error) => {
      this.log.error('leadership lost: this scheduler must stop acting', { error: err.message });
      this.opts.onLeadershipLost?.(err);
    });
    this.log.info('elected leader', { api: advertised });
    this.store = new FleetStore(this.etcd, this.opts.prefix, this.log);
    await this.store.start();
    const frameworkId = await this.store.ensureFrameworkId(randomUUID());
    const agentTimeoutMs = this.opts.agentTimeoutMs ?? 10_000;
    this.broker = new OfferBroker({ heartbeatSeconds: 5, agentTimeoutMs, frameworkId }, this.log);
    this.links = new RedisLinks(this.opts.fleetKey);
    this.framework = new RedisFramework(this.store, this.broker, this.log, {
      procCpus: 0.1,
      pendingRefuseSeconds: 1,
      idleRefuseSeconds: 5,
      agentGraceMs: agentTimeoutMs,
    }, this.links);
    this.broker.attach(this.framework);
    this.framework.start();
    this.reaper = new Reaper(this.store, this.log);
    this.reaper.start();
    const endpoint = new AgentEndpoint(this.broker, this.log, this.opts.fleetKey);
    const access: AccessPolicy = this.opts.access ?? { adminTokens: [], trustedProxies: new Set() };
    let apiHost = this.opts.apiHost;
    if (access.adminTokens.length === 0) {
      if (!LOOPBACK.test(apiHost)) {
        this.log.error(`NO ADMIN TOKEN IS CONFIGURED: refusing to expose the API on ${apiHost}; it listens on 127.0.0.1 only. Give --api-token, REDFLEET_API_TOKEN or --api-token-file to serve other hosts.`);
        apiHost = '127.0.0.1';
      } else {
        this.log.warn('NO ADMIN TOKEN IS CONFIGURED: the API is open to anyone on this machine (loopback only). Give --api-token, REDFLEET_API_TOKEN or --api-token-file to require one.');
      }
    }
    if (access.anonymous) this.log.warn('anonymous mode: creates without a token are allowed within the anonymous limits', { ...access.anonymous });
    const framework = this.framework;
    this.server = createApiServer({
      store: this.store,
      broker: this.broker,
      agentEndpoint: endpoint,
      log: this.log,
      access,
      masterRule: (inst) => framework.failover.announced(inst),
      restartEmpty: (name) => framework.restartEmpty(name),
    });
    const server = this.server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.apiPort, apiHost, () => resolve());
    });
    const addr = server.address();
    const port = typeof addr === 'object' && addr ? addr.port : this.opts.apiPort;
    this.sentinel = new SentinelEndpoint(new SentinelView(this.store, this.framework.failover, this.opts.id), this.log);
    const sentinelPort = await this.sentinel.listen(this.opts.sentinelHost, this.opts.sentinelPort);
    this.log.info('scheduler started', { api: `${apiHost}:${port}`, sentinel: `${this.opts.sentinelHost}:${sentinelPort}`, etcd: this.opts.etcd, prefix: this.opts.prefix, frameworkId });
    return { host: apiHost, port, sentinelPort };
  }

  async stop(): Promise<void> {
    this.reaper?.stop();
    await this.sentinel?.close();
    this.broker?.close();
    await this.framework?.stop();
    const server = this.server;
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
    await this.store?.stop();
    await this.campaign?.resign().catch(() => undefined);
    this.links?.close();
    this.etcd?.close();
    this.log.info('scheduler stopped');
  }
}
