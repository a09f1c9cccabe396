import { parseRebalance, type RebalanceRecord } from '../domain/rebalance.js';
import type { FleetStore } from './fleet-store.js';

/**
 * The fleet's rebalance record, /MrRedis/Config/Rebalance (see domain/rebalance.ts). Each write
 * is one etcd transaction that checks the text it replaces, so two schedulers (or two requests)
 * never both start one, and a stale writer changes nothing.
 */
export class RebalanceStore {
  constructor(private readonly store: FleetStore) {}

  private get key(): string {
    return this.store.keys.config('Rebalance');
  }

  async read(): Promise<RebalanceRecord | undefined> {
    return parseRebalance(await this.store.etcd.get(this.key).string());
  }

  /** Records a new running rebalance; false when one is running already. */
  async begin(record: RebalanceRecord): Promise<boolean> {
    const raw = await this.store.etcd.get(this.key).string();
    if (parseRebalance(raw)?.state === 'running') return false;
    return this.swap(raw, record);
  }

  /** Replaces `before` (the record as this scheduler last wrote or read it) with `next`; false when it changed meanwhile. */
  async update(before: RebalanceRecord, next: RebalanceRecord): Promise<boolean> {
    const raw = await this.store.etcd.get(this.key).string();
    if (raw === null || parseRebalance(raw)?.id !== before.id || parseRebalance(raw)?.updatedAt !== before.updatedAt) return false;
    return this.swap(raw, next);
  }

  private async swap(raw: string | null, next: RebalanceRecord): Promise<boolean> {
    const { etcd } = this.store;
    const guard = raw === null ? etcd.if(this.key, 'Version', '==', 0) : etcd.if(this.key, 'Value', '==', raw);
    const res = await guard.then(etcd.put(this.key).value(JSON.stringify(next))).commit();
    return res.succeeded;
  }
}
