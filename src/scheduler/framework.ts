import PQueue from 'p-queue';
import { KeyedQueue } from './keyed-queue.js';
import { v4 as uuidv4 } from 'uuid';
import { instanceOfProc } from '../store/keys.js';
import { InstanceStatus, ProcState, ProcType, type Instance, type Proc } from '../domain/model.js';
import { countedMaster, countedReplicas, deriveStatus, isActive, isLive, runningReplicas } from '../domain/rules.js';
import { isShuttingDown, SHUTDOWN_MESSAGE } from '../domain/message.js';
import type { FleetStore, NewProc } from '../store/fleet-store.js';
import { pb, taskStateName } from '../proto/messages.js';
import type { redfleet } from '../proto/redfleet.js';
import type { Logger } from '../logger.js';
import { place, shortfall, type Slot } from './placement.js';
import type { Framework, Offer, ResourceBroker, TaskLaunch } from './offers.js';
import { Failover } from './failover.js';
import type { RedisLinks } from './redis-links.js';
import { NotWaitingError } from '../errors.js';

export interface FrameworkOptions {
  /** cpus each redis-server takes from its agent's offer. */
  procCpus: number;
  /** Refuse time when the framework declines an offer it could not use while work is pending. */
  pendingRefuseSeconds: number;
  /** Refuse time when there is nothing to place. */
  idleRefuseSeconds: number;
  /** After a scheduler start, how long agents have to resubscribe before their procs count as lost. */
  agentGraceMs: number;
}

/** Seconds a master accepts writes without hearing from a replica (min-replicas-max-lag). */
const DEFAULT_MIN_REPLICAS_MAX_LAG = 3;

interface Need {
  count: number;
  /** A fresh instance is placed whole or not at all; replacements go one by one. */
  gang: boolean;
  master: Proc | undefined;
  /** Nothing is placed: the lost master may still come back with its agent. */
  waitingFor?: LostMaster;
}

/** A master written off with its agent (LOST, not seen to die) whose agent may still return. */
interface LostMaster {
  proc: Proc;
  agentId: string;
}

/** While a failover is held back or an instance waits for an agent, how often to look again. */
const RECHECK_MS = 1000;
/** Instances the maintainer works on at once (each one's jobs still run one at a time). */
const MAINTAINER_CONCURRENCY = 16;

/**
 * The Redis framework: turns instances in etcd into redis-server tasks.
 * - creator: places procs on offers (whole instances at creation, single replicas after a loss);
 * - maintainer: follows status updates and agent losses, keeps counts and Status true;
 * - destroyer: shuts down every proc of a DELETING instance, then marks it DELETED.
 * Each is a p-queue of concurrency 1; the etcd watch and the broker feed them.
 */
export class RedisFramework implements Framework {
  private readonly creator = new PQueue({ concurrency: 1 });
  /** Serial per instance; instances in parallel (see KeyedQueue). */
  private readonly maintainer = new KeyedQueue(MAINTAINER_CONCURRENCY);
  private readonly destroyer = new PQueue({ concurrency: 1 });
  private readonly queued = new Set<string>();
  /** Instances that need procs placed. */
  private readonly wanting = new Set<string>();
  /** Procs the destroyer already sent SHUTDOWN, so a Msg reset does not trigger a second one. */
  private readonly shutdownSent = new Set<string>();
  private graceTimer?: NodeJS.Timeout;
  private stopped = false;
  /** When this scheduler first saw each lost master, to give its agent the agent timeout to return. */
  private readonly lostSince = new Map<string, number>();
  /** Instances whose operator chose to restart empty rather than wait for a lost master. */
  private readonly restartApproved = new Set<string>();
  private readonly rechecks = new Map<string, NodeJS.Timeout>();

  readonly failover: Failover;

  constructor(
    private readonly store: FleetStore,
    private readonly broker: ResourceBroker,
    private readonly log: Logger,
    private readonly opts: FrameworkOptions,
    links: RedisLinks,
  ) {
    this.failover = new Failover(store, links, log, (name, masterId, cause) => this.requestFailover(name, masterId, cause), undefined, (agentId) => broker.agentAlive(agentId));
  }

  private readonly onInstance = (name: string): void => this.instanceChanged(name);

  start(): void {
    this.store.on('instance', this.onInstance);
    for (const name of this.store.instanceNames()) this.instanceChanged(name);
    this.graceTimer = setTimeout(() => this.sweepUnclaimedProcs(), this.opts.agentGraceMs);
    this.failover.start();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    // The store outlives this framework (a scheduler leads many terms over one store).
    this.store.off('instance', this.onInstance);
    this.failover.stop();
    clearTimeout(this.graceTimer);
    for (const t of this.rechecks.values()) clearTimeout(t);
    this.creator.clear();
    this.maintainer.clear();
    this.destroyer.clear();
    await Promise.all([this.creator.onIdle(), this.maintainer.onIdle(), this.destroyer.onIdle()]);
  }

  private instanceChanged(name: string): void {
    const inst = this.store.instance(name);
    if (!inst || this.stopped) return;
    if (inst.status === InstanceStatus.Deleting) this.enqueue(this.destroyer, `destroy:${name}`, () => this.destroy(name));
    else if (isActive(inst)) this.maintainFor(name, `maintain:${name}`, () => this.maintain(name));
  }

  /** Looks at the instance again in `ms` (once, however often asked meanwhile). */
  private recheckLater(name: string, ms = RECHECK_MS): void {
    if (this.rechecks.has(name) || this.stopped) return;
    this.rechecks.set(name, setTimeout(() => {
      this.rechecks.delete(name);
      this.instanceChanged(name);
    }, ms));
  }

  /** Adds a job unless the same one is already waiting; a running job may be queued again. */
  private enqueue(queue: PQueue, key: string, job: () => Promise<void>): void {
    const wrapped = this.once(key, job);
    if (wrapped) void queue.add(wrapped);
  }

  /** Adds a maintainer job to the instance's own queue, unless the same one is already waiting. */
  private maintainFor(instance: string, key: string, job: () => Promise<void>): void {
    const wrapped = this.once(key, job);
    if (wrapped) this.maintainer.add(instance, wrapped);
  }

  /** The job, marked waiting under `key` until it starts; undefined when it is already waiting. */
  private once(key: string, job: () => Promise<void>): (() => Promise<void>) | undefined {
    // A stopped framework's term is over: a late request (an in-flight PING's verdict) must not act.
    if (this.stopped || this.queued.has(key)) return undefined;
    this.queued.add(key);
    return async () => {
      this.queued.delete(key);
      try {
        await job();
      } catch (err) {
        this.log.error('framework job failed', { job: key, error: (err as Error).message });
      }
    };
  }

  // ---- maintainer ----

  private async maintain(name: string): Promise<void> {
    const inst = this.store.instance(name);
    if (!inst || !isActive(inst)) return;
    if (await this.masterLost(inst)) return;
    if (await this.abortFailedStart(inst)) return;
    const { fields, status, masters, replicas } = deriveStatus(inst);
    const need = this.needOf(inst);
    if (need.waitingFor) {
      fields.Reason = waitingReason(inst, need.waitingFor);
      if (fields.Reason === inst.reason) delete fields.Reason;
      this.recheckLater(name);
    }
    if (Object.keys(fields).length > 0) {
      if (!(await this.store.setInstance(name, fields, inst.status))) return;
      if (fields.Status) this.log.info('instance status', { instance: name, status: fields.Status, masters, replicas });
    }
    // Once the instance is whole again, the procs that ended are history: drop them from the tree.
    if (status === InstanceStatus.Running) await this.store.removeProcs(name, inst.procs.filter((p) => !isLive(p)).map((p) => p.id));
    if (need.count > 0) {
      this.wanting.add(name);
      this.broker.revive();
    } else {
      this.wanting.delete(name);
    }
  }

  /**
   * The master named by Mname has ended while the instance ran: promote a replica. Returns true
   * when a failover was written (the watch brings the instance back here afterwards).
   */
  private async masterLost(inst: Instance): Promise<boolean> {
    if (!inst.mname || inst.status === InstanceStatus.Creating) return false;
    const named = inst.procs.find((p) => p.id === inst.mname);
    if (named && isLive(named)) return false;
    const replicas = runningReplicas(inst, undefined);
    if (replicas.length === 0) return false;
    if (named?.state === ProcState.Lost && (await this.failover.replicasStillHear(inst, named))) {
      // Only the scheduler's side lost the master's host (its agent was written off): while the
      // replicas still hear the master, it is alive and serving, and a promotion would only make
      // a second master. Look again until the replicas lose it too, or it comes back.
      const reason = `master lost with its agent ${named.sid}, but its replicas still hear it; no failover while they do`;
      if (inst.reason !== reason) {
        this.log.warn('master written off with its agent, but its replicas still hear it: not failing over', { instance: inst.name, proc: named.id, agent: named.sid });
        await this.store.setInstance(inst.name, { Reason: reason, Status: InstanceStatus.Degraded }, inst.status);
      }
      this.recheckLater(inst.name);
      return true;
    }
    return this.failover.promote(inst.name, inst.mname, `master proc ${named ? named.state : 'gone'}`);
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
    for (const p of live) {
      if (isShuttingDown(p) || this.shutdownSent.has(p.id)) continue;
      this.shutdownSent.add(p.id);
      await this.store.setProc(inst.name, p.id, { Msg: SHUTDOWN_MESSAGE });
    }
    const reason = 'the master failed to start; placing the instance again';
    if (inst.reason !== reason) await this.store.setInstance(inst.name, { Reason: reason });
    this.log.warn('master failed during creation; restarting the placement', { instance: inst.name });
    return true;
  }

  /** Called by failure detection; runs the failover in the maintainer queue. */
  requestFailover(name: string, masterId: string, cause: string): void {
    this.maintainFor(name, `failover:${name}`, async () => {
      await this.failover.promote(name, masterId, cause);
    });
  }

  /** How many procs the instance lacks, and whether they must be placed together. */
  private needOf(inst: Instance): Need {
    const live = inst.procs.filter(isLive);
    const master = countedMaster(inst) ?? live.find((p) => p.id === inst.mname) ?? live.find((p) => p.type === ProcType.Master && !inst.mname);
    if (!master) {
      // Nothing survives: start afresh (the data is gone), unless the master was only written off
      // with its agent, which may still bring it back. Live replicas without a master are the
      // failover's business, not the creator's.
      if (live.length > 0) return { count: 0, gang: true, master: undefined };
      const waitingFor = this.lostMasterWaiting(inst);
      if (waitingFor) return { count: 0, gang: true, master: undefined, waitingFor };
      return { count: 1 + inst.expSlaves, gang: true, master: undefined };
    }
    const replicas = countedReplicas(inst, master).length;
    const count = Math.max(0, inst.expSlaves - replicas);
    // A master read from etcd that this scheduler has not yet seen alive (after a restart, its
    // agent may come back without it) gets no new replica yet: one placed now could follow a
    // dead address, or a port that meanwhile went to another instance. The detector's first
    // PING settles it within a moment.
    if (count > 0 && master.state === ProcState.Running && !this.failover.hasHeard(master.id) && !this.agentHolds(master)) {
      this.recheckLater(inst.name, 250);
      return { count: 0, gang: false, master };
    }
    return { count, gang: false, master };
  }

  async statusUpdate(agentId: string, status: redfleet.v1.ITaskStatus): Promise<void> {
    const procId = status.task_id.value;
    const name = instanceOfProc(procId);
    const proc = this.store.instance(name)?.procs.find((p) => p.id === procId);
    const state = taskStateName(status.state);
    if (!proc) {
      this.log.warn('status update for an unknown proc', { agent: agentId, proc: procId, state });
      if (status.state === pb.TaskState.TASK_RUNNING || status.state === pb.TaskState.TASK_STARTING) this.broker.kill(agentId, procId);
      return;
    }
    if (!isLive(proc) && proc.state !== state) {
      this.log.info('stale status update ignored', { agent: agentId, proc: procId, state, known: proc.state });
      return;
    }
    // The agent told this scheduler itself that the proc runs: it may be announced as a master.
    if (state === ProcState.Running) this.failover.vouch(procId);
    const fields: Record<string, string> = { State: state };
    if (status.data && status.data.length > 0) {
      const data = pb.RedisState.decode(status.data);
      if (data.pid) fields.Pid = String(data.pid);
    }
    if (proc.state === state && !fields.Pid) return;
    const after = { ...proc, state: state as Proc['state'] };
    // When this update completes the instance, its Status goes in the same transaction: one etcd
    // round trip fewer between the last replica's link coming up and RUNNING.
    const inst = this.store.instance(name)!;
    const derived = after.state === ProcState.Running && isActive(inst) ? deriveStatus({ ...inst, procs: inst.procs.map((p) => (p.id === procId ? after : p)) }) : undefined;
    const instanceFields = derived?.fields.Status === InstanceStatus.Running ? derived.fields : {};
    await this.store.updateProc(name, procId, fields, instanceFields, !isLive(after) && proc.type === ProcType.Replica, inst.status);
    this.log.log(isLive(after) ? 'info' : 'warn', 'proc state', { instance: name, proc: procId, agent: agentId, state, detail: status.message ?? '' });
    if (instanceFields.Status) this.log.info('instance status', { instance: name, status: InstanceStatus.Running, masters: derived!.masters, replicas: derived!.replicas });
  }

  /**
   * An agent (re)subscribed running `taskIds`. Its procs the store still counts live but that it
   * no longer runs are lost; the tasks it runs that the store wrote off (LOST, FAILED, gone, or
   * placed on another agent) are killed at once: a proc the scheduler replaced must never keep
   * serving, as a second master holding a tenant's old data would.
   */
  agentSubscribed(agentId: string, taskIds: string[]): void {
    const running = new Set(taskIds);
    // Each instance the agent holds or runs a task of is settled in that instance's own queue.
    const instances = new Set([...this.procsOn(agentId).map((p) => p.instance), ...taskIds.map(instanceOfProc)]);
    for (const name of instances) {
      this.maintainFor(name, `subscribed:${agentId}:${name}`, async () => {
        const inst = this.store.instance(name);
        if (inst) await this.adoptWaitingMaster(inst, agentId, running);
        for (const proc of this.procsOn(agentId, name)) {
          if (running.has(proc.id)) continue;
          await this.markLost(proc, 'the agent resubscribed without this proc');
        }
        const mine = new Set(this.procsOn(agentId, name).map((p) => p.id));
        for (const taskId of running) {
          if (instanceOfProc(taskId) !== name || mine.has(taskId)) continue;
          this.log.warn('killing a task the scheduler wrote off', { instance: name, proc: taskId, agent: agentId, known: this.knownState(taskId) });
          this.broker.kill(agentId, taskId);
        }
      });
    }
  }

  agentLost(agentId: string, _taskIds: string[]): void {
    const instances = new Set(this.procsOn(agentId).map((p) => p.instance));
    for (const name of instances) {
      this.maintainFor(name, `lost:${agentId}:${name}`, async () => {
        for (const proc of this.procsOn(agentId, name)) await this.markLost(proc, 'its agent is lost');
      });
    }
  }

  procAgent(procId: string): string | undefined {
    return this.findProc(procId)?.sid;
  }

  holdsProcs(agentId: string): boolean {
    return this.procsOn(agentId).length > 0;
  }

  private findProc(procId: string): Proc | undefined {
    return this.store.instance(instanceOfProc(procId))?.procs.find((p) => p.id === procId);
  }

  /** How the store knows a task, for logs: its state, "on <agent>" when placed elsewhere, or "absent". */
  private knownState(procId: string): string {
    const proc = this.findProc(procId);
    return proc ? `${proc.state} on ${proc.sid}` : 'absent';
  }

  // ---- lost masters that wait for their agent ----

  /**
   * The instance's master was written off with its agent (LOST: nobody saw it die) and no proc
   * of the instance lives. Its data may still be on that node: while the agent may come back (its
   * registration is still in etcd, or the agent timeout has not passed since this scheduler saw
   * the loss), nothing is restarted empty unless the operator asks (`restartEmpty`). A master
   * that FAILED or was KILLED on a live agent is gone for sure and is not waited for.
   */
  private lostMasterWaiting(inst: Instance): LostMaster | undefined {
    if (this.restartApproved.has(inst.name)) return undefined;
    const named = inst.procs.find((p) => p.id === inst.mname);
    if (!named || named.state !== ProcState.Lost || !named.sid) return undefined;
    // The agent is back: the master waits no longer if the agent did not bring it.
    const agent = this.broker.agents().find((a) => a.id === named.sid && a.connected);
    if (agent) return agent.tasks.includes(named.id) ? { proc: named, agentId: named.sid } : undefined;
    const firstSeen = this.lostSince.get(named.id) ?? Date.now();
    this.lostSince.set(named.id, firstSeen);
    const withinTimeout = Date.now() - firstSeen < this.opts.agentGraceMs;
    if (!this.store.agentRecord(named.sid) && !withinTimeout) return undefined;
    return { proc: named, agentId: named.sid };
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
    const named = inst.procs.find((p) => p.id === inst.mname);
    if (!named || named.state !== ProcState.Lost || named.sid !== agentId || !running.has(named.id)) return;
    // Mname still names it, so nothing was promoted in its place: it is the only master there
    // is, and killing it would only force a failover (and, standalone, lose the data). Asking
    // the replicas again is not needed, and under load their answer could come too late.
    this.log.warn('lost master is back with its agent; it serves again', { instance: inst.name, proc: named.id, agent: agentId, live: inst.procs.filter(isLive).length });
    this.failover.vouch(named.id);
    this.lostSince.delete(named.id);
    await this.store.updateProc(inst.name, named.id, { State: ProcState.Running }, {}, false);
  }

  /**
   * The operator's choice for an instance whose lost master waits for its agent: give the data
   * up and start an empty master now. Throws NotWaitingError when the instance is not waiting.
   */
  async restartEmpty(name: string): Promise<void> {
    const inst = this.store.instance(name);
    if (!inst || !isActive(inst) || inst.procs.some(isLive) || !this.lostMasterWaiting(inst)) {
      throw new NotWaitingError(name);
    }
    this.restartApproved.add(name);
    this.log.warn('operator chose to restart the instance empty', { instance: name });
    this.instanceChanged(name);
  }

  /** The live procs placed on the agent, of every instance or of one. */
  private procsOn(agentId: string, instance?: string): Proc[] {
    const instances = instance === undefined ? this.store.instances() : [this.store.instance(instance)].filter((i): i is Instance => i !== undefined);
    return instances.flatMap((i) => i.procs.filter((p) => p.sid === agentId && isLive(p)));
  }

  private async markLost(proc: Proc, why: string): Promise<void> {
    this.log.warn('proc lost', { instance: proc.instance, proc: proc.id, agent: proc.sid, why });
    await this.store.updateProc(proc.instance, proc.id, { State: ProcState.Lost }, {}, proc.type === ProcType.Replica);
  }

  /** After a scheduler start: procs whose agent never came back are lost. */
  private sweepUnclaimedProcs(): void {
    const stale = this.store.instances().flatMap((i) => i.procs.filter((p) => isLive(p) && !this.brokerHas(p.sid)));
    for (const proc of stale) this.maintainFor(proc.instance, `sweep:${proc.id}`, () => this.markLost(proc, 'its agent did not resubscribe after the scheduler started'));
  }

  /** The proc's agent is connected to this scheduler and says it runs the proc. */
  private agentHolds(proc: Proc): boolean {
    return this.broker.agents().some((a) => a.id === proc.sid && a.connected && a.tasks.includes(proc.id));
  }

  private brokerHas(agentId: string): boolean {
    return this.broker.agents().some((a) => a.id === agentId);
  }

  // ---- creator ----

  resourceOffers(offers: Offer[]): void {
    void this.creator.add(() => this.placeOn(offers)).catch((err: Error) => {
      this.log.error('placement failed', { error: err.message });
      for (const o of offers) this.broker.decline(o.id, this.opts.pendingRefuseSeconds);
    });
  }

  private async placeOn(offers: Offer[]): Promise<void> {
    const slots: Slot[] = offers.map((o) => ({
      agentId: o.agentId,
      offerId: o.id,
      ip: o.ip,
      hostname: o.hostname,
      cpus: o.resources.cpus,
      mem: o.resources.mem,
      ports: o.resources.ports.map((r) => ({ ...r })),
    }));
    const launches = new Map<string, TaskLaunch[]>();
    const byAge = [...this.wanting]
      .map((n) => this.store.instance(n))
      .filter((i): i is Instance => Boolean(i))
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt));
    for (const inst of byAge) {
      if (this.stopped) break;
      await this.placeInstance(inst, slots, launches);
    }
    for (const offer of offers) {
      const mine = launches.get(offer.id);
      if (!mine) {
        this.broker.decline(offer.id, this.wanting.size > 0 ? this.opts.pendingRefuseSeconds : this.opts.idleRefuseSeconds);
        continue;
      }
      try {
        this.broker.accept(offer.id, mine);
      } catch (err) {
        this.log.warn('launch failed', { agent: offer.agentId, error: (err as Error).message });
        for (const l of mine) {
          const proc = this.store.instance(instanceOfProc(l.taskId))?.procs.find((p) => p.id === l.taskId);
          if (proc) await this.markLost(proc, 'its agent went away before the launch');
        }
      }
    }
    if (this.wanting.size === 0) this.broker.suppress();
  }

  private async placeInstance(inst: Instance, slots: Slot[], launches: Map<string, TaskLaunch[]>): Promise<void> {
    if (!isActive(inst)) {
      this.wanting.delete(inst.name);
      return;
    }
    const need = this.needOf(inst);
    if (need.count <= 0) {
      this.wanting.delete(inst.name);
      return;
    }
    const existing = new Map<string, number>();
    for (const p of inst.procs.filter(isLive)) existing.set(p.sid, (existing.get(p.sid) ?? 0) + 1);
    const req = {
      count: need.count,
      memMb: inst.capacity,
      cpus: this.opts.procCpus,
      dValue: inst.dValue,
      strategy: inst.placement,
      existing,
    };
    let result = place(req, slots);
    if (!result.ok) {
      const reason = shortfall(req, this.fleetSlots());
      if (inst.reason !== reason) await this.store.setInstance(inst.name, { Reason: reason });
      if (need.gang || result.placed.length === 0) return;
      result = place({ ...req, count: result.placed.length }, slots);
      if (!result.ok) return;
    }
    const procs: NewProc[] = result.assignments.map((a, i) => {
      const isMaster = need.gang && i === 0;
      return {
        id: `${inst.name}::${uuidv4()}`,
        instance: inst.name,
        nodename: a.hostname,
        capacity: inst.capacity,
        ip: a.ip,
        port: a.port,
        type: isMaster ? 'M' : 'S',
        slaveOf: '',
        agentId: a.agentId,
      };
    });
    const master = need.master ?? { ip: procs[0].ip, port: procs[0].port };
    for (const p of procs) if (p.type === ProcType.Replica) p.slaveOf = `${master.ip}:${master.port}`;
    const restart = need.gang && inst.procs.length > 0 && inst.status !== InstanceStatus.Creating;
    const reason = restart
      ? 'data lost: the master ended with no replica to promote; starting a fresh, empty master'
      : need.gang ? `launching ${procs.length} procs` : `replacing ${procs.length} replica(s)`;
    const fields: Record<string, string> = { Reason: reason };
    if (restart) {
      this.restartApproved.delete(inst.name);
      for (const p of inst.procs) this.lostSince.delete(p.id);
      fields.DataLost = `${new Date().toISOString()} the master ended with no replica to promote; the instance restarted empty`;
      fields.Mname = '';
      this.log.error('instance restarted empty: data lost', { instance: inst.name });
    }
    await this.store.addProcs(inst.name, procs, fields);
    this.log.info('placed', { instance: inst.name, procs: procs.map((p) => `${p.id}@${p.agentId}:${p.port}`) });
    for (const [i, p] of procs.entries()) {
      const launch: TaskLaunch = {
        taskId: p.id,
        name: `redis ${inst.name} ${p.type === ProcType.Master ? 'master' : 'replica'}`,
        resources: { cpus: this.opts.procCpus, mem: inst.capacity, ports: [{ begin: p.port, end: p.port }] },
        data: pb.RedisLaunch.encode({
          instance: inst.name,
          proc_id: p.id,
          role: p.type === ProcType.Master ? pb.RedisLaunch.Role.MASTER : pb.RedisLaunch.Role.SLAVE,
          port: p.port,
          capacity_mb: inst.capacity,
          master_ip: p.type === ProcType.Replica ? master.ip : undefined,
          master_port: p.type === ProcType.Replica ? master.port : undefined,
          password_sha256: inst.passwordHash,
          min_replicas_to_write: inst.expSlaves > 0 ? 1 : 0,
          min_replicas_max_lag: inst.minReplicasMaxLag || DEFAULT_MIN_REPLICAS_MAX_LAG,
          max_clients: inst.maxClients || undefined,
        }).finish(),
      };
      const offerId = result.assignments[i].offerId;
      launches.set(offerId, [...(launches.get(offerId) ?? []), launch]);
    }
    if (this.needOf(this.store.instance(inst.name) ?? inst).count <= 0) this.wanting.delete(inst.name);
  }

  /** Every connected agent's free resources, offered or not: what the fleet has, for messages. */
  private fleetSlots(): Slot[] {
    return this.broker.agents().filter((a) => a.connected).map((a) => ({
      agentId: a.id,
      offerId: '',
      ip: a.ip,
      hostname: a.hostname,
      cpus: a.free.cpus,
      mem: a.free.mem,
      ports: a.free.ports,
    }));
  }

  // ---- destroyer ----

  private async destroy(name: string): Promise<void> {
    const inst = this.store.instance(name);
    if (!inst || inst.status !== InstanceStatus.Deleting) return;
    this.wanting.delete(name);
    const live = inst.procs.filter(isLive);
    for (const proc of live) {
      if (!this.brokerHas(proc.sid) && !this.store.agentRecord(proc.sid)) {
        await this.markLost(proc, 'its agent is gone');
        continue;
      }
      if (!isShuttingDown(proc) && !this.shutdownSent.has(proc.id)) {
        this.shutdownSent.add(proc.id);
        await this.store.setProc(name, proc.id, { Msg: SHUTDOWN_MESSAGE });
        this.log.info('shutdown requested', { instance: name, proc: proc.id, agent: proc.sid });
      }
    }
    if (live.length > 0) return;
    for (const proc of inst.procs) this.shutdownSent.delete(proc.id);
    await this.store.clearSnames(name);
    if (!(await this.store.setInstance(name, { Status: InstanceStatus.Deleted, Masters: '0', Slaves: '0', Mname: '', Reason: '', DeletedAt: new Date().toISOString() }, InstanceStatus.Deleting))) return;
    this.log.info('instance status', { instance: name, status: InstanceStatus.Deleted });
  }
}

/** What the status says while a lost master waits for its agent. */
function waitingReason(inst: Instance, w: LostMaster): string {
  return `master lost with its agent ${w.agentId}: waiting for the agent to come back with master ${w.proc.id} and its data; ` +
    `POST /api/instances/${inst.name}/restart-empty starts an empty master instead`;
}

