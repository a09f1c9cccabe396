import type { Instance, Proc, ProcStats } from '../domain/model.js';

/*
 * Every-second stats over the agents' etcd Stats. Agents write etcd only on a meaningful change
 * or at the stats heartbeat, while the API and the Sentinel view want figures a second or two
 * old: those come from the agents' REPORTs (or the scheduler's own INFO read) and live in memory
 * only. The newer of the two wins. Pure.
 */

/** The proc with `stats` when they are newer than its own; else the proc itself. */
export function withNewerStats(proc: Proc, stats: ProcStats | undefined): Proc {
  if (!stats || (proc.stats && proc.stats.updatedAt >= stats.updatedAt)) return proc;
  return { ...proc, stats, memUsed: stats.usedMemory };
}

/**
 * A built instance with one proc's stats overlaid: a copy in which only that proc is replaced.
 * Agents report every proc every second, each agent at its own moment: rebuilding the instance
 * from its keys (every proc's Stats JSON parsed again) for each report would cost the scheduler
 * more than the INFO reads the reports replace. `inst` itself is left as it is.
 */
export function withProcStats(inst: Instance, procId: string, stats: ProcStats): Instance {
  return { ...inst, procs: inst.procs.map((p) => (p.id === procId ? withNewerStats(p, stats) : p)) };
}
