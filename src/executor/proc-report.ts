import { pb } from '../proto/messages.js';
import type { redfleet } from '../proto/redfleet.js';

/** One proc in a REPORT: its Stats JSON and, from the agent's failure detection, silent_ms and busy. */
export type ProcReport = redfleet.v1.IProcReport;

/** Where a REPORT goes: the agent's session with the scheduler (a Subscription is one). */
export interface ReportLink {
  readonly subscribed: boolean;
  send(call: redfleet.v1.ICall): Promise<void>;
}

/**
 * An agent's reports of its procs to the scheduler. The stats round (every second) only keeps its
 * latest figures here: they travel in the agent's next heartbeat answer (`take`), one call per
 * agent per heartbeat interval rather than a REPORT call beside every heartbeat (issue 11: at
 * 1,000 agents the calls and their answers were a third of the scheduler's work). A proc that the
 * agent finds silent or busy goes at once, in a REPORT call of its own (`now`). Nothing is
 * retried: the next round supersedes a lost one, and the scheduler reads INFO itself from a proc
 * that has not been reported for a few heartbeats.
 */
export class ProcReporter {
  private latest?: ProcReport[];

  constructor(private readonly link: ReportLink) {}

  /** The stats round's figures, kept for the next heartbeat answer (they replace any not yet taken). */
  round(procs: ProcReport[]): void {
    this.latest = procs.length > 0 ? procs : undefined;
  }

  /** The figures for a heartbeat answer, at most once each; undefined when there is nothing new. */
  take(): redfleet.v1.IReport | undefined {
    const procs = this.latest;
    this.latest = undefined;
    return procs ? { procs } : undefined;
  }

  /** A REPORT now: the agent found a proc silent or busy and the scheduler should hear at once. */
  now(procs: ProcReport[]): void {
    if (!this.link.subscribed || procs.length === 0) return;
    void this.link.send({ type: pb.Call.Type.REPORT, report: { procs } });
  }
}
