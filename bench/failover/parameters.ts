/**
 * bench/failover/parameters: the topology, the bounds and the vocabulary (faults, systems, events)
 * both sides of the failover benchmark share, and what one run yields.
 */

export const DOWN_AFTER_MS = 1000;
/** Sentinel's failover-timeout for the master: 10 s (its default is 180 s; only one failover happens per run). */
export const SENTINEL_FAILOVER_TIMEOUT_MS = 10_000;
export const SENTINEL_QUORUM = 2;
export const SENTINELS = 3;
export const REPLICAS = 2;
export const CAPACITY_MB = 32;
export const AGENTS = 4;
/** Bound on the wait for a write on the new master, from the fault. */
export const RUN_TIMEOUT_MS = 30_000;
/** Bound on any setup or teardown wait. */
export const SETUP_TIMEOUT_MS = 30_000;
export const WRITE_EVERY_MS = 5;
export const MAX_IN_FLIGHT = 100;
/** Writes that must succeed on the master before the fault. */
export const WARM_WRITES = 50;
export const POLL_MS = 5;
export const MAX_CONSECUTIVE_FAILURES = 3;
export const TRACE = process.env.FAILOVER_BENCH_TRACE === '1';
export const REPRODUCE = 'npm run build && node dist/bench/failover.js';
/** Servers whose versions the report gives, and whose other instances on the machine count as noise. */
export const SERVERS = ['redis-server', 'redis-sentinel', 'etcd'] as const;

export const FAULTS = ['SIGKILL', 'SIGSTOP'] as const;
export type Fault = (typeof FAULTS)[number];
export const FAULT_LABEL: Record<Fault, string> = { SIGKILL: 'kill -9', SIGSTOP: 'SIGSTOP' };
export const GOAL: Record<Fault, number> = { SIGKILL: 0.25, SIGSTOP: 0.5 };
export const SYSTEMS = ['RedFleet', 'Sentinel'] as const;
export type System = (typeof SYSTEMS)[number];
/** Events in the order a failover goes through them; both sides log them by these names. */
export const EVENTS = ['+sdown', '+odown', '+try-failover', '+promoted-slave', '+switch-master'] as const;
export type EventName = (typeof EVENTS)[number];

/** One timed (or warm-up) failover of one system. */
export interface Run {
  system: System;
  fault: Fault;
  label: string;
  ms: number;
  port: number;
  /** Wall-clock ms of the fault, to line up with log timestamps. */
  wall: number;
  /** ms after the fault when each event was first logged (absent: not logged). */
  events: Partial<Record<EventName, number>>;
  oldAlive: boolean;
  errors: Map<string, number>;
  /** RedFleet: the cause its "failover" log line gives. */
  cause?: string;
  notes: string[];
}

/** Everything the benchmark found: the runs that count, the failed ones, and notes for the report. */
export interface Outcome {
  runs: Run[];
  failures: string[];
  notes: string[];
}
