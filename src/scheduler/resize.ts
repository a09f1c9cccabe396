import { setTimeout as sleep } from 'node:timers/promises';
import type { FleetStore } from '../store/fleet-store.js';
import type { Operation } from '../domain/operation.js';
import type { Proc } from '../domain/model.js';
import { parseInfo } from '../domain/redis-info.js';
import { NotFoundError, OperationRefusedError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { OperationHandler, Progress } from './operations.js';
import type { ProcMove } from './proc-move.js';
import type { RedisLinks } from './redis-links.js';
import type { ResourceBroker } from './offers.js';
import { applyCapacity, servingProcs } from './proc-settings.js';
import type { Switchover, SwitchoverPlan } from './switchover.js';

/** What the resize and scale operations use of the framework. */
export interface OperationDeps {
  store: FleetStore;
  broker: ResourceBroker;
  links: RedisLinks;
  moves: ProcMove;
  log: Logger;
  /** The planned switchover: a master that must move is switched over first. */
  switchover: Pick<Switchover, 'run' | 'settle'>;
}

/** How long a reservation waits for the agents to report their procs (after a scheduler start). */
const AGENT_WAIT_MS = 30_000;
/** How long one proc move (a new replica placed and synced) may take. */
const MOVE_TIMEOUT_MS = 120_000;
const MB = 1024 * 1024;

/**
 * Resize (`PATCH /api/instances/:name {"capacityMb"}`), in place wherever it fits:
 * - growing reserves the extra memory on every agent holding a proc; a proc whose agent lacks
 *   the room is moved (a new replica of the new size placed elsewhere and synced, the old one
 *   retired; a master is switched over first); then every proc takes the new maxmemory, memory
 *   ceiling and client limits without a restart, and etcd's Capacity follows;
 * - shrinking below any proc's used_memory is refused (409 with the numbers); above it, the
 *   procs take the new size first and the agents' memory is released after.
 * Every step is idempotent, so the next leader resumes a resize from the start of its step.
 */
export class ResizeOperation implements OperationHandler {
  readonly kind = 'resize' as const;

  constructor(private readonly deps: OperationDeps) {}

  check(name: string, params: Record<string, unknown>): void {
    const to = Number(params.capacityMb);
    const inst = this.deps.store.instance(name);
    if (!inst) throw new NotFoundError('instance', name);
    if (to < inst.capacity) refuseBelowUsed(name, to, servingProcs(this.deps.store, name).map((p) => ({ proc: p, used: p.stats?.usedMemory ?? 0 })));
  }

  async run(name: string, op: Operation, progress: Progress): Promise<void> {
    const inst = this.deps.store.instance(name);
    if (!inst) throw new NotFoundError('instance', name);
    const to = Number(op.params.capacityMb);
    const from = typeof op.params.fromMb === 'number' ? op.params.fromMb : inst.capacity;
    await progress(`resizing from ${from} MB to ${to} MB`);
    if (to >= from) await this.grow(name, op, to, progress);
    else await this.shrink(name, to, progress);
  }

  private async grow(name: string, op: Operation, to: number, progress: Progress): Promise<void> {
    const { store, broker, log } = this.deps;
    await progress(`reserving ${to} MB per proc on each agent`);
    try {
      const cramped = await this.reserve(name, to);
      if (cramped.length > 0) await this.moveOff(name, op, to, cramped, progress);
    } catch (err) {
      // Back to where it was: the memory reserved for procs that kept their old size is freed.
      for (const p of servingProcs(store, name)) if (p.capacity < to) broker.resizeTask(p.sid, p.id, p.capacity);
      throw err;
    }
    // Replacements placed from now on (a lost replica's) get the new size.
    await store.setInstance(name, { Capacity: String(to) });
    await applyCapacity(store, name, to, log, progress);
    log.info('instance resized', { instance: name, capacityMb: to });
  }

  /**
   * Reserves `to` MB for each proc on its agent; returns the procs whose agent lacks the room.
   * An agent that has not told this scheduler of the proc yet (a new leader's first seconds) is
   * waited for: its room is unknown, not missing.
   */
  private async reserve(name: string, to: number): Promise<Proc[]> {
    const deadline = Date.now() + AGENT_WAIT_MS;
    for (;;) {
      const cramped: Proc[] = [];
      const unknown: Proc[] = [];
      for (const p of servingProcs(this.deps.store, name)) {
        if (p.capacity >= to) continue;
        const reserved = this.deps.broker.resizeTask(p.sid, p.id, to);
        if (reserved === false) cramped.push(p);
        else if (reserved === undefined) unknown.push(p);
      }
      if (unknown.length === 0) return cramped;
      if (Date.now() > deadline) {
        throw new OperationRefusedError(`the agents of ${unknown.map((p) => p.id).join(', ')} (${unknown.map((p) => p.sid).join(', ')}) do not report them; resize again once they are back`);
      }
      await sleep(200);
    }
  }

  /**
   * Moves each cramped proc to an agent with room: replicas first, then the master (switched
   * over to a replica on an agent with room, then moved as the replica it has become).
   */
  private async moveOff(name: string, op: Operation, to: number, cramped: Proc[], progress: Progress): Promise<void> {
    const { store, moves, log } = this.deps;
    const avoid = [...new Set(cramped.map((p) => p.sid))];
    const mname = store.instance(name)?.mname;
    const ordered = [...cramped.filter((p) => p.id !== mname), ...cramped.filter((p) => p.id === mname)];
    await progress(`moving ${ordered.length} proc(s) off agents without ${to} MB free: ${avoid.join(', ')}`, { moving: ordered.map((p) => p.id) });
    for (const p of ordered) {
      // With nowhere to go the resize fails now, saying why, rather than after the move's timeout.
      const nowhere = moves.whyNowhere(name, { avoidAgents: avoid, capacityMb: to }, p.id);
      if (nowhere && !store.instance(name)?.procs.some((q) => q.surge === `move:${p.id}`)) {
        throw new OperationRefusedError(`proc ${p.id} must move off agent ${p.sid}, which lacks ${to} MB, and no agent can take it: ${nowhere}`);
      }
      if (p.id === store.instance(name)?.mname) await this.switchFrom(name, op, p, avoid, progress);
      await progress(`moving ${p.id} off agent ${p.sid} (it lacks ${to} MB)`);
      const added = await moves.replaceReplica(name, p.id, { avoidAgents: avoid, capacityMb: to }, MOVE_TIMEOUT_MS);
      log.info('proc moved for a resize', { instance: name, proc: p.id, agent: p.sid, to: added });
    }
  }

  /**
   * Switches the master over to a replica off the cramped agents. A switchover planned by an
   * earlier leader (in the checkpoint) is settled first: done, or undone and run again.
   */
  private async switchFrom(name: string, op: Operation, master: Proc, avoid: string[], progress: Progress): Promise<void> {
    const { switchover } = this.deps;
    const plan = op.data.switchover as SwitchoverPlan | undefined;
    if (plan?.from === master.id && (await switchover.settle(name, plan)) === 'done') return;
    await progress(`switching over from the master ${master.id} on agent ${master.sid}`);
    await switchover.run(name, {
      avoidAgents: avoid,
      cause: `resize: agent ${master.sid} lacks room for the master`,
      beforeSwitch: (p) => progress(`switching over to ${p.to}`, { switchover: p }),
    });
  }

  private async shrink(name: string, to: number, progress: Progress): Promise<void> {
    const { store, broker, log } = this.deps;
    await progress(`checking used_memory against ${to} MB`);
    refuseBelowUsed(name, to, await this.usedNow(name));
    await store.setInstance(name, { Capacity: String(to) });
    await applyCapacity(store, name, to, log, progress);
    for (const p of servingProcs(store, name)) broker.resizeTask(p.sid, p.id, to);
    log.info('instance resized', { instance: name, capacityMb: to });
  }

  /** Each serving proc's used_memory as it answers now (its last stats when it does not). */
  private async usedNow(name: string): Promise<{ proc: Proc; used: number }[]> {
    return Promise.all(servingProcs(this.deps.store, name).map(async (proc) => {
      const text = await this.deps.links.call(proc, 'INFO', 'memory');
      const used = typeof text === 'string' ? Number(parseInfo(text).get('used_memory') ?? 0) : proc.stats?.usedMemory ?? 0;
      return { proc, used };
    }));
  }
}

/** 409 with the numbers when `to` MB is below what some proc holds. */
function refuseBelowUsed(name: string, to: number, used: { proc: Proc; used: number }[]): void {
  const over = used.filter((u) => u.used > to * MB).sort((a, b) => b.used - a.used);
  if (over.length === 0) return;
  const top = over[0];
  const mb = (top.used / MB).toFixed(1);
  throw new OperationRefusedError(
    `capacityMb ${to} is below the memory in use: proc ${top.proc.id} (${top.proc.type === 'M' ? 'master' : 'replica'}) has used_memory ${top.used} bytes (${mb} MB) > ${to} MB (${to * MB} bytes); delete data or choose at least ${Math.ceil(top.used / MB)} MB`,
    'capacityMb',
  );
}
