import type { FleetStore } from '../store/fleet-store.js';
import { InstanceStatus } from '../domain/model.js';
import { isActive } from '../domain/rules.js';
import type { redfleet } from '../proto/redfleet.js';
import type { Logger } from '../logger.js';
import type { Framework, Offer, ResourceBroker } from './offers.js';
import { Failover } from './failover.js';
import type { RedisLinks } from './redis-links.js';
import type { FrameworkContext, FrameworkOptions } from './framework-context.js';
import { FrameworkJobs } from './framework-jobs.js';
import { AgentProcs } from './agent-procs.js';
import { LostMasters } from './lost-masters.js';
import { Needs } from './need.js';
import { Creator } from './creator.js';
import { Maintainer } from './maintainer.js';
import { Destroyer } from './destroyer.js';
import { Operations } from './operations.js';
import { backupHandler, restoreHandler } from './backup-operation.js';
import { BackupSchedule } from './backup-schedule.js';
import { Drainer } from './drainer.js';
import { drainOperation } from './drain-operation.js';
import { rollingUpgrade } from './rolling-upgrade.js';
import { switchoverHandler } from './switchover-operation.js';
import { Rebalancer } from './rebalance.js';
import { ProcMove } from './proc-move.js';
import { ResizeOperation } from './resize.js';
import { ScaleOperation } from './scale.js';
import { NO_METER } from './meter.js';
import { ReportingAgents, REPORT_EVERY_MS, reportLapseMs } from './reporting-agents.js';
import type { AgentProcReport } from './master-health.js';

export type { FrameworkOptions } from './framework-context.js';

/** How long a drain or an upgrade gives one new replica to be placed and synced before it fails (and, for a drain, retries). */
const MOVE_TIMEOUT_MS = 120_000;

/**
 * The Redis framework: turns instances in etcd into redis-server tasks.
 * - creator: places procs on offers (whole instances at creation, single replicas after a loss);
 * - maintainer: follows status updates and agent losses, keeps counts and Status true;
 * - destroyer: shuts down every proc of a DELETING instance, then marks it DELETED.
 * The creator and destroyer are queues of concurrency 1, the maintainer one queue per instance
 * (see FrameworkJobs); the etcd watch and the broker feed them. This class routes to them.
 */
export class RedisFramework implements Framework {
  readonly failover: Failover;
  /** Day-2 operations (resize, scale, switchover ...): their handlers register here. */
  readonly operations: Operations;
  /** Agent maintenance: moves every proc off a draining agent (see drainer.ts). */
  readonly drainer: Drainer;
  /** Fleet-wide rebalancing of masters by switchover (POST /api/rebalance). */
  readonly rebalancer: Rebalancer;
  /** Adds, retires and replaces replicas under constraints (drain, upgrade, resize use it). */
  readonly moves: ProcMove;
  /** Which agents' REPORTs arrive: their own PINGs then watch their masters (see PingPlan). */
  readonly reportingAgents: ReportingAgents;
  private readonly jobs: FrameworkJobs;
  private readonly procs: AgentProcs;
  private readonly creator: Creator;
  private readonly maintainer: Maintainer;
  private readonly destroyer: Destroyer;
  private cancelGrace?: () => void;
  private graceOver = false;
  private backupSchedule?: BackupSchedule;

  constructor(
    private readonly store: FleetStore,
    broker: ResourceBroker,
    log: Logger,
    private readonly opts: FrameworkOptions,
    links: RedisLinks,
  ) {
    this.reportingAgents = new ReportingAgents(reportLapseMs(opts.reportEveryMs ?? REPORT_EVERY_MS));
    const request = (name: string, masterId: string, cause: string) => this.requestFailover(name, masterId, cause);
    // An agent whose stream closed sends no more REPORTs (its session ended with it): its masters
    // get the scheduler's own PINGs every 200 ms from the next tick, not after the 3 s lapse (an
    // agent lost at once, at 6,000 procs, had its masters wait up to 1 s for their sweep PING).
    const reporting = (agentId: string) => this.reportingAgents.reporting(agentId) && broker.agentStatus(agentId)?.connected === true;
    this.failover = new Failover(store, links, log, request, opts.loopLag, (agentId) => broker.agentAlive(agentId), reporting);
    this.jobs = new FrameworkJobs(log, (name) => this.instanceChanged(name));
    this.procs = new AgentProcs(store, broker, log);
    const lostMasters = new LostMasters(store, broker, opts.agentGraceMs);
    const needs = new Needs(lostMasters, this.failover, this.procs, this.jobs);
    const ctx: FrameworkContext = { store, broker, log, opts, jobs: this.jobs, procs: this.procs, lostMasters, needs, failover: this.failover, meter: opts.meter ?? NO_METER };
    this.creator = new Creator(ctx);
    this.destroyer = new Destroyer(ctx, this.creator);
    this.maintainer = new Maintainer(ctx, this.creator, this.destroyer);
    this.operations = new Operations(store, log);
    if (opts.backups) {
      this.operations.register(backupHandler({ store, storage: opts.backups.storage, secretOf: (i) => links.secretOf(i), log }));
      this.operations.register(restoreHandler(store));
      this.backupSchedule = new BackupSchedule(store, opts.backups.storage, this.operations, log, opts.backups.minuteMs);
    }
    this.drainer = new Drainer(store, broker, this.procs, this.operations, log, opts.procCpus);
    this.operations.register(switchoverHandler(store, this.failover.switchover));
    this.rebalancer = new Rebalancer(store, this.operations, () => broker.agents().filter((a) => a.connected && !store.drain(a.id)).map((a) => a.id), log);
    this.moves = new ProcMove(store, links, log, () => broker.agents(), (agentId, taskId) => broker.kill(agentId, taskId));
    const deps = { store, broker, links, moves: this.moves, log, switchover: this.failover.switchover };
    this.operations.register(new ResizeOperation(deps));
    this.operations.register(new ScaleOperation(deps));
    const maintenance = { store, broker, log, moves: this.moves, switchovers: this.failover.switchover, moveTimeoutMs: MOVE_TIMEOUT_MS };
    this.operations.register(drainOperation(maintenance));
    this.operations.register(rollingUpgrade(maintenance));
  }

  private readonly onInstance = (name: string): void => this.instanceChanged(name);

  start(): void {
    this.store.on('instance', this.onInstance);
    for (const name of this.store.instanceNames()) this.instanceChanged(name);
    this.failover.start();
    // In the scheduler's awake time: agents cannot resubscribe to a leader whose loop is stalled
    // (a new leader loading a large tree stalls), so stalls do not count against their grace.
    this.cancelGrace = this.failover.detector.lag.afterAwake(this.opts.agentGraceMs, () => {
      this.graceOver = true;
      this.maintainer.sweepUnclaimedProcs();
    });
    this.operations.resumeAll();
    this.backupSchedule?.start();
    this.drainer.start();
    this.rebalancer.resume();
  }

  /**
   * Whether this term is still in its agents' grace: agents registered in etcd that have not
   * resubscribed yet are still coming back (after it, their procs are written off).
   */
  inAgentGrace(): boolean {
    return !this.graceOver;
  }

  async stop(): Promise<void> {
    // The store outlives this framework (a scheduler leads many terms over one store).
    this.store.off('instance', this.onInstance);
    this.failover.stop();
    this.backupSchedule?.stop();
    this.cancelGrace?.();
    await Promise.all([this.jobs.stop(), this.drainer.stop(), this.operations.stop(), this.rebalancer.stop()]);
  }

  private instanceChanged(name: string): void {
    const inst = this.store.instance(name);
    if (!inst || this.jobs.stopped) return;
    if (inst.status === InstanceStatus.Deleting) this.jobs.destroy(`destroy:${name}`, () => this.destroyer.destroy(name));
    else if (isActive(inst)) this.jobs.maintain(name, `maintain:${name}`, () => this.maintainer.maintain(name));
  }

  /** Called by failure detection; runs the failover in the instance's maintainer queue. */
  requestFailover(name: string, masterId: string, cause: string): void {
    this.maintainer.requestFailover(name, masterId, cause);
  }

  resourceOffers(offers: Offer[]): void {
    this.creator.resourceOffers(offers);
  }

  statusUpdate(agentId: string, status: redfleet.v1.ITaskStatus): Promise<void> {
    return this.maintainer.statusUpdate(agentId, status);
  }

  agentSubscribed(agentId: string, taskIds: string[]): void {
    this.maintainer.agentSubscribed(agentId, taskIds);
  }

  agentLost(agentId: string, _taskIds: string[]): void {
    this.reportingAgents.forget(agentId);
    this.maintainer.agentLost(agentId);
  }

  /**
   * One entry of an authenticated REPORT of `agentId` (or one it sent at once on a change): what
   * its own PINGs say of the proc. Marks the agent as reporting, and tells failure detection.
   */
  procReport(agentId: string, procId: string, report: AgentProcReport): void {
    this.reportingAgents.heard(agentId);
    this.failover.detector.agentReport(procId, report, agentId);
  }

  procAgent(procId: string): string | undefined {
    return this.procs.find(procId)?.sid;
  }

  holdsProcs(agentId: string): boolean {
    return this.procs.on(agentId).length > 0;
  }

  /**
   * The operator's choice for an instance whose lost master waits for its agent: give the data
   * up and start an empty master now. Throws NotWaitingError when the instance is not waiting.
   */
  async restartEmpty(name: string): Promise<void> {
    this.maintainer.approveRestartEmpty(name);
    this.instanceChanged(name);
  }
}
