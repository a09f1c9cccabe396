/**
 * An instance's failover history: one record per change of master, unplanned (a failover) or
 * planned (a switchover by the API, Sentinel's FAILOVER, a drain, a rebalance, an upgrade ...).
 * Kept in the instance's `Failovers` key as a JSON array, newest last, written in the same etcd
 * transaction as the change of master itself, so the history never shows a failover that did
 * not happen nor misses one that did. Bounded: the newest KEEP_FAILOVERS. Pure.
 */

export interface FailoverRecord {
  /** ISO time the new master was written. */
  at: string;
  /** The instance's epoch after the change. */
  epoch: number;
  /** Why: the failure seen (e.g. "redis-server exited", "down-after") or the operation's cause. */
  cause: string;
  /** True for a switchover (no acknowledged write lost), false for a failover after a fault. */
  planned: boolean;
  from: string;
  fromAddress: string;
  to: string;
  toAddress: string;
}

export const KEEP_FAILOVERS = 20;

/** The Failovers key's text as records, oldest first; none for empty or unreadable text. */
export function parseFailovers(text: string | undefined): FailoverRecord[] {
  if (!text) return [];
  try {
    const list = JSON.parse(text) as FailoverRecord[];
    return Array.isArray(list) ? list.filter((r) => typeof r?.at === 'string' && typeof r.to === 'string') : [];
  } catch {
    return [];
  }
}

/** The Failovers key's text once `record` is added, keeping the newest KEEP_FAILOVERS. */
export function appendFailover(history: FailoverRecord[], record: FailoverRecord): string {
  return JSON.stringify([...history, record].slice(-KEEP_FAILOVERS));
}
