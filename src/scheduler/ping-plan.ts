import type { Instance, Proc, ProcStats } from '../domain/model.js';
import { downAfterOf, runningReplicas } from '../domain/rules.js';
import type { MasterHealth } from './master-health.js';
import { LAST_IO_MARGIN_MS } from './replica-vote.js';

/** The targeted cadence, as Sentinel PINGs a master it watches. */
export const PING_EVERY_MS = 200;
/** The sweep: a master its agent watches is still PINGed by the scheduler this often. */
export const SWEEP_EVERY_MS = 1000;
const SWEEP_TICKS = SWEEP_EVERY_MS / PING_EVERY_MS;

/** Why a master is PINGed every 200 ms rather than swept once a second. */
export type TargetReason = 'first' | 'agent-not-reporting' | 'silent' | 'replicas-lost-it';

/**
 * Who the scheduler PINGs, and how often. Its agent PINGs every master locally every 200 ms and
 * reports a silent or busy one at once (executor/local-probe.ts); so a master whose agent is
 * reporting and says it answers is only swept, once a second: that PING is what still catches a
 * partition between the scheduler (and the clients on its side) and the master, which its agent
 * cannot see. Every 200 ms (targeted) go the PINGs of a master
 * - not PINGed yet (so a new master is heard at once);
 * - whose agent is not reporting: its stream closed, or it is silent (down, cut off, stalled) or
 *   too old to report, and the scheduler is then the only one watching;
 * - with a PING unanswered, the scheduler's own or its agent's (reported silent or busy): its
 *   silence is measured, and confirmed, by the scheduler's own PINGs until it answers;
 * - whose replicas' stats say they lost it (link down, or no I/O clearly beyond down-after).
 *
 * Sweeps are spread over the five ticks of a second by a hash of the proc id, so 33,000 swept
 * masters cost 6,600 PINGs in each tick rather than 33,000 in one.
 */
export class PingPlan {
  private tickNo = 0;

  /** @param reporting whether the agent's reports arrive (see ReportingAgents) */
  constructor(private readonly reporting: (agentId: string) => boolean) {}

  /** Starts a new 200 ms tick. */
  nextTick(): void {
    this.tickNo++;
  }

  /** Whether the master is PINGed in this tick. */
  due(inst: Instance, master: Proc, h: MasterHealth): boolean {
    if (this.targetedBecause(inst, master, h) !== undefined) return true;
    return this.tickNo % SWEEP_TICKS === sweepSlot(master.id);
  }

  /** Why the master is PINGed every tick; undefined when the sweep is enough. */
  targetedBecause(inst: Instance, master: Proc, h: MasterHealth): TargetReason | undefined {
    if (h.lastPingSent === 0) return 'first';
    if (!this.reporting(master.sid)) return 'agent-not-reporting';
    if (h.pendingSince !== 0 || h.agentBusy) return 'silent';
    if (replicasLostMaster(inst, master)) return 'replicas-lost-it';
    return undefined;
  }
}

/** Which of the sweep's ticks a master is PINGed in: FNV-1a of its id, so stable across ticks. */
export function sweepSlot(procId: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < procId.length; i++) {
    hash ^= procId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % SWEEP_TICKS;
}

/**
 * Whether a replica's last stats (its agent's, or the scheduler's poll, in the cache) say it lost
 * its master: its link is down, or it heard nothing for clearly longer than down-after (the same
 * margin as its vote; see LAST_IO_MARGIN_MS). Stats that are not a replica's say nothing. Pure.
 */
export function replicaStatsSayDown(stats: ProcStats | undefined, downAfterMs: number): boolean {
  if (!stats || stats.role !== 'slave') return false;
  if (stats.masterLinkStatus !== 'up') return true;
  return (stats.lastIoSecondsAgo ?? 0) * 1000 >= downAfterMs + LAST_IO_MARGIN_MS;
}

/** Whether any running replica of the master says it lost it (see replicaStatsSayDown). */
export function replicasLostMaster(inst: Instance, master: Proc): boolean {
  const downAfter = downAfterOf(inst);
  return runningReplicas(inst, master).some((r) => replicaStatsSayDown(r.stats, downAfter));
}
