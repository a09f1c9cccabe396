/**
 * bench/create-latency/redfleet-run: the RedFleet side. A LocalFleet (etcd, a scheduler, three
 * agents); each run POSTs /v1/CREATE and polls the JSON API until the instance is RUNNING.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { LocalFleet } from '../../test/harness/local-fleet.js';
import { InstanceStatus } from '../../src/domain/model.js';
import { formatMs } from '../figures.js';
import { parseJsonLog } from '../fleet-log.js';
import type { OtherLoad } from '../machine.js';
import { CAPACITY_MB, MAX_CONSECUTIVE_FAILURES, MAX_POLLS, POLL_MS, REPLICAS, RUN_TIMEOUT_MS } from './parameters.js';
import { phaseBreakdown, type Breakdown, type FleetRun } from './phases.js';

/** Polls GET /api/instances/:name every POLL_MS until its status is `status`; bounded. */
async function waitStatus(fleet: LocalFleet, name: string, status: InstanceStatus, deadline: number): Promise<void> {
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
  await waitStatus(fleet, name, InstanceStatus.Running, t0 + RUN_TIMEOUT_MS);
  const ms = performance.now() - t0;
  return { name, ms, wallStart, wallEnd: Date.now() };
}

/** DELETE and wait for DELETED (untimed). A 404 means there is nothing to delete. */
async function fleetDelete(fleet: LocalFleet, name: string): Promise<void> {
  const res = await fleet.api('DELETE', `/api/instances/${name}`);
  if (res.status === 404) return;
  if (res.status !== 202) throw new Error(`DELETE /api/instances/${name} answered ${res.status}: ${res.text.slice(0, 200)}`);
  await waitStatus(fleet, name, InstanceStatus.Deleted, performance.now() + RUN_TIMEOUT_MS);
}

export interface FleetResult {
  runs: FleetRun[];
  failures: string[];
  breakdown?: Breakdown;
  odd: string[];
}

export async function benchFleet(runs: number, otherLoad: OtherLoad): Promise<FleetResult> {
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
