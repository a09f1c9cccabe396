/**
 * bench/failover/redfleet-run: the RedFleet side. A LocalFleet (etcd, a scheduler, AGENTS agents);
 * per run one instance `fo<i>` (CAPACITY_MB, REPLICAS replicas), created, faulted, measured and
 * deleted. The timeline comes from the scheduler's "sentinel event" log lines.
 */
import { readFileSync } from 'node:fs';
import { LocalFleet, pidAlive as alive } from '../../test/harness/local-fleet.js';
import { InstanceStatus, type ProcState } from '../../src/domain/model.js';
import { isLive } from '../../src/domain/rules.js';
import { parseJsonLog, type LogEvent } from '../fleet-log.js';
import { AGENTS, CAPACITY_MB, DOWN_AFTER_MS, EVENTS, REPLICAS, SETUP_TIMEOUT_MS, type Fault, type Outcome, type Run } from './parameters.js';
import { Prober, resume, type Hit } from './prober.js';
import { command, masterAddr, pairs } from './sentinel-protocol.js';
import { series } from './series.js';
import { waitFor } from './wait.js';

interface ProcView {
  id: string;
  state: ProcState;
  ip: string;
  port: number;
  pid: number;
}

interface InstanceView {
  status: InstanceStatus;
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
  if (!i || i.status !== InstanceStatus.Running || !i.master || i.slaves.length !== REPLICAS) return false;
  return i.procs.filter((p) => isLive(p)).length === REPLICAS + 1;
}

function commOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** Creates `name` and waits until it is whole; its master must be a redis-server on this machine. */
async function createWhole(fleet: LocalFleet, name: string): Promise<{ before: InstanceView; password: string }> {
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
  return { before, password };
}

/** Waits for the first write on a new master; a run that gets none fails with what the fleet says. */
async function waitNewMaster(fleet: LocalFleet, name: string, prober: Prober, master: ProcView): Promise<Hit> {
  return prober.waitNewMaster().catch(async (err: Error) => {
    const named = await masterAddr(fleet.sentinelPort, name).catch((e: Error) => `error ${e.message}`);
    const inst = await getInstance(fleet, name).catch(() => undefined);
    const procs = inst?.procs.map((p) => `${p.port} ${p.id === inst.master?.id ? 'master' : 'replica'} ${p.state}`).join(', ');
    throw new Error(`${err.message}; old master port ${master.port}; endpoint names ${named}; instance ${inst?.status} epoch ${inst?.epoch} (${inst?.reason ?? ''}); procs: ${procs}`);
  });
}

/** Untimed: the instance should heal to 1 + 2 with one failover, and the old master end. */
async function checkHealed(fleet: LocalFleet, name: string, before: InstanceView, notes: string[]): Promise<void> {
  const master = before.master!;
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
}

async function fleetRun(fleet: LocalFleet, fault: Fault, name: string): Promise<Run> {
  const { before, password } = await createWhole(fleet, name);
  const master = before.master!;
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
    const hit = await waitNewMaster(fleet, name, prober, master);
    if (frozen) {
      resume(master.pid);
      frozen = false;
    }
    const named = await masterAddr(fleet.sentinelPort, name);
    if (named !== `127.0.0.1:${hit.port}`) notes.push(`first write went to port ${hit.port} but the endpoint names ${named}`);
    if (!before.slaves.some((s) => s.port === hit.port)) notes.push(`port ${hit.port} was not one of the replicas`);
    await checkHealed(fleet, name, before, notes);
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
  await waitFor(`${name} to be DELETED`, SETUP_TIMEOUT_MS, async () => ((await getInstance(fleet, name))?.status === InstanceStatus.Deleted ? true : undefined));
}

/** Does a Sentinel event message name the instance (`master fo1 ip port`, `fo1 ip port ip port`)? */
function namesInstance(message: string, name: string): boolean {
  return message.split(' ').includes(name);
}

/** Each RedFleet run's timeline and failover cause, from the scheduler's log. */
function addTimelines(scheduler: LogEvent[], out: Outcome): void {
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
}

/** Warnings and errors, counted by message, excluding the expected failover narrative. */
function addOddLogLines(events: LogEvent[], out: Outcome): void {
  const expected = new Set(['master subjectively down', 'master objectively down', 'failover', 'proc state']);
  const counts = new Map<string, number>();
  const firsts = new Map<string, string>();
  for (const e of events) {
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
}

export async function benchFleet(runs: number, out: Outcome): Promise<void> {
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
    addTimelines(scheduler, out);
    addOddLogLines([...scheduler, ...agents], out);
  } finally {
    await fleet.stop();
  }
}
