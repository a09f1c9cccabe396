import { chmodSync, existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../logger.js';
import type { CheckedLaunch } from './launch-check.js';
import { fetchBackup, type SessionRef } from './backup-fetch.js';

/**
 * How long the data of a persistent proc that crashed is kept for a restart in place. The
 * scheduler relaunches such a master at once (within seconds); a directory nobody claims by then
 * (a replica, replaced elsewhere with its data re-synced) is removed.
 */
export const KEPT_DATA_MS = 10 * 60_000;

/** The directory name of a proc under the agent's work dir. */
export function procDirName(procId: string): string {
  return procId.replace(/[^A-Za-z0-9_.-]/g, '_');
}

/**
 * The data a proc starts with, before its redis-server is spawned: a persistent master restarted
 * in place takes over the kept directory of the proc it replaces (`reuse_dir_of`); a restored
 * master gets its backup, fetched from the scheduler and checked, as its dump.rdb.
 */
export class ProcData {
  private readonly kept = new Map<string, NodeJS.Timeout>();

  constructor(private readonly workDir: string, private readonly log: Logger, private readonly session: () => SessionRef | undefined) {}

  /** A persistent proc ended unrequested and left its data in `dir`: keep it a while. */
  keep(dir: string): void {
    clearTimeout(this.kept.get(dir));
    const timer = setTimeout(() => {
      this.kept.delete(dir);
      rmSync(dir, { recursive: true, force: true });
      this.log.info('kept data of an ended proc removed: no restart claimed it', { dir });
    }, KEPT_DATA_MS);
    timer.unref();
    this.kept.set(dir, timer);
  }

  /** Puts the launch's starting data into `dir` (which must not exist yet). Throws with the reason. */
  async prepare(dir: string, launch: CheckedLaunch): Promise<void> {
    if (launch.reuseDirOf) this.reuse(join(this.workDir, procDirName(launch.reuseDirOf)), dir, launch);
    if (!launch.restore) return;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
    const bytes = await fetchBackup(this.session(), launch.restore.backup, launch.restore.sha256, join(dir, 'dump.rdb'));
    this.log.info('restored master seeded from a backup', { instance: launch.instance, proc: launch.procId, backup: launch.restore.backup, bytes });
  }

  /**
   * Only a directory this agent kept from a crashed proc of the same instance: never a running
   * proc's. Without one (the agent restarted since, or the time ran out) the launch fails, and the
   * scheduler's next restart is an empty one that says `dataLost`: data is never lost silently.
   */
  private reuse(from: string, dir: string, launch: CheckedLaunch): void {
    const timer = this.kept.get(from);
    if (!timer || !existsSync(from)) throw new Error(`no kept data of ${launch.reuseDirOf} on this agent to restart in place from`);
    clearTimeout(timer);
    this.kept.delete(from);
    renameSync(from, dir);
    this.log.info('restarting in place with the kept data', { instance: launch.instance, proc: launch.procId, from: launch.reuseDirOf });
  }
}
