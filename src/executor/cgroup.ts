import { mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../logger.js';

/**
 * The hard memory ceiling of one proc, enforced by the kernel: redis-server's own limits
 * (maxmemory, client buffers) leave out Lua's heap, fork copies and allocator overhead, so a
 * tenant can still grow a proc far past its capacity. memory.max = 2 x capacity + 48 MB:
 * twice the capacity covers a replica's full resync with `repl-diskless-load swapdb` (old and
 * new dataset side by side) and a fork's copy-on-write, the margin covers redis-server itself,
 * client buffers and the replication backlog.
 */
export const CEILING_MARGIN_MB = 48;

/**
 * What the ceiling means for the proc's RSS: at most 2 x capacity + 64 MB. RSS also counts the
 * redis-server binary's and libraries' file pages (about 10 MB), which the page cache charges
 * to whichever cgroup read them first, not to the proc's.
 */
export const RSS_MARGIN_MB = 64;

export function memoryCeilingBytes(capacityMb: number): number {
  return (2 * capacityMb + CEILING_MARGIN_MB) * 1024 * 1024;
}

/** A per-proc memory cgroup: redis-server joins it through `procsFile` before it execs. */
export interface ProcCgroup {
  readonly dir: string;
  readonly procsFile: string;
  readonly limitBytes: number;
  /** How many times the kernel killed a process here for going over the ceiling. */
  oomKills(): number;
  /** Removes the cgroup; it must hold no process any more. */
  remove(): void;
}

/**
 * Where this agent may create memory cgroups: a child of its own cgroup, on cgroup v2 (the
 * `memory` controller enabled down to it) or else on the v1 memory hierarchy. `detect` returns
 * undefined, after one warning, where neither is writable (a container without delegation, say):
 * procs then run without a hard ceiling.
 */
export class CgroupParent {
  private constructor(
    readonly dir: string,
    readonly version: 1 | 2,
    private readonly log: Logger,
  ) {}

  static detect(agentId: string, log: Logger): CgroupParent | undefined {
    const name = `redfleet-${agentId}-${process.pid}`;
    const reasons: string[] = [];
    for (const version of [2, 1] as const) {
      const own = ownMemoryCgroup(version);
      if (!own) {
        reasons.push(`cgroup v${version}: no memory controller here`);
        continue;
      }
      try {
        removeAbandoned(own);
        const dir = join(own, name);
        mkdirSync(dir);
        if (version === 2) enableMemoryController(own, dir);
        log.info('procs get a memory cgroup', { cgroup: dir, version });
        return new CgroupParent(dir, version, log);
      } catch (err) {
        reasons.push(`cgroup v${version} at ${own}: ${(err as Error).message}`);
      }
    }
    log.warn('no memory cgroup can be created: procs run without a hard memory ceiling, so a tenant (Lua scripts, say) can use more than its capacity', { detail: reasons.join('; ') });
    return undefined;
  }

  /** A fresh cgroup for one proc with `memory.max` (v1: memory.limit_in_bytes) set. */
  create(procName: string, limitBytes: number): ProcCgroup | undefined {
    const dir = join(this.dir, procName);
    try {
      mkdirSync(dir);
      if (this.version === 2) {
        writeFileSync(join(dir, 'memory.max'), String(limitBytes));
        // Swap would let the proc's memory grow past the ceiling while its RSS stays under it.
        tryWrite(join(dir, 'memory.swap.max'), '0');
      } else {
        writeFileSync(join(dir, 'memory.limit_in_bytes'), String(limitBytes));
        tryWrite(join(dir, 'memory.memsw.limit_in_bytes'), String(limitBytes));
      }
    } catch (err) {
      this.log.warn('memory cgroup not created; the proc runs without a hard ceiling', { cgroup: dir, error: (err as Error).message });
      removeDir(dir);
      return undefined;
    }
    return procCgroupAt(dir, this.version, limitBytes);
  }

  /** Removes this agent's cgroup when the agent stops (every proc has ended by then). */
  remove(): void {
    for (const entry of subdirs(this.dir)) removeDir(join(this.dir, entry));
    removeDir(this.dir);
  }
}

/**
 * The cgroup of a proc adopted from an earlier life of the agent (see recovery.ts): it stays in
 * the cgroup it was started in. Undefined when that cgroup is gone.
 */
export function adoptedProcCgroup(dir: string, limitBytes: number): ProcCgroup | undefined {
  if (readOr(join(dir, 'cgroup.procs'), '') === '') return undefined;
  const version = readOr(join(dir, 'memory.events'), '') !== '' ? 2 : 1;
  return procCgroupAt(dir, version, limitBytes);
}

function procCgroupAt(dir: string, version: 1 | 2, limitBytes: number): ProcCgroup {
  const eventsFile = join(dir, version === 2 ? 'memory.events' : 'memory.oom_control');
  return {
    dir,
    procsFile: join(dir, 'cgroup.procs'),
    limitBytes,
    oomKills: () => Number(/^oom_kill (\d+)$/m.exec(readOr(eventsFile, ''))?.[1] ?? 0),
    remove: () => removeDir(dir),
  };
}

/** The directory of this process's own cgroup in the hierarchy that has the memory controller. */
function ownMemoryCgroup(version: 1 | 2): string | undefined {
  const mount = mountOf(version);
  if (!mount) return undefined;
  const line = readOr('/proc/self/cgroup', '').split('\n').find((l) => (version === 2 ? l.startsWith('0::') : /^\d+:([^:]*,)?memory(,[^:]*)?:/.test(l)));
  if (!line) return undefined;
  const path = line.slice(line.indexOf(':', line.indexOf(':') + 1) + 1);
  const relative = mount.root !== '/' && path.startsWith(mount.root) ? path.slice(mount.root.length) : path;
  const dir = join(mount.point, relative);
  if (version === 2 && !readOr(join(dir, 'cgroup.controllers'), '').split(/\s+/).includes('memory')) return undefined;
  return dir;
}

/** The mount of the cgroup2 hierarchy (v2) or of the v1 memory hierarchy, from mountinfo. */
function mountOf(version: 1 | 2): { root: string; point: string } | undefined {
  for (const line of readOr('/proc/self/mountinfo', '').split('\n')) {
    const [left, right] = line.split(' - ');
    if (!right) continue;
    const fields = left.split(' ');
    const [fstype, , options = ''] = right.split(' ');
    const fits = version === 2 ? fstype === 'cgroup2' : fstype === 'cgroup' && options.split(',').includes('memory');
    if (fits) return { root: fields[3], point: fields[4] };
  }
  return undefined;
}

/**
 * On v2 a cgroup's children get the memory controller only if the cgroup enables it in
 * cgroup.subtree_control, and a non-root cgroup that holds processes (the agent's own) may
 * not enable controllers. Where the agent's cgroup already delegates memory this is a no-op.
 */
function enableMemoryController(own: string, dir: string): void {
  const enabled = readOr(join(own, 'cgroup.subtree_control'), '').split(/\s+/);
  try {
    if (!enabled.includes('memory')) writeFileSync(join(own, 'cgroup.subtree_control'), '+memory');
    writeFileSync(join(dir, 'cgroup.subtree_control'), '+memory');
  } catch (err) {
    removeDir(dir);
    throw new Error(`cannot enable the memory controller (${(err as Error).message}); run the agent in a cgroup that delegates memory`);
  }
}

/**
 * Removes the cgroups of agents that are gone (killed with SIGKILL, say) under this process's
 * own cgroup, on both hierarchies. Their procs were reaped, so the cgroups are empty.
 */
export function removeAbandonedCgroups(): void {
  for (const version of [2, 1] as const) {
    const own = ownMemoryCgroup(version);
    if (own) removeAbandoned(own);
  }
}

function removeAbandoned(own: string): void {
  for (const entry of subdirs(own)) {
    const pid = Number(/^redfleet-.+-(\d+)$/.exec(entry)?.[1] ?? 0);
    if (pid === 0 || pid === process.pid || pidAlive(pid)) continue;
    const dir = join(own, entry);
    for (const child of subdirs(dir)) removeDir(join(dir, child));
    removeDir(dir);
  }
}

function subdirs(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch {
    return [];
  }
}

function removeDir(dir: string): void {
  try {
    rmdirSync(dir);
  } catch {
    // still busy or already gone; an agent restart clears what is left
  }
}

function tryWrite(path: string, value: string): void {
  try {
    writeFileSync(path, value);
  } catch {
    // optional knob (no swap accounting on this kernel)
  }
}

function readOr(path: string, fallback: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return fallback;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
