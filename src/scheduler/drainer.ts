import { setTimeout as sleep } from 'node:timers/promises';
import { DrainState, type Drain } from '../domain/drain.js';
import { isOperationRunning, OperationState } from '../domain/operation.js';
import { isActive } from '../domain/rules.js';
import { InstanceStatus } from '../domain/model.js';
import { DrainStore } from '../store/drain-store.js';
import type { FleetStore } from '../store/fleet-store.js';
import type { Logger } from '../logger.js';
import type { AgentProcs } from './agent-procs.js';
import type { ResourceBroker } from './offers.js';
import type { Operations } from './operations.js';
import { moveBlocker } from './drain-plan.js';

/** How long a drain that cannot move anything waits before it looks again. */
const RETRY_MS = 1000;
/** How often a followed operation is looked at. */
const FOLLOW_MS = 200;

/**
 * Drains agents (see domain/drain.ts): for each Drain record, one loop per agent moves the
 * agent's procs off it one instance at a time, each instance by a 'drain' operation
 * (drain-operation.ts), so the move shows in the instance's status, is refused alongside
 * any other operation on it, and resumes after a scheduler restart. When nothing can move, the
 * record says why (waitingReason) and the loop looks again a moment later. Lives for one leader
 * term; the next term's Drainer picks the records up again.
 */
export class Drainer {
  private readonly records: DrainStore;
  private readonly loops = new Map<string, Promise<void>>();
  private timer?: NodeJS.Timeout;
  private stopped = false;

  constructor(
    private readonly store: FleetStore,
    private readonly broker: ResourceBroker,
    private readonly procs: AgentProcs,
    private readonly operations: Operations,
    private readonly log: Logger,
    private readonly procCpus: number,
  ) {
    this.records = new DrainStore(store);
  }

  private readonly kick = (): void => {
    if (this.stopped) return;
    for (const drain of this.store.drains()) if (!this.loops.has(drain.agent)) this.launch(drain.agent);
  };

  start(): void {
    this.store.on('drains', this.kick);
    this.timer = setInterval(this.kick, RETRY_MS);
    this.kick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.store.off('drains', this.kick);
    clearInterval(this.timer);
    await Promise.allSettled([...this.loops.values()]);
  }

  /** Whether the agent is under maintenance: it gets no new procs. */
  isDraining(agentId: string): boolean {
    return this.store.drain(agentId) !== undefined;
  }

  async begin(agent: string): Promise<Drain> {
    const drain = await this.records.begin(agent, this.procs.on(agent).length);
    this.log.info('agent drain requested', { agent, left: drain.left });
    this.kick();
    return drain;
  }

  async end(agent: string): Promise<boolean> {
    const had = await this.records.remove(agent);
    this.log.info('agent undrained', { agent, wasDraining: had });
    // A drained agent's offers were declined for long: offer it again now.
    this.broker.revive();
    return had;
  }

  private launch(agent: string): void {
    const loop = (async () => {
      try {
        while (!this.stopped && this.store.drain(agent)) {
          if (!(await this.pass(agent))) return;
        }
      } catch (err) {
        this.log.error('drain pass failed', { agent, error: (err as Error).message });
      } finally {
        this.loops.delete(agent);
      }
    })();
    this.loops.set(agent, loop);
  }

  /** One step of the agent's drain; false once it runs nothing (drained). */
  private async pass(agent: string): Promise<boolean> {
    const left = this.procs.on(agent);
    if (left.length === 0) {
      if (this.store.drain(agent)?.state !== DrainState.Drained) this.log.info('agent drained', { agent });
      await this.records.update(agent, { state: DrainState.Drained, left: 0, waitingReason: '', moving: '' });
      return false;
    }
    await this.records.update(agent, { state: DrainState.Draining, left: left.length });
    const names = [...new Set(left.map((p) => p.instance))].sort();
    const reasons: string[] = [];
    for (const name of this.resumedFirst(names, agent)) {
      const why = await this.tryInstance(agent, name);
      if (why === undefined) return true;
      reasons.push(why);
    }
    await this.records.update(agent, { waitingReason: reasons.join('; '), moving: '' });
    await this.pause(RETRY_MS);
    return true;
  }

  /** An instance whose drain operation for this agent already runs (a resumed term) goes first. */
  private resumedFirst(names: string[], agent: string): string[] {
    const running = (n: string): boolean => {
      const op = this.store.instance(n)?.operation;
      return isOperationRunning(op) && op.kind === 'drain' && op.params.agent === agent;
    };
    return [...names.filter(running), ...names.filter((n) => !running(n))];
  }

  /** Moves the instance's procs off the agent; undefined when it did (or tried), else why it cannot now. */
  private async tryInstance(agent: string, name: string): Promise<string | undefined> {
    const inst = this.store.instance(name);
    if (!inst) return undefined;
    if (!isActive(inst)) return `${name} is ${inst.status}`;
    if (inst.status === InstanceStatus.Creating) return `${name} is still being created; its procs move once it runs`;
    const running = inst.operation;
    if (isOperationRunning(running)) {
      if (running.kind !== 'drain' || running.params.agent !== agent) return `${name} runs a ${running.kind} (${running.step}); its procs move once it ends`;
      await this.follow(agent, name, running.id);
      return undefined;
    }
    const draining = new Set(this.store.drains().map((d) => d.agent));
    const blocker = moveBlocker(inst, agent, this.broker.agents(), draining, this.procCpus);
    if (blocker) return blocker;
    let opId: string;
    try {
      opId = (await this.operations.start(name, 'drain', { agent })).id;
    } catch (err) {
      return `${name}: ${(err as Error).message}`;
    }
    await this.follow(agent, name, opId);
    return undefined;
  }

  /** Shows the operation's step in the drain record until it ends; a failure becomes the waiting reason. */
  private async follow(agent: string, name: string, opId: string): Promise<void> {
    for (;;) {
      const op = this.store.instance(name)?.operation;
      if (!op || op.id !== opId || this.stopped) return;
      if (op.state !== OperationState.Running) {
        if (op.state === OperationState.Failed) {
          this.log.warn('drain move failed; retrying', { agent, instance: name, error: op.error });
          await this.records.update(agent, { waitingReason: `moving ${name} failed: ${op.error ?? op.step}; retrying`, moving: '' });
          await this.pause(RETRY_MS);
        }
        return;
      }
      await this.records.update(agent, { moving: `${name}: ${op.step}`, waitingReason: '' });
      await this.pause(FOLLOW_MS);
    }
  }

  private async pause(ms: number): Promise<void> {
    if (!this.stopped) await sleep(ms);
  }
}
