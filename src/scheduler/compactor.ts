import type { Etcd3 } from 'etcd3';
import type { Logger } from '../logger.js';

export interface CompactorOptions {
  /** How often the leader compacts (default 60 s). */
  everyMs: number;
  /** How much history is kept: revisions younger than this survive a compaction (default 5 min). */
  retentionMs: number;
}

export const DEFAULT_COMPACT_EVERY_SECONDS = 60;
export const DEFAULT_COMPACT_RETENTION_SECONDS = 300;

interface Sample {
  at: number;
  revision: number;
}

/**
 * Compacts etcd's history so that its database stops growing. Without it every Stats write and
 * every status change stays in etcd's MVCC history for good, and the backend quota (2 GiB by
 * default) fills in hours on a busy fleet, after which etcd refuses every write.
 *
 * etcd has no "revision at time T", so the leader samples (time, revision) and compacts to the
 * newest sample older than the retention. Keeping a few minutes of history lets a watcher that
 * reconnects after a short break resume where it left off instead of reloading.
 */
export class Compactor {
  private readonly samples: Sample[] = [];
  private readonly sampleEveryMs: number;
  private timers: NodeJS.Timeout[] = [];
  private compactedTo = 0;
  private busy = false;

  constructor(private readonly etcd: Etcd3, private readonly log: Logger, private readonly opts: CompactorOptions) {
    // About 10 samples per retention period, at most one every 30 s: the compaction point is off
    // by at most one sample interval, and the sample list stays short.
    this.sampleEveryMs = Math.min(30_000, Math.max(1000, Math.floor(opts.retentionMs / 10)));
  }

  start(): void {
    void this.sample();
    this.timers.push(setInterval(() => void this.sample(), this.sampleEveryMs));
    this.timers.push(setInterval(() => void this.compact(), this.opts.everyMs));
  }

  stop(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
  }

  private async sample(): Promise<void> {
    try {
      const status = await this.etcd.maintenance.status({});
      this.samples.push({ at: Date.now(), revision: Number(status.header.revision) });
    } catch (err) {
      this.log.debug('etcd revision sample failed', { error: (err as Error).message });
    }
  }

  /** Compacts to the newest sample older than the retention, if that is ahead of the last compaction. */
  private async compact(): Promise<void> {
    if (this.busy) return;
    const cutoff = Date.now() - this.opts.retentionMs;
    let target: Sample | undefined;
    while (this.samples.length > 0 && this.samples[0].at <= cutoff) target = this.samples.shift();
    if (!target || target.revision <= this.compactedTo) return;
    // The chosen sample stays the oldest one known, so the next round never goes backwards.
    this.samples.unshift(target);
    this.busy = true;
    try {
      const before = await this.dbSizes();
      await this.etcd.kv.compact({ revision: target.revision });
      this.compactedTo = target.revision;
      const after = await this.dbSizes();
      this.log.info('etcd history compacted', { revision: target.revision, keptSeconds: Math.round((Date.now() - target.at) / 1000), ...prefixed('before', before), ...prefixed('after', after) });
    } catch (err) {
      const message = (err as Error).message;
      // etcd's own --auto-compaction got there first: nothing is wrong.
      if (/compacted/.test(message)) this.compactedTo = target.revision;
      else this.log.warn('etcd compaction failed', { revision: target.revision, error: message });
    } finally {
      this.busy = false;
    }
  }

  /** dbSize and dbSizeInUse from the member's status (one cheap call); empty when it fails. */
  private async dbSizes(): Promise<{ dbSize?: number; dbSizeInUse?: number }> {
    try {
      const s = await this.etcd.maintenance.status({});
      return { dbSize: Number(s.dbSize), dbSizeInUse: Number(s.dbSizeInUse) };
    } catch {
      return {};
    }
  }
}

function prefixed(prefix: string, sizes: { dbSize?: number; dbSizeInUse?: number }): Record<string, number | undefined> {
  return { [`${prefix}DbSize`]: sizes.dbSize, [`${prefix}DbSizeInUse`]: sizes.dbSizeInUse };
}
