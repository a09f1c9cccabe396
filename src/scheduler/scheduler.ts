import type { Server } from 'node:http';
import { randomUUID } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { campaignForLeadership, LeaderWatch, type LeaderTerm } from '../store/leadership.js';
import { verifyFleetKey } from '../store/fingerprint.js';
import { connectEtcd } from '../store/etcd.js';
import { FleetStore } from '../store/fleet-store.js';
import { createApiServer, type SchedulerRole } from '../api/server.js';
import { createLogger } from '../logger.js';
import { OfferBroker } from './broker.js';
import { AgentEndpoint } from './agent-endpoint.js';
import { RedisFramework } from './framework.js';
import { DEFAULT_DELETED_RETENTION_SECONDS, Reaper } from './reaper.js';
import { Compactor, DEFAULT_COMPACT_EVERY_SECONDS, DEFAULT_COMPACT_RETENTION_SECONDS } from './compactor.js';
import { StatsPoller } from './stats-poller.js';
import { RedisLinks } from './redis-links.js';
import { SentinelView } from './sentinel-view.js';
import { DetectorRelay, registeredAgents } from './standby.js';
import { SentinelEndpoint, type SentinelEndpointOptions } from '../api/sentinel.js';
import { dataKey } from '../store/secrets.js';
import type { AccessPolicy } from '../api/access.js';
import { FleetKeyError, NotLeaderError } from '../errors.js';
import type { IncomingMessage, ServerResponse } from 'node:http';

export interface SchedulerOptions {
  etcd: string;
  prefix: string;
  apiHost: string;
  apiPort: number;
  sentinelHost: string;
  sentinelPort: number;
  id: string;
  fleetKey: string;
  /** During a fleet key rotation, the old key: agents may still sign with it, and its fingerprint in etcd is accepted and replaced (docs/SECURITY.md). */
  previousFleetKey?: string;
  agentTimeoutMs?: number;
  access?: AccessPolicy;
  /** Seconds the leader's election lease lives without renewal (how fast a standby takes over). */
  leaderTtlSeconds?: number;
  /** etcd history: compact every `compactEverySeconds`, keeping `compactRetentionSeconds` (60, 300). */
  compactEverySeconds?: number;
  compactRetentionSeconds?: number;
  /** Seconds a DELETED instance's tree stays before the reaper purges it (3600). */
  deletedRetentionSeconds?: number;
  /** Limits and the optional password of the Sentinel-compatible endpoint. */
  sentinel?: SentinelEndpointOptions;
}

const LOOPBACK = /^(127\.|::1$|localhost$)/;
/** cpus each redis-server takes from its agent's offer. */
const PROC_CPUS = 0.1;
/** Pause between campaigns after one failed (etcd unreachable, lease lost while waiting). */
const CAMPAIGN_RETRY_MS = 250;
/**
 * The least time a new term gives agents to resubscribe before their procs count as lost. An
 * agent retries its stream with a backoff of up to 3 s, so a shorter grace (a small
 * --agent-timeout) would write off healthy procs at every change of leader.
 */
const MIN_AGENT_GRACE_MS = 5000;
/** How long an agent call waits for a just-elected scheduler to take up leadership. */
const TAKE_UP_WAIT_MS = 2000;
/** How long `stop` waits on etcd (resigning, the term's last writes) before it stops anyway. */
const STOP_WAIT_MS = 3000;

/** `work`, or nothing once `ms` have passed: a stop must not hang on an etcd that is gone. */
async function atMost(ms: number, work: Promise<unknown> | undefined): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([work, new Promise((r) => { timer = setTimeout(r, ms); })]);
  clearTimeout(timer);
}

/**
 * One scheduler process. Always on, leader or standby: the watched store, the HTTP API and the
 * Sentinel endpoint, all serving reads from the store. Only while it leads (one term per won
 * election): the offer broker, the agent endpoint, the Redis framework with its failure
 * detector, and the reaper. Losing the lease ends the term at once and the scheduler campaigns
 * again; it never exits for it.
 */
export class Scheduler {
  private readonly log;
  private etcd?: Etcd3;
  private store?: FleetStore;
  private leaders?: LeaderWatch;
  private server?: Server;
  private sentinel?: SentinelEndpoint;
  private readonly detector = new DetectorRelay();
  private advertised = '';
  private stopping = false;
  private readonly campaignAbort = new AbortController();
  private campaigning?: Promise<void>;
  private leading = false;

  // ---- leader-only parts: set while this scheduler leads, unset on a standby ----
  private term?: LeaderTerm;
  private broker?: OfferBroker;
  private endpoint?: AgentEndpoint;
  private framework?: RedisFramework;
  private reaper?: Reaper;
  private compactor?: Compactor;
  private statsPoller?: StatsPoller;
  private links?: RedisLinks;

  constructor(private readonly opts: SchedulerOptions) {
    this.log = createLogger('scheduler', { scheduler: opts.id });
  }

  /**
   * Checks the fleet key, starts the always-on parts and begins campaigning. Resolves with the
   * API address once it listens (as a standby until the election is won). Throws FleetKeyError,
   * before campaigning, when the fleet key is not this fleet's.
   */
  async start(): Promise<{ host: string; port: number; sentinelPort: number }> {
    this.etcd = connectEtcd(this.opts.etcd);
    try {
      const outcome = await verifyFleetKey(this.etcd, this.opts.prefix, this.opts.fleetKey, this.opts.previousFleetKey);
      if (outcome !== 'matched') this.log.info(outcome === 'written' ? 'fleet key fingerprint written: a fresh fleet' : 'fleet key rotated: the fingerprint now names the new key');
    } catch (err) {
      this.etcd.close();
      if (!(err instanceof FleetKeyError)) throw new Error(`cannot check the fleet key against etcd at ${this.opts.etcd} (${(err as Error).message}); check that etcd runs there and --etcd is right`);
      this.log.error('refusing to start: this is not the fleet\'s key', { code: err.code, error: err.message });
      throw err;
    }
    const started = await this.startAlwaysOnParts();
    this.campaigning = this.campaignLoop();
    return started;
  }

  isLeader(): boolean {
    return this.leading;
  }

  /** The store, API and Sentinel endpoint: served by every scheduler, leader or standby. */
  private async startAlwaysOnParts(): Promise<{ host: string; port: number; sentinelPort: number }> {
    this.store = new FleetStore(this.etcd!, this.opts.prefix, this.log);
    await this.store.start();
    this.leaders = new LeaderWatch(this.etcd!, this.opts.prefix);
    await this.leaders.start();
    const access: AccessPolicy = this.opts.access ?? { adminTokens: [], trustedProxies: new Set() };
    const apiHost = this.apiHost(access);
    this.advertised = `http://${apiHost === '0.0.0.0' ? hostname() : apiHost}:${this.opts.apiPort}`;
    const store = this.store;
    const role: SchedulerRole = { isLeader: () => this.isLeader(), leaderUrl: () => this.leaderUrl(), untilLeading: () => this.untilLeading() };
    this.server = createApiServer({
      store,
      broker: {
        agents: () => this.broker?.agents() ?? registeredAgents(store, PROC_CPUS),
        largestAgentMem: () => this.broker?.largestAgentMem() ?? 0,
      },
      agentEndpoint: {
        handle: (req: IncomingMessage, res: ServerResponse) => this.endpoint!.handle(req, res),
        refusedAgents: () => this.endpoint?.refusedAgents() ?? [],
      },
      log: this.log,
      access,
      role,
      masterRule: (inst) => this.detector.announced(inst),
      restartEmpty: (name) => (this.framework ? this.framework.restartEmpty(name) : Promise.reject(new NotLeaderError(this.leaderUrl()))),
    });
    const server = this.server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.apiPort, apiHost, () => resolve());
    });
    const addr = server.address();
    const port = typeof addr === 'object' && addr ? addr.port : this.opts.apiPort;
    this.sentinel = new SentinelEndpoint(new SentinelView(store, this.detector, this.opts.id), this.log, this.opts.sentinel);
    const sentinelPort = await this.sentinel.listen(this.opts.sentinelHost, this.opts.sentinelPort);
    this.log.info('scheduler started', { api: `${apiHost}:${port}`, sentinel: `${this.opts.sentinelHost}:${sentinelPort}`, etcd: this.opts.etcd, prefix: this.opts.prefix });
    return { host: apiHost, port, sentinelPort };
  }

  /**
   * The leader's API as the election keys name it; never this scheduler's own while it does not
   * act (its stale key after a lost lease, or a key it is still taking up): callers are told to
   * retry instead of being sent back here.
   */
  private leaderUrl(): string | undefined {
    const leader = this.leaders?.leader();
    if (!leader || (leader.id === this.opts.id && !this.leading)) return undefined;
    return leader.api;
  }

  /**
   * True once this scheduler leads, while no other scheduler holds the election (its own campaign
   * is the oldest, its earlier self's key is being replaced, or nobody leads right now); false as
   * soon as another scheduler leads, or after TAKE_UP_WAIT_MS.
   */
  private async untilLeading(): Promise<boolean> {
    const deadline = Date.now() + TAKE_UP_WAIT_MS;
    while (!this.leading && !this.stopping && Date.now() < deadline) {
      const leader = this.leaders?.leader();
      if (leader && leader.id !== this.opts.id) return false;
      await sleep(25);
    }
    return this.leading;
  }

  /** Where the API may listen: beyond loopback only with an admin token. */
  private apiHost(access: AccessPolicy): string {
    const apiHost = this.opts.apiHost;
    if (access.anonymous) this.log.warn('anonymous mode: creates without a token are allowed within the anonymous limits', { ...access.anonymous });
    if (access.adminTokens.length > 0) return apiHost;
    if (!LOOPBACK.test(apiHost)) {
      this.log.error(`NO ADMIN TOKEN IS CONFIGURED: refusing to expose the API on ${apiHost}; it listens on 127.0.0.1 only. Give --api-token, REDFLEET_API_TOKEN or --api-token-file to serve other hosts.`);
      return '127.0.0.1';
    }
    this.log.warn('NO ADMIN TOKEN IS CONFIGURED: the API is open to anyone on this machine (loopback only). Give --api-token, REDFLEET_API_TOKEN or --api-token-file to require one.');
    return apiHost;
  }

  /** Campaign, lead until the term ends, stand down, campaign again: until `stop`. */
  private async campaignLoop(): Promise<void> {
    while (!this.stopping) {
      let term: LeaderTerm | undefined;
      try {
        this.log.info('campaigning for leadership', { api: this.advertised });
        term = await campaignForLeadership(this.etcd!, this.opts.prefix, { id: this.opts.id, api: this.advertised }, this.opts.leaderTtlSeconds ?? 5, this.campaignAbort.signal);
      } catch (err) {
        if (this.stopping) return;
        this.log.warn('campaign failed; campaigning again', { error: (err as Error).message });
        await sleep(CAMPAIGN_RETRY_MS);
        continue;
      }
      if (this.stopping) {
        await term.resign();
        return;
      }
      try {
        await this.startLeaderParts(term);
      } catch (err) {
        this.log.error('could not take up leadership; standing down', { error: (err as Error).message });
        await term.resign();
      }
      const reason = await term.whenLost();
      await this.stopLeaderParts();
      if (!this.stopping) this.log.error('leadership lost: standing by and campaigning again', { reason });
    }
  }

  /**
   * The leader-only parts, rebuilt from the watched store for each term. The term ending stops
   * them at once (see `stopLeaderParts`), even in the middle of this.
   */
  private async startLeaderParts(term: LeaderTerm): Promise<void> {
    this.term = term;
    term.once('lost', () => this.haltLeaderParts());
    const store = this.store!;
    this.log.info('elected leader', { api: this.advertised });
    // Act only on a cache that has seen every write of the leaders before this term.
    await Promise.race([store.caughtUp(term.revision), term.whenLost()]);
    if (term.lost) return;
    const frameworkId = await store.ensureFrameworkId(randomUUID());
    if (term.lost) return;
    const agentTimeoutMs = this.opts.agentTimeoutMs ?? 10_000;
    // Agents answer every heartbeat: a silent one is found within 3 s (docs/hardening/session.md).
    this.broker = new OfferBroker({ heartbeatSeconds: 1, agentTimeoutMs, frameworkId }, this.log);
    this.links = new RedisLinks(dataKey(this.opts.fleetKey, this.opts.previousFleetKey));
    this.framework = new RedisFramework(store, this.broker, this.log, {
      procCpus: PROC_CPUS,
      pendingRefuseSeconds: 1,
      idleRefuseSeconds: 5,
      agentGraceMs: Math.max(agentTimeoutMs, MIN_AGENT_GRACE_MS),
    }, this.links);
    this.broker.attach(this.framework);
    this.framework.start();
    this.detector.follow(this.framework.failover);
    this.reaper = new Reaper(store, this.log, { deletedRetentionMs: (this.opts.deletedRetentionSeconds ?? DEFAULT_DELETED_RETENTION_SECONDS) * 1000 });
    this.reaper.start();
    this.compactor = new Compactor(this.etcd!, this.log, {
      everyMs: (this.opts.compactEverySeconds ?? DEFAULT_COMPACT_EVERY_SECONDS) * 1000,
      retentionMs: (this.opts.compactRetentionSeconds ?? DEFAULT_COMPACT_RETENTION_SECONDS) * 1000,
    });
    this.compactor.start();
    this.statsPoller = new StatsPoller(store, this.links, this.log);
    this.statsPoller.start();
    this.endpoint = new AgentEndpoint(this.broker, this.log, [this.opts.fleetKey, this.opts.previousFleetKey ?? '']);
    this.leading = !term.lost;
    this.log.info('leading', { frameworkId });
  }

  /**
   * Stops acting, synchronously, the moment the term ends: no offer, launch, failover or reap
   * after this returns; agents' streams are closed so they look for the new leader.
   */
  private haltLeaderParts(): void {
    this.leading = false;
    this.reaper?.stop();
    this.compactor?.stop();
    this.statsPoller?.stop();
    this.detector.follow(undefined);
    this.broker?.close();
    void this.framework?.stop();
  }

  /** Waits for the halted term's last jobs and drops its parts. */
  private async stopLeaderParts(): Promise<void> {
    this.haltLeaderParts();
    await this.framework?.stop();
    this.links?.close();
    this.term = undefined;
    this.broker = undefined;
    this.endpoint = undefined;
    this.framework = undefined;
    this.reaper = undefined;
    this.compactor = undefined;
    this.statsPoller = undefined;
    this.links = undefined;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.campaignAbort.abort();
    // Resign after the leader-only parts stop acting, so a standby takes over at once.
    const term = this.term;
    this.haltLeaderParts();
    await atMost(STOP_WAIT_MS, term?.resign());
    await atMost(STOP_WAIT_MS, this.campaigning);
    await this.sentinel?.close();
    const server = this.server;
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
    await atMost(STOP_WAIT_MS, Promise.all([this.leaders?.stop(), this.store?.stop()]));
    this.etcd?.close();
    this.log.info('scheduler stopped');
  }
}
