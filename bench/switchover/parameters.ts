/**
 * bench/switchover/parameters: what both sides of the switchover benchmark share: the topology,
 * the bounds, and what one run yields.
 */

export const REPLICAS = 2;
export const CAPACITY_MB = 32;
export const AGENTS = 3;
/** Acknowledged writes before the switch, and after it, in every run. */
export const WRITES_AROUND = 50;
/** Bound on one run's waits (the switch, the writes after it). */
export const RUN_TIMEOUT_MS = 30_000;
export const SETUP_TIMEOUT_MS = 30_000;
export const MAX_CONSECUTIVE_FAILURES = 3;
export const REPRODUCE = 'npm run build && node dist/bench/switchover.js';
export const SERVERS = ['redis-server', 'redis-sentinel', 'etcd'] as const;
export const SYSTEMS = ['RedFleet', 'Sentinel'] as const;
export type System = (typeof SYSTEMS)[number];

/** One timed switchover. */
export interface Run {
  system: System;
  label: string;
  /** Longest time between two acknowledged writes (SET + WAIT 1 100) around the switch, as the client saw it. */
  gapMs: number;
  /** Acknowledged writes missing from the new master afterwards. */
  lost: number;
  acked: number;
  /** RedFleet only: how long the old master held its writes paused (the scheduler's own figure). */
  pausedMs?: number;
}

export interface Outcome {
  runs: Run[];
  failures: string[];
}
