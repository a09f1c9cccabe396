/**
 * bench/started-here: the processes and temporary directories a benchmark starts itself, and how
 * they are stopped and removed, after each run and on any exit.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stopChild } from '../src/devtools/child-process.js';

/** A process started through StartedHere.spawn: whether it has exited, and the tail of its stderr. */
export interface Spawned {
  child: ChildProcess;
  exited: boolean;
  stderr: string;
}

/**
 * The processes and temporary directories a benchmark starts itself. They are removed after each
 * run, and — through cleanUpOnExit — on any exit, error or signal too, so that no redis-server
 * outlives a failed benchmark. With `keepDirs` (REDFLEET_KEEP_TEST_DIRS) directories stay for
 * inspection.
 */
export class StartedHere {
  private readonly procs = new Set<Spawned>();
  private readonly dirs = new Set<string>();

  constructor(private readonly keepDirs = false) {}

  /** Starts `cmd` with stderr captured (last 2000 characters); `extra` fields go on the result. */
  spawn<T extends object>(cmd: string, args: string[], extra: T): Spawned & T {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    const proc: Spawned & T = Object.assign({ child, exited: false, stderr: '' }, extra);
    this.procs.add(proc);
    child.stderr?.on('data', (d: Buffer) => { proc.stderr = (proc.stderr + d.toString()).slice(-2000); });
    child.on('exit', () => {
      proc.exited = true;
      this.procs.delete(proc);
    });
    child.on('error', (err) => {
      proc.exited = true;
      proc.stderr += err.message;
      this.procs.delete(proc);
    });
    return proc;
  }

  /** A new empty directory under the system temp dir, named `prefix` + random. */
  tempDir(prefix: string): string {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    this.dirs.add(dir);
    return dir;
  }

  /** Removes a directory from tempDir() (or, with keepDirs, says on stderr where it is). */
  removeDir(dir: string): void {
    if (this.keepDirs) process.stderr.write(`kept ${dir}\n`);
    else rmSync(dir, { recursive: true, force: true });
    this.dirs.delete(dir);
  }

  /** SIGKILLs every process still alive and removes every directory; synchronous, for an exit handler. */
  killAllSync(): void {
    for (const p of this.procs) p.child.kill('SIGKILL');
    if (!this.keepDirs) for (const d of this.dirs) rmSync(d, { recursive: true, force: true });
  }

  /**
   * Calls killAllSync() on exit, and turns SIGINT/SIGTERM into an exit (130) so that it, and
   * LocalFleet's own exit handler (the fleet), run on Ctrl-C too.
   */
  cleanUpOnExit(program: string): void {
    process.on('exit', () => this.killAllSync());
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      process.on(sig, () => {
        console.error(`${program}: ${sig}; stopping everything started here`);
        process.exit(130);
      });
    }
  }
}

/**
 * Sends `signal` to a spawned process and resolves once it has exited: a SIGTERM not obeyed
 * within 5 s is followed by SIGKILL, and the wait is bounded, so that teardown cannot hang a
 * benchmark (src/devtools/child-process.ts).
 */
export function stopProcess(p: Spawned, signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
  if (p.exited) return Promise.resolve();
  return stopChild(p.child, signal, 5000);
}
