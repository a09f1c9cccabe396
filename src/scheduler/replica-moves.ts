import { setTimeout as sleep } from 'node:timers/promises';
import type { FleetStore } from '../store/fleet-store.js';

/**
 * The primitives drains and upgrades are built from, as they call them: the planned switchover
 * (switchover.ts) and moving replicas (proc-move.ts), and waiting for a step to show in the store.
 */

export interface SwitchoverOptions {
  /** The replica to promote; else the best synced one. */
  to?: string;
  /** Agents the new master must not be on. */
  avoidAgents?: string[];
  cause: string;
}

export interface SwitchoverResult {
  from: string;
  to: string;
  epoch: number;
  gapMs: number;
}

/** A planned switchover: the old master is kept, as a replica of the new one. */
export interface Switchovers {
  run(name: string, opts: SwitchoverOptions): Promise<SwitchoverResult>;
}

export interface ReplicaConstraints {
  /** Agents the new replica must not be placed on. */
  avoidAgents?: string[];
  /** The binary (path or version) the new replica must run. */
  redisServer?: string;
}

/** Adding, retiring and replacing replicas; each new replica counts once its link is up. */
export interface ReplicaMoves {
  /** Places a new replica; its proc id once it is synced. */
  addReplica(name: string, constraints: ReplicaConstraints, timeoutMs: number): Promise<string>;
  /** Stops a replica and removes it. */
  retireReplica(name: string, procId: string): Promise<void>;
  /** Adds a replica under the constraints, then retires `procId`; the new proc id. */
  replaceReplica(name: string, procId: string, constraints: ReplicaConstraints, timeoutMs: number): Promise<string>;
}

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
