import type { Etcd3 } from 'etcd3';
import { setTimeout as sleep } from 'node:timers/promises';
import { v4 as uuidv4 } from 'uuid';
import { campaignForLeadership, LeaderWatch, type LeaderTerm } from '../store/leadership.js';
import { verifyFleetKey } from '../store/fingerprint.js';
import { connectEtcd, retryingConnection, timeEtcdRequests } from '../store/etcd.js';
import { FleetStore } from '../store/fleet-store.js';
import { dataKey } from '../store/secrets.js';
import type { FleetService, SchedulerRole, SentinelSource } from '../domain/services.js';
import { createLogger, type Logger } from '../logger.js';
import { FleetKeyError } from '../errors.js';
import { OfferBroker } from './broker.js';
import { LoopLag } from './loop-lag.js';
import { AgentEndpoint } from './agent-endpoint.js';
import { RedisFramework } from './framework.js';
import { DEFAULT_DELETED_RETENTION_SECONDS, Reaper } from './reaper.js';
import { Compactor, DEFAULT_COMPACT_EVERY_SECONDS, DEFAULT_COMPACT_RETENTION_SECONDS } from './compactor.js';
import { StatsPoller } from './stats-poller.js';
import { AgentReports, reportFreshMs } from './agent-reports.js';
import { RedisLinks } from './redis-links.js';
import { SentinelView } from './sentinel-view.js';
import { DetectorRelay } from './standby.js';
import { SchedulerFleetService } from './fleet-service.js';
import { agentCalls, type AgentCalls } from './agent-calls.js';
import { LocalBackupStorage, type BackupStorage } from './backup-storage.js';
import { agentBackupSource } from './agent-backup-route.js';
import type { SchedulerOptions } from './scheduler-options.js';
import { atMost } from './at-most.js';

export type { SchedulerOptions } from './scheduler-options.js';

/** cpus each redis-server takes from its agent's offer. */
const PROC_CPUS = 0.1;
/** Pause between campaigns after one failed (etcd unreachable, lease lost while waiting). */
const CAMPAIGN_RETRY_MS = 250;
/**
 * The least time a new term gives agents to resubscribe before their procs count as lost. Agents
 * retry with a backoff of up to 3 s: a shorter grace would write off healthy procs at every new leader.
 */
const MIN_AGENT_GRACE_MS = 5000;
/** How long an agent call waits for a just-elected scheduler to take up leadership. */
const TAKE_UP_WAIT_MS = 2000;
/** How long `standDown` and `close` wait on etcd (resigning, the term's last writes) before they stop anyway. */
const STOP_WAIT_MS = 3000;
/** How long a lost term's last jobs may hold up this scheduler's next campaign (a leader's lease: 5 s). */
const LAST_JOBS_WAIT_MS = 5000;

/**
 * One scheduler. Always on, leader or standby: the watched store, and what the HTTP API and the
 * Sentinel endpoint (wired by src/cli) serve from it: `service`, `sentinelView`, `role` and the
 * `agentCalls` handler. Only while it leads (one term per won election): the offer broker, the
 * agent endpoint, the Redis framework with its failure detector, and the reaper. Losing the
 * lease ends the term at once and the scheduler campaigns again; it never exits for it.
 */
export class Scheduler {
  readonly log: Logger;
  private etcd?: Etcd3;
  private store?: FleetStore;
  private leaders?: LeaderWatch;
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
  private readonly backupStorage: BackupStorage;

  /** Whether this scheduler leads and where the leader is, for the API's standby guard. */
  readonly role: SchedulerRole = {
    isLeader: () => this.leading,
    leaderUrl: () => this.leaderUrl(),
    untilLeading: () => this.untilLeading(),
  };
  /** The agents' calls, for the public HTTP server to mount: the current term's agent endpoint. */
  readonly agentCalls: AgentCalls;

  constructor(private readonly opts: SchedulerOptions) {
    this.log = createLogger('scheduler', { scheduler: opts.id });
    this.agentCalls = agentCalls(() => this.endpoint, this.role, this.log);
    this.backupStorage = new LocalBackupStorage(opts.backups?.dir ?? '.redfleet/backups');
  }

  /**
   * Checks the fleet key and starts the always-on parts: the watched store and the leader watch.
   * Throws FleetKeyError when the fleet key is not this fleet's. `campaign` follows, once the
   * API and the Sentinel endpoint listen.
   */
  async open(): Promise<void> {
    this.etcd = connectEtcd(this.opts.etcd);
    const meter = this.opts.meter;
    if (meter) timeEtcdRequests(this.etcd, (op, seconds) => meter.etcdRequest(op, seconds));
    try {
      const outcome = await verifyFleetKey(this.etcd, this.opts.prefix, this.opts.fleetKey, this.opts.previousFleetKey);
      if (outcome !== 'matched') this.log.info(outcome === 'written' ? 'fleet key fingerprint written: a fresh fleet' : 'fleet key rotated: the fingerprint now names the new key');
    } catch (err) {
      this.etcd.close();
      if (!(err instanceof FleetKeyError)) throw new Error(`cannot check the fleet key against etcd at ${this.opts.etcd} (${(err as Error).message}); check that etcd runs there and --etcd is right`);
      this.log.error('refusing to start: this is not the fleet\'s key', { code: err.code, error: err.message });
      throw err;
    }
    this.store = new FleetStore(this.etcd, this.opts.prefix, this.log);
    await this.store.start();
    this.leaders = new LeaderWatch(this.etcd, this.opts.prefix);
    await retryingConnection(() => this.leaders!.start(), (err, attempt) => this.log.warn('etcd election watch could not start; trying again', { attempt, error: err.message }));
  }

  /** Begins campaigning for leadership, advertising `api` (this scheduler's API URL) to agents and clients. */
  campaign(api: string): void {
    this.advertised = api;
    this.campaigning = this.campaignLoop();
  }

  /** The fleet as the API sees it; served by every scheduler, leader or standby. Needs `open` first. */
  service(): FleetService {
    const term = () => ({ broker: this.broker, endpoint: this.endpoint, framework: this.framework });
    return new SchedulerFleetService(this.opened(), term, this.detector, () => this.leaderUrl(), PROC_CPUS, this.backupStorage);
  }

  /** The fleet as the Sentinel endpoint sees it. Needs `open` first. */
  sentinelView(): SentinelSource {
    return new SentinelView(this.opened(), this.detector, this.opts.id, (name) => this.framework?.operations.start(name, 'switchover', {}));
  }

  private opened(): FleetStore {
    if (!this.store) throw new Error('the scheduler is not open yet');
    return this.store;
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
      if (!this.stopping) this.log.error('leadership lost: standing by, then campaigning again', { reason });
      // A lost term's job stuck on etcd (or on an offer that never comes) must not keep this
      // scheduler out of every later election: the term acts no more, and the next is built afresh.
      const waitMs = this.opts.lastTermWaitMs ?? LAST_JOBS_WAIT_MS;
      const finished = await atMost(waitMs, this.stopLeaderParts());
      if (!finished && !this.stopping) this.log.warn('the lost term\'s last jobs did not finish; campaigning again without them', { waitedMs: waitMs });
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
    const frameworkId = await store.ensureFrameworkId(uuidv4());
    if (term.lost) return;
    const agentTimeoutMs = this.opts.agentTimeoutMs ?? 10_000;
    // One LoopLag per term: agent liveness and failure detection count awake time only.
    const loopLag = new LoopLag();
    const heartbeatSeconds = this.opts.agentHeartbeatSeconds ?? 1;
    this.broker = new OfferBroker({ heartbeatSeconds, agentTimeoutMs, frameworkId }, this.log, loopLag);
    this.links = new RedisLinks(dataKey(this.opts.fleetKey, this.opts.previousFleetKey));
    this.framework = new RedisFramework(store, this.broker, this.log, {
      procCpus: PROC_CPUS,
      pendingRefuseSeconds: 1,
      idleRefuseSeconds: 5,
      agentGraceMs: Math.max(agentTimeoutMs, MIN_AGENT_GRACE_MS),
      backups: { storage: this.backupStorage, minuteMs: this.opts.backups?.minuteMs ?? 60_000 },
      meter: this.opts.meter,
      reportEveryMs: heartbeatSeconds * 1000,
      loopLag,
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
    // Every entry of an agent's REPORT, zeros included (they mark the agent as reporting), goes to
    // the failure detector: the agent's own PINGs are its first line (docs/failure-detection.md).
    const [framework, freshMs] = [this.framework, reportFreshMs(heartbeatSeconds * 1000)];
    const reports = new AgentReports({ procAgent: (id) => framework.procAgent(id), overlayStats: (id, stats) => store.overlayStats(id, stats),
      onProcReport: (agentId, procId, r) => framework.procReport(agentId, procId, r) }, this.log, freshMs);
    this.statsPoller = new StatsPoller(store, this.links, reports, this.log, 1000, undefined, freshMs);
    this.statsPoller.start();
    this.endpoint = new AgentEndpoint(this.broker, this.log, [this.opts.fleetKey, this.opts.previousFleetKey ?? ''], agentBackupSource(store, this.backupStorage), reports);
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

  /** Drops the halted term's parts at once, then waits for its last jobs and closes its links. */
  private async stopLeaderParts(): Promise<void> {
    this.haltLeaderParts();
    const framework = this.framework;
    const links = this.links;
    this.term = undefined;
    this.broker = undefined;
    this.endpoint = undefined;
    this.framework = undefined;
    this.reaper = undefined;
    this.compactor = undefined;
    this.statsPoller = undefined;
    this.links = undefined;
    await framework?.stop();
    links?.close();
  }

  /**
   * Stops acting and campaigning: the leader-only parts stop, then the lease is resigned so a
   * standby takes over at once. The store keeps serving reads until `close`.
   */
  async standDown(): Promise<void> {
    this.stopping = true;
    this.campaignAbort.abort();
    const term = this.term;
    this.haltLeaderParts();
    await atMost(STOP_WAIT_MS, term?.resign());
    await atMost(STOP_WAIT_MS, this.campaigning);
  }

  /** Stops the store and the leader watch and lets etcd go; after `standDown` and after the API and Sentinel endpoint closed. */
  async close(): Promise<void> {
    await atMost(STOP_WAIT_MS, Promise.all([this.leaders?.stop(), this.store?.stop()]));
    this.etcd?.close();
    this.log.info('scheduler stopped');
  }
}
