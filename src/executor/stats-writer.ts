import type { AgentStore } from '../store/agent-store.js';
import { parseInfo, statsChanged, statsFromInfo } from '../domain/redis-info.js';
import type { ProcStats } from '../domain/model.js';
import type { Logger } from '../logger.js';
import type { RunningProc } from './running-proc.js';

/**
 * What the writer reads of a proc: its ids, whether it runs, and its INFO. A RunningProc is one;
 * the agent simulator (bench/sim) passes its simulated procs, so their Stats are written by this
 * same code, with the same keys, fields and write rule.
 */
export interface StatsSource {
  task: Pick<RunningProc['task'], 'task_id'>;
  launch: Pick<RunningProc['launch'], 'instance'>;
  running: boolean;
  redis: { readonly exited: unknown; info(): Promise<string> };
}

export const DEFAULT_STATS_HEARTBEAT_SECONDS = 5;

/**
 * Each running proc's INFO, written as Stats (and MemUsed) only when something meaningful
 * changed (see statsChanged) or the heartbeat is due. At 300 procs a write every second grew
 * etcd by ~150 KiB/s; the scheduler reads every-second figures over its own links.
 */
export class StatsWriter {
  /** The Stats last written to etcd per proc, and when: a write is skipped unless it says something new. */
  private readonly statsWritten = new Map<string, { stats: ProcStats; at: number }>();
  private readonly heartbeatMs: number;

  /** @param heartbeatSeconds between writes of a proc whose stats did not change meaningfully */
  constructor(private readonly store: AgentStore, private readonly log: Logger, heartbeatSeconds = DEFAULT_STATS_HEARTBEAT_SECONDS) {
    this.heartbeatMs = heartbeatSeconds * 1000;
  }

  /** One round (the agent runs one every second) over all of the agent's procs. */
  async write(procs: StatsSource[]): Promise<void> {
    const running = procs.filter((p) => p.running && !p.redis.exited);
    const ids = new Set(procs.map((p) => p.task.task_id.value));
    for (const id of this.statsWritten.keys()) if (!ids.has(id)) this.statsWritten.delete(id);
    await Promise.all(running.map((p) => this.writeOf(p)));
  }

  private async writeOf(p: StatsSource): Promise<void> {
    const procId = p.task.task_id.value;
    try {
      const stats = statsFromInfo(parseInfo(await p.redis.info()));
      const last = this.statsWritten.get(procId);
      if (last && Date.now() - last.at < this.heartbeatMs && !statsChanged(last.stats, stats)) return;
      if (await this.store.writeStats(p.launch.instance, procId, stats)) this.statsWritten.set(procId, { stats, at: Date.now() });
    } catch (err) {
      this.log.debug('stats failed', { proc: procId, error: (err as Error).message });
    }
  }
}
