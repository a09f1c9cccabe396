import type { EtcdOp } from '../store/etcd.js';

/**
 * What the scheduler counts as it works, for /metrics: the one seam between the scheduler's
 * code and the metrics library. The creator (offers, placements), the maintainer (first RUNNING)
 * and the etcd client count into it (src/cli hands over WorkMetrics); without one, into NO_METER.
 * Every method is cheap and synchronous: it is called on the placement path.
 */
export interface SchedulerMeter {
  /** The framework answered an offer: accepted (with launches) or declined. */
  offer(outcome: 'accepted' | 'declined'): void;
  /**
   * One proc LAUNCHed onto an agent; `secondsSinceCreate` (from the instance's POST) when it
   * was placed for the instance's creation, undefined for a replacement, a scale or a move.
   */
  placed(secondsSinceCreate: number | undefined): void;
  /** An instance turned RUNNING for the first time (CREATING to RUNNING), `seconds` after its POST. */
  createdToRunning(seconds: number): void;
  /** One etcd request (a gRPC unary call) took `seconds`, failed or not. */
  etcdRequest(op: EtcdOp, seconds: number): void;
}

/** Counts nothing: a scheduler built without metrics (benchmarks, tests). */
export const NO_METER: SchedulerMeter = {
  offer: () => undefined,
  placed: () => undefined,
  createdToRunning: () => undefined,
  etcdRequest: () => undefined,
};

/** Seconds from an ISO timestamp (an instance's CreatedAt) to now; undefined when it does not parse. */
export function secondsSince(iso: string, now = Date.now()): number | undefined {
  const at = Date.parse(iso);
  return Number.isNaN(at) ? undefined : Math.max(0, (now - at) / 1000);
}
