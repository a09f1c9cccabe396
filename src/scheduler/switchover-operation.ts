import { setTimeout as sleep } from 'node:timers/promises';
import { InstanceType, ProcType } from '../domain/model.js';
import { isLive } from '../domain/rules.js';
import { InvalidInputError, NoEligibleReplicaError } from '../errors.js';
import type { FleetStore } from '../store/fleet-store.js';
import type { OperationHandler } from './operations.js';
import type { Switchover, SwitchoverPlan } from './switchover.js';

/**
 * The 'switchover' operation (POST /api/instances/:name/failover, `redfleet failover`, SENTINEL
 * FAILOVER): one planned switchover, its plan checkpointed before the master is paused. A
 * scheduler that takes over settles that plan from etcd: done when Mname names the new master
 * (its changes are made again), else the old master is unpaused and the switchover runs afresh.
 */
export function switchoverHandler(store: FleetStore, switchover: Switchover): OperationHandler {
  return {
    kind: 'switchover',
    check(name, params) {
      const refused = switchover.refusal(name);
      if (refused) throw refused;
      if (typeof params.to === 'string') checkTarget(store, name, params.to);
    },
    async run(name, op, progress) {
      const plan = op.data.plan as SwitchoverPlan | undefined;
      if (plan && (await switchover.settle(name, plan)) === 'done') {
        await progress(`switched over to ${plan.to}`, { result: { from: plan.from, to: plan.to, epoch: plan.epoch } });
        return;
      }
      const to = typeof op.params.to === 'string' ? op.params.to : undefined;
      const result = await retryNoEligible(() => switchover.run(name, {
        to,
        cause: 'switchover requested',
        beforeSwitch: (p) => progress(`switching over to ${p.to}`, { plan: p }),
      }));
      await progress(`switched over to ${result.to}`, { result });
    },
  };
}

/** Attempts, 250 ms apart, while no replica qualifies (see retryNoEligible). */
const NO_ELIGIBLE_ATTEMPTS = 12;

/**
 * Runs the switchover, again while it finds no eligible replica, for up to about 3 s: an instance
 * that has only just turned RUNNING may have its replica between two of its records for a moment
 * (a CI run saw a SENTINEL FAILOVER right after the create find none). Nothing is paused or
 * written before a replica is chosen, so trying again is safe; other refusals end it at once.
 */
async function retryNoEligible<T>(attempt: () => Promise<T>): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await attempt();
    } catch (err) {
      if (!(err instanceof NoEligibleReplicaError) || i >= NO_ELIGIBLE_ATTEMPTS) throw err;
      await sleep(250);
    }
  }
}

/**
 * The requested new master must be a live replica of this MS instance: a proc of another
 * instance, or none at all, is a bad `to` (400); the master itself or a replica that is not
 * running cannot take over now (409). Both name `to`.
 */
function checkTarget(store: FleetStore, name: string, to: string): void {
  const inst = store.instance(name);
  const proc = inst?.procs.find((p) => p.id === to);
  if (!inst || !proc) throw new InvalidInputError('UNKNOWN_PROC', 'to', `'${to}' is not a proc of instance '${name}'; GET /api/instances/${name} lists its procs`);
  if (inst.type !== InstanceType.MasterReplica) return;
  if (proc.id === inst.mname) throw new NoEligibleReplicaError(`'${to}' is already the master of '${name}'`, 'to');
  if (proc.type !== ProcType.Replica || !isLive(proc)) throw new NoEligibleReplicaError(`'${to}' is not a live replica of '${name}' (it is ${proc.state})`, 'to');
}
