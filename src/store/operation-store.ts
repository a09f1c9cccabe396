import { isOperationRunning, OperationState, type Operation } from '../domain/operation.js';
import { isActive } from '../domain/rules.js';
import type { FleetStore } from './fleet-store.js';

/** Field of the instance that holds its operation's JSON. */
const FIELD = 'Operation';

/**
 * Writes an instance's operation record (see domain/operation.ts). Each write is one etcd
 * transaction that checks the record it replaces, so two schedulers (or two requests) never both
 * start an operation, and a late write of a finished or replaced operation changes nothing.
 */
export class OperationStore {
  constructor(private readonly store: FleetStore) {}

  /**
   * Records `op` as the instance's running operation. False when the instance is not active, or
   * another operation is running (or the record changed since the cache read it).
   */
  async begin(name: string, op: Operation): Promise<boolean> {
    const inst = this.store.instance(name);
    if (!inst || !isActive(inst) || isOperationRunning(inst.operation)) return false;
    return this.swap(name, inst.operation, op, inst.status);
  }

  /** Writes the running operation's new step and checkpoint; false when it is no longer the one recorded. */
  async progress(name: string, op: Operation, step: string, data: Record<string, unknown> = op.data): Promise<boolean> {
    const now = this.current(name, op.id);
    if (!now || !isOperationRunning(now)) return false;
    const next: Operation = { ...now, step, data: { ...now.data, ...data }, updatedAt: new Date().toISOString() };
    const ok = await this.swap(name, now, next);
    if (ok) Object.assign(op, next);
    return ok;
  }

  /** Ends the operation as done or failed (with why). */
  async finish(name: string, op: Operation, state: OperationState.Done | OperationState.Failed, error?: string): Promise<boolean> {
    const now = this.current(name, op.id);
    if (!now || !isOperationRunning(now)) return false;
    const at = new Date().toISOString();
    const next: Operation = { ...now, state, updatedAt: at, finishedAt: at, ...(error ? { error } : {}) };
    const ok = await this.swap(name, now, next);
    if (ok) Object.assign(op, next);
    return ok;
  }

  private current(name: string, id: string): Operation | undefined {
    const op = this.store.instance(name)?.operation;
    return op?.id === id ? op : undefined;
  }

  /** Puts `next` only while the stored record still reads `before` (and Status `expectStatus`). */
  private async swap(name: string, before: Operation | undefined, next: Operation, expectStatus?: string): Promise<boolean> {
    const { etcd, keys } = this.store;
    const key = keys.instanceField(name, FIELD);
    const raw = await etcd.get(key).string();
    if (raw !== null && JSON.stringify(parseOrRaw(raw)) !== JSON.stringify(before ?? null)) return false;
    const statusKey = keys.instanceField(name, 'Status');
    let txn = raw === null ? etcd.if(key, 'Version', '==', 0) : etcd.if(key, 'Value', '==', raw);
    txn = expectStatus === undefined ? txn.and(statusKey, 'Version', '>', 0) : txn.and(statusKey, 'Value', '==', expectStatus);
    const res = await txn.then(etcd.put(key).value(JSON.stringify(next))).commit();
    await this.store.caughtUp(res.header.revision);
    return res.succeeded;
  }
}

function parseOrRaw(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}
