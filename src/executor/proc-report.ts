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
 * An agent's REPORT calls, within its current session. Nothing is sent while the agent is not
 * subscribed, and nothing is retried: the next second's REPORT supersedes a lost one, and the
 * scheduler reads INFO itself from a proc that has not been reported for a few seconds.
 */
export class ProcReporter {
  private roundInFlight = false;

  constructor(private readonly link: ReportLink) {}

  /**
   * The stats round's REPORT. While the previous round's is still unanswered (a scheduler that is
   * behind) this one is dropped rather than sent beside it: queued REPORTs would only add to the
   * scheduler's backlog, and carry older figures than the next round's.
   */
  round(procs: ProcReport[]): void {
    if (this.roundInFlight) return;
    const sent = this.send(procs);
    if (!sent) return;
    this.roundInFlight = true;
    void sent.finally(() => { this.roundInFlight = false; });
  }

  /** A REPORT now, whatever is in flight: the agent found a proc silent and the scheduler should hear at once. */
  now(procs: ProcReport[]): void {
    void this.send(procs);
  }

  /** One REPORT call; undefined when there is no session or nothing to say. */
  private send(procs: ProcReport[]): Promise<void> | undefined {
    if (!this.link.subscribed || procs.length === 0) return undefined;
    return this.link.send({ type: pb.Call.Type.REPORT, report: { procs } });
  }
}
