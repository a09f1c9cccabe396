import { setTimeout as sleep } from 'node:timers/promises';
import type { FleetStore } from '../store/fleet-store.js';
import type { Operation } from '../domain/operation.js';
import type { Progress } from './operations.js';
import type { Switchover, SwitchoverPlan } from './switchover.js';
import type { ProcMove } from './proc-move.js';

/**
 * The primitives drains and upgrades are built from, as they call them: the planned switchover
 * (switchover.ts) and moving replicas (proc-move.ts), and waiting for a step to show in the store.
 */

/** What drains and upgrades use of the planned switchover: run it, and settle a checkpointed one after a restart. */
export type Switchovers = Pick<Switchover, 'run' | 'settle'>;

/** What drains and upgrades use of the replica moves. */
export type ReplicaMoves = Pick<ProcMove, 'addReplica' | 'retireReplica' | 'replaceReplica'>;

/** How long a step's effect may take to show in the store. */
const SETTLE_MS = 30_000;

/**
 * Waits until the store shows a step's effect (`done`), e.g. a retired replica gone; throws after
 * SETTLE_MS so the operation fails saying what it waited for. Returns at once when the instance is gone.
 */
export async function untilStoreShows(store: FleetStore, name: string, done: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + SETTLE_MS;
  while (!done()) {
    if (!store.instance(name)) return;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what} after ${SETTLE_MS / 1000} s`);
    await sleep(100);
  }
}

/**
 * A switchover a previous term checkpointed (its plan under `op.data.plan`) is settled before
 * anything else: finished when etcd already names the new master, else the old master's pause
 * is lifted and the caller plans again. The checkpoint is cleared either way.
 */
export async function settleCheckpointedSwitchover(switchovers: Switchovers, name: string, op: Operation, progress: Progress): Promise<void> {
  const plan = op.data.plan as SwitchoverPlan | null | undefined;
  if (!plan) return;
  const outcome = await switchovers.settle(name, plan);
  await progress(outcome === 'done' ? `switched over to ${plan.to}` : `switchover to ${plan.to} not made; planning again`, { plan: null });
}
