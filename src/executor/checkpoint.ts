import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { pb } from '../proto/messages.js';
import type { Logger } from '../logger.js';
import type { RunningProc } from './running-proc.js';

/** The checkpoint's file name in the agent's work dir (reapOrphans leaves it alone). */
export const CHECKPOINT_FILE = 'checkpoint.json';
const FORMAT = 1;

/**
 * What a restarted agent needs to know about one redis-server its earlier life launched: which
 * process it is (pid, port, Redis's run_id), what it was (role, the instance's failover epoch
 * when it took that role), and the LAUNCH it came from (to supervise it again and report it in
 * SUBSCRIBE as the same task).
 */
export interface ProcCheckpoint {
  procId: string;
  instance: string;
  pid: number;
  ip: string;
  port: number;
  /** `INFO server` run_id: new at every start of a redis-server, so a reused pid or port cannot pass for it. */
  runId: string;
  role: 'master' | 'replica';
  /** The master a replica follows; null for a master. */
  target: { ip: string; port: number } | null;
  /** The instance's Epoch when the proc took its role: a master from an older epoch was failed over. */
  epoch: number;
  /** The proc's directory (config, log, pid file). */
  dir: string;
  /** Its memory cgroup, where it has one. */
  cgroupDir?: string;
  /** The TaskInfo of its LAUNCH, protobuf, base64. */
  task: string;
  savedAt: string;
}

/**
 * The agent's checkpoint of the procs it runs: one JSON file in its work dir, mode 0600, always
 * replaced whole (a temp file, fsync, rename), so a SIGKILL at any moment leaves the old file or
 * the new one, never half of one. Writes are synchronous and so never interleave.
 */
export class CheckpointFile {
  private readonly entries = new Map<string, ProcCheckpoint>();
  readonly path: string;

  constructor(workDir: string, private readonly log: Logger) {
    this.path = join(workDir, CHECKPOINT_FILE);
  }

  /**
   * The procs an earlier life of the agent checkpointed ([] when there is no readable file). They
   * stay in the file until remove()d: an agent killed while it recovers finds them again.
   */
  load(): ProcCheckpoint[] {
    const procs = this.read();
    this.entries.clear();
    for (const e of procs) this.entries.set(e.procId, e);
    return procs;
  }

  private read(): ProcCheckpoint[] {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch {
      return [];
    }
    try {
      const parsed = JSON.parse(text) as { format?: unknown; procs?: unknown };
      if (parsed.format !== FORMAT || !Array.isArray(parsed.procs)) throw new Error(`unknown format ${String(parsed.format)}`);
      return parsed.procs.filter(isProcCheckpoint);
    } catch (err) {
      this.log.warn('agent checkpoint unreadable: its procs are treated as orphans', { path: this.path, error: (err as Error).message });
      return [];
    }
  }

  /** Records (or replaces) one proc and rewrites the file. */
  put(entry: ProcCheckpoint): void {
    this.entries.set(entry.procId, entry);
    this.save();
  }

  /** Forgets one proc (it ended) and rewrites the file. */
  remove(procId: string): void {
    if (!this.entries.delete(procId)) return;
    this.save();
  }

  private save(): void {
    const body = `${JSON.stringify({ format: FORMAT, procs: [...this.entries.values()] }, null, 1)}\n`;
    try {
      writeFileAtomic(this.path, body, 0o600);
    } catch (err) {
      this.log.error('agent checkpoint not written: a restart of this agent would kill its procs', { path: this.path, error: (err as Error).message });
    }
  }
}

/**
 * Keeps the checkpoint in step with the procs: recorded once a proc runs and after each role
 * change, forgotten when it ends. The instance's epoch is read from etcd at each record (a
 * failover raises it in the same transaction as its MASTER message, so a proc told MASTER reads
 * the epoch that made it master). Records run one at a time, each with the proc as it is then.
 */
export class CheckpointRecorder {
  private queue: Promise<void> = Promise.resolve();

  constructor(
    readonly file: CheckpointFile,
    private readonly epochOf: (instance: string) => Promise<number>,
    private readonly log: Logger,
  ) {}

  record(proc: RunningProc): void {
    this.queue = this.queue.then(() => this.write(proc)).catch((err: Error) => {
      this.log.warn('proc not checkpointed', { instance: proc.launch.instance, proc: proc.task.task_id.value, error: err.message });
    });
  }

  /** Puts an adopted proc's entry back as it was checkpointed (its epoch was checked then). */
  keep(entry: ProcCheckpoint): void {
    this.queue = this.queue.then(() => this.file.put(entry));
  }

  forget(procId: string): void {
    this.queue = this.queue.then(() => this.file.remove(procId));
  }

  /** Resolves once every record asked for so far is written (tests, shutdown). */
  settled(): Promise<void> {
    return this.queue;
  }

  private async write(proc: RunningProc): Promise<void> {
    const { redis, launch, task } = proc;
    if (!proc.running || redis.exited || !redis.pid || !redis.runId) return;
    const epoch = await this.epochOf(launch.instance);
    // The proc may have ended while the epoch was read.
    if (redis.exited) return;
    this.file.put({
      procId: task.task_id.value,
      instance: launch.instance,
      pid: redis.pid,
      ip: redis.opts.ip,
      port: redis.opts.port,
      runId: redis.runId,
      role: proc.target ? 'replica' : 'master',
      target: proc.target,
      epoch,
      dir: redis.opts.dir,
      cgroupDir: redis.opts.cgroup?.dir,
      task: Buffer.from(pb.TaskInfo.encode(task).finish()).toString('base64'),
      savedAt: new Date().toISOString(),
    });
  }
}

/**
 * Writes `path` so that readers (and a crash) see either the old content or the new, never a
 * mix: a temp file beside it, created with `mode`, flushed, then renamed over the old one.
 */
export function writeFileAtomic(path: string, text: string, mode: number): void {
  const temp = `${path}.tmp`;
  rmSync(temp, { force: true });
  const fd = openSync(temp, 'wx', mode);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, path);
}

function isProcCheckpoint(value: unknown): value is ProcCheckpoint {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  const strings = ['procId', 'instance', 'ip', 'runId', 'dir', 'task'].every((k) => typeof v[k] === 'string' && v[k] !== '');
  const numbers = ['pid', 'port', 'epoch'].every((k) => Number.isInteger(v[k]));
  return strings && numbers && (v.role === 'master' || v.role === 'replica') && (v.pid as number) > 0;
}
