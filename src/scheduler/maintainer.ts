import { instanceOfProc } from '../store/keys.js';
import { InstanceStatus, ProcState, ProcType, type Instance, type Proc } from '../domain/model.js';
import { deriveStatus, isActive, isLive, isRunning, namedMaster, runningReplicas } from '../domain/rules.js';
import { pb, taskStateName } from '../proto/messages.js';
import type { redfleet } from '../proto/redfleet.js';
import { NotWaitingError } from '../errors.js';
import type { FrameworkContext } from './framework-context.js';
import { waitingReason } from './lost-masters.js';
import type { Creator } from './creator.js';
import type { Destroyer } from './destroyer.js';
import { secondsSince } from './meter.js';

/**
 * The maintainer: follows status updates and agent (re)subscriptions and losses, keeps each
 * instance's counts and Status true, fails over a lost master, waits for a master lost with its
 * agent and adopts it when it comes back. Every job runs in its instance's own queue.
 */
export class Maintainer {
  constructor(
    private readonly ctx: FrameworkContext,
    private readonly creator: Pick<Creator, 'want' | 'drop'>,
    private readonly destroyer: Pick<Destroyer, 'requestShutdown'>,
  ) {}

  async maintain(name: string): Promise<void> {
    const { store, log, jobs } = this.ctx;
    const inst = store.instance(name);
    if (!inst || !isActive(inst)) return;
    if (await this.masterLost(inst)) return;
    if (await this.abortFailedStart(inst)) return;
    const { fields, status, masters, replicas } = deriveStatus(inst);
    const need = this.ctx.needs.of(inst);
    if (need.waitingFor) {
      fields.Reason = waitingReason(inst, need.waitingFor);
      if (fields.Reason === inst.reason) delete fields.Reason;
      jobs.recheckLater(name);
    }
    if (Object.keys(fields).length > 0) {
      if (!(await store.setInstance(name, fields, inst.status))) return;
      if (fields.Status) log.info('instance status', { instance: name, status: fields.Status, masters, replicas });
      if (fields.Status === InstanceStatus.Running) this.firstRunning(inst);
    }
    // Once the instance is whole again, the procs that ended are history: drop them from the tree.
    if (status === InstanceStatus.Running) await store.removeProcs(name, inst.procs.filter((p) => !isLive(p)).map((p) => p.id));
    if (need.count > 0) this.creator.want(name);
    else this.creator.drop(name);
  }

  /**
   * The master named by Mname has ended while the instance ran: promote a replica. Returns true
   * when a failover was written (the watch brings the instance back here afterwards).
   */
  private async masterLost(inst: Instance): Promise<boolean> {
    if (!inst.mname || inst.status === InstanceStatus.Creating) return false;
    const named = namedMaster(inst);
    if (named && isLive(named)) return false;
    const replicas = runningReplicas(inst, undefined);
    if (replicas.length === 0) return false;
    const { failover, log, store, jobs } = this.ctx;
    if (named?.state === ProcState.Lost && (await failover.replicasStillHear(inst, named))) {
      // Only the scheduler's side lost the master's host (its agent was written off): while the
      // replicas still hear the master, it is alive and serving, and a promotion would only make
      // a second master. Look again until the replicas lose it too, or it comes back.
      const reason = `master lost with its agent ${named.sid}, but its replicas still hear it; no failover while they do`;
      if (inst.reason !== reason) {
        log.warn('master written off with its agent, but its replicas still hear it: not failing over', { instance: inst.name, proc: named.id, agent: named.sid });
        await store.setInstance(inst.name, { Reason: reason, Status: InstanceStatus.Degraded }, inst.status);
      }
      jobs.recheckLater(inst.name);
      return true;
    }
    return failover.promote(inst.name, inst.mname, `master proc ${named ? named.state : 'gone'}`);
  }

  /**
   * The master of an instance still CREATING ended before it ever ran: its replicas wait for a
   * master that will never come. Shut them down so the whole instance is placed afresh.
   */
  private async abortFailedStart(inst: Instance): Promise<boolean> {
    if (inst.status !== InstanceStatus.Creating || inst.mname) return false;
    const live = inst.procs.filter(isLive);
    if (live.some((p) => p.type === ProcType.Master) || !inst.procs.some((p) => p.type === ProcType.Master)) return false;
    if (live.length === 0) return false;
    for (const p of live) await this.destroyer.requestShutdown(inst.name, p);
    const reason = 'the master failed to start; placing the instance again';
    if (inst.reason !== reason) await this.ctx.store.setInstance(inst.name, { Reason: reason });
    this.ctx.log.warn('master failed during creation; restarting the placement', { instance: inst.name });
    return true;
  }

  /**
   * Called by failure detection; runs the failover in the instance's queue, ahead of other
   * instances' routine jobs (an agent loss brings replacements and status work by the dozen).
   */
  requestFailover(name: string, masterId: string, cause: string): void {
    this.ctx.jobs.maintain(name, `failover:${name}`, async () => {
      await this.ctx.failover.promote(name, masterId, cause);
    }, true);
  }

  async statusUpdate(agentId: string, status: redfleet.v1.ITaskStatus): Promise<void> {
    const { store, log, broker } = this.ctx;
    const procId = status.task_id.value;
    const name = instanceOfProc(procId);
    const proc = store.instance(name)?.procs.find((p) => p.id === procId);
    const state = taskStateName(status.state) as ProcState;
    if (!proc) {
      log.warn('status update for an unknown proc', { agent: agentId, proc: procId, state });
      if (status.state === pb.TaskState.TASK_RUNNING || status.state === pb.TaskState.TASK_STARTING) broker.kill(agentId, procId);
      return;
    }
    if (!isLive(proc) && proc.state !== state) {
      log.info('stale status update ignored', { agent: agentId, proc: procId, state, known: proc.state });
      return;
    }
    // The agent told this scheduler itself that the proc runs: it may be announced as a master.
    if (state === ProcState.Running) this.ctx.failover.vouch(procId);
    const fields: Record<string, string> = { State: state };
    if (status.data && status.data.length > 0) {
      const data = pb.RedisState.decode(status.data);
      if (data.pid) fields.Pid = String(data.pid);
    }
    if (proc.state === state && !fields.Pid) return;
    await this.record(name, proc, { ...proc, state }, fields, agentId, status.message ?? '');
  }

  /**
   * Writes a proc's new state. A proc that starts running changes what the instance counts
   * (Masters, Mname, Slaves) and may complete it (Status RUNNING): those fields go in the same
   * transaction, so a create writes its procs' states and its counts in three transactions
   * rather than five, and RUNNING comes one etcd round trip sooner. A derived DEGRADED is left
   * to maintain(), which looks at a lost master first.
   */
  private async record(name: string, proc: Proc, after: Proc, fields: Record<string, string>, agentId: string, detail: string): Promise<void> {
    const { store, log } = this.ctx;
    const inst = store.instance(name)!;
    const derived = isRunning(after) && isActive(inst) ? deriveStatus({ ...inst, procs: inst.procs.map((p) => (p.id === proc.id ? after : p)) }) : undefined;
    const instanceFields = derived && derived.status !== InstanceStatus.Degraded ? derived.fields : {};
    const withInstance = await store.updateProc(name, proc.id, fields, instanceFields, !isLive(after) && proc.type === ProcType.Replica, inst.status);
    log.log(isLive(after) ? 'info' : 'warn', 'proc state', { instance: name, proc: proc.id, agent: agentId, state: after.state, detail });
    // The Status goes in only while the instance still has the status it was derived from.
    if (!instanceFields.Status || !withInstance) return;
    log.info('instance status', { instance: name, status: InstanceStatus.Running, masters: derived!.masters, replicas: derived!.replicas });
    this.firstRunning(inst);
  }

  /**
   * The instance was written RUNNING over `before`'s status: its first time when that was
   * CREATING (an instance is CREATING only until then; the write is guarded by that status, so
   * one scheduler counts it once). A return to RUNNING after a failover or a restart is not.
   */
  private firstRunning(before: Instance): void {
    if (before.status !== InstanceStatus.Creating) return;
    const seconds = secondsSince(before.createdAt);
    if (seconds !== undefined) this.ctx.meter.createdToRunning(seconds);
  }

  /**
   * An agent (re)subscribed running `taskIds`. Its procs the store still counts live but that it
   * no longer runs are lost; the tasks it runs that the store wrote off (LOST, FAILED, gone, or
   * placed on another agent) are killed at once: a proc the scheduler replaced must never keep
   * serving, as a second master holding a tenant's old data would.
   */
  agentSubscribed(agentId: string, taskIds: string[]): void {
    const { procs, jobs } = this.ctx;
    const running = new Set(taskIds);
    // Each instance the agent holds or runs a task of is settled in that instance's own queue.
    const instances = new Set([...procs.on(agentId).map((p) => p.instance), ...taskIds.map(instanceOfProc)]);
    for (const name of instances) {
      jobs.maintain(name, `subscribed:${agentId}:${name}`, () => this.settleAgent(name, agentId, running));
    }
  }

  /** One instance's side of an agent's (re)subscription (see agentSubscribed). */
  private async settleAgent(name: string, agentId: string, running: Set<string>): Promise<void> {
    const { store, procs, log, broker } = this.ctx;
    const inst = store.instance(name);
    if (inst) await this.adoptWaitingMaster(inst, agentId, running);
    for (const proc of procs.on(agentId, name)) {
      if (running.has(proc.id)) continue;
      await procs.markLost(proc, 'the agent resubscribed without this proc');
    }
    const mine = new Set(procs.on(agentId, name).map((p) => p.id));
    for (const taskId of running) {
      if (instanceOfProc(taskId) !== name || mine.has(taskId)) continue;
      log.warn('killing a task the scheduler wrote off', { instance: name, proc: taskId, agent: agentId, known: procs.knownState(taskId) });
      broker.kill(agentId, taskId);
    }
  }

  agentLost(agentId: string): void {
    const { procs, jobs } = this.ctx;
    const instances = new Set(procs.on(agentId).map((p) => p.instance));
    for (const name of instances) {
      jobs.maintain(name, `lost:${agentId}:${name}`, async () => {
        for (const proc of procs.on(agentId, name)) await procs.markLost(proc, 'its agent is lost');
      });
    }
  }

  /**
   * The agent came back still running a master that the scheduler wrote off with it, and that is
   * still its instance's master: nothing was promoted in its place (a standalone master waiting
   * for its agent, or a master whose replicas kept hearing it through a partition that cut only
   * the scheduler off). That master serves again, data and all, rather than being killed as a
   * written-off task: with Mname still naming it there is no second master to fence.
   */
  private async adoptWaitingMaster(inst: Instance, agentId: string, running: Set<string>): Promise<void> {
    if (!isActive(inst)) return;
    const named = namedMaster(inst);
    if (!named || named.state !== ProcState.Lost || named.sid !== agentId || !running.has(named.id)) return;
    // Mname still names it, so nothing was promoted in its place: it is the only master there
    // is, and killing it would only force a failover (and, standalone, lose the data). Asking
    // the replicas again is not needed, and under load their answer could come too late.
    this.ctx.log.warn('lost master is back with its agent; it serves again', { instance: inst.name, proc: named.id, agent: agentId, live: inst.procs.filter(isLive).length });
    this.ctx.failover.vouch(named.id);
    this.ctx.lostMasters.returned(named.id);
    await this.ctx.store.updateProc(inst.name, named.id, { State: ProcState.Running }, {}, false);
  }

  /**
   * The operator's choice for an instance whose lost master waits for its agent: give the data
   * up and start an empty master now. Throws NotWaitingError when the instance is not waiting.
   * The caller then looks at the instance again.
   */
  approveRestartEmpty(name: string): void {
    const inst = this.ctx.store.instance(name);
    if (!inst || !isActive(inst) || inst.procs.some(isLive) || !this.ctx.lostMasters.waitingFor(inst)) {
      throw new NotWaitingError(name);
    }
    this.ctx.lostMasters.approveRestart(name);
    this.ctx.log.warn('operator chose to restart the instance empty', { instance: name });
  }

  /** After a scheduler start: procs whose agent never came back are lost. */
  sweepUnclaimedProcs(): void {
    const { store, procs, jobs } = this.ctx;
    const stale = store.instances().flatMap((i) => i.procs.filter((p) => isLive(p) && !procs.brokerHas(p.sid)));
    for (const proc of stale) jobs.maintain(proc.instance, `sweep:${proc.id}`, () => procs.markLost(proc, 'its agent did not resubscribe after the scheduler started'));
  }
}
