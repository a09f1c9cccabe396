import type { FleetStore } from '../store/fleet-store.js';
import type { Logger } from '../logger.js';
import type { ResourceBroker } from './offers.js';
import type { Failover } from './failover.js';
import type { FrameworkJobs } from './framework-jobs.js';
import type { AgentProcs } from './agent-procs.js';
import type { LostMasters } from './lost-masters.js';
import type { Needs } from './need.js';
import type { BackupStorage } from './backup-storage.js';
import type { SchedulerMeter } from './meter.js';
import type { LoopLag } from './loop-lag.js';

export interface FrameworkOptions {
  /** cpus each redis-server takes from its agent's offer. */
  procCpus: number;
  /** Refuse time when the framework declines an offer it could not use while work is pending. */
  pendingRefuseSeconds: number;
  /** Refuse time when there is nothing to place. */
  idleRefuseSeconds: number;
  /** After a scheduler start, how long agents have to resubscribe before their procs count as lost. */
  agentGraceMs: number;
  /** Backups (issue 9 part 6): where they are stored, and a minute's length for schedules (60 000). */
  backups?: { storage: BackupStorage; minuteMs: number };
  /** Where offers, placements and first RUNNINGs are counted (/metrics); NO_METER when absent. */
  meter?: SchedulerMeter;
  /** How often agents report their procs' figures: their heartbeat interval (1 000 when absent). */
  reportEveryMs?: number;
  /** The term's watch on the scheduler's own event loop, shared with the broker; the failure detector makes its own when absent. */
  loopLag?: LoopLag;
}

/** What the creator, maintainer and destroyer share; framework.ts builds it once per term. */
export interface FrameworkContext {
  store: FleetStore;
  broker: ResourceBroker;
  log: Logger;
  opts: FrameworkOptions;
  jobs: FrameworkJobs;
  procs: AgentProcs;
  lostMasters: LostMasters;
  needs: Needs;
  failover: Failover;
  meter: SchedulerMeter;
}
