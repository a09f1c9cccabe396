import { setTimeout as sleep } from 'node:timers/promises';
import type { FleetStore } from '../store/fleet-store.js';
import type { Proc } from '../domain/model.js';
import { isLive } from '../domain/rules.js';
import { capacityMessage, isShuttingDown } from '../domain/message.js';
import { OperationRefusedError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { RedisLinks } from './redis-links.js';
import type { Progress } from './operations.js';

/** How long one proc's agent has to carry out a CAPACITY before it is sent again. */
const CAPACITY_ROUND_MS = 10_000;
/** CAPACITY rounds before a resize gives up. */
const CAPACITY_ROUNDS = 4;
/** Attempts at a CONFIG SET on one proc before it counts as failed. */
const CONFIG_ATTEMPTS = 10;

/** The live procs of an instance that are not being shut down: the ones a setting must reach. */
export function servingProcs(store: FleetStore, name: string): Proc[] {
  return store.instance(name)?.procs.filter((p) => isLive(p) && !isShuttingDown(p)) ?? [];
}

/**
 * Gives every serving proc of the instance the capacity `capacityMb` in place, through its agent
 * (Msg CAPACITY: maxmemory, client limits, memory ceiling), and resolves once each proc's
 * Capacity key says it has it. A proc placed meanwhile (a lost replica's replacement) is caught
 * by the next pass. A message a failover overwrote is sent again.
 */
export async function applyCapacity(store: FleetStore, name: string, capacityMb: number, log: Logger, progress: Progress): Promise<void> {
  await progress(`setting maxmemory ${capacityMb} MB on every proc`);
  const sent = new Map<string, { at: number; rounds: number }>();
  const deadline = Date.now() + CAPACITY_ROUNDS * CAPACITY_ROUND_MS;
  for (;;) {
    const behind = servingProcs(store, name).filter((p) => p.capacity !== capacityMb);
    if (behind.length === 0) return;
    if (Date.now() > deadline) {
      const names = behind.map((p) => `${p.id} on ${p.sid}`).join(', ');
      throw new OperationRefusedError(`${behind.length} proc(s) did not take capacity ${capacityMb} MB in time: ${names}; see those agents' logs`);
    }
    for (const p of behind) {
      const last = sent.get(p.id);
      if (p.msg || (last && Date.now() - last.at < CAPACITY_ROUND_MS)) continue;
      if (!(await store.sendMsg(name, p.id, capacityMessage(capacityMb)))) continue;
      sent.set(p.id, { at: Date.now(), rounds: (last?.rounds ?? 0) + 1 });
      log.info('capacity sent to proc', { instance: name, proc: p.id, agent: p.sid, capacityMb, round: (last?.rounds ?? 0) + 1 });
    }
    await sleep(50);
  }
}

/**
 * CONFIG SET on every serving proc of the instance through the scheduler's links (framework
 * user). The master must take it; a replica that does not answer is logged and skipped (its
 * launch config or its next resync decides).
 */
export async function configSetAll(store: FleetStore, links: RedisLinks, name: string, param: string, value: string, log: Logger): Promise<void> {
  const mname = store.instance(name)?.mname;
  for (const p of servingProcs(store, name)) {
    if (await configSet(links, p, param, value)) continue;
    if (p.id === mname) throw new OperationRefusedError(`the master ${p.id} of '${name}' did not take CONFIG SET ${param} ${value}`);
    log.warn('replica did not take a CONFIG SET', { instance: name, proc: p.id, agent: p.sid, param, value });
  }
}

async function configSet(links: RedisLinks, proc: Proc, param: string, value: string): Promise<boolean> {
  for (let i = 0; i < CONFIG_ATTEMPTS; i++) {
    if ((await links.call(proc, 'CONFIG', 'SET', param, value)) === 'OK') return true;
    await sleep(100);
  }
  return false;
}
