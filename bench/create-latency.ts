/**
 * bench/create-latency: how long RedFleet takes from `POST /v1/CREATE` to RUNNING (master and
 * both replicas online) for 1 master + 2 replicas, against the raw floor: three redis-server
 * processes started directly and linked with REPLICAOF. Prints p50, p95, min and max of each,
 * the ratio of the medians (goal: at most 3x), a phase breakdown of the RedFleet side taken from
 * the fleet's own JSON logs, and the machine it ran on.
 *
 *   npm run bench:create                 (20 runs each side)
 *   npm run build && node dist/bench/create-latency.js --runs 5
 *
 * Every wait is bounded: a run that has not finished after 30 s is given up and counted as failed.
 *
 * This file is the entry (flags, main and the report); the two sides and the phase breakdown are
 * in bench/create-latency/.
 */
import { loadavg } from 'node:os';
import { sortedRuns, summarize, summaryHeader, summaryRow, type SummaryLayout } from './figures.js';
import { describeMachine, machineLines, OtherLoad } from './machine.js';
import { parseFlags, runMain, runsFlag, type Program } from './program.js';
import { CAPACITY_MB, POLL_MS, REPLICAS, REPRODUCE, SERVERS } from './create-latency/parameters.js';
import { PHASES } from './create-latency/phases.js';
import { benchRaw, started } from './create-latency/raw-floor.js';
import { benchFleet, type FleetResult } from './create-latency/redfleet-run.js';

const TABLE: SummaryLayout = { labelWidth: 22, cellWidth: 9, digits: 1 };

const PROGRAM: Program = {
  name: 'create-latency',
  usage: `usage: node dist/bench/create-latency.js [--runs N]   (or: ${REPRODUCE})
  --runs N   timed runs on each side (default 20, 1-1000); one untimed warm-up run precedes each side`,
};

/** Samples other redis-server and etcd processes between runs (untimed). */
const otherLoad = new OtherLoad(SERVERS);

async function main(): Promise<number> {
  const values = parseFlags(PROGRAM, process.argv.slice(2), { runs: { type: 'string' } });
  const runs = runsFlag(PROGRAM, values.runs, 20, 1000);
  started.cleanUpOnExit('create-latency');
  const startedAt = new Date();
  const host = describeMachine(SERVERS);
  const loadBefore = loadavg()[0];
  otherLoad.sample();
  process.stderr.write(`create-latency: ${runs} runs per side, 1 master + ${REPLICAS} replicas, ${CAPACITY_MB} MB\n`);

  const fleet = await benchFleet(runs, otherLoad);
  const raw = await benchRaw(runs, otherLoad);
  const failures = [...fleet.failures, ...raw.failures];

  const out: string[] = [
    ...figureLines(fleet, raw.ms, runs, startedAt),
    ...phaseLines(fleet),
    ...problemLines(failures, fleet.odd),
  ];
  out.push('');
  out.push(otherLoad.line(loadBefore));
  out.push('');
  out.push(...machineLines(host));
  out.push('');
  out.push(`reproduce: ${REPRODUCE}   (fewer runs: npm run build && node dist/bench/create-latency.js --runs 5)`);
  console.log(out.join('\n'));
  return failures.length > 0 ? 1 : 0;
}

/** The setup, the table, the ratio against the goal, and every run sorted. */
function figureLines(fleet: FleetResult, rawMs: number[], runs: number, startedAt: Date): string[] {
  const f = summarize(fleet.runs.map((r) => r.ms));
  const r = summarize(rawMs);
  const ratio = f.p50 / r.p50;
  const out: string[] = [];
  out.push('');
  out.push(`create-latency: POST /v1/CREATE/<name>/${CAPACITY_MB}/1/${REPLICAS} -> RUNNING, vs three redis-server started and linked directly`);
  out.push(`date: ${startedAt.toISOString()}   runs per side: ${runs} (+1 untimed warm-up each)   poll: every ${POLL_MS} ms`);
  out.push('');
  out.push(summaryHeader(TABLE));
  out.push(summaryRow('RedFleet', f, TABLE));
  out.push(summaryRow('raw floor', r, TABLE));
  out.push('');
  out.push(`ratio p50 RedFleet / p50 raw: ${Number.isFinite(ratio) ? ratio.toFixed(1) : '-'}x   goal <= 3x: ${ratio <= 3 ? 'MET' : 'NOT MET'}`);
  out.push('');
  out.push(`all runs, sorted (ms):`);
  out.push(`  RedFleet   ${sortedRuns(fleet.runs.map((x) => x.ms))}`);
  out.push(`  raw floor  ${sortedRuns(rawMs)}`);
  if (r.max > 2 * r.min) {
    out.push('  note: a run spreads wide when the second full sync waits for the master to reap the first');
    out.push('  diskless-sync child, which redis-server notices on its next cron tick (both sides run hz 100');
    out.push('  while starting, so at most 10 ms). See docs/BENCHMARKS.md.');
  }
  return out;
}

/** The RedFleet side's phases, from its logs. */
function phaseLines(fleet: FleetResult): string[] {
  if (!fleet.breakdown || fleet.breakdown.runsUsed === 0) return [];
  const { perPhase, runsUsed } = fleet.breakdown;
  const out: string[] = [];
  out.push('');
  out.push(`RedFleet phases, ms (from log timestamps, 1 ms resolution; ${runsUsed} runs):`);
  out.push(`  ${'phase'.padEnd(68)}${'p50'.padStart(7)}${'p95'.padStart(7)}${'max'.padStart(7)}`);
  PHASES.forEach((name, i) => {
    const s = summarize(perPhase[i]);
    out.push(`  ${name.padEnd(68)}${s.p50.toFixed(0).padStart(7)}${s.p95.toFixed(0).padStart(7)}${s.max.toFixed(0).padStart(7)}`);
  });
  return out;
}

/** Failed runs, and warnings and errors in the fleet's logs. */
function problemLines(failures: string[], odd: string[]): string[] {
  const out: string[] = [];
  if (failures.length > 0) {
    out.push('');
    out.push(`failed runs (${failures.length}), left out of the figures:`);
    for (const line of failures) out.push(`  ${line}`);
  }
  if (odd.length > 0) {
    out.push('');
    out.push(`warnings and errors in the fleet's logs (${odd.length}; first 10):`);
    for (const line of odd.slice(0, 10)) out.push(`  ${line.slice(0, 300)}`);
  }
  return out;
}

runMain('create-latency', main);
