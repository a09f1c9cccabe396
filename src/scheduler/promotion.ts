import { setTimeout as sleep } from 'node:timers/promises';
import { parseInfo } from '../domain/redis-info.js';
import type { FleetStore } from '../store/fleet-store.js';
import { InstanceStatus, ProcType, type Instance, type Proc } from '../domain/model.js';
import { downAfterOf, failoverTimeoutOf, isLive, isServing, namedMaster, runningReplicas } from '../domain/rules.js';
import type { Logger } from '../logger.js';
import type { RedisLinks } from './redis-links.js';
import type { MasterHealth } from './master-health.js';
import type { FailoverRequest, FailureDetector, SentinelEmit } from './failure-detector.js';

export interface Candidate {
  proc: Proc;
  priority: number;
  offset: number;
  linkDownSeconds: number;
}

/**
 * A replica whose link has been down longer than this is too stale to promote, unless the master
 * has been known silent for longer (see maxLinkDownSeconds).
 */
const MAX_LINK_DOWN_SECONDS = 60;
/** How long a promoted replica has to report the master role before the failover ends anyway. */
const AWAIT_ROLE_MS = 3000;
/**
 * How often the promoted replica is asked for its ROLE meanwhile. Every 5 ms, 70 failovers at
 * once (an agent loss at 1,000 agents) asked 14,000 times a second, and the other replicas'
 * INFOs for the next failovers' choice then timed out ("failover impossible: unreachable").
 */
const ROLE_POLL_MS = 25;

/** Best candidate first: lowest priority number, then highest offset, then proc id. Pure. */
export function compareCandidates(a: Candidate, b: Candidate): number {
  return a.priority - b.priority || b.offset - a.offset || a.proc.id.localeCompare(b.proc.id);
}

/**
 * Promotion: ranks the replicas of a failed master, writes the failover (new master, re-pointed
 * replicas, fenced old master) in one etcd transaction, waits for the new master's role and
 * announces it. Events go out in Sentinel's words for the Sentinel-compatible endpoint.
 */
export class Promotion {
  private readonly lastFailover = new Map<string, number>();
  private readonly retryTimers = new Map<string, NodeJS.Timeout>();

  constructor(
    private readonly store: FleetStore,
    private readonly links: RedisLinks,
    private readonly log: Logger,
    private readonly detector: FailureDetector,
    private readonly request: FailoverRequest,
    private readonly emitEvent: SentinelEmit,
  ) {}

  stop(): void {
    for (const t of this.retryTimers.values()) clearTimeout(t);
  }

  /** Live replicas the scheduler can reach, best first; `why` says what ruled the others out. */
  async rank(inst: Instance, oldMasterId: string): Promise<{ candidates: Candidate[]; why: string[] }> {
    const replicas = runningReplicas(inst, { id: oldMasterId });
    const maxLinkDown = maxLinkDownSeconds(inst, this.detector.healthOf(oldMasterId), Date.now());
    const why: string[] = [];
    const candidates: Candidate[] = [];
    await Promise.all(replicas.map(async (proc) => {
      const text = await this.links.call(proc, 'INFO', 'replication');
      if (typeof text !== 'string') {
        why.push(`${proc.id} unreachable`);
        return;
      }
      this.detector.vouch(proc.id);
      const ruledOut = candidateOf(proc, parseInfo(text), maxLinkDown);
      if (typeof ruledOut === 'string') why.push(ruledOut);
      else candidates.push(ruledOut);
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
    const old = namedMaster(inst);
    const timeout = failoverTimeoutOf(inst);
    const since = Date.now() - (this.lastFailover.get(name) ?? 0);
    if (since < timeout) {
      this.retryLater(name, oldMasterId, cause, timeout - since);
      return false;
    }
    const health = this.detector.healthOf(oldMasterId);
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
      record: { at: new Date().toISOString(), epoch, cause, planned: false, from: oldMasterId, fromAddress: old ? `${old.ip}:${old.port}` : '', to: chosen.id, toAddress: `${chosen.ip}:${chosen.port}` },
    });
    if (!written) {
      if (health) health.failingOver = false;
      this.log.warn('failover dropped: the instance changed meanwhile', { instance: name, proc: oldMasterId });
      return false;
    }
    this.lastFailover.set(name, Date.now());
    await this.awaitRole(chosen, 'master', AWAIT_ROLE_MS);
    // Its busy-script threshold at once, not at the upkeep's next pass (replicas are not linked).
    const promoted = this.store.instance(name);
    if (promoted) void this.detector.busy.applyThreshold(promoted, chosen);
    this.announce(name, oldAddr, chosen, others);
    return true;
  }

  /** The failover is done: Sentinel's closing events, then each re-pointed replica. */
  private announce(name: string, oldAddr: string, chosen: Proc, others: Proc[]): void {
    this.emitEvent('+promoted-slave', `slave ${chosen.ip}:${chosen.port} ${chosen.ip} ${chosen.port} @ ${name} ${oldAddr}`);
    this.emitEvent('+failover-end', `master ${name} ${oldAddr}`);
    this.emitEvent('+switch-master', `${name} ${oldAddr} ${chosen.ip} ${chosen.port}`);
    for (const o of others) this.emitEvent('+slave', `slave ${o.ip}:${o.port} ${o.ip} ${o.port} @ ${name} ${chosen.ip} ${chosen.port}`);
  }

  private async awaitRole(proc: Proc, role: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const reply = await this.links.call(proc, 'ROLE');
      if (Array.isArray(reply) && reply[0] === role) return;
      await sleep(ROLE_POLL_MS);
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

/**
 * How long a replica's link to the master may have been down for it to be promoted: Sentinel's
 * rule, 10 x down-after beyond the time the master has been known silent (its silence began at
 * `pendingSince`), and never less than MAX_LINK_DOWN_SECONDS. A replica that lost its link when
 * the master went silent holds all the master acknowledged before then, however late the failover
 * comes; one that lost it long before holds too little. With a fixed limit alone, a failover held
 * up for a minute (replicas unreachable on a starved host) could never happen any more: 48 masters
 * of a 20,001-proc benchmark stayed unreplaced that way (docs/BENCHMARKS.md, scale, ninth round).
 * Pure.
 */
export function maxLinkDownSeconds(inst: Instance, health: Pick<MasterHealth, 'sdown' | 'odown' | 'pendingSince'> | undefined, now: number): number {
  const silentForMs = health && (health.sdown || health.odown) && health.pendingSince > 0 ? now - health.pendingSince : 0;
  return Math.max(MAX_LINK_DOWN_SECONDS, Math.floor((silentForMs + 10 * downAfterOf(inst)) / 1000));
}

/** The replica as a candidate from its INFO replication, or why it is not one. Pure. */
function candidateOf(proc: Proc, info: Map<string, string>, maxLinkDown: number): Candidate | string {
  const priority = Number(info.get('slave_priority') ?? 100);
  const linkDownSeconds = info.get('master_link_status') === 'up' ? 0 : Number(info.get('master_link_down_since_seconds') ?? 0);
  if (priority === 0) return `${proc.id} has priority 0`;
  if (info.get('role') !== 'slave') return `${proc.id} is not a replica`;
  if (linkDownSeconds > maxLinkDown) return `${proc.id} lost its master ${linkDownSeconds} s ago (at most ${maxLinkDown} s for this failover)`;
  const offset = Math.max(Number(info.get('slave_repl_offset') ?? 0), Number(info.get('master_repl_offset') ?? 0));
  return { proc, priority, offset, linkDownSeconds };
}
