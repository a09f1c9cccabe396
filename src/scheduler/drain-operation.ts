import { InstanceType, ProcType, type Instance, type Proc } from '../domain/model.js';
import type { Operation } from '../domain/operation.js';
import { isLive } from '../domain/rules.js';
import { InvalidInputError, OperationRefusedError } from '../errors.js';
import type { FleetStore } from '../store/fleet-store.js';
import type { Logger } from '../logger.js';
import type { OperationHandler, Progress } from './operations.js';
import { procsOn, standaloneReason } from './drain-plan.js';
import { settleCheckpointedSwitchover, untilStoreShows, type ReplicaMoves, type Switchovers } from './replica-moves.js';

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
 * the old one stopped). Then the master: switched over to a synced replica elsewhere (the plan
 * checkpointed before the pause, so a new term settles it), after which it is a replica and goes
 * like the others. A standalone master cannot move without loss: the drainer waits on it
 * (drain-plan.ts). Each pass reads the instance afresh, so a resumed run (a new leader term) goes
 * on from wherever the last one stopped; it ends early when the drain was undone.
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
  await settleCheckpointedSwitchover(deps.switchovers, name, op, progress);
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
    if (inst.type === InstanceType.Standalone) throw new OperationRefusedError(standaloneReason(name, agent));
    await progress(`switching over from master ${master.id} on ${agent}`, { moved });
    const result = await deps.switchovers.run(name, {
      avoidAgents,
      cause: `drain of agent ${agent}`,
      beforeSwitch: (plan) => progress(`switching over from master ${master.id} on ${agent} to ${plan.to}`, { moved, plan }),
    });
    deps.log.info('drain switched over', { instance: name, proc: master.id, agent, to: result.to, gapMs: result.gapMs });
    await progress(`switched over to ${result.to}`, { moved, plan: null });
    await untilStoreShows(deps.store, name, () => deps.store.instance(name)?.mname !== master.id, `master ${master.id} to hand over`);
  }
}

/**
 * Replaces a replica elsewhere (a new one synced first, then the old one stopped), then waits until
 * it has left the agent. The move is keyed by the old proc (ProcMove's `move:<procId>`), so a
 * resumed run finds the replica a previous term already asked for.
 */
async function moveReplica(deps: DrainOperationDeps, inst: Instance, replica: Proc, avoidAgents: string[], progress: Progress, moved: string[]): Promise<void> {
  moved.push(replica.id);
  await progress(`replacing replica ${replica.id} on ${replica.sid}`, { moved });
  await deps.moves.replaceReplica(inst.name, replica.id, { avoidAgents }, deps.moveTimeoutMs);
  const gone = (): boolean => !deps.store.instance(inst.name)?.procs.some((p) => p.id === replica.id && isLive(p));
  await untilStoreShows(deps.store, inst.name, gone, `replica ${replica.id} to stop`);
}
