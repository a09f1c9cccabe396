import { readFileSync } from 'node:fs';

/** How often the exit of a redis-server that is not the agent's child is looked for. */
export const PID_WATCH_INTERVAL_MS = 150;

/**
 * Whether `pid` is a running process (not a zombie waiting for its new parent to reap it).
 * `process.kill(pid, 0)` alone still succeeds for a zombie.
 */
export function pidRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  return processState(pid) !== 'Z';
}

/** The process's name (/proc/<pid>/comm), '' when it is gone. */
export function processName(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** The one-letter state in /proc/<pid>/stat (R, S, Z, ...), '' when it is gone. */
function processState(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The name in parentheses may hold spaces: the state follows its closing parenthesis.
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return '';
  }
}

/**
 * The exit of a process that is not our child (a redis-server adopted from an earlier life of
 * the agent: Node sees no 'exit' for it): polled every PID_WATCH_INTERVAL_MS. `onGone` is called
 * once. Returns the function that stops the watch.
 */
export function watchPid(pid: number, onGone: () => void, everyMs = PID_WATCH_INTERVAL_MS): () => void {
  const timer = setInterval(() => {
    if (pidRunning(pid)) return;
    clearInterval(timer);
    onGone();
  }, everyMs);
  return () => clearInterval(timer);
}
