import type { FleetStore } from '../store/fleet-store.js';
import { isRunning, isServing, runningMaster } from '../domain/rules.js';
import { parseInfo, statsFromInfo } from '../domain/redis-info.js';
import type { Logger } from '../logger.js';
import type { RedisLinks } from './redis-links.js';

/**
 * Reads every watched proc's INFO once a second over the scheduler's own links and overlays the
 * result in the store's cache. Agents write Stats to etcd only on a meaningful change or a
 * heartbeat (to keep etcd's write rate bounded), so this is what keeps the API, /v1/STATUS and
 * the Sentinel replica view at most a second or two old, without any etcd write.
 *
 * It polls the procs the failure detector keeps links to (live procs of a RUNNING or DEGRADED
 * instance with a master), so it never opens a link the detector would then drop.
 */
export class StatsPoller {
  private timer?: NodeJS.Timeout;
  private polling = false;

  constructor(private readonly store: FleetStore, private readonly links: RedisLinks, private readonly log: Logger, private readonly everyMs = 1000) {}

  start(): void {
    this.timer = setInterval(() => void this.poll(), this.everyMs);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async poll(): Promise<void> {
    // A round that outlasts the interval (hung procs answer within the links' timeout) is not stacked.
    if (this.polling) return;
    this.polling = true;
    try {
      const polled = new Set<string>();
      const reads: Promise<void>[] = [];
      for (const inst of this.store.instances()) {
        if (!isServing(inst)) continue;
        if (!runningMaster(inst)) continue;
        for (const proc of inst.procs) {
          if (!isRunning(proc)) continue;
          polled.add(proc.id);
          reads.push(this.read(proc.id, () => this.links.call(proc, 'INFO')));
        }
      }
      await Promise.all(reads);
      this.store.retainPolledStats(polled);
    } finally {
      this.polling = false;
    }
  }

  private async read(procId: string, info: () => Promise<unknown>): Promise<void> {
    const text = await info();
    if (typeof text !== 'string') {
      this.log.debug('stats poll got no answer', { proc: procId });
      return;
    }
    this.store.overlayStats(procId, statsFromInfo(parseInfo(text)));
  }
}
