import { EventEmitter } from 'node:events';
import type { FleetStore } from '../store/fleet-store.js';
import type { Instance, Proc } from '../domain/model.js';
import type { Logger } from '../logger.js';
import type { RedisLinks } from './redis-links.js';
import { LoopLag } from './loop-lag.js';
import { FailureDetector, type FailoverRequest, type MasterHealth } from './failure-detector.js';
import { Promotion, type Candidate } from './promotion.js';
import { Switchover } from './switchover.js';

export { LAST_IO_MARGIN_MS, replicaSaysMasterDown, replicaVote, type Ballot } from './replica-vote.js';
export { compareCandidates, type Candidate } from './promotion.js';
export type { MasterHealth } from './failure-detector.js';

/**
 * Failure detection (failure-detector.ts) and promotion (promotion.ts) of one leader's term,
 * sharing one stream of events in Sentinel's words for the Sentinel-compatible endpoint.
 */
export class Failover {
  readonly events = new EventEmitter();
  readonly detector: FailureDetector;
  readonly promotion: Promotion;
  /** Planned switchovers (no kill), for the switchover operation and every operation that moves a master. */
  readonly switchover: Switchover;

  constructor(
    store: FleetStore,
    links: RedisLinks,
    log: Logger,
    /** Asks the framework to run a failover of the instance (it serializes per instance). */
    request: FailoverRequest,
    lag: LoopLag = new LoopLag(),
    /** Whether the agent answered its heartbeats lately (see ObjectiveDown). */
    agentAlive: (agentId: string) => boolean = () => false,
    /** Whether the agent's REPORTs arrive (see ReportingAgents, PingPlan). */
    reporting: (agentId: string) => boolean = () => false,
  ) {
    const emit = (channel: string, message: string): void => {
      this.events.emit('event', channel, message);
    };
    this.detector = new FailureDetector(store, links, log, request, emit, lag, agentAlive, reporting);
    this.promotion = new Promotion(store, links, log, this.detector, request, emit);
    this.switchover = new Switchover(store, links, log, this.promotion, this.detector, emit);
  }

  start(): void {
    this.detector.start();
  }

  stop(): void {
    this.detector.stop();
    this.promotion.stop();
  }

  healthOf(procId: string): MasterHealth | undefined {
    return this.detector.healthOf(procId);
  }

  hasHeard(procId: string): boolean {
    return this.detector.hasHeard(procId);
  }

  vouch(procId: string): void {
    this.detector.vouch(procId);
  }

  announced(inst: Instance): Proc | undefined {
    return this.detector.announced(inst);
  }


  replicasStillHear(inst: Instance, master: Proc): Promise<boolean> {
    return this.detector.replicasStillHear(inst, master);
  }

  rank(inst: Instance, oldMasterId: string): Promise<{ candidates: Candidate[]; why: string[] }> {
    return this.promotion.rank(inst, oldMasterId);
  }

  promote(name: string, oldMasterId: string, cause: string): Promise<boolean> {
    return this.promotion.promote(name, oldMasterId, cause);
  }
}
