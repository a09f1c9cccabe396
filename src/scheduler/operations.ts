import { v4 as uuidv4 } from 'uuid';
import { isOperationRunning, OperationState, type Operation, type OperationKind } from '../domain/operation.js';
import { isActive } from '../domain/rules.js';
import { NotFoundError, OperationInProgressError, OperationRefusedError } from '../errors.js';
import type { FleetStore } from '../store/fleet-store.js';
import { OperationStore } from '../store/operation-store.js';
import type { Logger } from '../logger.js';

/** Writes a step and its checkpoint; false when the operation is no longer this scheduler's to run. */
export type Progress = (step: string, data?: Record<string, unknown>) => Promise<void>;

/** Thrown inside a handler when the operation was taken over or ended elsewhere: stop quietly. */
export class OperationAbandoned extends Error {}

/**
 * One kind of operation. `run` carries it out from `op.data` (empty at the start, the last
 * checkpoint after a scheduler restart) to its end, calling `progress` before each step's
 * effect; it throws to fail the operation with that message.
 */
export interface OperationHandler {
  kind: OperationKind;
  /** Checks the request against the instance before anything is written; throws a 4xx error. */
  check?(name: string, params: Record<string, unknown>): void;
  run(name: string, op: Operation, progress: Progress): Promise<void>;
}

/**
 * Runs day-2 operations: one at a time per instance, each recorded in etcd before it starts and
 * at every step (see domain/operation.ts). Lives for one leader term; the next term resumes what
 * was running.
 */
export class Operations {
  private readonly handlers = new Map<OperationKind, OperationHandler>();
  private readonly records: OperationStore;
  private readonly running = new Map<string, Promise<void>>();
  private stopped = false;

  constructor(private readonly store: FleetStore, private readonly log: Logger) {
    this.records = new OperationStore(store);
  }

  register(handler: OperationHandler): void {
    this.handlers.set(handler.kind, handler);
  }

  /** Records and starts an operation; returns its record. Throws 404/409 when it cannot start. */
  async start(name: string, kind: OperationKind, params: Record<string, unknown>): Promise<Operation> {
    const handler = this.handlers.get(kind);
    if (!handler) throw new OperationRefusedError(`this scheduler cannot run a ${kind}`);
    const inst = this.store.instance(name);
    if (!inst) throw new NotFoundError('instance', name);
    if (!isActive(inst)) throw new OperationRefusedError(`instance '${name}' is ${inst.status}`);
    if (isOperationRunning(inst.operation)) throw new OperationInProgressError(name, inst.operation.kind, inst.operation.step);
    handler.check?.(name, params);
    const at = new Date().toISOString();
    const op: Operation = { id: uuidv4(), kind, state: OperationState.Running, step: 'starting', params, data: {}, startedAt: at, updatedAt: at };
    if (!(await this.records.begin(name, op))) {
      const now = this.store.instance(name)?.operation;
      if (isOperationRunning(now)) throw new OperationInProgressError(name, now.kind, now.step);
      throw new OperationRefusedError(`instance '${name}' changed meanwhile; try again`);
    }
    this.log.info('operation started', { instance: name, operation: op.id, kind, params });
    this.launch(name, handler, op);
    return op;
  }

  /** A new term: goes on with every operation a previous leader left running. */
  resumeAll(): void {
    for (const inst of this.store.instances()) {
      const op = inst.operation;
      if (!isOperationRunning(op) || this.running.has(inst.name)) continue;
      const handler = this.handlers.get(op.kind);
      if (!handler) continue;
      this.log.warn('resuming an operation', { instance: inst.name, operation: op.id, kind: op.kind, step: op.step });
      this.launch(inst.name, handler, { ...op, data: { ...op.data } });
    }
  }

  /** The term ends: running handlers see `progress` refuse, and the next leader resumes them. */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.allSettled([...this.running.values()]);
  }

  /** Whether an operation of `kind` runs on the instance now (others may pause their own work). */
  runs(name: string, kind?: OperationKind): boolean {
    const op = this.store.instance(name)?.operation;
    return isOperationRunning(op) && (kind === undefined || op.kind === kind);
  }

  private launch(name: string, handler: OperationHandler, op: Operation): void {
    const progress: Progress = async (step, data) => {
      if (this.stopped || !(await this.records.progress(name, op, step, data))) throw new OperationAbandoned(step);
      this.log.info('operation step', { instance: name, operation: op.id, kind: op.kind, step });
    };
    const job = (async () => {
      try {
        await handler.run(name, op, progress);
        if (this.stopped) return;
        await this.records.finish(name, op, OperationState.Done);
        this.log.info('operation done', { instance: name, operation: op.id, kind: op.kind });
      } catch (err) {
        if (err instanceof OperationAbandoned || this.stopped) return;
        const message = (err as Error).message;
        this.log.error('operation failed', { instance: name, operation: op.id, kind: op.kind, step: op.step, error: message });
        await this.records.finish(name, op, OperationState.Failed, message).catch(() => undefined);
      } finally {
        this.running.delete(name);
      }
    })();
    this.running.set(name, job);
  }
}
