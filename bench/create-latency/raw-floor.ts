/**
 * bench/create-latency/raw-floor: the floor RedFleet is measured against: three redis-server
 * started directly and linked with REPLICAOF, timed from the spawn to both links up.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { STARTUP_HZ } from '../../src/executor/redis-config.js';
import { formatMs } from '../figures.js';
import type { OtherLoad } from '../machine.js';
import { freePorts, portOpen, redisServerConf } from '../servers.js';
import { StartedHere, stopProcess, type Spawned } from '../started-here.js';
import { CAPACITY_MB, MAX_CONSECUTIVE_FAILURES, MAX_POLLS, POLL_MS, REPLICAS, RUN_TIMEOUT_MS } from './parameters.js';

type RawProc = Spawned & { port: number };

/** Raw processes and their directories, so that a signal or an early exit can still remove them. */
export const started = new StartedHere();

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

export async function benchRaw(runs: number, otherLoad: OtherLoad): Promise<{ ms: number[]; failures: string[] }> {
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
