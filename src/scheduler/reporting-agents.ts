/** Agents report with each heartbeat answer: this often at the default 1 s heartbeat. */
export const REPORT_EVERY_MS = 1000;
/**
 * An agent counts as reporting until its last report is this many intervals old: two missed in a
 * row. A late report only brings its masters back to the scheduler's 200 ms PINGs for a while, so
 * this errs on the side of the scheduler doing more, yet not so tight that a briefly loaded
 * scheduler turns every master to 200 ms PINGs at once.
 */
const LAPSE_INTERVALS = 3;
/** When agents report every `everyMs` (their heartbeat interval). */
export function reportLapseMs(everyMs: number): number {
  return LAPSE_INTERVALS * everyMs;
}
export const REPORT_LAPSE_MS = reportLapseMs(REPORT_EVERY_MS);

/**
 * Which agents' REPORTs arrive. The failure detector lets such an agent's own PINGs watch its
 * masters (see PingPlan); an agent that falls silent (down, cut off, stalled), or one too old to
 * report, is never in here, and its masters get the scheduler's own PINGs every 200 ms.
 */
export class ReportingAgents {
  private readonly lastReport = new Map<string, number>();

  constructor(private readonly lapseMs = REPORT_LAPSE_MS, private readonly now: () => number = Date.now) {}

  /** An authenticated REPORT of the agent was read. */
  heard(agentId: string): void {
    this.lastReport.set(agentId, this.now());
  }

  reporting(agentId: string): boolean {
    const at = this.lastReport.get(agentId);
    return at !== undefined && this.now() - at <= this.lapseMs;
  }

  /** The agent is gone from the fleet. */
  forget(agentId: string): void {
    this.lastReport.delete(agentId);
  }
}
