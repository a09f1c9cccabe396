import type { FleetStore } from '../store/fleet-store.js';
import type { Logger } from '../logger.js';

/**
 * Deletes instances whose ExpiresAt has passed. ExpiresAt lives in etcd, so a restarted
 * scheduler keeps the promise: the first sweep after start catches anything that expired
 * while no scheduler was running.
 */
export class Reaper {
  private timer?: NodeJS.Timeout;

  constructor(private readonly store: FleetStore, private readonly log: Logger, private readonly everyMs = 500) {}

  start(): void {
    this.timer = setInterval(() => void this.sweep(), this.everyMs);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async sweep(): Promise<void> {
    const now = Date.now();
    for (const inst of this.store.instances()) {
      if (!inst.expiresAt || inst.status === 'DELETING' || inst.status === 'DELETED') continue;
      if (Date.parse(inst.expiresAt) > now) continue;
      this.log.info('instance expired; deleting', { instance: inst.name, expiresAt: inst.expiresAt });
      await this.store.markDeleting(inst.name).catch((err: Error) => this.log.error('reap failed', { instance: inst.name, error: err.message }));
    }
  }
}
