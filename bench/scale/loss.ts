/**
 * bench/scale/loss: the loss of 1% of the agents, timed until every master they held is replaced,
 * with where that time went: when the scheduler called each master subjectively down and when it
 * wrote each failover (its log), when the API first showed each new master (polled), and what the
 * scheduler, the simulator and etcd spent meanwhile.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { LocalFleet } from '../../test/harness/local-fleet.js';
import type { SimAgents } from '../../test/harness/sim-agents.js';
import { parseJsonLog } from '../fleet-log.js';
import { percentile } from '../figures.js';
import { cpuPercent, procUsage, type ProcUsage } from './measure.js';

/** Instances polled at once while waiting, and the pause between rounds: light on the scheduler being measured. */
const POLL_CONCURRENCY = 8;
const POLL_GAP_MS = 50;

/** ms after the loss at which a stage was reached: the first instance, the median one and the last. */
export interface Stage {
  count: number;
  firstMs: number;
  p50Ms: number;
  lastMs: number;
}

export interface LossPhase {
  agents: string[];
  masters: number;
  recoveryMs: number;
  unrecovered: number;
  /** "master subjectively down", "failover" (written), the API showing the new master. */
  sdown: Stage;
  failover: Stage;
  replaced: Stage;
  impossible: number;
  schedulerCpuPercent: number;
  simCpuPercent: number;
}

interface MasterView {
  status: string;
  master: { id: string; agent: string } | null;
}

export function stageOf(msAfter: number[]): Stage {
  const sorted = [...msAfter].sort((a, b) => a - b);
  return { count: sorted.length, firstMs: sorted[0] ?? NaN, p50Ms: percentile(sorted, 50), lastMs: sorted[sorted.length - 1] ?? NaN };
}

/**
 * Loses 1% of the agents at once (at least one; the ones holding the most masters first, so the
 * figure is about masters) and times until every master they held has been replaced by a
 * master on another agent (bounded by `timeoutMs`). An agent is skipped when its loss, with the
 * ones already chosen, would take every proc of some instance: that is a total loss (the
 * instance restarts empty after the agent timeout), not the failover the figure is about.
 */
export async function loseOnePercent(fleet: LocalFleet, sim: SimAgents, agentCount: number, timeoutMs: number): Promise<LossPhase> {
  const chosen = await chooseAgents(sim, agentCount);
  const lost = new Set(chosen.map(([a]) => a));
  const pending = new Set(chosen.flatMap(([, m]) => m));
  const masters = pending.size;
  const replacedAt: number[] = [];
  const pids = [fleet.scheduler?.pid ?? 0, ...sim.pids].filter((pid) => pid > 0);
  const before = pids.map(procUsage);
  const t0 = Date.now();
  await sim.loseAgents([...lost]);
  while (pending.size > 0 && Date.now() - t0 < timeoutMs) {
    const names = [...pending];
    for (let i = 0; i < names.length; i += POLL_CONCURRENCY) {
      await Promise.all(names.slice(i, i + POLL_CONCURRENCY).map(async (name) => {
        const res = await fleet.api('GET', `/api/instances/${name}`).catch(() => undefined);
        const view = res?.json as MasterView | undefined;
        if (!view?.master || lost.has(view.master.agent)) return;
        pending.delete(name);
        replacedAt.push(Date.now() - t0);
      }));
    }
    if (pending.size > 0) await sleep(POLL_GAP_MS);
  }
  const recoveryMs = Date.now() - t0;
  const after = pids.map(procUsage);
  const cpu = (i: number): number => cpuPercent(before[i] as ProcUsage, after[i] as ProcUsage);
  const log = timeline(fleet.log('scheduler'), t0, new Set(chosen.flatMap(([, m]) => m)));
  return {
    agents: [...lost], masters, recoveryMs, unrecovered: pending.size,
    sdown: stageOf(log.sdown), failover: stageOf(log.failover), replaced: stageOf(replacedAt), impossible: log.impossible,
    schedulerCpuPercent: cpu(0), simCpuPercent: pids.slice(1).reduce((sum, _pid, i) => sum + cpu(i + 1), 0),
  };
}

/** The agents to lose, with the instances whose masters each holds. */
async function chooseAgents(sim: SimAgents, agentCount: number): Promise<[string, string[]][]> {
  const procs = await sim.procs();
  const mastersPer = new Map<string, string[]>();
  for (const p of procs) if (p.role === 'master') mastersPer.set(p.agent, [...(mastersPer.get(p.agent) ?? []), p.instance]);
  const agentsOf = new Map<string, string[]>();
  for (const p of procs) agentsOf.set(p.instance, [...(agentsOf.get(p.instance) ?? []), p.agent]);
  const lost = new Set<string>();
  const chosen: [string, string[]][] = [];
  for (const [agent, held] of [...mastersPer.entries()].sort((a, b) => b[1].length - a[1].length)) {
    if (chosen.length >= Math.max(1, Math.round(agentCount / 100))) break;
    const mine = new Set(procs.filter((p) => p.agent === agent).map((p) => p.instance));
    const survives = [...mine].every((name) => (agentsOf.get(name) ?? []).some((a) => a !== agent && !lost.has(a)));
    if (!survives) continue;
    lost.add(agent);
    chosen.push([agent, held]);
  }
  return chosen;
}

/** From the scheduler's log: ms after `t0` of each instance's first "+sdown" and first failover written. */
export function timeline(schedulerLog: string, t0: number, instances: Set<string>): { sdown: number[]; failover: number[]; impossible: number } {
  const sdown = new Map<string, number>();
  const failover = new Map<string, number>();
  let impossible = 0;
  for (const ev of parseJsonLog(schedulerLog)) {
    const name = typeof ev.instance === 'string' ? ev.instance : '';
    if (ev.t < t0 || !instances.has(name)) continue;
    if (ev.message === 'master subjectively down' && !sdown.has(name)) sdown.set(name, ev.t - t0);
    else if (ev.message === 'failover' && !failover.has(name)) failover.set(name, ev.t - t0);
    else if (ev.message === 'failover impossible') impossible++;
  }
  return { sdown: [...sdown.values()], failover: [...failover.values()], impossible };
}
