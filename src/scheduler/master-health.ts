/** What the failure detector knows of one master. */
export interface MasterHealth {
  procId: string;
  /** The instance the proc is master of. */
  instance: string;
  /** When the scheduler last sent it a PING (0: never). */
  lastPingSent: number;
  lastOk: number;
  /**
   * When its silence began: the oldest PING still without a valid reply, the scheduler's own or
   * (from its report) its agent's, whichever began first (0: none pending).
   */
  pendingSince: number;
  /** The scheduler's own oldest PING still without a valid reply (0: none). */
  ownPendingSince: number;
  /** On the scheduler's clock, when the silence its agent reports began (0: the agent says it answers). */
  agentSilentSince: number;
  /** Its agent says it answers -BUSY. */
  agentBusy: boolean;
  sdown: boolean;
  odown: boolean;
  failingOver: boolean;
  /** SCRIPT KILL / FUNCTION KILL went out in this busy spell (cleared by the next valid reply). */
  scriptKillSent: boolean;
  /**
   * The scheduler's last PING has not come back yet (a reply, an error or its timeout): no other
   * is sent meanwhile. The silence counts from the first unanswered PING anyway; a scheduler
   * restarted on 3,334 masters, their links still connecting, queued 16,000 PINGs a second
   * behind the connects (BENCHMARKS, scale, fourth round).
   */
  pingInFlight: boolean;
}

/**
 * What a master's agent says of it from its own local PINGs (executor/local-probe.ts): silent
 * this long (0: it answers), and whether it answers -BUSY.
 */
export interface AgentProcReport {
  silentMs: number;
  busy: boolean;
}

export function newHealth(procId: string, instance: string, now: number): MasterHealth {
  return {
    procId, instance, lastPingSent: 0, lastOk: now, pendingSince: 0, ownPendingSince: 0, agentSilentSince: 0,
    agentBusy: false, sdown: false, odown: false, failingOver: false, scriptKillSent: false, pingInFlight: false,
  };
}

/** The earlier of two start times, 0 standing for none. */
function earliest(a: number, b: number): number {
  if (a === 0) return b;
  if (b === 0) return a;
  return Math.min(a, b);
}

function refreshPending(h: MasterHealth): void {
  h.pendingSince = earliest(h.ownPendingSince, h.agentSilentSince);
}

/** The scheduler sent the master a PING at `now`. */
export function pingSent(h: MasterHealth, now: number): void {
  h.lastPingSent = now;
  if (h.ownPendingSince === 0) h.ownPendingSince = now;
  refreshPending(h);
}

/** The master gave the scheduler a valid reply: nothing is pending, whatever its agent said before. */
export function validReply(h: MasterHealth, now: number): void {
  h.lastOk = now;
  h.ownPendingSince = 0;
  h.agentSilentSince = 0;
  h.agentBusy = false;
  h.pendingSince = 0;
  h.scriptKillSent = false;
}

/**
 * Its agent reports it silent or busy. The report gives a duration, not a time: the silence began
 * `silentMs` before the report was read, on the scheduler's clock, so the two hosts' clocks need
 * not agree. A report only ever moves the start of the silence earlier than the scheduler's own.
 */
export function agentSaysSilent(h: MasterHealth, report: AgentProcReport, now: number): void {
  h.agentSilentSince = now - report.silentMs;
  h.agentBusy = report.busy;
  refreshPending(h);
}

/**
 * Its agent reports it answering. That clears what the agent said, not the scheduler's own PING
 * still unanswered (a partition between the scheduler and the master, which the agent cannot
 * see). Returns true when nothing is pending any more.
 */
export function agentSaysAnswering(h: MasterHealth): boolean {
  h.agentSilentSince = 0;
  h.agentBusy = false;
  refreshPending(h);
  return h.pendingSince === 0;
}

/** The `max` entries silent longest (smallest `since`), or all of them when there are no more than `max`. Pure. */
export function longestSilentFirst<T extends { since: number }>(entries: T[], max: number): T[] {
  if (entries.length <= max) return entries;
  return [...entries].sort((a, b) => a.since - b.since).slice(0, max);
}

/**
 * Masters whose replicas are sampled in one 100 ms round (the failure detector's SAMPLE_EVERY_MS)
 * at most, the longest silent first: on a scheduler short of CPU every PONG is late, and thousands
 * of healthy masters' replica INFOs deepened the shortage (issue 11). Votes once subjectively down
 * have a budget of their own (MAX_JUDGED_PER_ROUND).
 */
export const MAX_SAMPLED_PER_ROUND = 64;
/**
 * Subjectively down masters whose replicas are asked again in one round at most, in turns (see
 * Rotation); each one's own PINGs still judge it too. In a mass outage (33,334 masters silent at
 * once) asking for every one's votes every 100 ms was the top of a new leader's profile.
 */
export const MAX_JUDGED_PER_ROUND = 200;

/** Takes turns over lists longer than `max`: each call gives the next `max` entries, wrapping. */
export class Rotation {
  private at = 0;

  next<T>(entries: T[], max: number): T[] {
    if (entries.length <= max) return entries;
    const from = this.at % entries.length;
    this.at = from + max;
    const out = entries.slice(from, from + max);
    return out.length === max ? out : out.concat(entries.slice(0, max - out.length));
  }
}

/**
 * How long the scheduler's own PING must have gone unanswered (or down-after, if shorter) before
 * a silence its agent reports makes the master subjectively down: the agent's word alone (its
 * own loop stalled, a stale report) never fails a master over that answers the scheduler.
 */
export const CONFIRM_MS = 200;

/**
 * Whether the master is subjectively down: silent for down-after, counted from the oldest PING
 * unanswered (its agent's included), and the scheduler's own PING unanswered for CONFIRM_MS (or
 * down-after, if shorter). Without reports the two are one PING, so this is Sentinel's rule.
 * `stalledSince(t)`: how long the scheduler's own event loop was stalled since t, not counted.
 */
export function isSilentFor(h: MasterHealth, downAfter: number, stalledSince: (since: number) => number, now: number): boolean {
  if (h.pendingSince === 0 || h.ownPendingSince === 0) return false;
  const silence = (since: number): number => now - since - stalledSince(since);
  if (silence(h.pendingSince) < downAfter) return false;
  return silence(h.ownPendingSince) >= Math.min(downAfter, CONFIRM_MS);
}
