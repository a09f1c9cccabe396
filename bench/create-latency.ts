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
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { LocalFleet } from '../test/harness/local-fleet.js';
import { STARTUP_HZ } from '../src/executor/redis-config.js';
import {
  describeMachine, formatMs, freePorts, machineLines, OtherLoad, parseJsonLog, portOpen, redisServerConf, runMain, runsOption, sleep,
  sortedRuns, StartedHere, stopProcess, summarize, summaryHeader, summaryRow, type LogEvent, type Spawned, type SummaryLayout,
} from './common.js';

const RUN_TIMEOUT_MS = 30_000;
const POLL_MS = 2;
/** Upper bound on polls in one wait, whatever the clock does. */
const MAX_POLLS = Math.ceil(RUN_TIMEOUT_MS / POLL_MS) + 1;
const CAPACITY_MB = 64;
const REPLICAS = 2;
/** Give up on the whole benchmark after this many failed runs in a row on one side. */
const MAX_CONSECUTIVE_FAILURES = 3;
const REPRODUCE = 'npm run bench:create';
/** Servers whose versions the report gives, and whose other instances on the machine count as noise. */
const SERVERS = ['redis-server', 'etcd'] as const;
const TABLE: SummaryLayout = { labelWidth: 22, cellWidth: 9, digits: 1 };

const USAGE = `usage: node dist/bench/create-latency.js [--runs N]   (or: ${REPRODUCE})
  --runs N   timed runs on each side (default 20, 1-1000); one untimed warm-up run precedes each side`;

// ---------------------------------------------------------------------------------------------
// arguments

function parseArgs(argv: string[]): { runs: number } {
  let runs = 20;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--help' || arg === '-h') {
      console.log(USAGE);
      process.exit(0);
    }
    const r = runsOption(argv, i, 1000, fail);
    if (r) {
      runs = r.runs;
      i = r.last;
      continue;
    }
    fail(`unknown argument '${arg}'\n${USAGE}`);
  }
  return { runs };
}

function fail(message: string): never {
  console.error(`create-latency: ${message}`);
  process.exit(2);
}

/** Samples other redis-server and etcd processes between runs (untimed). */
const otherLoad = new OtherLoad(SERVERS);

// ---------------------------------------------------------------------------------------------
// RedFleet side

interface FleetRun {
  name: string;
  ms: number;
  /** Wall-clock ms just before the POST and when RUNNING was seen, to line up with the logs. */
  wallStart: number;
  wallEnd: number;
}

/** Polls GET /api/instances/:name every POLL_MS until its status is `status`; bounded. */
async function waitStatus(fleet: LocalFleet, name: string, status: string, deadline: number): Promise<void> {
  let last = '';
  for (let i = 0; i < MAX_POLLS; i++) {
    const res = await fleet.api('GET', `/api/instances/${name}`);
    if (res.json?.status === status) return;
    last = res.status === 200 ? `${res.json?.status} (${res.json?.reason ?? ''})` : `HTTP ${res.status} ${res.text.slice(0, 200)}`;
    if (performance.now() > deadline) break;
    await sleep(POLL_MS);
  }
  throw new Error(`${name} not ${status} after ${RUN_TIMEOUT_MS} ms; last seen: ${last}`);
}

async function fleetRun(fleet: LocalFleet, name: string): Promise<FleetRun> {
  const wallStart = Date.now();
  const t0 = performance.now();
  const res = await fleet.api('POST', `/v1/CREATE/${name}/${CAPACITY_MB}/1/${REPLICAS}`);
  if (res.status !== 201) throw new Error(`POST /v1/CREATE/${name} answered ${res.status}: ${res.text.slice(0, 200)}`);
  await waitStatus(fleet, name, 'RUNNING', t0 + RUN_TIMEOUT_MS);
  const ms = performance.now() - t0;
  return { name, ms, wallStart, wallEnd: Date.now() };
}

/** DELETE and wait for DELETED (untimed). A 404 means there is nothing to delete. */
async function fleetDelete(fleet: LocalFleet, name: string): Promise<void> {
  const res = await fleet.api('DELETE', `/api/instances/${name}`);
  if (res.status === 404) return;
  if (res.status !== 202) throw new Error(`DELETE /api/instances/${name} answered ${res.status}: ${res.text.slice(0, 200)}`);
  await waitStatus(fleet, name, 'DELETED', performance.now() + RUN_TIMEOUT_MS);
}

// ---- phase breakdown from the fleet's JSON logs ----

const PHASES = [
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
function phaseBreakdown(runs: FleetRun[], scheduler: LogEvent[], agents: LogEvent[]): { perPhase: number[][]; runsUsed: number } {
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
    const stored = s.filter((e) => e.message === 'proc state' && e.state === 'RUNNING');
    const instRunning = s.find((e) => e.message === 'instance status' && e.status === 'RUNNING');
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

interface FleetResult {
  runs: FleetRun[];
  failures: string[];
  breakdown?: { perPhase: number[][]; runsUsed: number };
  odd: string[];
}

async function benchFleet(runs: number): Promise<FleetResult> {
  const result: FleetResult = { runs: [], failures: [], odd: [] };
  const fleet = await LocalFleet.start({ agents: 3 });
  try {
    // Untimed warm-up: first-use costs (JIT, etcd, connection pools, page cache).
    const warm = 'benchwarmup';
    try {
      await fleetRun(fleet, warm);
    } finally {
      await fleetDelete(fleet, warm).catch(() => undefined);
    }
    let consecutive = 0;
    for (let i = 1; i <= runs; i++) {
      const name = `bench${i}`;
      try {
        const run = await fleetRun(fleet, name);
        result.runs.push(run);
        consecutive = 0;
        process.stderr.write(`redfleet run ${i}/${runs}: ${formatMs(run.ms, 1)} ms\n`);
      } catch (err) {
        consecutive++;
        result.failures.push(`${name}: ${(err as Error).message}`);
        process.stderr.write(`redfleet run ${i}/${runs} FAILED: ${(err as Error).message}\n`);
      }
      await fleetDelete(fleet, name);
      otherLoad.sample();
      if (consecutive >= MAX_CONSECUTIVE_FAILURES) throw new Error(`${consecutive} RedFleet runs failed in a row; giving up`);
    }
    // The logs live in the fleet's temporary directory: read them before stop() removes it.
    const scheduler = parseJsonLog(fleet.log('scheduler'));
    const agents = [1, 2, 3].flatMap((n) => parseJsonLog(fleet.log(`agent${n}`)));
    result.breakdown = phaseBreakdown(result.runs, scheduler, agents);
    for (const e of [...scheduler, ...agents]) {
      if (e.level === 'error' || (e.level === 'warn' && e.message !== 'proc state')) {
        result.odd.push(`${e.component ?? '?'} ${e.level}: ${e.message} ${JSON.stringify({ ...e, t: undefined, timestamp: undefined, message: undefined, level: undefined })}`);
      }
    }
  } finally {
    await fleet.stop();
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// raw floor

type RawProc = Spawned & { port: number };

/** Raw processes and their directories, so that a signal or an early exit can still remove them. */
const started = new StartedHere();

function rawConfig(port: number, dir: string): string {
  // The same cron rate RedFleet starts its procs with (src/executor/redis-config.ts, STARTUP_HZ),
  // so that the floor is not held back by the 100 ms reaping wait RedFleet avoids.
  return redisServerConf(port, dir, CAPACITY_MB, [`hz ${STARTUP_HZ}`]);
}

async function waitListening(proc: RawProc, deadline: number): Promise<void> {
  for (let i = 0; i < MAX_POLLS; i++) {
    if (proc.exited) throw new Error(`redis-server on port ${proc.port} exited at start: ${proc.stderr.trim() || 'see its redis.log'}`);
    if (await portOpen(proc.port)) return;
    if (performance.now() > deadline) break;
    await sleep(POLL_MS);
  }
  throw new Error(`redis-server on port ${proc.port} did not listen within ${RUN_TIMEOUT_MS} ms`);
}

async function waitLinkUp(client: Redis, port: number, deadline: number): Promise<void> {
  let last = '';
  for (let i = 0; i < MAX_POLLS; i++) {
    const info = await client.info('replication');
    last = /^master_link_status:(\S+)/m.exec(info)?.[1] ?? '?';
    if (last === 'up') return;
    if (performance.now() > deadline) break;
    await sleep(POLL_MS);
  }
  throw new Error(`replica on port ${port}: master_link_status ${last} after ${RUN_TIMEOUT_MS} ms`);
}

async function rawRun(): Promise<number> {
  const dir = started.tempDir('redfleet-bench-raw-');
  const procs: RawProc[] = [];
  const clients: Redis[] = [];
  try {
    const ports = await freePorts(1 + REPLICAS);
    const confs = ports.map((port, i) => {
      const procDir = join(dir, `redis${i}`);
      mkdirSync(procDir);
      const conf = join(procDir, 'redis.conf');
      writeFileSync(conf, rawConfig(port, procDir));
      return conf;
    });
    const t0 = performance.now();
    const deadline = t0 + RUN_TIMEOUT_MS;
    for (let i = 0; i < ports.length; i++) procs.push(started.spawn('redis-server', [confs[i]], { port: ports[i] }));
    await Promise.all(procs.map((p) => waitListening(p, deadline)));
    const master = ports[0];
    await Promise.all(procs.slice(1).map(async (p) => {
      const client = new Redis({ host: '127.0.0.1', port: p.port, lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 1000, retryStrategy: () => null });
      client.on('error', () => undefined);
      clients.push(client);
      await client.connect();
      await client.call('REPLICAOF', '127.0.0.1', String(master));
      await waitLinkUp(client, p.port, deadline);
    }));
    return performance.now() - t0;
  } finally {
    for (const c of clients) c.disconnect();
    await Promise.all(procs.map((p) => stopProcess(p, 'SIGTERM')));
    started.removeDir(dir);
  }
}

async function benchRaw(runs: number): Promise<{ ms: number[]; failures: string[] }> {
  const out = { ms: [] as number[], failures: [] as string[] };
  await rawRun(); // untimed warm-up, as on the RedFleet side
  let consecutive = 0;
  for (let i = 1; i <= runs; i++) {
    try {
      const ms = await rawRun();
      out.ms.push(ms);
      consecutive = 0;
      process.stderr.write(`raw run ${i}/${runs}: ${formatMs(ms, 1)} ms\n`);
      otherLoad.sample();
    } catch (err) {
      consecutive++;
      out.failures.push(`raw run ${i}: ${(err as Error).message}`);
      process.stderr.write(`raw run ${i}/${runs} FAILED: ${(err as Error).message}\n`);
      if (consecutive >= MAX_CONSECUTIVE_FAILURES) throw new Error(`${consecutive} raw runs failed in a row; giving up`);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// main

async function main(): Promise<number> {
  const { runs } = parseArgs(process.argv.slice(2));
  started.cleanUpOnExit('create-latency');
  const startedAt = new Date();
  const host = describeMachine(SERVERS);
  const loadBefore = loadavg()[0];
  otherLoad.sample();
  process.stderr.write(`create-latency: ${runs} runs per side, 1 master + ${REPLICAS} replicas, ${CAPACITY_MB} MB\n`);

  const fleet = await benchFleet(runs);
  const raw = await benchRaw(runs);

  const f = summarize(fleet.runs.map((r) => r.ms));
  const r = summarize(raw.ms);
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
  out.push(`  raw floor  ${sortedRuns(raw.ms)}`);
  if (r.max > 2 * r.min) {
    out.push('  note: a run spreads wide when the second full sync waits for the master to reap the first');
    out.push('  diskless-sync child, which redis-server notices on its next cron tick (both sides run hz 100');
    out.push('  while starting, so at most 10 ms). See docs/BENCHMARKS.md.');
  }
  if (fleet.breakdown && fleet.breakdown.runsUsed > 0) {
    out.push('');
    out.push(`RedFleet phases, ms (from log timestamps, 1 ms resolution; ${fleet.breakdown.runsUsed} runs):`);
    out.push(`  ${'phase'.padEnd(68)}${'p50'.padStart(7)}${'p95'.padStart(7)}${'max'.padStart(7)}`);
    PHASES.forEach((name, i) => {
      const s = summarize(fleet.breakdown!.perPhase[i]);
      out.push(`  ${name.padEnd(68)}${s.p50.toFixed(0).padStart(7)}${s.p95.toFixed(0).padStart(7)}${s.max.toFixed(0).padStart(7)}`);
    });
  }
  const failures = [...fleet.failures, ...raw.failures];
  if (failures.length > 0) {
    out.push('');
    out.push(`failed runs (${failures.length}), left out of the figures:`);
    for (const line of failures) out.push(`  ${line}`);
  }
  if (fleet.odd.length > 0) {
    out.push('');
    out.push(`warnings and errors in the fleet's logs (${fleet.odd.length}; first 10):`);
    for (const line of fleet.odd.slice(0, 10)) out.push(`  ${line.slice(0, 300)}`);
  }
  out.push('');
  out.push(otherLoad.line(loadBefore));
  out.push('');
  out.push(...machineLines(host));
  out.push('');
  out.push(`reproduce: ${REPRODUCE}   (fewer runs: npm run build && node dist/bench/create-latency.js --runs 5)`);
  console.log(out.join('\n'));
  return failures.length > 0 ? 1 : 0;
}

runMain('create-latency', main);
