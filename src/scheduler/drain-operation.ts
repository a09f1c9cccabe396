import { ProcType, type Instance, type Proc } from '../domain/model.js';
import type { Operation } from '../domain/operation.js';
import { isLive } from '../domain/rules.js';
import { InvalidInputError } from '../errors.js';
import type { FleetStore } from '../store/fleet-store.js';
import type { Logger } from '../logger.js';
import type { OperationHandler, Progress } from './operations.js';
import { procsOn } from './drain-plan.js';
import { untilStoreShows, type ReplicaMoves, type Switchovers } from './replica-moves.js';

export interface DrainOperationDeps {
  store: FleetStore;
  log: Logger;
  moves: ReplicaMoves;
  switchovers: Switchovers;
  /** How long one new replica may take to be placed and synced. */
  moveTimeoutMs: number;
}


/**
 * The 'drain' operation: moves every proc of one instance off one agent (params.agent), with no
 * acknowledged write lost. Replicas first: each is replaced elsewhere (a new replica synced, then
 * the old one stopped), or just stopped when the instance has more replicas than it wants (the
 * temporary one a standalone master got). Then the master: switched over to a synced replica
 * elsewhere (a standalone master first gets a temporary replica), after which it is a replica
 * and goes like the others. Each pass reads the instance afresh, so a resumed run (a new leader
 * term) goes on from wherever the last one stopped; it ends early when the drain was undone.
 */
export function drainOperation(deps: DrainOperationDeps): OperationHandler {
  return {
    kind: 'drain',
    check(_name, params) {
      if (typeof params.agent !== 'string' || params.agent === '') throw new InvalidInputError('INVALID_AGENT', 'agent', 'a drain names the agent to move procs off');
    },
    run: (name, op, progress) => drainInstance(deps, name, op, progress),
  };
}

async function drainInstance(deps: DrainOperationDeps, name: string, op: Operation, progress: Progress): Promise<void> {
  const agent = String(op.params.agent);
  const moved = Array.isArray(op.data.moved) ? (op.data.moved as string[]) : [];
  for (;;) {
    const inst = deps.store.instance(name);
    if (!inst || !deps.store.drain(agent)) return;
    const mine = procsOn(inst, agent);
    if (mine.length === 0) return;
    const avoidAgents = deps.store.drains().map((d) => d.agent);
    const replica = mine.find((p) => p.type === ProcType.Replica && p.id !== inst.mname);
    if (replica) {
      await moveReplica(deps, inst, replica, avoidAgents, progress, moved);
      continue;
    }
    const master = mine[0];
    if (liveReplicas(inst).length === 0) {
      await progress(`adding a replica elsewhere to take over from master ${master.id} on ${agent}`, { moved });
      await deps.moves.addReplica(name, { avoidAgents }, deps.moveTimeoutMs);
      continue;
    }
    await progress(`switching over from master ${master.id} on ${agent}`, { moved });
    const result = await deps.switchovers.run(name, { avoidAgents, cause: `drain of agent ${agent}` });
    deps.log.info('drain switched over', { instance: name, proc: master.id, agent, to: result.to, gapMs: result.gapMs });
    await untilStoreShows(deps.store, name, () => deps.store.instance(name)?.mname !== master.id, `master ${master.id} to hand over`);
  }
}

/** Replaces a replica elsewhere (or retires a surplus one), then waits until it has left the agent. */
async function moveReplica(deps: DrainOperationDeps, inst: Instance, replica: Proc, avoidAgents: string[], progress: Progress, moved: string[]): Promise<void> {
  const surplus = liveReplicas(inst).length > inst.expSlaves;
  moved.push(replica.id);
  if (surplus) {
    await progress(`stopping surplus replica ${replica.id} on ${replica.sid}`, { moved });
    await deps.moves.retireReplica(inst.name, replica.id);
  } else {
    await progress(`replacing replica ${replica.id} on ${replica.sid}`, { moved });
    await deps.moves.replaceReplica(inst.name, replica.id, { avoidAgents }, deps.moveTimeoutMs);
  }
  const gone = (): boolean => !deps.store.instance(inst.name)?.procs.some((p) => p.id === replica.id && isLive(p));
  await untilStoreShows(deps.store, inst.name, gone, `replica ${replica.id} to stop`);
}

function liveReplicas(inst: Instance): Proc[] {
  return inst.procs.filter((p) => p.type === ProcType.Replica && p.id !== inst.mname && isLive(p));
}

