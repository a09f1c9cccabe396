import { EventEmitter } from 'node:events';
import { parseInfo } from '../executor/redis-config.js';
import type { FleetStore } from '../store/fleet-store.js';
import { isLive, type Instance, type Proc } from '../store/model.js';
import type { Logger } from '../logger.js';
import type { RedisLinks } from './redis-links.js';

/** The master an instance has now: the Mname proc while it runs. */
export function currentMaster(inst: Instance): Proc | undefined {
  const p = inst.procs.find((x) => x.id === inst.mname);
  return p && p.state === 'RUNNING' ? p : undefined;
}

/**
 * The master clients are told about (Sentinel endpoint and GET /v1/STATUS alike): the Mname proc
 * while it runs, and, as Redis Sentinel does, still the old one between its death and the
 * promotion that replaces it, so a client asking in that window is not told "no such master".
 */
export function announcedMaster(inst: Instance): Proc | undefined {
  if (inst.status !== 'RUNNING' && inst.status !== 'DEGRADED') return currentMaster(inst);
  return inst.procs.find((x) => x.id === inst.mname);
}

/** What the monitor knows of one master. */
export interface MasterHealth {
  procId: string;
  lastPingSent: number;
  lastOk: number;
  /** When the oldest PING still without a valid reply was sent (0: none pending). */
  pendingSince: number;
  sdown: boolean;
  odown: boolean;
  failingOver: boolean;
}

export interface Candidate {
  proc: Proc;
  priority: number;
  offset: number;
  linkDownSeconds: number;
}

const PING_EVERY_MS = 200;
/** A replica whose link has been down longer than this is too stale to promote. */
const MAX_LINK_DOWN_SECONDS = 60;

/**
 * Failure detection and promotion.
 *
 * Detection: every master is PINGed every 200 ms over the scheduler's own link. No valid reply
 * for the instance's down-after (DownAfter, default 1000 ms) makes it subjectively down; it is
 * objectively down when every replica the scheduler can reach says its own link to the master
 * is down (master_link_status:down, or no traffic from the master for down-after). When no
 * replica can be reached either, the scheduler is the one cut off, and it does nothing.
 * A proc that dies outright (TASK_FAILED / LOST) skips all that: the framework calls
 * `promote` at once.
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
  private checking = new Set<string>();

  constructor(
    private readonly store: FleetStore,
    private readonly links: RedisLinks,
    private readonly log: Logger,
    /** Asks the framework to run a failover of the instance (it serializes per instance). */
    private readonly request: (name: string, masterId: string, cause: string) => void,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.tick(), PING_EVERY_MS);
  }

  stop(): void {
    clearInterval(this.timer);
    for (const t of this.retryTimers.values()) clearTimeout(t);
  }

  healthOf(procId: string): MasterHealth | undefined {
    return this.health.get(procId);
  }

  private emitEvent(channel: string, message: string): void {
    this.events.emit('event', channel, message);
  }

  // ---- detection ----

  private tick(): void {
    const watched = new Set<string>();
    for (const inst of this.store.instances()) {
      if (inst.status !== 'RUNNING' && inst.status !== 'DEGRADED') continue;
      const master = currentMaster(inst);
      if (!master) continue;
      watched.add(master.id);
      // Keep a link open to every replica too, so a failover never waits for a connection.
      for (const p of inst.procs) {
        if (!isLive(p)) continue;
        watched.add(p.id);
        this.links.get(p);
      }
      void this.ping(inst, master);
    }
    for (const id of this.health.keys()) if (!watched.has(id)) this.health.delete(id);
    this.links.retain(watched);
  }

  private async ping(inst: Instance, master: Proc): Promise<void> {
    const now = Date.now();
    let h = this.health.get(master.id);
    if (!h) {
      h = { procId: master.id, lastPingSent: now, lastOk: now, pendingSince: 0, sdown: false, odown: false, failingOver: false };
      this.health.set(master.id, h);
    }
    h.lastPingSent = now;
    if (h.pendingSince === 0) h.pendingSince = now;
    const reply = await this.links.call(master, 'PING');
    if (reply === 'PONG') {
      h.lastOk = Date.now();
      h.pendingSince = 0;
      if (h.sdown) {
        h.sdown = false;
        h.odown = false;
        this.emitEvent('-sdown', `master ${inst.name} ${master.ip} ${master.port}`);
      }
      return;
    }
    // As Sentinel counts it: down once the oldest unanswered PING is down-after old.
    const downAfter = downAfterOf(inst);
    if (h.pendingSince === 0 || Date.now() - h.pendingSince < downAfter || h.failingOver) return;
    if (!h.sdown) {
      h.sdown = true;
      this.log.warn('master subjectively down', { instance: inst.name, proc: master.id, downAfterMs: downAfter });
      this.emitEvent('+sdown', `master ${inst.name} ${master.ip} ${master.port}`);
    }
    if (this.checking.has(master.id)) return;
    this.checking.add(master.id);
    try {
      await this.checkObjectivelyDown(inst, master, h, downAfter);
    } finally {
      this.checking.delete(master.id);
    }
  }

  private async checkObjectivelyDown(inst: Instance, master: Proc, h: MasterHealth, downAfter: number): Promise<void> {
    const replicas = inst.procs.filter((p) => p.type === 'S' && p.state === 'RUNNING' && p.id !== master.id);
    if (replicas.length === 0) return;
    const views = await Promise.all(replicas.map((r) => this.links.call(r, 'INFO', 'replication')));
    const reachable = views.filter((v): v is string => typeof v === 'string').map(parseInfo);
    if (reachable.length === 0) {
      this.log.warn('master and its replicas are all unreachable from the scheduler; not acting', { instance: inst.name, proc: master.id });
      return;
    }
    const agree = reachable.every((info) => {
      if (info.get('role') !== 'slave') return true;
      if (info.get('master_link_status') !== 'up') return true;
      return Number(info.get('master_last_io_seconds_ago') ?? 0) * 1000 >= downAfter;
    });
    if (!agree) return;
    if (!h.odown) {
      h.odown = true;
      this.log.warn('master objectively down', { instance: inst.name, proc: master.id, replicasAgreeing: reachable.length });
      this.emitEvent('+odown', `master ${inst.name} ${master.ip} ${master.port} #quorum ${reachable.length}/${reachable.length}`);
    }
    this.request(inst.name, master.id, 'master objectively down');
  }

  // ---- promotion ----

  /** Live replicas the scheduler can reach, best first; `why` says what ruled the others out. */
  async rank(inst: Instance, oldMasterId: string): Promise<{ candidates: Candidate[]; why: string[] }> {
    const replicas = inst.procs.filter((p) => p.id !== oldMasterId && p.type === 'S' && p.state === 'RUNNING');
    const why: string[] = [];
    const candidates: Candidate[] = [];
    await Promise.all(replicas.map(async (proc) => {
      const text = await this.links.call(proc, 'INFO', 'replication');
      if (typeof text !== 'string') {
        why.push(`${proc.id} unreachable`);
        return;
      }
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
    if (!inst || inst.mname !== oldMasterId || (inst.status !== 'RUNNING' && inst.status !== 'DEGRADED')) return false;
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
      await this.store.setInstance(name, { Reason: reason, Status: 'DEGRADED' }, inst.status);
      if (health) health.failingOver = false;
      return false;
    }
    const chosen = candidates[0].proc;
    const others = inst.procs.filter((p) => isLive(p) && p.id !== chosen.id && p.id !== oldMasterId && p.type === 'S');
    const epoch = Number(inst.epoch) + 1;
    this.emitEvent('+selected-slave', `slave ${chosen.ip}:${chosen.port} ${chosen.ip} ${chosen.port} @ ${name} ${oldAddr}`);
    this.log.warn('failover', { instance: name, from: oldMasterId, to: chosen.id, epoch, cause, offset: candidates[0].offset, candidates: candidates.length });
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

export function downAfterOf(inst: Instance): number {
  return inst.downAfterMs > 0 ? inst.downAfterMs : 1000;
}

export function failoverTimeoutOf(inst: Instance): number {
  return inst.failoverTimeoutMs > 0 ? inst.failoverTimeoutMs : 3 * downAfterOf(inst);
}
