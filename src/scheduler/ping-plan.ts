import type { Instance, Proc, ProcStats } from '../domain/model.js';
import { downAfterOf, runningReplicas } from '../domain/rules.js';
import type { MasterHealth } from './master-health.js';
import { LAST_IO_MARGIN_MS } from './replica-vote.js';
import { slotOf } from './spread.js';

/** The targeted cadence, as Sentinel PINGs a master it watches. */
export const PING_EVERY_MS = 200;
/** The sweep: a master its agent watches is still PINGed by the scheduler this often ... */
export const SWEEP_EVERY_MS = 1000;
const SWEEP_TICKS = SWEEP_EVERY_MS / PING_EVERY_MS;
/**
 * ... while that is at most this many sweep PINGs a second; past it the sweep takes longer, so
 * its cost stays bounded: 3,334 masters are swept every 4 s, 33,000 every 33 s.
 * Each PING is a write and a read on its own socket, 40-60 us of a core on a 2-vCPU host: at
 * 1,000 agents / 10,000 procs the once-a-second sweep was a sixth of the scheduler's work and its
 * loop saturated (issue 11). What the sweep alone finds, a partition between the scheduler and a
 * master that its agent still hears, is then found within that period plus down-after; everything
 * else (an agent's report of silence, a silent or lost agent, replicas that lost their master) still
 * brings the master to targeted PINGs at once.
 */
export const SWEEP_PINGS_PER_SECOND = 1000;
/**
 * Targeted PINGs a second at most. Below it (every case but a mass outage) each targeted master is
 * PINGed every 200 ms. Past it, when most masters are targeted at once (a scheduler just started,
 * before its agents resubscribe; a partition of the scheduler; thousands of agents lost), the
 * targeted masters take turns, in slots by a hash of their id as the sweep does: the masters with
 * a PING unanswered (silent, busy) first, the others (not PINGed yet, agent not reporting, replicas
 * lost it) on what is left, and never on less than a fifth of it. At 33,334 masters whose agents
 * do not report, that is each every 6.8 s instead of 166,000 PINGs a second, which stalled a
 * leader's loop for seconds at a time and lost it its term (issue 11, bench:startup).
 */
export const TARGETED_PINGS_PER_SECOND = 5000;
const TARGETED_PER_TICK = (TARGETED_PINGS_PER_SECOND * PING_EVERY_MS) / 1000;

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
 * Sweeps are spread over the ticks of the sweep by a hash of the proc id, and the sweep is slower
 * past SWEEP_PINGS_PER_SECOND masters, so 33,000 swept masters cost 200 PINGs in each tick rather
 * than 33,000 in one.
 */
export class PingPlan {
  private tickNo = 0;
  /** Ticks in one sweep: SWEEP_TICKS, or a multiple of it past SWEEP_PINGS_PER_SECOND (see nextTick). */
  private sweepTicks = SWEEP_TICKS;
  /** Each master's sweep slot (see slotOf), for a sweep of `slotsFor` ticks. */
  private readonly slots = new Map<string, number>();
  private slotsFor = SWEEP_TICKS;
  /** Targeted masters this tick, by kind (counted by due), and last tick's, which set the turns. */
  private counted = { silent: 0, other: 0 };
  /** Ticks in one turn of the silent / the other targeted masters: 1 (every tick) up to the budget. */
  private turns = { silent: 1, other: 1 };
  /**
   * Targeted PINGs of each kind given in this tick: at most twice the tick's budget for each kind
   * (four times in all at worst, for one tick) whatever the turns say. The turns come from the
   * last tick's counts, and there is none on a scheduler's first tick: 33,334 masters PINGed at
   * once there opened as many links in one go, which held a new leader's loop for ~5 s, and each
   * new term did it again.
   */
  private given = { silent: 0, other: 0 };

  /** @param reporting whether the agent's reports arrive (see ReportingAgents) */
  constructor(private readonly reporting: (agentId: string) => boolean) {}

  /**
   * Starts a new 200 ms tick. `masters`: how many serving masters the last tick saw, which sets the
   * sweep's period: one second up to SWEEP_PINGS_PER_SECOND masters, whole seconds beyond.
   */
  nextTick(masters = 0): void {
    this.tickNo++;
    this.sweepTicks = SWEEP_TICKS * Math.max(1, Math.ceil(masters / SWEEP_PINGS_PER_SECOND));
    this.turns = targetedTurns(this.counted.silent, this.counted.other);
    this.counted = { silent: 0, other: 0 };
    this.given = { silent: 0, other: 0 };
  }

  /** How often a targeted master is PINGed now, in ms: 200 below TARGETED_PINGS_PER_SECOND. */
  get targetedMs(): { silent: number; other: number } {
    return { silent: this.turns.silent * PING_EVERY_MS, other: this.turns.other * PING_EVERY_MS };
  }

  /** How long one sweep takes now, in ms. */
  get sweepMs(): number {
    return this.sweepTicks * PING_EVERY_MS;
  }

  /**
   * Whether the master is PINGed in this tick: targeted (see targetedBecause), in its turn while
   * more are targeted than TARGETED_PINGS_PER_SECOND allows, or else in its sweep slot. The same
   * question as targetedBecause, cheapest first: this runs five times a second for every serving
   * master, and counts the targeted ones for the next tick's turns, so it is asked of each serving
   * master every tick, a PING in flight or not.
   */
  due(inst: Instance, master: Proc, h: MasterHealth): boolean {
    if (h.pendingSince !== 0 || h.agentBusy) return this.inTurn(master.id, 'silent', h.pingInFlight);
    if (h.lastPingSent === 0 || !this.reporting(master.sid) || replicasLostMaster(inst, master)) return this.inTurn(master.id, 'other', h.pingInFlight);
    return this.tickNo % this.sweepTicks === this.slotOf(master.id);
  }

  /**
   * Counts a targeted master of the kind; whether this is its turn, within the tick's cap for the
   * kind (see `given`). A master whose last PING is still out is counted but takes no place.
   */
  private inTurn(procId: string, kind: 'silent' | 'other', inFlight: boolean): boolean {
    this.counted[kind]++;
    const ticks = this.turns[kind];
    if (ticks !== 1 && this.tickNo % ticks !== sweepSlot(procId, ticks)) return false;
    if (inFlight || this.given[kind] >= 2 * TARGETED_PER_TICK) return false;
    this.given[kind]++;
    return true;
  }

  /** sweepSlot for the current sweep's length, kept per proc until that length changes. */
  private slotOf(procId: string): number {
    if (this.slotsFor !== this.sweepTicks) {
      this.slots.clear();
      this.slotsFor = this.sweepTicks;
    }
    let slot = this.slots.get(procId);
    if (slot === undefined) {
      slot = sweepSlot(procId, this.sweepTicks);
      this.slots.set(procId, slot);
    }
    return slot;
  }

  /** Forgets the slots of procs that are not masters any more (the failure detector's upkeep). */
  retain(procIds: Set<string>): void {
    for (const id of this.slots.keys()) if (!procIds.has(id)) this.slots.delete(id);
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

/**
 * Ticks in one turn of the silent and of the other targeted masters, from how many of each the
 * last tick counted (see TARGETED_PINGS_PER_SECOND). Pure.
 */
export function targetedTurns(silent: number, other: number): { silent: number; other: number } {
  const silentTicks = Math.max(1, Math.ceil(silent / TARGETED_PER_TICK));
  const left = Math.max(TARGETED_PER_TICK - silent / silentTicks, TARGETED_PER_TICK / 5);
  return { silent: silentTicks, other: Math.max(1, Math.ceil(other / left)) };
}

/** Which of the sweep's `ticks` ticks a master is PINGed in (see slotOf), so stable across ticks. */
export function sweepSlot(procId: string, ticks = SWEEP_TICKS): number {
  return slotOf(procId, ticks);
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
