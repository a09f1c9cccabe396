import type { FleetStore } from '../store/fleet-store.js';
import { InstanceStatus } from '../domain/model.js';
import type { Logger } from '../logger.js';

export interface ReaperOptions {
  everyMs?: number;
  /** How long a DELETED instance's tree stays readable (status, `delete --wait`) before it is purged. */
  deletedRetentionMs?: number;
}

export const DEFAULT_DELETED_RETENTION_SECONDS = 3600;

/**
 * Deletes instances whose ExpiresAt has passed, and purges the trees of instances DELETED longer
 * than the retention. Both times live in etcd (ExpiresAt, DeletedAt), so a restarted scheduler
 * keeps the promise: the first sweep after start catches anything that fell due while no
 * scheduler was running.
 */
export class Reaper {
  private timer?: NodeJS.Timeout;
  private readonly everyMs: number;
  private readonly deletedRetentionMs: number;
  /** DELETED instances with no DeletedAt (written before it existed): when this scheduler first saw them. */
  private readonly firstSeenDeleted = new Map<string, number>();
  private sweeping = false;

  constructor(private readonly store: FleetStore, private readonly log: Logger, opts: ReaperOptions = {}) {
    this.everyMs = opts.everyMs ?? 500;
    this.deletedRetentionMs = opts.deletedRetentionMs ?? DEFAULT_DELETED_RETENTION_SECONDS * 1000;
  }

  start(): void {
    this.timer = setInterval(() => void this.sweep(), this.everyMs);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async sweep(): Promise<void> {
    if (this.sweeping) return;
    this.sweeping = true;
    try {
      await this.expire();
      await this.purge();
    } finally {
      this.sweeping = false;
    }
  }

  private async expire(): Promise<void> {
    const now = Date.now();
    for (const inst of this.store.instances()) {
      if (!inst.expiresAt || inst.status === InstanceStatus.Deleting || inst.status === InstanceStatus.Deleted) continue;
      if (Date.parse(inst.expiresAt) > now) continue;
      this.log.info('instance expired; deleting', { instance: inst.name, expiresAt: inst.expiresAt });
      await this.store.markDeleting(inst.name).catch((err: Error) => this.log.error('reap failed', { instance: inst.name, error: err.message }));
    }
  }

  /** 40 create/delete cycles used to leave 1,320 keys behind for good: DELETED trees go after the retention. */
  private async purge(): Promise<void> {
    const now = Date.now();
    const deleted = new Set<string>();
    for (const inst of this.store.instances()) {
      if (inst.status !== InstanceStatus.Deleted) continue;
      deleted.add(inst.name);
      const at = Date.parse(inst.deletedAt) || this.firstSeen(inst.name, now);
      if (now - at < this.deletedRetentionMs) continue;
      try {
        const keys = await this.store.purgeInstance(inst.name);
        if (keys > 0) this.log.info('deleted instance purged', { instance: inst.name, deletedAt: inst.deletedAt, keys });
      } catch (err) {
        this.log.warn('purge failed', { instance: inst.name, error: (err as Error).message });
      }
    }
    for (const name of this.firstSeenDeleted.keys()) if (!deleted.has(name)) this.firstSeenDeleted.delete(name);
  }

  private firstSeen(name: string, now: number): number {
    const seen = this.firstSeenDeleted.get(name) ?? now;
    this.firstSeenDeleted.set(name, seen);
    return seen;
  }
}
