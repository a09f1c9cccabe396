import type { redfleet } from '../proto/redfleet.js';
import type { ProcStats } from '../domain/model.js';
import type { Logger } from '../logger.js';

/** What an agent's REPORT says of a proc's health, beyond its stats. */
export interface ReportedHealth {
  /** How long the agent's own PING of the proc has gone unanswered, in ms (0: it answers). */
  silentMs: number;
  /** The proc answers -BUSY (a long script). */
  busy: boolean;
}

/**
 * Called with every REPORT entry the scheduler accepts, for the failure detector to take the
 * agent's view of its procs into account. The default does nothing.
 */
export type ProcReportHook = (agentId: string, procId: string, health: ReportedHealth) => void;

/** What AgentReports needs of the rest of the scheduler. */
export interface ReportDeps {
  /** The agent the store places a proc on (its SID); undefined for a proc it does not know. */
  procAgent(procId: string): string | undefined;
  /** Overlays every-second stats in the cache (FleetCache.overlayStats). */
  overlayStats(procId: string, stats: ProcStats): void;
  onProcReport?: ProcReportHook;
}

/**
 * A proc reported within its agents' report interval plus this is served from its agent's
 * reports: the StatsPoller neither reads its INFO nor drops its stats. With the default 1 s
 * heartbeat (each answer carries the figures) this allows one lost report.
 */
const FRESH_SLACK_MS = 1500;
/** How long a report stays fresh when agents report every `everyMs` (their heartbeat interval). */
export function reportFreshMs(everyMs: number): number {
  return everyMs + FRESH_SLACK_MS;
}
/** At the default 1 s heartbeat. */
export const REPORT_FRESH_MS = reportFreshMs(1000);
/** Report times older than this are forgotten (procs that ended, agents that left). */
const FORGET_MS = 60_000;

/**
 * The agents' REPORT calls: each one's procs' stats go into the cache (so the API, /v1/STATUS and
 * the Sentinel view are a second or two old without an etcd write), and each entry to the
 * `onProcReport` hook. Only the reporting agent's own procs are taken: an entry naming another
 * agent's proc, or an unknown one, or carrying stats that do not parse, is skipped.
 */
export class AgentReports {
  /** When each agent last sent a REPORT, and when each proc was last reported (ms). */
  private readonly agentAt = new Map<string, number>();
  private readonly procAt = new Map<string, number>();
  private readonly onProcReport: ProcReportHook;

  /** @param freshMs see reportFreshMs */
  constructor(private readonly deps: ReportDeps, private readonly log: Logger, private readonly freshMs = REPORT_FRESH_MS) {
    this.onProcReport = deps.onProcReport ?? (() => undefined);
  }

  /** A report (a heartbeat answer's, or a REPORT call's) within `agentId`'s session; skipped entries are logged once for the call. */
  accept(agentId: string, report: redfleet.v1.IReport, now = Date.now()): void {
    this.agentAt.set(agentId, now);
    const foreign: string[] = [];
    let unparsed = 0;
    for (const entry of report.procs ?? []) {
      const procId = entry.task_id?.value ?? '';
      const owner = this.deps.procAgent(procId);
      if (owner !== agentId) {
        if (owner !== undefined) foreign.push(procId);
        continue;
      }
      const stats = entry.stats ? parseStats(entry.stats) : undefined;
      if (entry.stats && !stats) {
        unparsed += 1;
        continue;
      }
      this.procAt.set(procId, now);
      if (stats) this.deps.overlayStats(procId, stats);
      this.onProcReport(agentId, procId, { silentMs: entry.silent_ms ?? 0, busy: entry.busy ?? false });
    }
    if (foreign.length > 0) this.log.warn('report entries refused: the procs belong to another agent', { agent: agentId, count: foreign.length, procs: foreign.slice(0, 5).join(' ').slice(0, 400) });
    if (unparsed > 0) this.log.warn('report entries skipped: their stats are not Stats JSON', { agent: agentId, count: unparsed });
  }

  /** When the agent last sent a REPORT (ms since the epoch); undefined if it has not in this term. */
  lastReportAt(agentId: string): number | undefined {
    return this.agentAt.get(agentId);
  }

  /** Whether the proc's agent reported it within the fresh window (see reportFreshMs). */
  reported(procId: string, now = Date.now()): boolean {
    return now - (this.procAt.get(procId) ?? -Infinity) <= this.freshMs;
  }

  /** Forgets report times long past (the StatsPoller calls it every round). */
  sweep(now = Date.now()): void {
    for (const map of [this.agentAt, this.procAt]) {
      for (const [id, at] of map) if (now - at > FORGET_MS) map.delete(id);
    }
  }
}

/**
 * Stats JSON from a REPORT, checked as far as readers rely on it: an object with numeric
 * figures, a role and a parseable updatedAt. Anything else is undefined. Pure.
 */
export function parseStats(text: string): ProcStats | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const s = value as Record<string, unknown>;
  for (const field of ['uptime', 'usedMemory', 'clients', 'replOffset']) {
    if (typeof s[field] !== 'number' || !Number.isFinite(s[field])) return undefined;
  }
  if (typeof s.role !== 'string' || typeof s.updatedAt !== 'string') return undefined;
  const at = Date.parse(s.updatedAt);
  if (Number.isNaN(at)) return undefined;
  // One spelling of the time: the cache keeps the newer of two stats by comparing these strings.
  return { ...s, updatedAt: new Date(at).toISOString() } as unknown as ProcStats;
}
