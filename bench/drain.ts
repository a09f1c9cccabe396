/**
 * bench/drain: how long `POST /api/agents/agent1/drain` takes to empty an agent that holds 10
 * masters and 10 replicas (issue 9, part 4), with a writer that waits for `WAIT 1` running
 * against every instance, and whether any acknowledged write was lost.
 *
 *   Fleet: LocalFleet (etcd, a scheduler, 4 agents). agent1 offers 700 MB, the others 1024 MB,
 *          so binpack placement puts two procs of each instance on agent1; a planned
 *          switchover then moves each master there (placement itself spreads masters).
 *   Instances: 10 x (1 master + 2 replicas, 32 MB, distribution 2, binpack): agent1 holds 10
 *          masters and 10 replicas; agents 2-4 hold the 10 other replicas.
 *   Drain: from the POST to the agent's drain state `drained` (every proc moved: 10 replicas
 *          replaced, 10 switchovers, 10 old masters replaced), polled every 100 ms.
 *
 * Prints the drain time of each run (p50, min, max over --runs), the per-instance move time from
 * the scheduler's 'operation started'/'operation done' log lines, acknowledged writes and lost
 * ones, and the machine.
 *
 *   npm run build && node dist/bench/drain.js             (1 run)
 *   npm run build && node dist/bench/drain.js --runs 3
 */
import { loadavg } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { LocalFleet } from '../test/harness/local-fleet.js';
import { AckedWriter } from '../test/harness/acked-writer.js';
import { summarize } from './figures.js';
import { describeMachine, machineLines } from './machine.js';
import { parseFlags, runMain, runsFlag, type Program } from './program.js';

const INSTANCES = 10;
const CAPACITY_MB = 32;
const REPRODUCE = 'npm run build && node dist/bench/drain.js';
const PROGRAM: Program = {
  name: 'drain',
  usage: `usage: node dist/bench/drain.js [--runs N]   (or: ${REPRODUCE})
  --runs N   drains timed, each on a fresh fleet (default 1, 1-10)`,
};

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

interface RunResult {
  drainMs: number;
  moveMs: number[];
  acked: number;
  lost: number;
  masters: number;
  replicas: number;
}

async function main(): Promise<number> {
  const values = parseFlags(PROGRAM, process.argv.slice(2), { runs: { type: 'string' } });
  const runs = runsFlag(PROGRAM, values.runs, 1, 10);
  const host = describeMachine(['redis-server', 'etcd']);
  const loadBefore = loadavg()[0];
  const startedAt = new Date();
  const results: RunResult[] = [];
  for (let i = 0; i < runs; i++) {
    process.stderr.write(`drain: run ${i + 1} of ${runs}\n`);
    results.push(await oneRun());
  }
  const drain = summarize(results.map((r) => r.drainMs));
  const moves = summarize(results.flatMap((r) => r.moveMs));
  const lost = results.reduce((n, r) => n + r.lost, 0);
  const out = [
    '',
    `drain: agent1 holding ${results[0].masters} masters and ${results[0].replicas} replicas (${INSTANCES} x 1+2, ${CAPACITY_MB} MB), writers with WAIT 1 on every instance`,
    `date: ${startedAt.toISOString()}   runs: ${runs}`,
    '',
    `drain time (POST -> drained):  p50 ${(drain.p50 / 1000).toFixed(1)} s   min ${(drain.min / 1000).toFixed(1)} s   max ${(drain.max / 1000).toFixed(1)} s`,
    `per instance (its drain operation): p50 ${(moves.p50 / 1000).toFixed(2)} s   p95 ${(moves.p95 / 1000).toFixed(2)} s   max ${(moves.max / 1000).toFixed(2)} s`,
    `acknowledged writes: ${results.reduce((n, r) => n + r.acked, 0)}   lost: ${lost}`,
    '',
    `load average before: ${loadBefore.toFixed(2)}, after: ${loadavg()[0].toFixed(2)}`,
    '',
    ...machineLines(host),
    '',
    `reproduce: ${REPRODUCE}`,
  ];
  console.log(out.join('\n'));
  return lost > 0 ? 1 : 0;
}

async function oneRun(): Promise<RunResult> {
  const fleet = await LocalFleet.start({ agents: 0 });
  const writers: AckedWriter[] = [];
  try {
    await fleet.startAgent('agent1', { mem: 700, ports: 40 });
    for (const id of ['agent2', 'agent3', 'agent4']) await fleet.startAgent(id, { mem: 1024, ports: 40 });
    await fleet.waitFor(async () => (await fleet.api('GET', '/healthz')).json.agents === 4, 30_000, 'agents');
    const passwords = await createInstances(fleet);
    const views = await Promise.all([...passwords.keys()].map(async (n) => (await fleet.api('GET', `/api/instances/${n}`)).json));
    const masters = views.filter((v) => v.master.agent === 'agent1').length;
    const replicas = views.reduce((n, v) => n + v.slaves.filter((s: Json) => s.agent === 'agent1').length, 0);
    for (const [name, password] of passwords) {
      const w = new AckedWriter(fleet.sentinelPort, name, password);
      w.start(`bench-${name}:`, 20);
      writers.push(w);
    }
    for (const w of writers) await w.waitForAcks(10, 30_000);
    const t0 = Date.now();
    const res = await fleet.api('POST', '/api/agents/agent1/drain');
    if (res.status !== 202) throw new Error(`drain: ${res.status} ${res.text}`);
    await fleet.waitFor(async () => {
      const a = (await fleet.api('GET', '/api/agents')).json.find((x: Json) => x.id === 'agent1');
      return a?.drain?.state === 'drained';
    }, 900_000, 'agent1 to be drained');
    const drainMs = Date.now() - t0;
    for (const w of writers) await w.waitForAcks(10, 30_000);
    let acked = 0;
    let lost = 0;
    for (const w of writers) {
      await w.stop();
      const inst = (await fleet.api('GET', `/api/instances/${w.name}`)).json;
      acked += w.acked.size;
      lost += (await w.missingOn(inst.master, passwords.get(w.name)!)).length;
    }
    return { drainMs, moveMs: operationTimes(fleet.log('scheduler')), acked, lost, masters, replicas };
  } finally {
    for (const w of writers) await w.stop();
    await fleet.stop();
  }
}

/**
 * 10 instances, binpack at distribution 2: each puts two procs on agent1. Placement spreads
 * masters over the agents, so each master not on agent1 is then moved there by a planned
 * switchover to the instance's proc on agent1: agent1 ends with 10 masters and 10 replicas.
 */
async function createInstances(fleet: LocalFleet): Promise<Map<string, string>> {
  const passwords = new Map<string, string>();
  for (let i = 1; i <= INSTANCES; i++) {
    const name = `drb${i}`;
    const res = await fleet.api('POST', '/api/instances', { name, capacityMb: CAPACITY_MB, replicas: 2, distribution: 2, placement: 'binpack' });
    if (res.status !== 202) throw new Error(`create ${name}: ${res.status} ${res.text}`);
    passwords.set(name, res.json.password);
    await fleet.waitForStatus(name, 'RUNNING', 60_000);
  }
  for (const name of passwords.keys()) await masterOntoAgent1(fleet, name);
  await sleep(1000);
  return passwords;
}

async function masterOntoAgent1(fleet: LocalFleet, name: string): Promise<void> {
  const inst = await fleet.waitFor(async () => {
    const i = (await fleet.api('GET', `/api/instances/${name}`)).json;
    return i.master && i.slaves.length === 2 ? i : undefined;
  }, 60_000, `${name}'s master`);
  if (inst.master.agent === 'agent1') return;
  const target = inst.slaves.find((p: Json) => p.agent === 'agent1');
  if (!target) throw new Error(`${name} has no replica on agent1`);
  const res = await fleet.api('POST', `/api/instances/${name}/failover`, { to: target.id });
  if (res.status !== 202) throw new Error(`switchover of ${name}: ${res.status} ${res.text}`);
  await fleet.waitFor(async () => {
    const i = (await fleet.api('GET', `/api/instances/${name}`)).json;
    return i.operation?.state === 'done' && i.master?.agent === 'agent1' && i.slaves.length === 2;
  }, 60_000, `${name}'s master onto agent1`);
}

/** Each drain operation's duration, from the scheduler's JSON log. */
function operationTimes(log: string): number[] {
  const started = new Map<string, number>();
  const out: number[] = [];
  for (const line of log.split('\n')) {
    if (!line.includes('"kind":"drain"')) continue;
    try {
      const e = JSON.parse(line) as { message: string; operation: string; timestamp?: string };
      const at = Date.parse(e.timestamp ?? '');
      if (e.message === 'operation started') started.set(e.operation, at);
      if (e.message === 'operation done' && started.has(e.operation)) out.push(at - started.get(e.operation)!);
    } catch {
      // not a JSON line
    }
  }
  return out;
}

runMain('drain', main);
