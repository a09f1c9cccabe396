import { chmodSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../logger.js';
import { CHECKPOINT_FILE } from './checkpoint.js';

/** The agent's work dir, created owner-only: proc directories hold tenants' secrets. */
export function prepareWorkDir(workDir: string): void {
  mkdirSync(workDir, { recursive: true, mode: 0o700 });
  chmodSync(workDir, 0o700);
}

/**
 * redis-servers left running by an earlier life of this agent (killed with SIGKILL, say) that
 * it did not adopt (see recovery.ts: `adopted` names their directories): the scheduler has
 * already counted them lost or will when this agent subscribes without them, and a stale master
 * must never serve again. Kill them and clear their dirs. Without a checkpoint, that is all of them.
 */
export function reapOrphans(workDir: string, log: Logger, adopted: ReadonlySet<string> = new Set()): void {
  prepareWorkDir(workDir);
  let entries: string[] = [];
  try {
    entries = readdirSync(workDir);
  } catch {
    return;
  }
  for (const entry of entries) {
    const dir = join(workDir, entry);
    if (entry === CHECKPOINT_FILE || adopted.has(entry)) continue;
    const pid = Number(readIfExists(join(dir, 'redis.pid')).trim());
    if (pid > 0 && readIfExists(`/proc/${pid}/comm`).trim() === 'redis-server') {
      log.warn('killing an orphaned redis-server from an earlier run', { pid, dir });
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // it went away meanwhile
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

function readIfExists(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
