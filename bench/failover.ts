/**
 * bench/failover: how long a master failure interrupts writes, RedFleet against real Redis
 * Sentinel, on the same topology (1 master + 2 replicas) and the same down-after (1000 ms).
 *
 * For each fault (kill -9 and SIGSTOP of the master) and each system it measures the time from
 * the fault (t0, taken just before process.kill) to the first SET acknowledged by the NEW master,
 * as seen by one ioredis client that finds the master only through the Sentinel protocol
 * (RedFleet's Sentinel-compatible endpoint, or the three redis-sentinel processes) with
 * `failoverDetector` on. The client issues a SET every 5 ms without waiting for the previous
 * reply (at most MAX_IN_FLIGHT outstanding), so the figure has ~5 ms resolution whatever state
 * the connection is in. A reply counts only if it arrived after t0 on a connection to a port
 * other than the old master's (ioredis `redis.stream.remotePort` when the reply is handled);
 * afterwards the benchmark checks that the Sentinel side names that same port as the master.
 *
 *   RedFleet: LocalFleet (etcd, a scheduler, 4 agents); per run one instance `fo<i>`
 *             (32 MB, 2 replicas), created, faulted, measured, deleted.
 *   Sentinel: per run three redis-server started here (REPLICAOF-linked) and three
 *             `redis-sentinel` (quorum 2, down-after-milliseconds 1000, failover-timeout 10000),
 *             all removed afterwards.
 *
 * Reports p50, p95 (nearest rank: with 10 runs p95 is the maximum), min and max per cell, the
 * ratio p50(RedFleet) / p50(Sentinel) per fault against the goal (kill -9 <= 0.25,
 * SIGSTOP <= 0.5), an event timeline of both sides from their logs, and the machine.
 *
 *   npm run build && node dist/bench/failover.js            (10 runs per cell)
 *   npm run build && node dist/bench/failover.js --runs 2   (a quick check)
 *
 * Also: `--only redfleet|sentinel` (one side), `--disconnect-timeout MS` (the client's ioredis
 * disconnectTimeout; default ioredis's 2000 ms, which bounds how long the client keeps a socket
 * to a frozen master after +switch-master), FAILOVER_BENCH_TRACE=1 (the client's connection
 * events around each fault on stderr), REDFLEET_KEEP_TEST_DIRS=1 (keep logs and directories).
 *
 * Every wait is bounded: a run with no write on a new master 30 s after the fault is given up and
 * reported as failed (left out of the figures). Every process started here is killed, and every
 * temporary directory removed, after each run and on exit, even on failure.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { type Socket } from 'node:net';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { LocalFleet, pidAlive as alive } from '../test/harness/local-fleet.js';
import {
  describeMachine, formatMs, freePorts, machineLines, OtherLoad, parseJsonLog, portOpen, redisServerConf, runMain, runsOption, sleep,
  sortedRuns, StartedHere, stopProcess, summarize, summaryHeader, summaryRow, type Spawned, type SummaryLayout,
} from './common.js';

const DOWN_AFTER_MS = 1000;
/** Sentinel's failover-timeout for the master: 10 s (its default is 180 s; only one failover happens per run). */
const SENTINEL_FAILOVER_TIMEOUT_MS = 10_000;
const SENTINEL_QUORUM = 2;
const SENTINELS = 3;
const REPLICAS = 2;
const CAPACITY_MB = 32;
const AGENTS = 4;
/** Bound on the wait for a write on the new master, from the fault. */
const RUN_TIMEOUT_MS = 30_000;
/** Bound on any setup or teardown wait. */
const SETUP_TIMEOUT_MS = 30_000;
const WRITE_EVERY_MS = 5;
const MAX_IN_FLIGHT = 100;
/** Writes that must succeed on the master before the fault. */
const WARM_WRITES = 50;
const POLL_MS = 5;
const MAX_CONSECUTIVE_FAILURES = 3;
const TRACE = process.env.FAILOVER_BENCH_TRACE === '1';
/** Set from --disconnect-timeout before any client exists. */
let CLIENT_DISCONNECT_TIMEOUT: number | undefined;
let IOREDIS_VERSION = 'unknown';
const REPRODUCE = 'npm run build && node dist/bench/failover.js';
/** Servers whose versions the report gives, and whose other instances on the machine count as noise. */
const SERVERS = ['redis-server', 'redis-sentinel', 'etcd'] as const;
const TABLE: SummaryLayout = { labelWidth: 20, cellWidth: 8, digits: 0 };

const FAULTS = ['SIGKILL', 'SIGSTOP'] as const;
type Fault = (typeof FAULTS)[number];
const FAULT_LABEL: Record<Fault, string> = { SIGKILL: 'kill -9', SIGSTOP: 'SIGSTOP' };
const GOAL: Record<Fault, number> = { SIGKILL: 0.25, SIGSTOP: 0.5 };
const SYSTEMS = ['RedFleet', 'Sentinel'] as const;
type System = (typeof SYSTEMS)[number];
/** Events in the order a failover goes through them; both sides log them by these names. */
const EVENTS = ['+sdown', '+odown', '+try-failover', '+promoted-slave', '+switch-master'] as const;
type EventName = (typeof EVENTS)[number];

const USAGE = `usage: node dist/bench/failover.js [--runs N]   (or: ${REPRODUCE})
  --runs N   timed runs per system and fault (default 10, 1-200); one untimed kill -9 warm-up run
             precedes each system
  --only S   run one system only (redfleet or sentinel), for a quick look; no ratios then
  --disconnect-timeout MS   set the client's ioredis disconnectTimeout (default: ioredis's, 2000 ms), to
             see how much of the SIGSTOP figure is the client waiting to drop its socket to the frozen master`;

// ---------------------------------------------------------------------------------------------
// small helpers

function fail(message: string): never {
  console.error(`failover: ${message}`);
  process.exit(2);
}

interface Args {
  runs: number;
  only?: System;
  /** ioredis `disconnectTimeout`; undefined: ioredis's default (2000 ms). */
  disconnectTimeout?: number;
}

function parseArgs(argv: string[]): Args {
  let runs = 10;
  let only: System | undefined;
  let disconnectTimeout: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--help' || arg === '-h') {
      console.log(USAGE);
      process.exit(0);
    }
    const r = runsOption(argv, i, 200, fail);
    if (r) {
      runs = r.runs;
      i = r.last;
      continue;
    }
    if (arg === '--disconnect-timeout') {
      const text = argv[++i];
      if (text === undefined || !/^[0-9]{1,5}$/.test(text) || Number(text) < 1) fail(`--disconnect-timeout must be a whole number of ms, got ${JSON.stringify(text)}`);
      disconnectTimeout = Number(text);
      continue;
    }
    if (arg === '--only') {
      const text = (argv[++i] ?? '').toLowerCase();
      const system = SYSTEMS.find((x) => x.toLowerCase() === text);
      if (!system) fail(`--only takes redfleet or sentinel, got ${JSON.stringify(argv[i])}`);
      only = system;
      continue;
    }
    fail(`unknown argument '${arg}'\n${USAGE}`);
  }
  return { runs, only, disconnectTimeout };
}

/** Polls `probe` every POLL_MS until it returns a value; throws after `timeoutMs`. Bounded in iterations too. */
async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  const maxPolls = Math.ceil(timeoutMs / POLL_MS) + 1;
  let lastError = '';
  for (let i = 0; i < maxPolls; i++) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      lastError = (err as Error).message;
    }
    if (performance.now() > deadline) break;
    await sleep(POLL_MS);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${lastError})` : ''}`);
}

/** One command to a Redis or Sentinel port on a short-lived connection. */
async function command(port: number, args: string[], password?: string): Promise<unknown> {
  const r = new Redis({
    host: '127.0.0.1', port, password, lazyConnect: true, connectTimeout: 1000, commandTimeout: 1000,
    maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false,
  });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return await r.call(args[0], ...args.slice(1));
  } finally {
    r.disconnect();
  }
}

/** A flat [k1, v1, k2, v2, ...] reply (RESP2 map) as an object. */
function pairs(reply: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!Array.isArray(reply)) return out;
  for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = String(reply[i + 1]);
  return out;
}

async function masterAddr(sentinelPort: number, name: string): Promise<string> {
  const reply = await command(sentinelPort, ['SENTINEL', 'get-master-addr-by-name', name]);
  return Array.isArray(reply) ? `${reply[0]}:${reply[1]}` : 'none';
}

/** SIGCONT to a process frozen by the benchmark (it may have ended meanwhile: RedFleet fences it). */
function resume(pid: number): void {
  try {
    process.kill(pid, 'SIGCONT');
  } catch {
    // already gone
  }
}

function commOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

// ---------------------------------------------------------------------------------------------
// the measuring client (identical for both systems)

interface Hit {
  /** ms from the fault to the first SET acknowledged on the new master. */
  ms: number;
  port: number;
  /** Whether the old master's process still existed when that reply came. */
  oldAlive: boolean;
  /** Errors the client's SETs got between the fault and that reply, by kind. */
  errors: Map<string, number>;
}

/**
 * An ioredis client that finds the master through the Sentinel protocol and sends a SET every
 * WRITE_EVERY_MS (pipelined, at most MAX_IN_FLIGHT outstanding), remembering the first success
 * after the fault on a connection to a port other than the old master's.
 */
class Prober {
  readonly redis: Redis;
  ok = 0;
  errors = 0;
  readonly errorKinds = new Map<string, number>();
  subscribed = 0;
  /** Successful writes after the fault, by the port of the connection they came back on. */
  readonly okAfter = new Map<number, number>();
  private seq = 0;
  private lastErrorKind = '';
  private inFlight = 0;
  private stopped = false;
  private loop?: Promise<void>;
  private fault?: { t0: number; oldPort: number; oldPid: number };
  private readonly errorsAfterFault = new Map<string, number>();
  private hit?: Hit;

  constructor(sentinels: { host: string; port: number }[], name: string, password?: string) {
    this.redis = new Redis({
      sentinels,
      name,
      password,
      failoverDetector: true,
      commandTimeout: 300,
      maxRetriesPerRequest: 1,
      retryStrategy: () => 20,
      sentinelRetryStrategy: () => 20,
      ...(CLIENT_DISCONNECT_TIMEOUT === undefined ? {} : { disconnectTimeout: CLIENT_DISCONNECT_TIMEOUT }),
    });
    this.redis.on('error', (err: Error) => this.trace(`error ${err.message.slice(0, 120)}`));
    for (const ev of ['connect', 'ready', 'close', 'reconnecting'] as const) this.redis.on(ev, () => this.trace(`${ev} port ${this.port ?? '-'}`));
    this.redis.on('sentinelError', (err: Error) => this.trace(`sentinelError ${err.message.slice(0, 120)}`));
    // Emitted by ioredis's SentinelConnector once its FailoverDetector has subscribed to
    // +switch-master on the sentinels (after every (re)connection).
    this.redis.on('failoverSubscribed', () => { this.subscribed++; });
  }

  /** With FAILOVER_BENCH_TRACE=1, the client's connection events around the fault go to stderr. */
  private trace(what: string): void {
    if (!TRACE || !this.fault) return;
    process.stderr.write(`  client +${(performance.now() - this.fault.t0).toFixed(0)} ms: ${what}\n`);
  }

  /** The port the client's connection goes to right now, if connected. */
  get port(): number | undefined {
    return (this.redis.stream as Socket | undefined)?.remotePort;
  }

  start(): void {
    this.loop = (async () => {
      const deadline = performance.now() + SETUP_TIMEOUT_MS + RUN_TIMEOUT_MS + 5000;
      const maxIterations = Math.ceil((SETUP_TIMEOUT_MS + RUN_TIMEOUT_MS + 5000) / WRITE_EVERY_MS);
      for (let i = 0; !this.stopped && i < maxIterations && performance.now() < deadline; i++) {
        if (this.inFlight < MAX_IN_FLIGHT) this.write();
        await sleep(WRITE_EVERY_MS);
      }
    })();
  }

  private write(): void {
    const n = this.seq++;
    this.inFlight++;
    this.redis.set(`bench:${n}`, String(n)).then(
      () => {
        const t = performance.now();
        this.ok++;
        const port = this.port;
        if (this.fault && t > this.fault.t0) this.okAfter.set(port ?? 0, (this.okAfter.get(port ?? 0) ?? 0) + 1);
        if (this.fault && !this.hit && t > this.fault.t0 && port !== undefined && port !== this.fault.oldPort) {
          this.hit = { ms: t - this.fault.t0, port, oldAlive: alive(this.fault.oldPid), errors: new Map(this.errorsAfterFault) };
          this.trace(`first write acknowledged on port ${port}`);
        }
      },
      (err: Error) => {
        this.errors++;
        const kind = err.message.replace(/[0-9]+/g, 'N').slice(0, 80);
        this.errorKinds.set(kind, (this.errorKinds.get(kind) ?? 0) + 1);
        if (this.fault && !this.hit) this.errorsAfterFault.set(kind, (this.errorsAfterFault.get(kind) ?? 0) + 1);
        if (kind !== this.lastErrorKind) this.trace(`SET #${n} failed: ${err.message.slice(0, 100)} (port ${this.port ?? '-'})`);
        this.lastErrorKind = kind;
      },
    ).finally(() => { this.inFlight--; });
  }

  /** Resolves once WARM_WRITES writes went through to `masterPort` and the failover detector listens. */
  async ready(masterPort: number): Promise<void> {
    const base = this.ok;
    await waitFor(`the client to write to the master on port ${masterPort}`, SETUP_TIMEOUT_MS, () =>
      this.ok - base >= WARM_WRITES && this.subscribed > 0 && this.port === masterPort ? true : undefined);
  }

  /** Marks t0 and sends `signal` to `pid` at once. Returns the wall-clock time of the fault. */
  inject(pid: number, signal: Fault, oldPort: number): number {
    const wall = Date.now();
    this.fault = { t0: performance.now(), oldPort, oldPid: pid };
    process.kill(pid, signal);
    return wall;
  }

  /** Resolves at the first write acknowledged by a new master; throws after RUN_TIMEOUT_MS or when ioredis gives up. */
  async waitNewMaster(): Promise<Hit> {
    let got: Hit | 'end';
    try {
      got = await waitFor('a write acknowledged by a new master', RUN_TIMEOUT_MS, () => this.hit ?? (this.redis.status === 'end' ? 'end' : undefined));
    } catch (err) {
      throw new Error(`${(err as Error).message}; ${this.describe()}`);
    }
    if (got === 'end') throw new Error(`the ioredis client gave up (status 'end': it will not reconnect); ${this.describe()}`);
    return got;
  }

  /** What the client saw, for a failed run. */
  describe(): string {
    const after = [...this.okAfter].map(([port, n]) => `${n} on port ${port}`).join(', ') || 'none';
    return `client status ${this.redis.status}, connected to port ${this.port ?? '-'}; writes acknowledged after the fault: ${after}; `
      + `${this.errors} errors: ${this.errorSummary().slice(0, 400) || 'none'}`;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    this.redis.disconnect();
  }

  errorSummary(): string {
    return [...this.errorKinds].map(([k, n]) => `${n}x ${k}`).join('; ');
  }
}

// ---------------------------------------------------------------------------------------------
// results

interface Run {
  system: System;
  fault: Fault;
  label: string;
  ms: number;
  port: number;
  /** Wall-clock ms of the fault, to line up with log timestamps. */
  wall: number;
  /** ms after the fault when each event was first logged (absent: not logged). */
  events: Partial<Record<EventName, number>>;
  oldAlive: boolean;
  errors: Map<string, number>;
  /** RedFleet: the cause its "failover" log line gives. */
  cause?: string;
  notes: string[];
}

interface Outcome {
  runs: Run[];
  failures: string[];
  notes: string[];
}

/** Samples other redis-server, redis-sentinel and etcd processes between runs (untimed). */
const otherLoad = new OtherLoad(SERVERS);

function progress(run: Run): void {
  process.stderr.write(`${run.system} ${FAULT_LABEL[run.fault]} ${run.label}: ${run.ms.toFixed(0)} ms${run.notes.length ? ` (${run.notes.join('; ')})` : ''}\n`);
}

/**
 * Runs warm-up + runs x FAULTS (alternating kill -9 and SIGSTOP) through `one`, bounded by
 * MAX_CONSECUTIVE_FAILURES.
 */
async function series(system: System, runs: number, one: (i: number, fault: Fault) => Promise<Run>, out: Outcome): Promise<void> {
  let consecutive = 0;
  for (let i = 0; i <= runs; i++) {
    for (const fault of i === 0 ? (['SIGKILL'] as const) : FAULTS) {
      try {
        const run = await one(i, fault);
        if (i > 0) out.runs.push(run);
        else run.label = `${run.label} (warm-up, untimed)`;
        progress(run);
        consecutive = 0;
      } catch (err) {
        consecutive++;
        const msg = `${system} ${FAULT_LABEL[fault]} run ${i}${i === 0 ? ' (warm-up)' : ''}: ${(err as Error).message}`;
        if (i > 0) out.failures.push(msg);
        else out.notes.push(msg);
        process.stderr.write(`FAILED ${msg}\n`);
      }
      otherLoad.sample();
      if (consecutive >= MAX_CONSECUTIVE_FAILURES) throw new Error(`${consecutive} ${system} runs failed in a row; giving up`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// RedFleet side

interface ProcView {
  id: string;
  state: string;
  ip: string;
  port: number;
  pid: number;
}

interface InstanceView {
  status: string;
  reason?: string;
  epoch: number;
  master: ProcView | null;
  slaves: ProcView[];
  procs: ProcView[];
}

async function getInstance(fleet: LocalFleet, name: string): Promise<InstanceView | undefined> {
  const res = await fleet.api('GET', `/api/instances/${name}`);
  return res.status === 200 ? (res.json as InstanceView) : undefined;
}

/** 1 master + REPLICAS replicas, all RUNNING, nothing else live. */
function whole(i: InstanceView | undefined): boolean {
  if (!i || i.status !== 'RUNNING' || !i.master || i.slaves.length !== REPLICAS) return false;
  return i.procs.filter((p) => ['STAGING', 'STARTING', 'RUNNING'].includes(p.state)).length === REPLICAS + 1;
}

async function fleetRun(fleet: LocalFleet, fault: Fault, name: string): Promise<Run> {
  const res = await fleet.api('POST', '/api/instances', { name, capacityMb: CAPACITY_MB, replicas: REPLICAS });
  if (res.status !== 202) throw new Error(`POST /api/instances answered ${res.status}: ${res.text.slice(0, 200)}`);
  const password = String(res.json.password);
  const before = await waitFor(`${name} to be RUNNING with ${REPLICAS} replicas`, SETUP_TIMEOUT_MS, async () => {
    const inst = await getInstance(fleet, name);
    return whole(inst) ? inst : undefined;
  });
  const master = before.master!;
  if (!(master.pid > 1) || commOf(master.pid) !== 'redis-server') {
    throw new Error(`the master's pid ${master.pid} is not a redis-server on this machine (${commOf(master.pid) || 'no such process'})`);
  }
  const info = pairs(await command(fleet.sentinelPort, ['SENTINEL', 'master', name]));
  const notes: string[] = [];
  if (Number(info['down-after-milliseconds']) !== DOWN_AFTER_MS) notes.push(`down-after is ${info['down-after-milliseconds']} ms, not ${DOWN_AFTER_MS}`);
  const prober = new Prober([{ host: '127.0.0.1', port: fleet.sentinelPort }], name, password);
  let frozen = false;
  try {
    prober.start();
    await prober.ready(master.port);
    const wall = prober.inject(master.pid, fault, master.port);
    frozen = fault === 'SIGSTOP';
    const hit = await prober.waitNewMaster().catch(async (err: Error) => {
      const named = await masterAddr(fleet.sentinelPort, name).catch((e: Error) => `error ${e.message}`);
      const inst = await getInstance(fleet, name).catch(() => undefined);
      const procs = inst?.procs.map((p) => `${p.port} ${p.id === inst.master?.id ? 'master' : 'replica'} ${p.state}`).join(', ');
      throw new Error(`${err.message}; old master port ${master.port}; endpoint names ${named}; instance ${inst?.status} epoch ${inst?.epoch} (${inst?.reason ?? ''}); procs: ${procs}`);
    });
    if (frozen) {
      resume(master.pid);
      frozen = false;
    }
    const named = await masterAddr(fleet.sentinelPort, name);
    if (named !== `127.0.0.1:${hit.port}`) notes.push(`first write went to port ${hit.port} but the endpoint names ${named}`);
    if (!before.slaves.some((s) => s.port === hit.port)) notes.push(`port ${hit.port} was not one of the replicas`);
    // Untimed: the instance should heal to 1 + 2 with one failover, and the old master end.
    try {
      const after = await waitFor(`${name} to be whole again`, 20_000, async () => {
        const inst = await getInstance(fleet, name);
        return whole(inst) && inst!.master!.id !== master.id && !alive(master.pid) ? inst : undefined;
      });
      if (after.epoch !== before.epoch + 1) notes.push(`epoch went ${before.epoch} -> ${after.epoch} (more than one failover)`);
    } catch (err) {
      const inst = await getInstance(fleet, name).catch(() => undefined);
      notes.push(`not whole 20 s after the write resumed: status ${inst?.status} (${inst?.reason ?? ''}), old master ${alive(master.pid) ? 'still alive' : 'gone'}; ${(err as Error).message}`);
    }
    return { system: 'RedFleet', fault, label: name, ms: hit.ms, port: hit.port, wall, events: {}, oldAlive: hit.oldAlive, errors: hit.errors, notes };
  } finally {
    if (frozen) resume(master.pid);
    await prober.stop();
  }
}

async function fleetDelete(fleet: LocalFleet, name: string): Promise<void> {
  const res = await fleet.api('DELETE', `/api/instances/${name}`);
  if (res.status === 404) return;
  if (res.status !== 202) throw new Error(`DELETE /api/instances/${name} answered ${res.status}: ${res.text.slice(0, 200)}`);
  await waitFor(`${name} to be DELETED`, SETUP_TIMEOUT_MS, async () => ((await getInstance(fleet, name))?.status === 'DELETED' ? true : undefined));
}

/** Does a Sentinel event message name the instance (`master fo1 ip port`, `fo1 ip port ip port`)? */
function namesInstance(message: string, name: string): boolean {
  return message.split(' ').includes(name);
}

async function benchFleet(runs: number, out: Outcome): Promise<void> {
  const fleet = await LocalFleet.start({ agents: AGENTS });
  try {
    let n = 0;
    await series('RedFleet', runs, async (_i, fault) => {
      const name = `fo${n++}`;
      try {
        return await fleetRun(fleet, fault, name);
      } catch (err) {
        throw new Error(`${name}: ${(err as Error).message}`);
      } finally {
        await fleetDelete(fleet, name);
      }
    }, out);
    // The logs live in the fleet's temporary directory: read them before stop() removes it.
    const scheduler = parseJsonLog(fleet.log('scheduler'));
    const agents = Array.from({ length: AGENTS }, (_, k) => parseJsonLog(fleet.log(`agent${k + 1}`))).flat();
    for (const run of out.runs.filter((r) => r.system === 'RedFleet')) {
      const mine = scheduler.filter((e) => e.t >= run.wall - 5);
      for (const ev of EVENTS) {
        const e = mine.find((x) => x.message === 'sentinel event' && x.channel === ev && namesInstance(String(x.event ?? ''), run.label));
        if (e) run.events[ev] = e.t - run.wall;
      }
      const failovers = scheduler.filter((e) => e.message === 'failover' && e.instance === run.label);
      if (failovers.length !== 1) run.notes.push(`${failovers.length} 'failover' log lines`);
      if (failovers.length > 0) run.cause = String(failovers[0].cause);
    }
    // Warnings and errors, counted by message, excluding the expected failover narrative.
    const expected = new Set(['master subjectively down', 'master objectively down', 'failover', 'proc state']);
    const counts = new Map<string, number>();
    const firsts = new Map<string, string>();
    for (const e of [...scheduler, ...agents]) {
      if (e.level !== 'error' && e.level !== 'warn') continue;
      if (e.level === 'warn' && expected.has(e.message)) continue;
      const key = `${String(e.component ?? '?')} ${String(e.level)}: ${e.message}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
      if (!firsts.has(key)) {
        const { t: _t, timestamp: _ts, message: _m, level: _l, component: _c, ...rest } = e;
        firsts.set(key, JSON.stringify(rest).slice(0, 220));
      }
    }
    for (const [key, count] of counts) out.notes.push(`RedFleet log: ${count}x ${key} (first: ${firsts.get(key)})`);
  } finally {
    await fleet.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// Sentinel side

type Child = Spawned & { what: string };

/** Processes and directories of the Sentinel side, so that an exit can still remove them. */
const started = new StartedHere(Boolean(process.env.REDFLEET_KEEP_TEST_DIRS));

async function waitListening(c: Child, port: number): Promise<void> {
  await waitFor(`${c.what} to listen on ${port}`, SETUP_TIMEOUT_MS, async () => {
    if (c.exited) throw new Error(`${c.what} exited at start: ${c.stderr.trim() || 'see its log'}`);
    return (await portOpen(port, 500)) ? true : undefined;
  });
}

function sentinelConf(port: number, masterPort: number, dir: string, n: number): string {
  return [
    `port ${port}`,
    'bind 127.0.0.1',
    'daemonize no',
    `dir ${dir}`,
    `logfile ${dir}/sentinel-${n}.log`,
    'sentinel resolve-hostnames no',
    `sentinel monitor mymaster 127.0.0.1 ${masterPort} ${SENTINEL_QUORUM}`,
    `sentinel down-after-milliseconds mymaster ${DOWN_AFTER_MS}`,
    `sentinel failover-timeout mymaster ${SENTINEL_FAILOVER_TIMEOUT_MS}`,
    'sentinel parallel-syncs mymaster 1',
    '',
  ].join('\n');
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** `123:X 24 Sep 2025 20:34:00.123 # +sdown master mymaster 127.0.0.1 6379` -> time and text. */
function parseRedisLog(text: string): { t: number; text: string }[] {
  const out: { t: number; text: string }[] = [];
  const re = /^\d+:[A-Z] (\d{1,2}) (\w{3}) (\d{4}) (\d{2}):(\d{2}):(\d{2})\.(\d{3}) \S (.*)$/;
  for (const line of text.split('\n')) {
    const m = re.exec(line);
    if (!m) continue;
    const month = MONTHS.indexOf(m[2]);
    if (month < 0) continue;
    const t = new Date(Number(m[3]), month, Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6]), Number(m[7])).getTime();
    out.push({ t, text: m[8] });
  }
  return out;
}

function sentinelEvents(dir: string, wall: number): Partial<Record<EventName, number>> {
  const lines = Array.from({ length: SENTINELS }, (_, k) => {
    try {
      return parseRedisLog(readFileSync(join(dir, `sentinel-${k + 1}.log`), 'utf8'));
    } catch {
      return [];
    }
  }).flat().filter((l) => l.t >= wall - 5).sort((a, b) => a.t - b.t);
  const out: Partial<Record<EventName, number>> = {};
  const patterns: Record<EventName, RegExp> = {
    '+sdown': /^\+sdown master mymaster /,
    '+odown': /^\+odown master mymaster /,
    '+try-failover': /^\+try-failover master mymaster /,
    '+promoted-slave': /^\+promoted-slave slave .* @ mymaster /,
    '+switch-master': /^\+switch-master mymaster /,
  };
  for (const ev of EVENTS) {
    const l = lines.find((x) => patterns[ev].test(x.text));
    if (l) out[ev] = l.t - wall;
  }
  return out;
}

async function sentinelRun(i: number, fault: Fault): Promise<Run> {
  const dir = started.tempDir('redfleet-bench-failover-');
  const children: Child[] = [];
  const label = `run ${i}`;
  let prober: Prober | undefined;
  let frozenPid = 0;
  try {
    const ports = await freePorts(1 + REPLICAS + SENTINELS);
    const redisPorts = ports.slice(0, 1 + REPLICAS);
    const sentinelPorts = ports.slice(1 + REPLICAS);
    const masterPort = redisPorts[0];
    const redis = redisPorts.map((port, k) => {
      const d = join(dir, `redis${k}`);
      mkdirSync(d);
      writeFileSync(join(d, 'redis.conf'), redisServerConf(port, d, CAPACITY_MB));
      const c = started.spawn('redis-server', [join(d, 'redis.conf')], { what: `redis-server ${port}` });
      children.push(c);
      return c;
    });
    await Promise.all(redis.map((c, k) => waitListening(c, redisPorts[k])));
    for (const port of redisPorts.slice(1)) await command(port, ['REPLICAOF', '127.0.0.1', String(masterPort)]);
    await Promise.all(redisPorts.slice(1).map((port) => waitFor(`replica ${port} to link up`, SETUP_TIMEOUT_MS, async () => {
      const text = String(await command(port, ['INFO', 'replication']));
      return /^master_link_status:up/m.test(text) ? true : undefined;
    })));
    const sentinels = sentinelPorts.map((port, k) => {
      const conf = join(dir, `sentinel-${k + 1}.conf`);
      writeFileSync(conf, sentinelConf(port, masterPort, dir, k + 1), { mode: 0o600 });
      const c = started.spawn('redis-sentinel', [conf], { what: `redis-sentinel ${port}` });
      children.push(c);
      return c;
    });
    await Promise.all(sentinels.map((c, k) => waitListening(c, sentinelPorts[k])));
    await Promise.all(sentinelPorts.map((port) => waitFor(`sentinel ${port} to see the master with ${REPLICAS} replicas and ${SENTINELS - 1} other sentinels`, SETUP_TIMEOUT_MS, async () => {
      const m = pairs(await command(port, ['SENTINEL', 'master', 'mymaster']));
      return m.flags === 'master' && Number(m['num-slaves']) === REPLICAS && Number(m['num-other-sentinels']) === SENTINELS - 1 ? true : undefined;
    })));
    prober = new Prober(sentinelPorts.map((port) => ({ host: '127.0.0.1', port })), 'mymaster');
    prober.start();
    await prober.ready(masterPort);
    const masterPid = redis[0].child.pid!;
    const wall = prober.inject(masterPid, fault, masterPort);
    if (fault === 'SIGSTOP') frozenPid = masterPid;
    const hit = await prober.waitNewMaster();
    const notes: string[] = [];
    if (frozenPid) {
      resume(frozenPid);
      frozenPid = 0;
    }
    const named = await Promise.all(sentinelPorts.map((port) => masterAddr(port, 'mymaster').catch((err: Error) => `error ${err.message}`)));
    if (!named.includes(`127.0.0.1:${hit.port}`)) notes.push(`first write went to port ${hit.port} but the sentinels name ${named.join(', ')}`);
    if (!redisPorts.slice(1).includes(hit.port)) notes.push(`port ${hit.port} was not one of the replicas`);
    return { system: 'Sentinel', fault, label, ms: hit.ms, port: hit.port, wall, events: sentinelEvents(dir, wall), oldAlive: hit.oldAlive, errors: hit.errors, notes };
  } finally {
    if (frozenPid) resume(frozenPid);
    await prober?.stop();
    await Promise.all(children.map((c) => stopProcess(c, 'SIGKILL')));
    started.removeDir(dir);
  }
}

async function benchSentinel(runs: number, out: Outcome): Promise<void> {
  await series('Sentinel', runs, sentinelRun, out);
}

// ---------------------------------------------------------------------------------------------
// main

async function main(): Promise<number> {
  const { runs, only, disconnectTimeout } = parseArgs(process.argv.slice(2));
  CLIENT_DISCONNECT_TIMEOUT = disconnectTimeout;
  started.cleanUpOnExit('failover');
  try {
    IOREDIS_VERSION = String(JSON.parse(readFileSync(new URL('../../node_modules/ioredis/package.json', import.meta.url), 'utf8')).version);
  } catch {
    // left as unknown
  }
  const startedAt = new Date();
  const host = describeMachine(SERVERS);
  if (host['redis-sentinel'].startsWith('unknown')) fail('redis-sentinel is not installed (Debian: apt-get install -y redis-sentinel)');
  const loadBefore = loadavg()[0];
  otherLoad.sample();
  process.stderr.write(`failover: ${runs} runs per system and fault, 1 master + ${REPLICAS} replicas, down-after ${DOWN_AFTER_MS} ms\n`);

  const out: Outcome = { runs: [], failures: [], notes: [] };
  if (only !== 'Sentinel') await benchFleet(runs, out);
  if (only !== 'RedFleet') await benchSentinel(runs, out);

  const cell = (system: System, fault: Fault) => out.runs.filter((r) => r.system === system && r.fault === fault);
  const lines: string[] = [];
  lines.push('');
  lines.push(`failover: 1 master + ${REPLICAS} replicas; ms from the fault to the first SET acknowledged by the new master,`);
  lines.push('as seen by one ioredis client that finds the master through the Sentinel protocol (failoverDetector on)');
  lines.push(`date: ${startedAt.toISOString()}   runs per cell: ${runs} (+1 untimed kill -9 warm-up per system)`);
  lines.push(`client: ioredis ${IOREDIS_VERSION}, a SET every ${WRITE_EVERY_MS} ms, pipelined (<= ${MAX_IN_FLIGHT} outstanding), commandTimeout 300 ms, retry/sentinelRetry 20 ms,`);
  lines.push(`        disconnectTimeout ${disconnectTimeout === undefined ? "ioredis's default (2000 ms)" : `${disconnectTimeout} ms (--disconnect-timeout; NOT the default client)`}`);
  lines.push(`RedFleet: ${AGENTS} agents, instance ${CAPACITY_MB} MB, down-after ${DOWN_AFTER_MS} ms (checked on its Sentinel endpoint each run)`);
  lines.push(`Sentinel: ${SENTINELS} redis-sentinel, quorum ${SENTINEL_QUORUM}, down-after-milliseconds ${DOWN_AFTER_MS}, failover-timeout ${SENTINEL_FAILOVER_TIMEOUT_MS}, parallel-syncs 1`);
  lines.push('');
  lines.push(summaryHeader(TABLE));
  for (const fault of FAULTS) {
    for (const system of SYSTEMS) lines.push(summaryRow(`${FAULT_LABEL[fault]}  ${system}`, summarize(cell(system, fault).map((r) => r.ms)), TABLE));
  }
  lines.push('');
  for (const fault of FAULTS) {
    const ratio = summarize(cell('RedFleet', fault).map((r) => r.ms)).p50 / summarize(cell('Sentinel', fault).map((r) => r.ms)).p50;
    const met = Number.isFinite(ratio) && ratio <= GOAL[fault];
    lines.push(`${FAULT_LABEL[fault].padEnd(8)} p50 RedFleet / p50 Sentinel = ${Number.isFinite(ratio) ? ratio.toFixed(2) : '-'}x   goal <= ${GOAL[fault]}x: ${met ? 'MET' : 'NOT MET'}`);
  }
  lines.push('(p95 is nearest-rank: with 10 runs it is the slowest run)');
  lines.push('');
  lines.push('all runs, sorted (ms):');
  for (const fault of FAULTS) {
    for (const system of SYSTEMS) {
      lines.push(`  ${`${FAULT_LABEL[fault]}  ${system}`.padEnd(20)}${sortedRuns(cell(system, fault).map((r) => r.ms))}`);
    }
  }
  lines.push('');
  lines.push('timeline, ms after the fault (p50 over the runs where the event was logged, n = such runs;');
  lines.push('RedFleet: its scheduler\'s "sentinel event" log lines; Sentinel: earliest line of the three sentinel logs; 1 ms log');
  lines.push('resolution; write-switch: client write minus +switch-master in the same run, p50):');
  lines.push(`  ${''.padEnd(20)}${EVENTS.map((e) => e.padStart(16)).join('')}${'client write'.padStart(14)}${'write-switch'.padStart(14)}`);
  for (const fault of FAULTS) {
    for (const system of SYSTEMS) {
      const rs = cell(system, fault);
      const cols = EVENTS.map((ev) => {
        const vs = rs.map((r) => r.events[ev]).filter((v): v is number => v !== undefined);
        return `${formatMs(summarize(vs).p50, 0)} (n=${vs.length})`.padStart(16);
      });
      const gaps = rs.filter((r) => r.events['+switch-master'] !== undefined).map((r) => r.ms - r.events['+switch-master']!);
      lines.push(`  ${`${FAULT_LABEL[fault]}  ${system}`.padEnd(20)}${cols.join('')}${`${formatMs(summarize(rs.map((r) => r.ms)).p50, 0)} (n=${rs.length})`.padStart(14)}`
        + `${`${formatMs(summarize(gaps).p50, 0)} (n=${gaps.length})`.padStart(14)}`);
    }
  }
  lines.push('');
  lines.push('per cell: old master process still alive at the first write; SET errors the client got between the fault');
  lines.push('and that write (kind: runs where seen); RedFleet: cause in its "failover" log line (runs):');
  for (const fault of FAULTS) {
    for (const system of SYSTEMS) {
      const rs = cell(system, fault);
      if (rs.length === 0) continue;
      const kinds = new Map<string, number>();
      for (const r of rs) for (const k of r.errors.keys()) kinds.set(k, (kinds.get(k) ?? 0) + 1);
      const causes = new Map<string, number>();
      for (const r of rs) if (r.cause) causes.set(r.cause, (causes.get(r.cause) ?? 0) + 1);
      lines.push(`  ${FAULT_LABEL[fault]}  ${system}: old master alive in ${rs.filter((r) => r.oldAlive).length}/${rs.length} runs`
        + `${causes.size ? `; cause: ${[...causes].map(([k, n]) => `${k} (${n})`).join(', ')}` : ''}`);
      for (const [k, n] of [...kinds].sort((a, b) => b[1] - a[1])) lines.push(`      ${k}: ${n}`);
    }
  }
  const runNotes = out.runs.filter((r) => r.notes.length > 0);
  if (runNotes.length > 0 || out.notes.length > 0) {
    lines.push('');
    lines.push('notes:');
    for (const r of runNotes) lines.push(`  ${r.system} ${FAULT_LABEL[r.fault]} ${r.label}: ${r.notes.join('; ')}`);
    for (const n of out.notes) lines.push(`  ${n}`);
  }
  if (out.failures.length > 0) {
    lines.push('');
    lines.push(`failed runs (${out.failures.length}), left out of the figures:`);
    for (const f of out.failures) lines.push(`  ${f}`);
  }
  lines.push('');
  lines.push(otherLoad.line(loadBefore));
  lines.push('');
  lines.push(...machineLines(host));
  lines.push('');
  lines.push(`reproduce: ${REPRODUCE}   (fewer runs: add --runs 2)`);
  console.log(lines.join('\n'));
  return out.failures.length > 0 ? 1 : 0;
}

runMain('failover', main);
