import type { AgentStore, StatsEntry } from '../store/agent-store.js';
import { parseInfo, statsChanged, statsFromInfo } from '../domain/redis-info.js';
import type { ProcStats } from '../domain/model.js';
import type { Logger } from '../logger.js';
import type { RunningProc } from './running-proc.js';
import type { ProcReport } from './proc-report.js';

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

/** Seconds between etcd Stats writes of a proc whose stats did not change meaningfully. */
export const DEFAULT_STATS_HEARTBEAT_SECONDS = 20;

/**
 * How long a round waits for INFO answers before it reports what it has: a hung redis-server
 * (whose INFO may never return) must not hold back the figures of the agent's other procs.
 */
const REPORT_WAIT_MS = 800;

export interface StatsWriterOptions {
  /** Seconds between writes of a proc whose stats did not change meaningfully (default 20). */
  heartbeatSeconds?: number;
  /** Takes each round's figures, one entry per proc that answered INFO (the agent sends them as a REPORT). */
  report?: (procs: ProcReport[]) => void;
}

/**
 * Each running proc's INFO, read once a round (the agent runs one every second) and used twice:
 * every figure goes to `report` (the scheduler serves the API's every-second stats from those
 * REPORTs), while etcd gets Stats (and MemUsed) only when something meaningful changed (see
 * statsChanged) or the heartbeat is due. At 300 procs a write every second grew etcd by ~150 KiB/s.
 */
export class StatsWriter {
  /** The Stats last written to etcd per proc, and when: a write is skipped unless it says something new. */
  private readonly statsWritten = new Map<string, { stats: ProcStats; at: number }>();
  private readonly heartbeatMs: number;

  constructor(private readonly store: AgentStore, private readonly log: Logger, private readonly opts: StatsWriterOptions = {}) {
    this.heartbeatMs = (opts.heartbeatSeconds ?? DEFAULT_STATS_HEARTBEAT_SECONDS) * 1000;
  }

  /**
   * One round over all of the agent's procs: INFO of each running one; one report of those that
   * answered within REPORT_WAIT_MS; their etcd writes that are due, in one transaction per 50
   * procs (one etcd revision per agent a round, not one per proc). A later answer is written alone.
   */
  async write(procs: StatsSource[]): Promise<void> {
    const running = procs.filter((p) => p.running && !p.redis.exited);
    const ids = new Set(procs.map((p) => p.task.task_id.value));
    for (const id of this.statsWritten.keys()) if (!ids.has(id)) this.statsWritten.delete(id);
    const reads = running.map((p) => this.read(p));
    const answers = new Map<number, ProcStats | undefined>();
    reads.forEach((read, i) => void read.then((stats) => answers.set(i, stats)));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(reads), new Promise((r) => { timer = setTimeout(r, REPORT_WAIT_MS); })]);
    clearTimeout(timer);
    const answered = [...answers].filter((a): a is [number, ProcStats] => a[1] !== undefined);
    this.opts.report?.(answered.map(([i, stats]) => ({ task_id: { value: running[i].task.task_id.value }, stats: JSON.stringify(stats) })));
    const due = answered.filter(([i, stats]) => this.due(running[i], stats)).map(([i, stats]) => ({ instance: running[i].launch.instance, procId: running[i].task.task_id.value, stats }));
    await Promise.all([this.writeBatch(due), ...reads.map(async (read, i) => {
      if (answers.has(i)) return;
      const stats = await read;
      if (stats && this.due(running[i], stats)) await this.writeBatch([{ instance: running[i].launch.instance, procId: running[i].task.task_id.value, stats }]);
    })]);
  }

  /** Whether etcd should get these stats now: something meaningful changed, or the heartbeat is due. */
  private due(p: StatsSource, stats: ProcStats): boolean {
    const last = this.statsWritten.get(p.task.task_id.value);
    return !last || Date.now() - last.at >= this.heartbeatMs || statsChanged(last.stats, stats);
  }

  private async writeBatch(entries: StatsEntry[]): Promise<void> {
    if (entries.length === 0) return;
    try {
      const written = await this.store.writeStatsBatch(entries);
      const at = Date.now();
      for (const e of entries) if (written.has(e.procId)) this.statsWritten.set(e.procId, { stats: e.stats, at });
    } catch (err) {
      this.log.debug('stats write failed', { procs: entries.length, error: (err as Error).message });
    }
  }

  /** The proc's stats from its INFO; undefined when it did not answer. */
  private async read(p: StatsSource): Promise<ProcStats | undefined> {
    try {
      return statsFromInfo(parseInfo(await p.redis.info()));
    } catch (err) {
      this.log.debug('stats failed', { proc: p.task.task_id.value, error: (err as Error).message });
      return undefined;
    }
  }
}
