/**
 * bench/create-latency/phases: where the RedFleet side's time goes, from the scheduler's and the
 * agents' JSON logs.
 */
import { InstanceStatus, ProcState } from '../../src/domain/model.js';
import type { LogEvent } from '../fleet-log.js';
import { REPLICAS } from './parameters.js';

/** One timed create: its instance, its duration, and its wall-clock ends to line up with the logs. */
export interface FleetRun {
  name: string;
  ms: number;
  /** Wall-clock ms just before the POST and when RUNNING was seen, to line up with the logs. */
  wallStart: number;
  wallEnd: number;
}

/** ms per phase (one array per PHASES entry) over the runs whose marks were all found. */
export interface Breakdown {
  perPhase: number[][];
  runsUsed: number;
}

export const PHASES = [
  'POST sent -> instance written (API, etcd txn)',
  '-> procs placed (maintainer, offer cycle, placement, etcd txn)',
  '-> LAUNCH sent to agents',
  '-> agent reports master RUNNING (spawn, listen, PING, Msg watch)',
  '-> agents report both replicas RUNNING (REPLICAOF, link up)',
  '-> scheduler stored last proc RUNNING (UPDATE, etcd txn)',
  '-> instance Status RUNNING (maintainer, etcd txn)',
  '-> seen by the benchmark\'s GET poll',
] as const;

/**
 * For each run, the ms spent in each phase, from the scheduler's and agents' log timestamps
 * (millisecond resolution, same clock as the benchmark). Runs whose marks are missing are skipped.
 */
export function phaseBreakdown(runs: FleetRun[], scheduler: LogEvent[], agents: LogEvent[]): Breakdown {
  const perPhase: number[][] = PHASES.map(() => []);
  let runsUsed = 0;
  for (const run of runs) {
    const of = (e: LogEvent) => e.instance === run.name || String(e.proc ?? '').startsWith(`${run.name}::`);
    const s = scheduler.filter(of);
    const a = agents.filter(of);
    const requested = s.find((e) => e.message === 'instance requested');
    const placed = s.find((e) => e.message === 'placed');
    const launched = s.filter((e) => e.message === 'task launched');
    const masterId = Array.isArray(placed?.procs) ? String(placed.procs[0]).split('@')[0] : '';
    const agentRunning = a.filter((e) => e.message === 'task status' && e.state === 'TASK_RUNNING');
    const masterRunning = agentRunning.find((e) => e.proc === masterId);
    const replicasRunning = agentRunning.filter((e) => e.proc !== masterId);
    const stored = s.filter((e) => e.message === 'proc state' && e.state === ProcState.Running);
    const instRunning = s.find((e) => e.message === 'instance status' && e.status === InstanceStatus.Running);
    if (!requested || !placed || launched.length < 1 + REPLICAS || !masterRunning || replicasRunning.length < REPLICAS
      || stored.length < 1 + REPLICAS || !instRunning) continue;
    const marks = [
      run.wallStart,
      requested.t,
      placed.t,
      Math.max(...launched.map((e) => e.t)),
      masterRunning.t,
      Math.max(masterRunning.t, ...replicasRunning.map((e) => e.t)),
      Math.max(...stored.map((e) => e.t)),
      instRunning.t,
      run.wallEnd,
    ];
    for (let i = 0; i < PHASES.length; i++) perPhase[i].push(marks[i + 1] - marks[i]);
    runsUsed++;
  }
  return { perPhase, runsUsed };
}
