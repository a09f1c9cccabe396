/**
 * The primitives drains and upgrades are built from, as they call them: the planned switchover
 * (switchover.ts) and moving replicas (proc-move.ts). Types only, so those can evolve behind them.
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
