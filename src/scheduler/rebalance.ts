import { setTimeout as sleep } from 'node:timers/promises';
import { v4 as uuidv4 } from 'uuid';
import { InstanceType, type Proc } from '../domain/model.js';
import { isOperationRunning, type Operation } from '../domain/operation.js';
import type { RebalanceMove, RebalancePlan, RebalanceRecord } from '../domain/rebalance.js';
import { isServing, runningMaster, runningReplicas } from '../domain/rules.js';
import { OperationRefusedError } from '../errors.js';
import type { FleetStore } from '../store/fleet-store.js';
import { RebalanceStore } from '../store/rebalance-store.js';
import type { Logger } from '../logger.js';
import type { Operations } from './operations.js';
import { planRebalance, type MasterSite } from './rebalance-plan.js';

/** How long one instance's switchover may take before the rebalance notes it and goes on. */
const MOVE_TIMEOUT_MS = 60_000;
const POLL_MS = 50;

/** The term ended (or another scheduler rewrote the record): stop quietly, the next leader resumes. */
class RebalanceAbandoned extends Error {}

/**
 * Rebalancing masters (issue 9, part 7): plans the switchovers that bring every agent to at most
 * ceil(masters / agents) + 1 masters (rebalance-plan.ts) and makes them one instance at a time,
 * each as that instance's 'switchover' operation, so its status shows it and a restart resumes
 * it. The fleet-level run is recorded in /MrRedis/Config/Rebalance; a new term goes on with it.
 */
export class Rebalancer {
  private readonly records: RebalanceStore;
  private stopped = false;
  private running?: Promise<void>;

  constructor(
    private readonly store: FleetStore,
    private readonly operations: Operations,
    /** Connected agents' ids, draining ones left out. */
    private readonly agents: () => string[],
    private readonly log: Logger,
  ) {
    this.records = new RebalanceStore(store);
  }

  /** Where every serving instance's master is, and which agents' replicas could take over. */
  plan(): RebalancePlan {
    const sites: MasterSite[] = [];
    // Draining agents are left out: the drain moves their masters, and none may move onto them.
    const agents = this.agents();
    const eligible = new Set(agents);
    for (const inst of this.store.instances()) {
      const master = isServing(inst) ? runningMaster(inst) : undefined;
      if (!master || !eligible.has(master.sid)) continue;
      const replicas = inst.type === InstanceType.MasterReplica ? runningReplicas(inst, master).filter(linkUp) : [];
      sites.push({ instance: inst.name, agent: master.sid, replicaAgents: replicas.map((p) => p.sid).filter((a) => eligible.has(a)) });
    }
    return planRebalance(agents, sites);
  }

  /** Plans and (unless `dryRun`) starts a rebalance; its record. 409 while one is running. */
  async start(dryRun: boolean): Promise<RebalanceRecord> {
    const plan = this.plan();
    const now = new Date().toISOString();
    const idle = plan.moves.length === 0;
    const record: RebalanceRecord = {
      id: uuidv4(),
      state: dryRun || idle ? 'done' : 'running',
      plan,
      done: 0,
      step: dryRun ? `dry run: ${plan.moves.length} move(s) planned, nothing moved` : idle ? `balanced: no agent holds more than ${plan.limit} masters` : 'starting',
      skipped: [],
      startedAt: now,
      updatedAt: now,
      ...(dryRun || idle ? { finishedAt: now } : {}),
    };
    if (dryRun) return record;
    if (!(await this.records.begin(record))) throw new OperationRefusedError('a rebalance is already running; GET /api/rebalance shows it');
    this.log.info('rebalance started', { rebalance: record.id, moves: plan.moves.length, limit: plan.limit, before: plan.before });
    if (!idle) this.launch(record);
    return record;
  }

  /** The record in etcd (any scheduler may read it). */
  status(): Promise<RebalanceRecord | undefined> {
    return this.records.read();
  }

  /** A new term: goes on with a rebalance a previous leader left running. */
  resume(): void {
    void this.records.read().then((r) => {
      if (r?.state !== 'running' || this.stopped || this.running) return;
      this.log.warn('resuming a rebalance', { rebalance: r.id, done: r.done, moves: r.plan.moves.length });
      this.launch(r);
    }).catch((err: Error) => this.log.error('rebalance record unreadable', { error: err.message }));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.running;
  }

  private launch(record: RebalanceRecord): void {
    this.running = this.execute(record).catch((err: Error) => {
      if (err instanceof RebalanceAbandoned) return;
      this.log.error('rebalance failed', { rebalance: record.id, error: err.message });
    }).finally(() => {
      this.running = undefined;
    });
  }

  private async execute(start: RebalanceRecord): Promise<void> {
    let current = start;
    const moves = current.plan.moves;
    for (let i = current.done; i < moves.length; i++) {
      const m = moves[i];
      current = await this.write(current, { step: `moving the master of ${m.instance} from ${m.from} to ${m.to} (${i + 1}/${moves.length})` });
      const note = await this.move(m);
      if (note) this.log.warn('rebalance move skipped', { rebalance: current.id, instance: m.instance, from: m.from, to: m.to, note });
      current = await this.write(current, { done: i + 1, skipped: note ? [...current.skipped, note] : current.skipped });
    }
    const after = this.plan();
    const now = new Date().toISOString();
    const step = `done: ${moves.length - current.skipped.length} of ${moves.length} master(s) moved; most masters on one agent now ${Math.max(0, ...Object.values(after.before))} (limit ${after.limit})`;
    await this.write(current, { state: 'done', step, finishedAt: now });
    this.log.info('rebalance done', { rebalance: current.id, moved: moves.length - current.skipped.length, skipped: current.skipped.length, masters: after.before });
  }

  /** Writes the record's next state over the last one; throws RebalanceAbandoned when it is no longer ours. */
  private async write(current: RebalanceRecord, changes: Partial<RebalanceRecord>): Promise<RebalanceRecord> {
    if (this.stopped) throw new RebalanceAbandoned();
    const next: RebalanceRecord = { ...current, ...changes, updatedAt: new Date().toISOString() };
    if (!(await this.records.update(current, next))) throw new RebalanceAbandoned();
    return next;
  }

  /** One instance's master to its replica on `m.to`, by its switchover operation; a note when it was not made. */
  private async move(m: RebalanceMove): Promise<string | undefined> {
    // A switchover a restarted scheduler resumed (this very move, perhaps) ends first.
    const pending = this.store.instance(m.instance)?.operation;
    if (isOperationRunning(pending)) await this.awaitEnd(m.instance, pending.id);
    const inst = this.store.instance(m.instance);
    const master = inst && runningMaster(inst);
    if (!inst || !master) return `${m.instance}: no running master now; left as it is`;
    if (master.sid === m.to) return undefined;
    if (master.sid !== m.from) return `${m.instance}: its master is no longer on ${m.from}; left as it is`;
    const target = runningReplicas(inst, master).find((p) => p.sid === m.to && linkUp(p));
    if (!target) return `${m.instance}: no running replica on ${m.to} now`;
    let op: Operation;
    try {
      op = await this.operations.start(m.instance, 'switchover', { to: target.id });
    } catch (err) {
      return `${m.instance}: ${(err as Error).message}`;
    }
    const end = await this.awaitEnd(m.instance, op.id);
    return end?.state === 'done' ? undefined : `${m.instance}: switchover ${end ? `${end.state}: ${end.error ?? end.step}` : `still running after ${MOVE_TIMEOUT_MS / 1000} s`}`;
  }

  /** The operation once it has ended; undefined when it still runs after MOVE_TIMEOUT_MS. */
  private async awaitEnd(name: string, opId: string): Promise<Operation | undefined> {
    const deadline = Date.now() + MOVE_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (this.stopped) throw new RebalanceAbandoned();
      const op = this.store.instance(name)?.operation;
      if (!op || op.id !== opId) return op;
      if (!isOperationRunning(op)) return op;
      await sleep(POLL_MS);
    }
    return undefined;
  }
}

/** A replica whose link to its master is up (as its last stats say; unknown counts as up). */
function linkUp(p: Proc): boolean {
  return (p.stats?.masterLinkStatus ?? 'up') === 'up';
}
