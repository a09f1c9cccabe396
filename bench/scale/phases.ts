/**
 * bench/scale/phases: the phases of bench:scale, each bounded in count and time: the ramped
 * creates, the wait for RUNNING, the steady window and the scheduler's restart on the full tree
 * (the loss of 1% of the agents is in loss.ts).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { LocalFleet } from '../../test/harness/local-fleet.js';
import type { SimAgents } from '../../test/harness/sim-agents.js';
import { percentile } from '../figures.js';
import { parseJsonLog } from '../fleet-log.js';
import { cpuPercent, etcdStatus, firstRunning, procUsage, sampleApi, schedulerHeap, type Heap } from './measure.js';

export const CAPACITY_MB = 16;

export interface CreatePhase {
  names: string[];
  postedAt: Map<string, number>;
  failedPosts: number;
  firstPostAt: number;
  lastRunningAt: number;
  createToRunning: number[];
}

/** Times a refused create is sent again (in a later second's batch) before it counts as failed. */
const CREATE_ATTEMPTS = 5;

/**
 * POSTs `count` instances of 1 + 2, ramping the rate: `startRate` creates per second in the first
 * second, `step` more each second after, up to `maxRate`. Each second's creates go out together;
 * a refused one (an answer other than 202, or none) goes again in a later second.
 */
export async function createRamped(fleet: LocalFleet, count: number, startRate: number, step: number, maxRate: number): Promise<Omit<CreatePhase, 'lastRunningAt' | 'createToRunning'>> {
  const names = Array.from({ length: count }, (_, i) => `scale${i}`);
  const queue = names.map((name) => ({ name, attempts: 0 }));
  const postedAt = new Map<string, number>();
  const refusals = new Map<string, number>();
  let failedPosts = 0;
  let rate = startRate;
  const firstPostAt = Date.now();
  for (let s = 0; queue.length > 0 && s < count * CREATE_ATTEMPTS; s++, rate = Math.min(maxRate, rate + step)) {
    const second = Date.now();
    await Promise.all(queue.splice(0, rate).map(async (item) => {
      postedAt.set(item.name, Date.now());
      const res = await fleet.api('POST', '/api/instances', { name: item.name, capacityMb: CAPACITY_MB, replicas: 2 }).catch((err: Error) => ({ status: 0, text: err.message }));
      if (res.status === 202) return;
      const why = `${res.status} ${res.text.slice(0, 120)}`;
      refusals.set(why, (refusals.get(why) ?? 0) + 1);
      item.attempts += 1;
      if (item.attempts < CREATE_ATTEMPTS) queue.push(item);
      else failedPosts += 1;
    }));
    await sleep(Math.max(0, 1000 - (Date.now() - second)));
  }
  for (const [why, n] of refusals) console.log(`  create refused ${n} time(s): ${why}`);
  return { names, postedAt, failedPosts, firstPostAt };
}

/** Waits (bounded by `timeoutMs`) until every instance has reached RUNNING once, by the scheduler's log; then the latencies. */
export async function awaitRunning(fleet: LocalFleet, created: Omit<CreatePhase, 'lastRunningAt' | 'createToRunning'>, timeoutMs: number, progress: (n: number) => void): Promise<CreatePhase> {
  const deadline = Date.now() + timeoutMs;
  let running = new Map<string, number>();
  for (let i = 0; Date.now() < deadline && i < timeoutMs / 1000 + 1; i++) {
    running = firstRunning(fleet.log('scheduler'));
    progress(running.size);
    if (running.size >= created.names.length) break;
    await sleep(1000);
  }
  if (running.size < created.names.length) throw new Error(`only ${running.size} of ${created.names.length} instances RUNNING within ${timeoutMs} ms`);
  const createToRunning = created.names.map((n) => (running.get(n) ?? NaN) - (created.postedAt.get(n) ?? NaN)).sort((a, b) => a - b);
  return { ...created, lastRunningAt: Math.max(...running.values()), createToRunning };
}

export interface SteadyPhase {
  seconds: number;
  cpuPercent: number;
  rssBytes: number;
  /** The scheduler's heap at the end of the window: what of its RSS is live JS objects. */
  heap: Heap;
  simCpuPercent: number;
  etcdWritesPerSecond: number;
  etcdInUseBytes: number;
  etcdDbBytes: number;
  apiOne: number[];
  /** A page of 100 of the JSON list. */
  apiPage: number[];
  /** The whole v1 STATUS list. */
  apiList: number[];
}

/** Holds steady for `seconds`: the scheduler's and simulator's CPU, RSS, etcd's writes and size, the API's latency. */
export async function steady(fleet: LocalFleet, sim: SimAgents, names: string[], seconds: number): Promise<SteadyPhase> {
  const pid = fleet.scheduler?.pid;
  if (!pid) throw new Error('the scheduler is not running');
  const simPids = sim.pids;
  const [u0, s0, e0] = [procUsage(pid), simPids.map(procUsage), etcdStatus(fleet)];
  const api = await sampleApi(fleet.apiUrl, names, Date.now() + seconds * 1000);
  const [u1, s1, e1] = [procUsage(pid), simPids.map(procUsage), etcdStatus(fleet)];
  const heap = await schedulerHeap(fleet.apiUrl);
  // That scrape (15 MB at 10,000 procs) and its garbage are not to overlap the agent loss that follows.
  await sleep(2000);
  return {
    seconds,
    cpuPercent: cpuPercent(u0, u1),
    rssBytes: u1.rssBytes,
    heap,
    simCpuPercent: s0.reduce((sum, u, i) => sum + cpuPercent(u, s1[i]), 0),
    etcdWritesPerSecond: (e1.revision - e0.revision) / ((e1.at - e0.at) / 1000),
    etcdInUseBytes: e1.dbSizeInUse,
    etcdDbBytes: e1.dbSize,
    apiOne: [...api.one].sort((a, b) => a - b),
    apiPage: [...api.page].sort((a, b) => a - b),
    apiList: [...api.list].sort((a, b) => a - b),
  };
}

/** How long the restarted scheduler is watched after it leads, for masters it wrongly calls down. */
export const AFTER_RESTART_MS = 10_000;

export interface RestartPhase {
  startupToLeadingMs: number;
  /** "master subjectively down" lines from the restarted scheduler within AFTER_RESTART_MS of leading (no master was harmed). */
  sdownAfter: number;
  /** Failovers it started meanwhile. */
  failoversAfter: number;
}

/**
 * Restarts the scheduler on the full tree: ms from its start until it leads (and serves). It is
 * given 2 minutes: the harness's 15 s is for tests' small trees (at 10,000 procs a restart on a
 * busy host took 13.7 s once and over 15 s once). Then it is watched for AFTER_RESTART_MS: a
 * healthy fleet should see no master called down by a scheduler that is still opening its links.
 */
export async function restartScheduler(fleet: LocalFleet): Promise<RestartPhase> {
  await fleet.killScheduler('SIGTERM');
  const t0 = Date.now();
  await fleet.startScheduler(120_000);
  const startupToLeadingMs = Date.now() - t0;
  await sleep(AFTER_RESTART_MS);
  const after = parseJsonLog(fleet.log('scheduler')).filter((ev) => ev.t >= t0);
  return {
    startupToLeadingMs,
    sdownAfter: after.filter((ev) => ev.message === 'master subjectively down').length,
    failoversAfter: after.filter((ev) => ev.message === 'failover').length,
  };
}

export function p(sorted: number[], q: number): number {
  return percentile(sorted, q);
}
