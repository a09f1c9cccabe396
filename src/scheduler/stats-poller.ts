import type { FleetStore } from '../store/fleet-store.js';
import type { Proc } from '../domain/model.js';
import { isRunning, isServing, runningMaster } from '../domain/rules.js';
import { parseInfo, statsFromInfo } from '../domain/redis-info.js';
import type { Logger } from '../logger.js';
import type { RedisLinks } from './redis-links.js';
import type { AgentReports } from './agent-reports.js';
import { SLICE } from './detector-upkeep.js';
import { setImmediate as yieldLoop } from 'node:timers/promises';

/** INFO reads a round at most (one round a second): see StatsPoller. */
export const DEFAULT_MAX_READS_PER_ROUND = 1000;

/**
 * Keeps the cache's every-second stats of the procs that no agent reports. Agents send their
 * procs' stats in a REPORT every second (agent-reports.ts) and write etcd Stats only on a
 * meaningful change or a heartbeat; a proc not reported within REPORT_FRESH_MS (its agent is of
 * an older version, or silent, or left it out) has its INFO read here, over the scheduler's own
 * links, and overlaid in the cache. Either way the API, /v1/STATUS and the Sentinel replica view
 * stay at most a second or two old, without any etcd write; at 1,000 procs, reading every one's
 * INFO here was the top of the scheduler's profile.
 *
 * It polls only live procs of a RUNNING or DEGRADED instance with a master. The failure detector
 * keeps links to the masters; a replica's link is opened by its first read here and held open
 * while the replica stays unreported (RedisLinks.hold), however long its turn takes to come round.
 *
 * A new term polls nothing for its first `startGraceMs` (the reports' freshness window): every
 * proc counts as unreported when a term starts, while the agents resubscribe and report within a
 * heartbeat. Reading INFO meanwhile was wasted work exactly when the new leader is busiest: at
 * 100,000 procs, 1,000 reads a second of a restarted leader's first seconds (bench:startup).
 *
 * Its reads are a fallback, and they are bounded: at most `maxReadsPerRound` INFOs a round, the
 * procs read longest ago first. Many agents stop reporting at once exactly when the scheduler is
 * short of CPU (a starved host; bench:scale's cascades, docs/BENCHMARKS.md), and an INFO a second
 * for each of their procs then deepened the shortage. Past the budget the stats of those procs
 * are refreshed less often than once a second; failure detection does not read them.
 */
export class StatsPoller {
  private timer?: NodeJS.Timeout;
  private polling = false;
  /** When each proc's INFO was last asked for here (procs no longer polled are forgotten each round). */
  private readonly lastRead = new Map<string, number>();
  private startedAt = 0;

  constructor(
    private readonly store: Pick<FleetStore, 'instances' | 'overlayStats' | 'retainPolledStats'>,
    private readonly links: Pick<RedisLinks, 'call' | 'hold'>,
    private readonly reports: Pick<AgentReports, 'reported' | 'sweep'>,
    private readonly log: Logger,
    private readonly everyMs = 1000,
    private readonly maxReadsPerRound = DEFAULT_MAX_READS_PER_ROUND,
    private readonly startGraceMs = 0,
  ) {}

  start(): void {
    this.startedAt = Date.now();
    this.timer = setInterval(() => void this.poll(), this.everyMs);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** One round (start() runs one every `everyMs`). */
  async poll(): Promise<void> {
    // A round that outlasts the interval (hung procs answer within the links' timeout) is not stacked.
    if (this.polling || Date.now() - this.startedAt < this.startGraceMs) return;
    this.polling = true;
    try {
      const now = Date.now();
      this.reports.sweep(now);
      const watched = new Set<string>();
      const unwatched: string[] = [];
      const due: Proc[] = [];
      const all = this.store.instances();
      for (let i = 0; i < all.length; i++) {
        // A pass over 3,334 instances held the loop 20-50 ms: let it go every SLICE instances.
        if (i % SLICE === SLICE - 1) await yieldLoop();
        const inst = all[i];
        const serving = isServing(inst) && runningMaster(inst) !== undefined;
        for (const proc of inst.procs) {
          if (!isRunning(proc)) continue;
          if (!serving) unwatched.push(proc.id);
          else watched.add(proc.id);
          if (serving && !this.reports.reported(proc.id, now)) due.push(proc);
        }
      }
      const polled = new Set(due.map((p) => p.id));
      this.links.hold(polled);
      for (const id of this.lastRead.keys()) if (!polled.has(id)) this.lastRead.delete(id);
      if (due.length > this.maxReadsPerRound) {
        due.sort((a, b) => (this.lastRead.get(a.id) ?? 0) - (this.lastRead.get(b.id) ?? 0));
        due.length = this.maxReadsPerRound;
      }
      for (const proc of due) this.lastRead.set(proc.id, now);
      await Promise.all(due.map((proc) => this.read(proc.id, () => this.links.call(proc, 'INFO'))));
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
