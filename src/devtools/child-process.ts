import type { ChildProcess } from 'node:child_process';

/**
 * Whether a child process is gone: it exited or was killed (Node has reaped it), or it never
 * started (spawn failed, so it has no pid and will never emit 'exit').
 */
export function childGone(child: ChildProcess): boolean {
  return child.pid === undefined || child.exitCode !== null || child.signalCode !== null;
}

/**
 * Stops a child process this program started: sends `signal` (SIGTERM by default, so it can
 * clean up), then SIGKILL if it is still there `graceMs` later. Resolves when the child has
 * exited, at once if it already had.
 *
 * The wait is bounded: a child still there `graceMs` after its SIGKILL (stuck in uninterruptible
 * I/O, where even SIGKILL waits) is given up on and the promise resolves anyway, so that a
 * teardown (dev's Ctrl-C, a test's or a benchmark's cleanup) can never hang on it. With
 * `signal` SIGKILL that bound is `graceMs` from the call.
 *
 * The one way RedFleet's dev tools, tests and benchmarks stop their etcd, schedulers, agents and
 * redis-servers.
 */
export function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<void> {
  if (childGone(child)) return Promise.resolve();
  return new Promise((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    const finish = (): void => {
      clearTimeout(timer);
      child.off('exit', finish);
      resolve();
    };
    const killHard = (): void => {
      child.kill('SIGKILL');
      timer = setTimeout(finish, graceMs);
    };
    child.once('exit', finish);
    timer = setTimeout(signal === 'SIGKILL' ? finish : killHard, graceMs);
    child.kill(signal);
  });
}
