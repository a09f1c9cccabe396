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
 *
 * This file is the entry (flags and main); the parts are in bench/failover/: parameters, the
 * measuring client (prober), the RedFleet run, the Sentinel run, the series of runs and the report.
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { describeMachine } from './machine.js';
import { fail, parseFlags, runMain, runsFlag, type Program } from './program.js';
import { DOWN_AFTER_MS, REPLICAS, REPRODUCE, SERVERS, SYSTEMS, type Outcome, type System } from './failover/parameters.js';
import { clientSettings } from './failover/prober.js';
import { benchFleet } from './failover/redfleet-run.js';
import { report } from './failover/report.js';
import { benchSentinel, started } from './failover/sentinel-run.js';
import { otherLoad } from './failover/series.js';

const PROGRAM: Program = {
  name: 'failover',
  usage: `usage: node dist/bench/failover.js [--runs N]   (or: ${REPRODUCE})
  --runs N   timed runs per system and fault (default 10, 1-200); one untimed kill -9 warm-up run
             precedes each system
  --only S   run one system only (redfleet or sentinel), for a quick look; no ratios then
  --disconnect-timeout MS   set the client's ioredis disconnectTimeout (default: ioredis's, 2000 ms), to
             see how much of the SIGSTOP figure is the client waiting to drop its socket to the frozen master`,
};

interface Args {
  runs: number;
  only?: System;
  /** ioredis `disconnectTimeout`; undefined: ioredis's default (2000 ms). */
  disconnectTimeout?: number;
}

function parseArgs(argv: string[]): Args {
  const values = parseFlags(PROGRAM, argv, {
    runs: { type: 'string' },
    only: { type: 'string' },
    'disconnect-timeout': { type: 'string' },
  });
  const runs = runsFlag(PROGRAM, values.runs, 10, 200);
  let disconnectTimeout: number | undefined;
  const timeout = values['disconnect-timeout'];
  if (timeout !== undefined) {
    const text = String(timeout);
    if (!/^[0-9]{1,5}$/.test(text) || Number(text) < 1) fail(PROGRAM, `--disconnect-timeout must be a whole number of ms, got ${JSON.stringify(text)}`);
    disconnectTimeout = Number(text);
  }
  let only: System | undefined;
  if (values.only !== undefined) {
    const text = String(values.only).toLowerCase();
    only = SYSTEMS.find((x) => x.toLowerCase() === text);
    if (!only) fail(PROGRAM, `--only takes redfleet or sentinel, got ${JSON.stringify(values.only)}`);
  }
  return { runs, only, disconnectTimeout };
}

/** The ioredis the client runs, for the report (this file runs as dist/bench/failover.js). */
function ioredisVersion(): string {
  try {
    return String(JSON.parse(readFileSync(new URL('../../node_modules/ioredis/package.json', import.meta.url), 'utf8')).version);
  } catch {
    return 'unknown';
  }
}

async function main(): Promise<number> {
  const { runs, only, disconnectTimeout } = parseArgs(process.argv.slice(2));
  clientSettings.disconnectTimeout = disconnectTimeout;
  started.cleanUpOnExit('failover');
  const startedAt = new Date();
  const host = describeMachine(SERVERS);
  if (host['redis-sentinel'].startsWith('unknown')) fail(PROGRAM, 'redis-sentinel is not installed (Debian: apt-get install -y redis-sentinel)');
  const loadBefore = loadavg()[0];
  otherLoad.sample();
  process.stderr.write(`failover: ${runs} runs per system and fault, 1 master + ${REPLICAS} replicas, down-after ${DOWN_AFTER_MS} ms\n`);

  const out: Outcome = { runs: [], failures: [], notes: [] };
  if (only !== 'Sentinel') await benchFleet(runs, out);
  if (only !== 'RedFleet') await benchSentinel(runs, out);

  const lines = report(out, { runs, startedAt, ioredisVersion: ioredisVersion(), disconnectTimeout, host, otherLoad, loadBefore });
  console.log(lines.join('\n'));
  return out.failures.length > 0 ? 1 : 0;
}

runMain('failover', main);
