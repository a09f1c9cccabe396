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
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { availableParallelism, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { LocalFleet } from '../test/harness/local-fleet.js';
import { freePort } from '../src/net.js';
import { STARTUP_HZ } from '../src/executor/redis-config.js';

const RUN_TIMEOUT_MS = 30_000;
const POLL_MS = 2;
/** Upper bound on polls in one wait, whatever the clock does. */
const MAX_POLLS = Math.ceil(RUN_TIMEOUT_MS / POLL_MS) + 1;
const CAPACITY_MB = 64;
const REPLICAS = 2;
/** Give up on the whole benchmark after this many failed runs in a row on one side. */
const MAX_CONSECUTIVE_FAILURES = 3;
const REPRODUCE = 'npm run bench:create';

const USAGE = `usage: node dist/bench/create-latency.js [--runs N]   (or: ${REPRODUCE})
  --runs N   timed runs on each side (default 20, 1-1000); one untimed warm-up run precedes each side`;

// ---------------------------------------------------------------------------------------------
// small helpers

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function parseArgs(argv: string[]): { runs: number } {
  let runs = 20;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--help' || arg === '-h') {
      console.log(USAGE);
      process.exit(0);
    }
    const eq = arg.startsWith('--runs=') ? arg.slice('--runs='.length) : undefined;
    if (arg === '--runs' || eq !== undefined) {
      const text = eq ?? argv[++i];
      if (text === undefined || !/^[0-9]{1,4}$/.test(text) || Number(text) < 1 || Number(text) > 1000) {
        fail(`--runs must be a whole number from 1 to 1000, got ${JSON.stringify(text)}`);
      }
      runs = Number(text);
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

/** Nearest-rank percentile of an ascending array. */
function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

interface Summary {
  n: number;
  p50: number;
  p95: number;
  min: number;
  max: number;
}

function summarize(values: number[]): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  return { n: sorted.length, p50: percentile(sorted, 50), p95: percentile(sorted, 95), min: sorted[0] ?? NaN, max: sorted[sorted.length - 1] ?? NaN };
}

const ms1 = (v: number): string => (Number.isFinite(v) ? v.toFixed(1) : '-');

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: '127.0.0.1', port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

// ---------------------------------------------------------------------------------------------
// the machine

function firstLine(cmd: string, args: string[]): string {
  const out = spawnSync(cmd, args, { encoding: 'utf8' });
  if (out.error || out.status !== 0) return `unknown (${cmd} ${args.join(' ')} failed)`;
  return (out.stdout || out.stderr).split('\n')[0].trim();
}

function machine(): Record<string, string> {
  let cpuModel = 'unknown';
  try {
    cpuModel = /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? 'unknown';
  } catch {
    // not Linux
  }
  const nproc = firstLine('nproc', []);
  return {
    nproc: /^[0-9]+$/.test(nproc) ? nproc : String(availableParallelism()),
    cpu: cpuModel,
    memory: `${(totalmem() / 1024 ** 3).toFixed(1)} GiB`,
    node: process.version,
    'redis-server': firstLine('redis-server', ['--version']),
    etcd: firstLine('etcd', ['--version']),
  };
}

/**
 * redis-server and etcd processes on this machine that this benchmark did not start (a test run,
 * a dev fleet): they compete for the same CPUs and make the figures noisy, so they are reported.
 */
function foreignServers(): string[] {
  const parentOf = new Map<number, number>();
  const comm = new Map<number, string>();
  let entries: string[] = [];
  try {
    entries = readdirSync('/proc').filter((e) => /^[0-9]+$/.test(e));
  } catch {
    return [];
  }
  for (const e of entries) {
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const name = stat.slice(stat.indexOf('(') + 1, close);
      const fields = stat.slice(close + 2).split(' ');
      if (fields[0] === 'Z') continue; // zombies use no CPU
      comm.set(Number(e), name);
      parentOf.set(Number(e), Number(fields[1]));
    } catch {
      // gone already
    }
  }
  const ours = (pid: number): boolean => {
    for (let p = pid, hops = 0; p > 1 && hops < 64; p = parentOf.get(p) ?? 0, hops++) if (p === process.pid) return true;
    return false;
  };
  const out: string[] = [];
  for (const [pid, name] of comm) if ((name === 'redis-server' || name === 'etcd') && !ours(pid)) out.push(`${name}[${pid}]`);
  return out;
}

/** Samples foreignServers() between runs (untimed) and keeps the most seen at once. */
const otherLoad = { most: [] as string[], samples: 0, busySamples: 0 };
function sampleOtherLoad(): void {
  const seen = foreignServers();
  otherLoad.samples++;
  if (seen.length > 0) otherLoad.busySamples++;
  if (seen.length > otherLoad.most.length) otherLoad.most = seen;
}

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

interface LogEvent {
  t: number;
  message: string;
  [field: string]: unknown;
}

function parseLog(text: string): LogEvent[] {
  const out: LogEvent[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const obj = JSON.parse(line) as Record<string, unknown>;
      const t = Date.parse(String(obj.timestamp ?? ''));
      if (Number.isFinite(t) && typeof obj.message === 'string') out.push({ ...obj, t, message: obj.message });
    } catch {
      // not a log line
    }
  }
  return out;
}

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
        process.stderr.write(`redfleet run ${i}/${runs}: ${ms1(run.ms)} ms\n`);
      } catch (err) {
        consecutive++;
        result.failures.push(`${name}: ${(err as Error).message}`);
        process.stderr.write(`redfleet run ${i}/${runs} FAILED: ${(err as Error).message}\n`);
      }
      await fleetDelete(fleet, name);
      sampleOtherLoad();
      if (consecutive >= MAX_CONSECUTIVE_FAILURES) throw new Error(`${consecutive} RedFleet runs failed in a row; giving up`);
    }
    // The logs live in the fleet's temporary directory: read them before stop() removes it.
    const scheduler = parseLog(fleet.log('scheduler'));
    const agents = [1, 2, 3].flatMap((n) => parseLog(fleet.log(`agent${n}`)));
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

interface RawProc {
  child: ChildProcess;
  port: number;
  exited: boolean;
  stderr: string;
}

/** Raw processes alive right now, so that a signal or an early exit can still kill them. */
const liveRaw = new Set<RawProc>();
const liveRawDirs = new Set<string>();

function rawConfig(port: number, dir: string): string {
  return [
    `port ${port}`,
    'bind 127.0.0.1',
    'daemonize no',
    `dir ${dir}`,
    `logfile ${dir}/redis.log`,
    'save ""',
    'appendonly no',
    `maxmemory ${CAPACITY_MB}mb`,
    'repl-diskless-sync yes',
    'repl-diskless-sync-delay 0',
    // The same cron rate RedFleet starts its procs with (src/executor/redis-config.ts, STARTUP_HZ),
    // so that the floor is not held back by the 100 ms reaping wait RedFleet avoids.
    `hz ${STARTUP_HZ}`,
    '',
  ].join('\n');
}

function spawnRaw(conf: string, port: number): RawProc {
  const child = spawn('redis-server', [conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  const proc: RawProc = { child, port, exited: false, stderr: '' };
  liveRaw.add(proc);
  child.stderr?.on('data', (d: Buffer) => { proc.stderr = (proc.stderr + d.toString()).slice(-2000); });
  child.on('exit', () => {
    proc.exited = true;
    liveRaw.delete(proc);
  });
  child.on('error', (err) => {
    proc.exited = true;
    proc.stderr += err.message;
    liveRaw.delete(proc);
  });
  return proc;
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

function stopRaw(proc: RawProc): Promise<void> {
  if (proc.exited) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => proc.child.kill('SIGKILL'), 5000);
    proc.child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    proc.child.kill('SIGTERM');
  });
}

async function rawRun(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'redfleet-bench-raw-'));
  liveRawDirs.add(dir);
  const procs: RawProc[] = [];
  const clients: Redis[] = [];
  try {
    const ports: number[] = [];
    while (ports.length < 1 + REPLICAS) {
      const p = await freePort();
      if (!ports.includes(p)) ports.push(p);
    }
    const confs = ports.map((port, i) => {
      const procDir = join(dir, `redis${i}`);
      mkdirSync(procDir);
      const conf = join(procDir, 'redis.conf');
      writeFileSync(conf, rawConfig(port, procDir));
      return conf;
    });
    const t0 = performance.now();
    const deadline = t0 + RUN_TIMEOUT_MS;
    for (let i = 0; i < ports.length; i++) procs.push(spawnRaw(confs[i], ports[i]));
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
    await Promise.all(procs.map(stopRaw));
    rmSync(dir, { recursive: true, force: true });
    liveRawDirs.delete(dir);
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
      process.stderr.write(`raw run ${i}/${runs}: ${ms1(ms)} ms\n`);
      sampleOtherLoad();
    } catch (err) {
      consecutive++;
      out.failures.push(`raw run ${i}: ${(err as Error).message}`);
      process.stderr.write(`raw run ${i}/${runs} FAILED: ${(err as Error).message}\n`);
      if (consecutive >= MAX_CONSECUTIVE_FAILURES) throw new Error(`${consecutive} raw runs failed in a row; giving up`);
    }
  }
  return out;
}

function killRawSync(): void {
  for (const p of liveRaw) p.child.kill('SIGKILL');
  for (const d of liveRawDirs) rmSync(d, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------
// main

function row(label: string, s: Summary): string {
  return `${label.padEnd(22)}${ms1(s.p50).padStart(9)}${ms1(s.p95).padStart(9)}${ms1(s.min).padStart(9)}${ms1(s.max).padStart(9)}${String(s.n).padStart(6)}`;
}

async function main(): Promise<number> {
  const { runs } = parseArgs(process.argv.slice(2));
  process.on('exit', killRawSync);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    // process.exit runs the exit handlers: ours (raw redis-servers) and LocalFleet's (the fleet).
    process.on(sig, () => {
      console.error(`create-latency: ${sig}; stopping everything started here`);
      process.exit(130);
    });
  }
  const started = new Date();
  const host = machine();
  const loadBefore = loadavg()[0];
  sampleOtherLoad();
  process.stderr.write(`create-latency: ${runs} runs per side, 1 master + ${REPLICAS} replicas, ${CAPACITY_MB} MB\n`);

  const fleet = await benchFleet(runs);
  const raw = await benchRaw(runs);

  const f = summarize(fleet.runs.map((r) => r.ms));
  const r = summarize(raw.ms);
  const ratio = f.p50 / r.p50;

  const out: string[] = [];
  out.push('');
  out.push(`create-latency: POST /v1/CREATE/<name>/${CAPACITY_MB}/1/${REPLICAS} -> RUNNING, vs three redis-server started and linked directly`);
  out.push(`date: ${started.toISOString()}   runs per side: ${runs} (+1 untimed warm-up each)   poll: every ${POLL_MS} ms`);
  out.push('');
  out.push(`${'ms'.padEnd(22)}${'p50'.padStart(9)}${'p95'.padStart(9)}${'min'.padStart(9)}${'max'.padStart(9)}${'runs'.padStart(6)}`);
  out.push(row('RedFleet', f));
  out.push(row('raw floor', r));
  out.push('');
  out.push(`ratio p50 RedFleet / p50 raw: ${Number.isFinite(ratio) ? ratio.toFixed(1) : '-'}x   goal <= 3x: ${ratio <= 3 ? 'MET' : 'NOT MET'}`);
  out.push('');
  out.push(`all runs, sorted (ms):`);
  out.push(`  RedFleet   ${[...fleet.runs.map((x) => x.ms)].sort((a, b) => a - b).map((v) => v.toFixed(0)).join(' ')}`);
  out.push(`  raw floor  ${[...raw.ms].sort((a, b) => a - b).map((v) => v.toFixed(0)).join(' ')}`);
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
  const busy = otherLoad.busySamples > 0
    ? `NOISY: redis-server/etcd processes not started by this benchmark were running in ${otherLoad.busySamples} of ${otherLoad.samples} samples (at most ${otherLoad.most.length}: ${otherLoad.most.slice(0, 6).join(' ')})`
    : `quiet: no redis-server/etcd processes but this benchmark's in ${otherLoad.samples} samples`;
  out.push(`other load: ${busy}; 1-min load average ${loadBefore.toFixed(2)} before, ${loadavg()[0].toFixed(2)} after`);
  out.push('');
  out.push('machine:');
  for (const [k, v] of Object.entries(host)) out.push(`  ${k.padEnd(13)}${v}`);
  out.push('');
  out.push(`reproduce: ${REPRODUCE}   (fewer runs: npm run build && node dist/bench/create-latency.js --runs 5)`);
  console.log(out.join('\n'));
  return failures.length > 0 ? 1 : 0;
}

main().then(
  (code) => { process.exitCode = code; },
  (err: Error) => {
    console.error(`create-latency: ${err.stack ?? err.message}`);
    process.exitCode = 1;
  },
);
