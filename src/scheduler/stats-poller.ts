import type { FleetStore } from '../store/fleet-store.js';
import { isRunning, isServing, runningMaster } from '../domain/rules.js';
import { parseInfo, statsFromInfo } from '../domain/redis-info.js';
import type { Logger } from '../logger.js';
import type { RedisLinks } from './redis-links.js';
import type { AgentReports } from './agent-reports.js';

/**
 * Keeps the cache's every-second stats of the procs that no agent reports. Agents send their
 * procs' stats in a REPORT every second (agent-reports.ts) and write etcd Stats only on a
 * meaningful change or a heartbeat; a proc not reported within REPORT_FRESH_MS (its agent is of
 * an older version, or silent, or left it out) has its INFO read here, over the scheduler's own
 * links, and overlaid in the cache. Either way the API, /v1/STATUS and the Sentinel replica view
 * stay at most a second or two old, without any etcd write; at 1,000 procs, reading every one's
 * INFO here was the top of the scheduler's profile.
 *
 * It polls only procs the failure detector keeps links to (live procs of a RUNNING or DEGRADED
 * instance with a master), so it never opens a link the detector would then drop.
 */
export class StatsPoller {
  private timer?: NodeJS.Timeout;
  private polling = false;

  constructor(
    private readonly store: Pick<FleetStore, 'instances' | 'overlayStats' | 'retainPolledStats'>,
    private readonly links: Pick<RedisLinks, 'call'>,
    private readonly reports: Pick<AgentReports, 'reported' | 'sweep'>,
    private readonly log: Logger,
    private readonly everyMs = 1000,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.poll(), this.everyMs);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** One round (start() runs one every `everyMs`). */
  async poll(): Promise<void> {
    // A round that outlasts the interval (hung procs answer within the links' timeout) is not stacked.
    if (this.polling) return;
    this.polling = true;
    try {
      const now = Date.now();
      this.reports.sweep(now);
      const watched = new Set<string>();
      const unwatched: string[] = [];
      const reads: Promise<void>[] = [];
      for (const inst of this.store.instances()) {
        const serving = isServing(inst) && runningMaster(inst) !== undefined;
        for (const proc of inst.procs) {
          if (!isRunning(proc)) continue;
          if (!serving) unwatched.push(proc.id);
          else watched.add(proc.id);
          if (serving && !this.reports.reported(proc.id, now)) reads.push(this.read(proc.id, () => this.links.call(proc, 'INFO')));
        }
      }
      await Promise.all(reads);
      // Overlaid stats stay for the watched procs and for running ones their agents report (as of now).
      for (const id of unwatched) if (this.reports.reported(id)) watched.add(id);
      this.store.retainPolledStats(watched);
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
