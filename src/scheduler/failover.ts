import { EventEmitter } from 'node:events';
import { parseInfo } from '../domain/redis-info.js';
import type { FleetStore } from '../store/fleet-store.js';
import { InstanceStatus, ProcState, ProcType, type Instance, type Proc } from '../domain/model.js';
import { busyThresholdOf, downAfterOf, failoverTimeoutOf, isLive, isServing, runningMaster, runningReplicas } from '../domain/rules.js';
import type { Logger } from '../logger.js';
import type { RedisLinks } from './redis-links.js';
import { LoopLag } from './loop-lag.js';
import { offsetSaysMasterDown, ReplicaSilence, replicaReadOffset } from './replica-silence.js';

/**
 * How much older than down-after a replica's `master_last_io_seconds_ago` must be before the
 * replica counts as having lost its master. The field is whole seconds rounded down, and a
 * healthy master pings its replicas only once a second (repl-ping-replica-period 1), so a healthy
 * idle link reads 1 and, with cron jitter, now and then 2: a reading of N proves only N-1 seconds
 * of silence. Two seconds on top of down-after keeps every healthy link from voting down.
 */
export const LAST_IO_MARGIN_MS = 2000;

/**
 * A replica's vote on its master, from its INFO replication: true when it has lost the master
 * too (link down, or no traffic for clearly longer than down-after), or when it does not follow
 * that master at all and so cannot vouch for it. A replica that still hears the master votes
 * false: then only the scheduler lost the master (a partition between it and the master's host),
 * and there must be no failover. Pure.
 */
export function replicaSaysMasterDown(info: Map<string, string>, master: { ip: string; port: number }, downAfterMs: number): boolean {
  if (info.get('role') !== 'slave') return true;
  if (info.get('master_host') !== master.ip || Number(info.get('master_port')) !== master.port) return true;
  if (info.get('master_link_status') !== 'up') return true;
  const lastIoMs = Number(info.get('master_last_io_seconds_ago') ?? 0) * 1000;
  return lastIoMs >= downAfterMs + LAST_IO_MARGIN_MS;
}

/**
 * A replica's whole vote: `replicaSaysMasterDown`, or else the replica's own timing, the silence
 * its still replication offset proves (see replica-silence.ts), clearly beyond the master's ping
 * period and down-after. Pure.
 */
export function replicaVote(info: Map<string, string>, master: { ip: string; port: number }, downAfterMs: number, provenSilenceMs: number): boolean {
  return replicaSaysMasterDown(info, master, downAfterMs) || offsetSaysMasterDown(provenSilenceMs, downAfterMs);
}

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

/** One replica's vote on its master and the readings behind it. */
export interface Ballot {
  proc: string;
  down: boolean;
  link: string;
  lastIoSeconds: number;
  provenSilenceMs: number;
}

export interface Candidate {
  proc: Proc;
  priority: number;
  offset: number;
  linkDownSeconds: number;
}

const PING_EVERY_MS = 200;
/**
 * While a PING to a master has gone unanswered this long, its replicas' offsets are sampled every
 * SAMPLE_EVERY_MS, so the proof of their silence is tight by the time down-after has passed. A
 * healthy master's PONG is back within a few ms, so this costs nothing while all is well.
 */
const SAMPLE_AFTER_MS = 20;
const SAMPLE_EVERY_MS = 100;
/** A replica whose link has been down longer than this is too stale to promote. */
const MAX_LINK_DOWN_SECONDS = 60;
/** Replies to PING that prove the master alive, as Sentinel counts them. */
const ALIVE_ERRORS = /^(LOADING|MASTERDOWN)/;

/**
 * Failure detection and promotion.
 *
 * Detection: every master is PINGed every 200 ms over the scheduler's own link. No valid reply
 * for the instance's down-after (DownAfter, default 1000 ms) makes it subjectively down; time
 * during which the scheduler's own event loop was stalled does not count (see LoopLag). It is
 * objectively down when every replica the scheduler can reach has lost the master too
 * (`replicaSaysMasterDown`). When no replica can be reached either, the scheduler is the one
 * cut off, and it does nothing.
 * A master that answers -BUSY (a tenant's script) is alive: it gets SCRIPT KILL and FUNCTION
 * KILL, as Sentinel does, and is failed over only if it still gives no valid reply by down-after.
 * A proc that dies outright (TASK_FAILED) skips all that: the framework calls `promote` at once.
 *
 * Promotion: see `promote`. Events go out on `events` in Sentinel's words for the
 * Sentinel-compatible endpoint.
 */
export class Failover {
  readonly events = new EventEmitter();
  private readonly health = new Map<string, MasterHealth>();
  private readonly lastFailover = new Map<string, number>();
  private readonly retryTimers = new Map<string, NodeJS.Timeout>();
  private timer?: NodeJS.Timeout;
  private sampleTimer?: NodeJS.Timeout;
  private checking = new Set<string>();
  /** Masters whose replicas are being sampled right now, so samples do not pile up. */
  private readonly sampling = new Set<string>();
  /** Each replica's offset track: the replica's own timing, for its vote. */
  readonly silence = new ReplicaSilence();
  /**
   * Procs this scheduler has itself seen alive: one of its links got a reply, or the proc's
   * agent reported it RUNNING to this scheduler. Only such a proc is announced as a master; after
   * a restart, procs loaded from etcd are not, until they answer.
   */
  private readonly heard = new Set<string>();
  /** The busy-reply threshold each proc was given, so it is set once per proc. */
  private readonly busyThresholdSet = new Map<string, number>();

  constructor(
    private readonly store: FleetStore,
    private readonly links: RedisLinks,
    private readonly log: Logger,
    /** Asks the framework to run a failover of the instance (it serializes per instance). */
    private readonly request: (name: string, masterId: string, cause: string) => void,
    readonly lag: LoopLag = new LoopLag(),
    /**
     * Whether the agent answered its heartbeats lately. Only the master's agent moves the
     * replicas' offsets ten times a second (its replication heartbeat), so their still offsets
     * prove the master silent only while that agent is known alive; otherwise the vote rests on
     * `master_last_io_seconds_ago` alone.
     */
    private readonly agentAlive: (agentId: string) => boolean = () => false,
  ) {}

  start(): void {
    this.lag.start();
    this.timer = setInterval(() => this.tick(), PING_EVERY_MS);
    this.sampleTimer = setInterval(() => this.sampleSilentMasters(), SAMPLE_EVERY_MS);
  }

  stop(): void {
    this.lag.stop();
    clearInterval(this.timer);
    clearInterval(this.sampleTimer);
    for (const t of this.retryTimers.values()) clearTimeout(t);
  }

  healthOf(procId: string): MasterHealth | undefined {
    return this.health.get(procId);
  }

  /** Whether this scheduler has itself seen the proc alive (see `heard`). */
  hasHeard(procId: string): boolean {
    return this.heard.has(procId);
  }

  /** The proc's agent reported it RUNNING to this scheduler. */
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
    const named = inst.procs.find((x) => x.id === inst.mname);
    if (!named || !this.heard.has(named.id)) return undefined;
    if (named.state === ProcState.Running || !isLive(named)) return named;
    return undefined;
  }

  private emitEvent(channel: string, message: string): void {
    this.events.emit('event', channel, message);
  }

  // ---- detection ----

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
        void this.applyBusyThreshold(inst, p);
      }
      void this.ping(inst, master);
    }
    for (const id of this.health.keys()) if (!watched.has(id)) this.health.delete(id);
    for (const id of this.busyThresholdSet.keys()) if (!watched.has(id)) this.busyThresholdSet.delete(id);
    this.silence.retain(watched);
    // A dead master stays "heard" while it is still named, for the window until its promotion.
    for (const id of this.heard) if (!remembered.has(id)) this.heard.delete(id);
    this.links.retain(watched);
  }

  /**
   * A tenant's script must answer -BUSY well before down-after, so the detector can tell a busy
   * master from a dead one and kill the script in time. redis.conf's default is 5 s; the
   * framework link sets it at run time (lua-time-limit is the name Redis 6.2 and 7 both know).
   */
  private async applyBusyThreshold(inst: Instance, proc: Proc): Promise<void> {
    const want = busyThresholdOf(inst);
    if (this.busyThresholdSet.get(proc.id) === want || proc.state !== ProcState.Running) return;
    this.busyThresholdSet.set(proc.id, want);
    const { reply } = await this.links.probe(proc, 'CONFIG', 'SET', 'lua-time-limit', String(want));
    if (reply !== 'OK') this.busyThresholdSet.delete(proc.id);
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
    if (error?.startsWith('BUSY')) await this.killScript(inst, master, h);
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
      void this.sampleReplicas(inst, master).finally(() => this.sampling.delete(master.id));
    }
  }

  /**
   * Feeds one INFO of a replica into its offset track. `sentAt`/`receivedAt` are the scheduler's
   * clock around the call; the stats poller's once-a-second INFO comes in here too.
   */
  observeReplica(procId: string, info: Map<string, string>, sentAt: number, receivedAt: number): void {
    if (info.get('role') !== 'slave') return;
    const offset = replicaReadOffset(info);
    if (offset === undefined) return;
    this.silence.observe(procId, { master: `${info.get('master_host')}:${info.get('master_port')}`, offset, sentAt, receivedAt });
  }

  /** Reads the master's replicas' INFO replication, feeding their offset tracks; unreachable ones are left out. */
  private async sampleReplicas(inst: Instance, master: Proc): Promise<{ replica: Proc; info: Map<string, string> }[]> {
    const replicas = runningReplicas(inst, master);
    const views = await Promise.all(replicas.map(async (replica) => {
      const sentAt = Date.now();
      const text = await this.links.call(replica, 'INFO', 'replication');
      if (typeof text !== 'string') return undefined;
      const info = parseInfo(text);
      this.observeReplica(replica.id, info, sentAt, Date.now());
      return { replica, info };
    }));
    return views.filter((v): v is { replica: Proc; info: Map<string, string> } => v !== undefined);
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

  /**
   * The master is alive but held by a tenant's script (or function). Kill it once per busy spell,
   * as Sentinel does. A script that has already written cannot be killed (UNKILLABLE): the master
   * then stays without a valid reply, and once that lasts down-after and the replicas have lost
   * it too, it is failed over like a frozen master, since only SHUTDOWN NOSAVE can end it.
   */
  private async killScript(inst: Instance, master: Proc, h: MasterHealth): Promise<void> {
    if (h.scriptKillSent) return;
    h.scriptKillSent = true;
    const [script, fn] = await Promise.all([
      this.links.probe(master, 'SCRIPT', 'KILL'),
      this.links.probe(master, 'FUNCTION', 'KILL'),
    ]);
    const outcome = script.reply === 'OK' || fn.reply === 'OK' ? 'killed' : (script.error ?? fn.error ?? 'no answer');
    this.log.warn('master busy with a script; sent SCRIPT KILL and FUNCTION KILL', { instance: inst.name, proc: master.id, outcome });
  }

  /** Each reachable replica's vote with what it rests on, for the log line that acts on it. */
  private async ballots(inst: Instance, master: Proc, downAfter: number): Promise<Ballot[]> {
    const views = await this.sampleReplicas(inst, master);
    const address = `${master.ip}:${master.port}`;
    const heartbeating = this.agentAlive(master.sid);
    return views.map(({ replica, info }) => {
      const silentMs = heartbeating ? this.silence.silenceMs(replica.id, address) : 0;
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
    const votes = (await this.sampleReplicas(inst, master)).map(({ info }) => replicaSaysMasterDown(info, master, downAfter));
    // No replica answered in time (a loaded host, or the scheduler cut off from all of them):
    // nobody has said the master is gone, so do not fail it over now; the caller looks again.
    if (votes.length === 0) return true;
    return votes.some((down) => !down);
  }

  // ---- promotion ----

  /** Live replicas the scheduler can reach, best first; `why` says what ruled the others out. */
  async rank(inst: Instance, oldMasterId: string): Promise<{ candidates: Candidate[]; why: string[] }> {
    const replicas = runningReplicas(inst, { id: oldMasterId });
    const why: string[] = [];
    const candidates: Candidate[] = [];
    await Promise.all(replicas.map(async (proc) => {
      const text = await this.links.call(proc, 'INFO', 'replication');
      if (typeof text !== 'string') {
        why.push(`${proc.id} unreachable`);
        return;
      }
      this.heard.add(proc.id);
      const info = parseInfo(text);
      const priority = Number(info.get('slave_priority') ?? 100);
      const linkDownSeconds = info.get('master_link_status') === 'up' ? 0 : Number(info.get('master_link_down_since_seconds') ?? 0);
      if (priority === 0) {
        why.push(`${proc.id} has priority 0`);
        return;
      }
      if (info.get('role') !== 'slave') {
        why.push(`${proc.id} is not a replica`);
        return;
      }
      if (linkDownSeconds > MAX_LINK_DOWN_SECONDS) {
        why.push(`${proc.id} lost its master ${linkDownSeconds} s ago`);
        return;
      }
      const offset = Math.max(Number(info.get('slave_repl_offset') ?? 0), Number(info.get('master_repl_offset') ?? 0));
      candidates.push({ proc, priority, offset, linkDownSeconds });
    }));
    candidates.sort(compareCandidates);
    return { candidates, why };
  }

  /**
   * Promotes the best replica of `inst` in place of `oldMasterId`. Returns false when it did not
   * (too soon after the last failover, or no eligible replica; the instance's Reason says which).
   */
  async promote(name: string, oldMasterId: string, cause: string): Promise<boolean> {
    const inst = this.store.instance(name);
    if (!inst || inst.mname !== oldMasterId || !isServing(inst)) return false;
    const old = inst.procs.find((p) => p.id === oldMasterId);
    const timeout = failoverTimeoutOf(inst);
    const since = Date.now() - (this.lastFailover.get(name) ?? 0);
    if (since < timeout) {
      this.retryLater(name, oldMasterId, cause, timeout - since);
      return false;
    }
    const health = this.health.get(oldMasterId);
    if (health) health.failingOver = true;
    const oldAddr = old ? `${old.ip} ${old.port}` : '? 0';
    this.emitEvent('+try-failover', `master ${name} ${oldAddr}`);
    const { candidates, why } = await this.rank(inst, oldMasterId);
    if (candidates.length === 0) {
      const reason = `master lost (${cause}); no eligible replica to promote${why.length ? `: ${why.join('; ')}` : ''}`;
      this.log.error('failover impossible', { instance: name, proc: oldMasterId, reason });
      this.emitEvent('-failover-abort-no-good-slave', `master ${name} ${oldAddr}`);
      await this.store.setInstance(name, { Reason: reason, Status: InstanceStatus.Degraded }, inst.status);
      if (health) health.failingOver = false;
      return false;
    }
    const chosen = candidates[0].proc;
    const others = inst.procs.filter((p) => isLive(p) && p.id !== chosen.id && p.id !== oldMasterId && p.type === ProcType.Replica);
    const epoch = Number(inst.epoch) + 1;
    this.emitEvent('+selected-slave', `slave ${chosen.ip}:${chosen.port} ${chosen.ip} ${chosen.port} @ ${name} ${oldAddr}`);
    this.log.warn('failover', { instance: name, from: oldMasterId, fromAddress: old ? `${old.ip}:${old.port}` : '', to: chosen.id, toAddress: `${chosen.ip}:${chosen.port}`, epoch, cause, offset: candidates[0].offset, candidates: candidates.length });
    const written = await this.store.failover(name, {
      expectStatus: inst.status,
      epoch,
      newMaster: chosen,
      repoint: others,
      fence: old && isLive(old) ? old : undefined,
      reason: `failed over to ${chosen.ip}:${chosen.port} at epoch ${epoch} (${cause})`,
    });
    if (!written) {
      if (health) health.failingOver = false;
      this.log.warn('failover dropped: the instance changed meanwhile', { instance: name, proc: oldMasterId });
      return false;
    }
    this.lastFailover.set(name, Date.now());
    await this.awaitRole(chosen, 'master', 3000);
    this.emitEvent('+promoted-slave', `slave ${chosen.ip}:${chosen.port} ${chosen.ip} ${chosen.port} @ ${name} ${oldAddr}`);
    this.emitEvent('+failover-end', `master ${name} ${oldAddr}`);
    this.emitEvent('+switch-master', `${name} ${oldAddr} ${chosen.ip} ${chosen.port}`);
    for (const o of others) this.emitEvent('+slave', `slave ${o.ip}:${o.port} ${o.ip} ${o.port} @ ${name} ${chosen.ip} ${chosen.port}`);
    return true;
  }

  private async awaitRole(proc: Proc, role: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const reply = await this.links.call(proc, 'ROLE');
      if (Array.isArray(reply) && reply[0] === role) return;
      await new Promise((r) => setTimeout(r, 5));
    }
    this.log.warn('promoted proc did not report the master role in time', { instance: proc.instance, proc: proc.id });
  }

  private retryLater(name: string, oldMasterId: string, cause: string, delayMs: number): void {
    if (this.retryTimers.has(name)) return;
    this.log.warn('failover held back by the failover timeout', { instance: name, proc: oldMasterId, retryInMs: delayMs });
    this.retryTimers.set(name, setTimeout(() => {
      this.retryTimers.delete(name);
      this.request(name, oldMasterId, cause);
    }, delayMs + 10));
  }
}

export function compareCandidates(a: Candidate, b: Candidate): number {
  return a.priority - b.priority || b.offset - a.offset || a.proc.id.localeCompare(b.proc.id);
}
