/**
 * bench/switchover: the write gap of a planned switchover and the writes it loses, RedFleet
 * against real Redis Sentinel's `SENTINEL FAILOVER`, in the same run, on the same topology
 * (1 master + 2 replicas).
 *
 * A client finds the master only through the Sentinel protocol (RedFleet's endpoint, or one of
 * three redis-sentinel) and writes SET + WAIT 1 100 every 5 ms (test/harness/acked-writer.ts);
 * a write counts as acknowledged when WAIT says a replica has it. Per run: 50 acknowledged
 * writes, the switch, 50 more; the gap is the longest time between two acknowledged writes, and
 * every acknowledged key is then looked up on the new master (a missing one is lost).
 *
 *   RedFleet: LocalFleet (etcd, a scheduler, 3 agents), one instance; each run is
 *             POST /api/instances/:name/failover to the best replica, from whichever is master.
 *   Sentinel: per run three redis-server and three redis-sentinel (bench/failover's setup),
 *             then SENTINEL FAILOVER mymaster.
 *
 *   npm run build && node dist/bench/switchover.js             (50 runs per system)
 *   npm run build && node dist/bench/switchover.js --runs 5    (a quick check)
 *   --only redfleet|sentinel   one side only
 *
 * Every wait is bounded (30 s); a failed run is reported and left out of the figures; 3 failures
 * in a row end the side. Every process started here is stopped at the end, even on failure.
 */
import { loadavg } from 'node:os';
import { describeMachine, machineLines } from './machine.js';
import { percentile, sortedRuns } from './figures.js';
import { fail, parseFlags, runMain, runsFlag, type Program } from './program.js';
import { REPRODUCE, SERVERS, SYSTEMS, type Outcome, type System } from './switchover/parameters.js';
import { benchFleet } from './switchover/redfleet-run.js';
import { benchSentinel } from './switchover/sentinel-run.js';
import { otherLoad } from './switchover/series.js';
import { started } from './failover/sentinel-run.js';

const PROGRAM: Program = {
  name: 'switchover',
  usage: `usage: node dist/bench/switchover.js [--runs N] [--only redfleet|sentinel]   (or: ${REPRODUCE})
  --runs N   switchovers per system (default 50, 1-500)
  --only S   one system only (redfleet or sentinel)`,
};

function parseArgs(argv: string[]): { runs: number; only?: System } {
  const values = parseFlags(PROGRAM, argv, { runs: { type: 'string' }, only: { type: 'string' } });
  const runs = runsFlag(PROGRAM, values.runs, 50, 500);
  if (values.only === undefined) return { runs };
  const only = SYSTEMS.find((s) => s.toLowerCase() === String(values.only).toLowerCase());
  if (!only) fail(PROGRAM, `--only takes redfleet or sentinel, got ${JSON.stringify(values.only)}`);
  return { runs, only };
}

function row(label: string, values: number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  const cell = (v: number) => (Number.isFinite(v) ? v.toFixed(0) : '-').padStart(8);
  return `${label.padEnd(34)}${cell(percentile(sorted, 50))}${cell(percentile(sorted, 90))}${cell(sorted[sorted.length - 1] ?? NaN)}${String(values.length).padStart(6)}`;
}

function report(out: Outcome, runs: number, host: Record<string, string>, loadBefore: number): string[] {
  const lines = [`switchover: ${runs} runs per system, 1 master + 2 replicas, writer SET + WAIT 1 100 every 5 ms via the Sentinel protocol`, ''];
  lines.push(`${'ms'.padEnd(34)}${'p50'.padStart(8)}${'p90'.padStart(8)}${'max'.padStart(8)}${'runs'.padStart(6)}`);
  for (const system of SYSTEMS) {
    const mine = out.runs.filter((r) => r.system === system);
    if (mine.length === 0) continue;
    lines.push(row(`${system} client write gap`, mine.map((r) => r.gapMs)));
    const paused = mine.map((r) => r.pausedMs).filter((v): v is number => typeof v === 'number');
    if (paused.length) lines.push(row(`${system} master writes paused`, paused));
  }
  lines.push('');
  for (const system of SYSTEMS) {
    const mine = out.runs.filter((r) => r.system === system);
    if (mine.length === 0) continue;
    const lost = mine.reduce((n, r) => n + r.lost, 0);
    const acked = mine.reduce((n, r) => n + r.acked, 0);
    lines.push(`${system}: ${lost} acknowledged write(s) lost of ${acked}, in ${mine.filter((r) => r.lost > 0).length} of ${mine.length} runs; gaps ${sortedRuns(mine.map((r) => r.gapMs))}`);
  }
  for (const f of out.failures) lines.push(`FAILED ${f}`);
  lines.push('', ...machineLines(host), otherLoad.line(loadBefore), `reproduce: ${REPRODUCE} --runs ${runs}`);
  return lines;
}

async function main(): Promise<number> {
  const { runs, only } = parseArgs(process.argv.slice(2));
  started.cleanUpOnExit('switchover');
  const host = describeMachine(SERVERS);
  if (only !== 'RedFleet' && host['redis-sentinel'].startsWith('unknown')) fail(PROGRAM, 'redis-sentinel is not installed (Debian: apt-get install -y redis-sentinel)');
  const loadBefore = loadavg()[0];
  otherLoad.sample();
  const out: Outcome = { runs: [], failures: [] };
  if (only !== 'Sentinel') await benchFleet(runs, out);
  if (only !== 'RedFleet') await benchSentinel(runs, out);
  console.log(report(out, runs, host, loadBefore).join('\n'));
  return out.failures.length > 0 ? 1 : 0;
}

runMain('switchover', main);
