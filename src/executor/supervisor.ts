import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { pb, type PortRange } from '../proto/messages.js';
import type { redfleet } from '../proto/redfleet.js';
import type { Logger } from '../logger.js';
import { RedisProcess, describeExit, type ProcExit } from './redis-process.js';
import { checkLaunch, type CheckedLaunch } from './launch-check.js';
import { CgroupParent, adoptedProcCgroup, memoryCeilingBytes } from './cgroup.js';
import type { CheckpointRecorder, ProcCheckpoint } from './checkpoint.js';
import { SETTLED_HZ } from './redis-config.js';
import { startReplicationHeartbeat } from './replication-heartbeat.js';
import { followMaster } from './replica-link.js';
import type { MessageWatch } from './message-watch.js';
import type { StatusUpdates } from './status-updates.js';
import type { RunningProc } from './running-proc.js';
import { procDirName, type ProcData } from './proc-data.js';

export interface SupervisorOptions {
  id: string;
  /** The address the redis-servers listen on. */
  ip: string;
  ports: PortRange;
  mem: number;
  workDir: string;
  /** The redis-server binaries this agent offers, the first its default. */
  redisServers: string[];
}

/** A LAUNCH that passed its checks. */
interface AcceptedLaunch {
  task: redfleet.v1.ITaskInfo;
  launch: redfleet.v1.RedisLaunch;
  checked: CheckedLaunch;
}

/**
 * The agent's redis-servers: launches them on LAUNCH (after checking every field), links a new
 * replica to its master, watches each one's Msg key, stops them on KILL, and reports every
 * state change (RUNNING, FAILED, KILLED, LOST) as a status update.
 */
export class Supervisor {
  private readonly procs = new Map<string, RunningProc>();
  /** See memoryCgroups(): undefined until first asked, null where the node has none. */
  private cgroupParent?: CgroupParent | null;

  /** @param frameworkSecretOf the framework user's secret on an instance's redis-servers */
  constructor(
    private readonly opts: SupervisorOptions,
    private readonly log: Logger,
    private readonly updates: StatusUpdates,
    private readonly messages: MessageWatch,
    private readonly frameworkSecretOf: (instance: string) => string,
    private readonly checkpoints: CheckpointRecorder,
    private readonly data: ProcData,
  ) {}

  /** Every proc from its LAUNCH until its exit. */
  all(): RunningProc[] {
    return [...this.procs.values()];
  }

  /** The tasks a SUBSCRIBE lists: those whose redis-server has not exited. */
  tasks(): redfleet.v1.ITaskInfo[] {
    return this.all().filter((p) => !p.redis.exited).map((p) => p.task);
  }

  async launch(task: redfleet.v1.ITaskInfo): Promise<void> {
    if (this.procs.has(task.task_id.value)) return;
    const accepted = this.accept(task);
    if (!accepted) return;
    const proc = this.create(accepted);
    if (!(await this.prepareData(proc, accepted.checked))) return;
    await this.bringUp(proc, accepted.checked.role === 'replica');
  }

  /** The proc's starting data (kept data of a restart in place, a restored backup); false when it failed (reported). */
  private async prepareData(proc: RunningProc, checked: CheckedLaunch): Promise<boolean> {
    if (!checked.reuseDirOf && !checked.restore) return true;
    try {
      await this.data.prepare(proc.redis.opts.dir, checked);
      return true;
    } catch (err) {
      const reason = (err as Error).message;
      proc.redis.opts.log.error('launch failed: its data could not be prepared', { error: reason });
      this.procs.delete(checked.procId);
      proc.redis.opts.cgroup?.remove();
      rmSync(proc.redis.opts.dir, { recursive: true, force: true });
      this.updates.report(checked.procId, pb.TaskState.TASK_FAILED, `launch failed: ${reason}`);
      return false;
    }
  }

  /**
   * Supervises again a redis-server an earlier life of this agent launched, which recovery.ts
   * has proven to be that process and etcd still gives to this agent: the same watches as a
   * fresh launch (exit, Msg key, replication heartbeat, memory ceiling, stats), without a
   * restart; the SUBSCRIBE that follows lists it. Resolves whether it was adopted; one that
   * could not be is stopped.
   */
  async adopt(cp: ProcCheckpoint): Promise<boolean> {
    const task = pb.TaskInfo.decode(Buffer.from(cp.task, 'base64'));
    const launch = pb.RedisLaunch.decode(task.data ?? new Uint8Array());
    // Checked again (the file is the agent's own, but its fields reach commands); this agent's
    // port range, memory and binaries may have changed since the launch, so those bounds are not
    // applied (an adopted redis-server already runs: its binary is only recorded).
    const binaries = [...this.opts.redisServers, ...(launch.redis_server ? [launch.redis_server] : [])];
    const checked = checkLaunch(cp.procId, launch, { ports: { begin: 1, end: 65535 }, memMb: Number.MAX_SAFE_INTEGER, portsInUse: this.portsInUse(), redisServers: binaries });
    const proc = this.create({ task, launch, checked }, cp);
    proc.target = cp.target;
    const { redis } = proc;
    try {
      await redis.adopt(cp.pid, cp.runId);
      if (redis.exited) return false;
      redis.once('exit', startReplicationHeartbeat(redis.client));
      proc.watcher = await this.messages.watch(proc);
    } catch (err) {
      proc.failure = `adoption failed: ${(err as Error).message}`;
      redis.opts.log.error('adoption failed', { error: proc.failure });
      await redis.stop().catch(() => undefined);
      return false;
    }
    if (redis.exited) return false;
    proc.running = true;
    this.checkpoints.keep(cp);
    redis.client.call('CONFIG', 'SET', 'hz', String(SETTLED_HZ)).catch(() => undefined);
    redis.opts.log.info('redis-server adopted', { pid: cp.pid, port: cp.port, role: cp.role });
    // Its RUNNING may have died unacknowledged with the earlier agent: said again (it travels
    // in the SUBSCRIBE); for a proc the scheduler already counts running it only rewrites the pid.
    this.updates.report(cp.procId, pb.TaskState.TASK_RUNNING, 'adopted by the restarted agent', { pid: cp.pid, ip: cp.ip, port: cp.port, role: proc.target ? 'slave' : 'master' });
    return true;
  }

  /** Decodes and checks a LAUNCH; one that fails is refused as a whole (reported FAILED). */
  private accept(task: redfleet.v1.ITaskInfo): AcceptedLaunch | undefined {
    const procId = task.task_id.value;
    try {
      const launch = pb.RedisLaunch.decode(task.data ?? new Uint8Array());
      const checked = checkLaunch(procId, launch, { ports: this.opts.ports, memMb: this.opts.mem, portsInUse: this.portsInUse(), redisServers: this.opts.redisServers });
      return { task, launch, checked };
    } catch (err) {
      // Nothing was written or spawned: the LAUNCH is refused as a whole.
      this.log.warn('LAUNCH refused', { proc: procId, error: (err as Error).message });
      this.updates.report(procId, pb.TaskState.TASK_FAILED, `LAUNCH refused: ${(err as Error).message}`);
      return undefined;
    }
  }

  /**
   * The proc's redis-server, not started yet, in its own directory and memory ceiling; for an
   * adopted one (`adopted`), the directory and cgroup it already has.
   */
  private create({ task, launch, checked }: AcceptedLaunch, adopted?: ProcCheckpoint): RunningProc {
    const procId = task.task_id.value;
    const log = this.log.child({ instance: checked.instance, proc: procId });
    const dirName = procDirName(procId);
    const ceiling = memoryCeilingBytes(checked.capacityMb);
    const cgroup = adopted ? (adopted.cgroupDir ? adoptedProcCgroup(adopted.cgroupDir, ceiling) : undefined) : this.memoryCgroups()?.create(dirName, ceiling);
    const redis = new RedisProcess({
      procId,
      redisServer: checked.redisServer,
      log,
      ip: this.opts.ip,
      port: checked.port,
      dir: adopted?.dir ?? join(this.opts.workDir, dirName),
      capacityMb: checked.capacityMb,
      passwordSha256: checked.passwordSha256,
      frameworkSecret: this.frameworkSecretOf(checked.instance),
      replicaPriority: checked.replicaPriority,
      minReplicasToWrite: checked.minReplicasToWrite,
      minReplicasMaxLag: checked.minReplicasMaxLag,
      maxClients: checked.maxClients,
      persistence: checked.persistence,
      seeded: Boolean(checked.restore),
      cgroup,
      memoryCeilingBytes: ceiling,
    });
    const proc: RunningProc = { task, launch, redis, running: false, target: checked.master ?? null };
    this.procs.set(procId, proc);
    redis.on('exit', (exit: ProcExit) => this.exited(proc, exit));
    return proc;
  }

  /** Starts the proc, links a replica to its master and watches its Msg key, then reports RUNNING. */
  private async bringUp(proc: RunningProc, isReplica: boolean): Promise<void> {
    const { redis, launch } = proc;
    const procId = proc.task.task_id.value;
    const log = redis.opts.log;
    // No TASK_STARTING: on a small node every update costs the critical path of a create an
    // etcd write and a maintainer pass; STAGING goes straight to RUNNING (or FAILED).
    try {
      await redis.start();
      log.debug('redis-server ready', { port: launch.port });
      redis.once('exit', startReplicationHeartbeat(redis.client));
      // The Msg watch and the replica's link are set up side by side: neither waits on the other.
      const following = isReplica ? followMaster(proc, this.log) : undefined;
      proc.watcher = await this.messages.watch(proc);
      await following;
    } catch (err) {
      if (redis.exited) return;
      // Reported by exited() as TASK_FAILED with this reason, not as a requested stop.
      proc.failure = (err as Error).message;
      log.error('launch failed', { error: proc.failure });
      await redis.stop().catch(() => undefined);
      return;
    }
    if (redis.exited) return;
    proc.running = true;
    // Startup is over: back to Redis's usual cron rate (see STARTUP_HZ).
    const settle = setTimeout(() => {
      if (!redis.exited) redis.client.call('CONFIG', 'SET', 'hz', String(SETTLED_HZ)).catch(() => undefined);
    }, 5000);
    redis.once('exit', () => clearTimeout(settle));
    this.updates.report(procId, pb.TaskState.TASK_RUNNING, '', { pid: redis.pid, ip: this.opts.ip, port: launch.port, role: launch.role === pb.RedisLaunch.Role.MASTER ? 'master' : 'slave' });
    // After the report, off the create's critical path: a restart of the agent adopts it from here on.
    this.checkpoints.record(proc);
  }

  private exited(proc: RunningProc, exit: ProcExit): void {
    const procId = proc.task.task_id.value;
    void this.messages.cancel(proc.watcher);
    this.procs.delete(procId);
    this.checkpoints.forget(procId);
    this.keepLogTail(proc, exit);
    if (exit.keptDir) this.data.keep(exit.keptDir);
    const how = exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`;
    if (proc.failure) this.updates.report(procId, pb.TaskState.TASK_FAILED, `launch failed: ${proc.failure}`);
    else if (exit.requested) this.updates.report(procId, pb.TaskState.TASK_KILLED, `redis-server stopped on request (${how})`);
    else if (!proc.running) this.updates.report(procId, pb.TaskState.TASK_FAILED, `launch failed: ${describeExit(exit)}`);
    else this.updates.report(procId, pb.TaskState.TASK_FAILED, `redis-server exited unexpectedly (${describeExit(exit)})`);
  }

  /** The proc's directory is gone with its exit: its log's last lines live on in the agent's log. */
  private keepLogTail(proc: RunningProc, exit: ProcExit): void {
    if (exit.logTail.length === 0) return;
    const level = exit.requested && !proc.failure ? 'debug' : 'warn';
    this.log.log(level, 'redis-server log tail', { instance: proc.launch.instance, proc: proc.task.task_id.value, log: exit.logTail.join('\n') });
  }

  /** Ports held by this agent's procs: a LAUNCH may not take one twice. */
  private portsInUse(): Set<number> {
    return new Set(this.all().map((p) => p.redis.opts.port));
  }

  /**
   * The parent of the procs' memory cgroups, found on first use (undefined, after one warning,
   * where the node allows none). It is removed when the agent process exits; one left by a
   * SIGKILLed agent is removed by the next agent on this node.
   */
  private memoryCgroups(): CgroupParent | undefined {
    if (this.cgroupParent === undefined) {
      const parent = CgroupParent.detect(this.opts.id, this.log);
      this.cgroupParent = parent ?? null;
      if (parent) process.once('exit', () => parent.remove());
    }
    return this.cgroupParent ?? undefined;
  }

  async kill(procId: string): Promise<void> {
    const proc = this.procs.get(procId);
    if (!proc) {
      this.updates.report(procId, pb.TaskState.TASK_LOST, 'no such task on this agent');
      return;
    }
    // stop() returns at once for a proc that never started; exited() reports it either way.
    await proc.redis.stop();
  }

  /** Stops every redis-server (each exit is reported). */
  async stopAll(): Promise<void> {
    await Promise.all(this.all().map((p) => p.redis.stop().catch(() => undefined)));
  }

  /** Cancels the Msg watches of the procs still running (the agent leaves them running). */
  async cancelWatches(): Promise<void> {
    for (const p of this.all()) await this.messages.cancel(p.watcher);
  }
}
