import type { FleetStore } from '../store/fleet-store.js';
import type { Instance, Proc } from '../domain/model.js';
import { downAfterOf, isLive, isRunning, isServing, namedMaster, runningMaster, runningReplicas } from '../domain/rules.js';
import type { Logger } from '../logger.js';
import type { RedisLinks } from './redis-links.js';
import { LoopLag } from './loop-lag.js';
import { BusyScripts } from './busy-script.js';
import { ReplicaSampler } from './replica-sampler.js';
import { replicaSaysMasterDown, replicaVote, type Ballot } from './replica-vote.js';

/** What the monitor knows of one master. */
export interface MasterHealth {
  procId: string;
  /** The instance the proc is master of. */
  instance: string;
  lastPingSent: number;
  lastOk: number;
  /** When the oldest PING still without a valid reply was sent (0: none pending). */
  pendingSince: number;
  sdown: boolean;
  odown: boolean;
  failingOver: boolean;
  /** SCRIPT KILL / FUNCTION KILL went out in this busy spell (cleared by the next valid reply). */
  scriptKillSent: boolean;
}

/** Asks for a failover of the instance's master (the framework serializes it per instance). */
export type FailoverRequest = (name: string, masterId: string, cause: string) => void;
/** Sends one event in Sentinel's words (channel, message) to the Sentinel-compatible endpoint. */
export type SentinelEmit = (channel: string, message: string) => void;

const PING_EVERY_MS = 200;
/**
 * While a PING to a master has gone unanswered this long, its replicas' offsets are sampled every
 * SAMPLE_EVERY_MS, so the proof of their silence is tight by the time down-after has passed. A
 * healthy master's PONG is back within a few ms, so this costs nothing while all is well.
 */
const SAMPLE_AFTER_MS = 20;
const SAMPLE_EVERY_MS = 100;
/** Replies to PING that prove the master alive, as Sentinel counts them. */
const ALIVE_ERRORS = /^(LOADING|MASTERDOWN)/;

/**
 * Failure detection: every master is PINGed every 200 ms over the scheduler's own link. No valid
 * reply for the instance's down-after (DownAfter, default 1000 ms) makes it subjectively down;
 * time during which the scheduler's own event loop was stalled does not count (see LoopLag). It
 * is objectively down when every replica the scheduler can reach has lost the master too
 * (`replicaSaysMasterDown`). When no replica can be reached either, the scheduler is the one
 * cut off, and it does nothing.
 * A master that answers -BUSY (a tenant's script) is alive: it gets SCRIPT KILL and FUNCTION
 * KILL, as Sentinel does, and is failed over only if it still gives no valid reply by down-after.
 * A proc that dies outright (TASK_FAILED) skips all that: the framework calls `promote` at once.
 */
export class FailureDetector {
  private readonly health = new Map<string, MasterHealth>();
  private timer?: NodeJS.Timeout;
  private sampleTimer?: NodeJS.Timeout;
  private checking = new Set<string>();
  /** Masters whose replicas are being sampled right now, so samples do not pile up. */
  private readonly sampling = new Set<string>();
  /** Reads the replicas and keeps each one's offset track: the replica's own timing, for its vote. */
  private readonly replicas: ReplicaSampler;
  /**
   * Procs this scheduler has itself seen alive: one of its links got a reply, or the proc's
   * agent reported it RUNNING to this scheduler. Only such a proc is announced as a master; after
   * a restart, procs loaded from etcd are not, until they answer.
   */
  private readonly heard = new Set<string>();
  private readonly busy: BusyScripts;

  constructor(
    private readonly store: FleetStore,
    private readonly links: RedisLinks,
    private readonly log: Logger,
    private readonly request: FailoverRequest,
    private readonly emitEvent: SentinelEmit,
    readonly lag: LoopLag = new LoopLag(),
    /**
     * Whether the agent answered its heartbeats lately. Only the master's agent moves the
     * replicas' offsets ten times a second (its replication heartbeat), so their still offsets
     * prove the master silent only while that agent is known alive; otherwise the vote rests on
     * `master_last_io_seconds_ago` alone.
     */
    private readonly agentAlive: (agentId: string) => boolean = () => false,
  ) {
    this.busy = new BusyScripts(links, log);
    this.replicas = new ReplicaSampler(links);
  }

  start(): void {
    this.lag.start();
    this.timer = setInterval(() => this.tick(), PING_EVERY_MS);
    this.sampleTimer = setInterval(() => this.sampleSilentMasters(), SAMPLE_EVERY_MS);
  }

  stop(): void {
    this.lag.stop();
    clearInterval(this.timer);
    clearInterval(this.sampleTimer);
  }

  healthOf(procId: string): MasterHealth | undefined {
    return this.health.get(procId);
  }

  /** Whether this scheduler has itself seen the proc alive (see `heard`). */
  hasHeard(procId: string): boolean {
    return this.heard.has(procId);
  }

  /** The proc's agent reported it RUNNING to this scheduler, or one of its links got a reply. */
  vouch(procId: string): void {
    this.heard.add(procId);
  }

  /**
   * The master clients are told about (Sentinel endpoint and GET /v1/STATUS alike): the Mname
   * proc while it runs and this scheduler has seen it alive; and, as Redis Sentinel does, still
   * that proc between its death and the promotion that replaces it, so a client asking in that
   * window is not told "no such master". A proc this scheduler never saw alive (one loaded from
   * etcd after a restart, say, that is LOST or whose agent has not come back) is never announced.
   */
  announced(inst: Instance): Proc | undefined {
    if (!isServing(inst)) return undefined;
    const named = namedMaster(inst);
    if (!named || !this.heard.has(named.id)) return undefined;
    if (isRunning(named) || !isLive(named)) return named;
    return undefined;
  }

  private tick(): void {
    const watched = new Set<string>();
    const remembered = new Set<string>();
    for (const inst of this.store.instances()) {
      for (const p of inst.procs) if (isLive(p) || p.id === inst.mname) remembered.add(p.id);
      if (!isServing(inst)) continue;
      const master = runningMaster(inst);
      if (!master) continue;
      watched.add(master.id);
      // Keep a link open to every replica too, so a failover never waits for a connection.
      for (const p of inst.procs) {
        if (!isLive(p)) continue;
        watched.add(p.id);
        this.links.get(p);
        void this.busy.applyThreshold(inst, p);
      }
      void this.ping(inst, master);
    }
    for (const id of this.health.keys()) if (!watched.has(id)) this.health.delete(id);
    this.busy.retain(watched);
    this.replicas.silence.retain(watched);
    // A dead master stays "heard" while it is still named, for the window until its promotion.
    for (const id of this.heard) if (!remembered.has(id)) this.heard.delete(id);
    this.links.retain(watched);
  }

  /** Milliseconds the master has been silent, minus the time the scheduler itself was stalled. */
  private silenceOf(h: MasterHealth, now = Date.now()): number {
    if (h.pendingSince === 0) return 0;
    return now - h.pendingSince - this.lag.stalledWithin(h.pendingSince, now);
  }

  private async ping(inst: Instance, master: Proc): Promise<void> {
    const now = Date.now();
    let h = this.health.get(master.id);
    if (!h) {
      h = { procId: master.id, instance: inst.name, lastPingSent: now, lastOk: now, pendingSince: 0, sdown: false, odown: false, failingOver: false, scriptKillSent: false };
      this.health.set(master.id, h);
    }
    h.lastPingSent = now;
    if (h.pendingSince === 0) h.pendingSince = now;
    const { reply, error } = await this.links.probe(master, 'PING');
    if (reply === 'PONG' || (error && ALIVE_ERRORS.test(error))) {
      this.answered(inst, master, h);
      return;
    }
    if (error?.startsWith('BUSY')) await this.busy.kill(inst, master, h);
    // As Sentinel counts it: down once the oldest unanswered PING is down-after old.
    const downAfter = downAfterOf(inst);
    if (h.pendingSince === 0 || this.silenceOf(h) < downAfter || h.failingOver) return;
    if (!h.sdown) {
      h.sdown = true;
      this.log.warn('master subjectively down', { instance: inst.name, proc: master.id, downAfterMs: downAfter, busy: Boolean(error?.startsWith('BUSY')), loopStallMs: this.lag.stalledWithin(h.pendingSince) });
      this.emitEvent('+sdown', `master ${inst.name} ${master.ip} ${master.port}`);
    }
    await this.checkOnce(inst, master, h, downAfter);
  }

  /** Asks the replicas about a subjectively down master, unless a check is already under way. */
  private async checkOnce(inst: Instance, master: Proc, h: MasterHealth, downAfter: number): Promise<void> {
    if (this.checking.has(master.id)) return;
    this.checking.add(master.id);
    try {
      await this.checkObjectivelyDown(inst, master, h, downAfter);
    } finally {
      this.checking.delete(master.id);
    }
  }

  /**
   * Every SAMPLE_EVERY_MS: for each master with a PING unanswered for SAMPLE_AFTER_MS, samples its
   * replicas' offsets (so their silence is proven from shortly after the master's last ping), and
   * once it is subjectively down, asks for their votes right away rather than at the next PING.
   */
  private sampleSilentMasters(): void {
    const now = Date.now();
    for (const h of this.health.values()) {
      if (h.pendingSince === 0 || now - h.pendingSince < SAMPLE_AFTER_MS || h.failingOver) continue;
      const inst = this.store.instance(h.instance);
      const master = inst && runningMaster(inst);
      if (!inst || !master || master.id !== h.procId) continue;
      if (h.sdown) {
        void this.checkOnce(inst, master, h, downAfterOf(inst));
        continue;
      }
      if (this.sampling.has(master.id)) continue;
      this.sampling.add(master.id);
      void this.replicas.sample(inst, master).finally(() => this.sampling.delete(master.id));
    }
  }

  private answered(inst: Instance, master: Proc, h: MasterHealth): void {
    this.heard.add(master.id);
    h.lastOk = Date.now();
    h.pendingSince = 0;
    h.scriptKillSent = false;
    if (!h.sdown) return;
    h.sdown = false;
    h.odown = false;
    this.emitEvent('-sdown', `master ${inst.name} ${master.ip} ${master.port}`);
  }

  /** Each reachable replica's vote with what it rests on, for the log line that acts on it. */
  private async ballots(inst: Instance, master: Proc, downAfter: number): Promise<Ballot[]> {
    const views = await this.replicas.sample(inst, master);
    const address = `${master.ip}:${master.port}`;
    const heartbeating = this.agentAlive(master.sid);
    return views.map(({ replica, info }) => {
      const silentMs = heartbeating ? this.replicas.silence.silenceMs(replica.id, address) : 0;
      return {
        proc: replica.id,
        down: replicaVote(info, master, downAfter, silentMs),
        link: info.get('master_link_status') ?? '',
        lastIoSeconds: Number(info.get('master_last_io_seconds_ago') ?? -1),
        provenSilenceMs: silentMs,
      };
    });
  }

  private async checkObjectivelyDown(inst: Instance, master: Proc, h: MasterHealth, downAfter: number): Promise<void> {
    if (runningReplicas(inst, master).length === 0) return;
    const ballots = await this.ballots(inst, master, downAfter);
    const votes = ballots.map((b) => b.down);
    if (votes.length === 0) {
      this.log.warn('master and its replicas are all unreachable from the scheduler; not acting', { instance: inst.name, proc: master.id });
      return;
    }
    if (!votes.every(Boolean)) return;
    // The replicas were asked after an await: a stall meanwhile, or a PONG, may have cleared it.
    if (h.pendingSince === 0 || this.silenceOf(h) < downAfter) return;
    if (!h.odown) {
      h.odown = true;
      this.log.warn('master objectively down', { instance: inst.name, proc: master.id, replicasAgreeing: votes.length, ballots });
      this.emitEvent('+odown', `master ${inst.name} ${master.ip} ${master.port} #quorum ${votes.length}/${votes.length}`);
    }
    this.request(inst.name, master.id, 'master objectively down');
  }

  /**
   * For a master whose agent was lost (the proc is LOST, not seen to die): true when a replica
   * the scheduler reaches still hears it. Then only the scheduler's side lost the master's host,
   * and promoting would make two masters for nothing.
   */
  async replicasStillHear(inst: Instance, master: Proc): Promise<boolean> {
    const downAfter = downAfterOf(inst);
    // The master's agent is gone, and with it the heartbeat that moves the replicas' offsets:
    // only `master_last_io_seconds_ago` (Redis's own pings) can say whether they still hear it.
    const votes = (await this.replicas.sample(inst, master)).map(({ info }) => replicaSaysMasterDown(info, master, downAfter));
    // No replica answered in time (a loaded host, or the scheduler cut off from all of them):
    // nobody has said the master is gone, so do not fail it over now; the caller looks again.
    if (votes.length === 0) return true;
    return votes.some((down) => !down);
  }
}
