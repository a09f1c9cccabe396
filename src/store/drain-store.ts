import { DrainState, newDrain, type Drain } from '../domain/drain.js';
import type { FleetStore } from './fleet-store.js';

/**
 * Writes agents' Drain records (see domain/drain.ts). Starting a drain creates the record only
 * when there is none; every later write checks the record it replaces, so an undrain that
 * deleted it is never undone by a late progress write.
 */
export class DrainStore {
  constructor(private readonly store: FleetStore) {}

  /** Starts draining `agent`; the record (an existing one is kept as it is). */
  async begin(agent: string, left: number): Promise<Drain> {
    const { etcd, keys } = this.store;
    const key = keys.drain(agent);
    const res = await etcd.if(key, 'Version', '==', 0).then(etcd.put(key).value(JSON.stringify(newDrain(agent, left)))).commit();
    await this.store.caughtUp(res.header.revision);
    return this.store.drain(agent) ?? newDrain(agent, left);
  }

  /**
   * Changes the record while it still reads as the cache holds it; false when it is gone (undrained)
   * or changed meanwhile. Writes nothing when nothing changes.
   */
  async update(agent: string, change: Partial<Pick<Drain, 'state' | 'left' | 'waitingReason' | 'moving'>>): Promise<boolean> {
    const before = this.store.drain(agent);
    if (!before) return false;
    const next: Drain = { ...before, ...change };
    if (JSON.stringify(next) === JSON.stringify(before)) return true;
    next.updatedAt = new Date().toISOString();
    if (next.state === DrainState.Drained && before.state !== DrainState.Drained) next.finishedAt = next.updatedAt;
    if (next.state === DrainState.Draining) delete next.finishedAt;
    const { etcd, keys } = this.store;
    const key = keys.drain(agent);
    const raw = await etcd.get(key).string();
    if (raw === null || JSON.stringify(JSON.parse(raw)) !== JSON.stringify(before)) return false;
    const res = await etcd.if(key, 'Value', '==', raw).then(etcd.put(key).value(JSON.stringify(next))).commit();
    await this.store.caughtUp(res.header.revision);
    return res.succeeded;
  }

  /** Ends the drain (undrain); whether there was one. */
  async remove(agent: string): Promise<boolean> {
    const res = await this.store.etcd.delete().key(this.store.keys.drain(agent)).exec();
    await this.store.caughtUp(res.header.revision);
    return Number(res.deleted) > 0;
  }
}
