import type { SchedulerMeter } from './meter.js';

/** What a Scheduler is built from: `redfleet scheduler`'s flags, and the meter src/cli hands over. */
export interface SchedulerOptions {
  etcd: string;
  prefix: string;
  id: string;
  fleetKey: string;
  /** During a fleet key rotation, the old key: agents may still sign with it, and its fingerprint in etcd is accepted and replaced (docs/SECURITY.md). */
  previousFleetKey?: string;
  agentTimeoutMs?: number;
  /** Seconds between the heartbeats each agent must answer (default 1); a stream silent for 3 of them is dropped. */
  agentHeartbeatSeconds?: number;
  /** Seconds the leader's election lease lives without renewal (how fast a standby takes over). */
  leaderTtlSeconds?: number;
  /** How long a lost term's last jobs may hold up the next campaign (default 5000 ms; tests shorten it). */
  lastTermWaitMs?: number;
  /** etcd history: compact every `compactEverySeconds`, keeping `compactRetentionSeconds` (60, 300). */
  compactEverySeconds?: number;
  compactRetentionSeconds?: number;
  /** Seconds a DELETED instance's tree stays before the reaper purges it (3600). */
  deletedRetentionSeconds?: number;
  /** Backups: the --backup-dir, and a minute's length for schedules (60 000; shorter in tests only). */
  backups?: { dir: string; minuteMs?: number };
  /** Where it counts etcd requests and, while it leads, offers and placements (/metrics); nothing by default. */
  meter?: SchedulerMeter;
}
