import { chmodSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../logger.js';

/**
 * redis-servers left running by an earlier life of this agent (killed with SIGKILL, say) are
 * not adopted: the scheduler has already counted them lost or will when this agent subscribes
 * without them, and a stale master must never serve again. Kill them and clear their dirs.
 */
export function reapOrphans(workDir: string, log: Logger): void {
  // Proc directories hold tenants' secrets: the work dir is the agent's alone.
  mkdirSync(workDir, { recursive: true, mode: 0o700 });
  chmodSync(workDir, 0o700);
  let entries: string[] = [];
  try {
    entries = readdirSync(workDir);
  } catch {
    return;
  }
  for (const entry of entries) {
    const dir = join(workDir, entry);
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
