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
 * Sends one REPORT call with `procs` within the current session. Nothing is sent while the agent
 * is not subscribed, and nothing is retried: the next second's REPORT supersedes a lost one, and
 * the scheduler reads INFO itself from a proc that has not been reported for a few seconds.
 */
export function sendReport(link: ReportLink, procs: ProcReport[]): void {
  if (!link.subscribed || procs.length === 0) return;
  void link.send({ type: pb.Call.Type.REPORT, report: { procs } });
}
