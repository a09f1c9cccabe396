/**
 * bench/sim/sim-agent: one simulated agent. It is the real agent's protocol side, reused: the
 * signed SUBSCRIBE, the sealed RecordIO event stream and its watchdog, the resubscription with
 * backoff (executor/subscription.ts and session.ts), at-least-once status updates
 * (status-updates.ts), the LAUNCH checks (launch-check.ts), the every-second REPORT and the Stats
 * writes with their write rule (stats-writer.ts, proc-report.ts), and its etcd access (store/agent-store.ts: registration, Msg watches, Msg
 * resets, Stats). Only the process layer is simulated: a SimProc with a RESP responder stands in
 * for each redis-server (see sim-proc.ts).
 */
import type { Etcd3 } from 'etcd3';
import { AgentStore, type MsgWatch, type ProcChange } from '../../src/store/agent-store.js';
import { ProcType } from '../../src/domain/model.js';
import { parseMessage } from '../../src/domain/message.js';
import { pb, type PortRange } from '../../src/proto/messages.js';
import type { redfleet } from '../../src/proto/redfleet.js';
import type { Logger } from '../../src/logger.js';
import { Subscription } from '../../src/executor/subscription.js';
import { StatusUpdates } from '../../src/executor/status-updates.js';
import { StatsWriter, type StatsSource } from '../../src/executor/stats-writer.js';
import { ProcReporter } from '../../src/executor/proc-report.js';
import { checkLaunch } from '../../src/executor/launch-check.js';
import { SimProc, type ProcWorld } from './sim-proc.js';
import { infoText, SIM_REDIS_VERSION } from './commands.js';

/** The binary a simulated agent offers (it never runs it). */
export const SIM_REDIS_SERVER = '/usr/bin/redis-server';
/** How often a simulated agent tells the scheduler of a frozen proc, as the real agent's probe does. */
const SILENCE_REPORT_MS = 100;

export interface SimAgentOptions {
  id: string;
  /** The agent's own loopback address: its procs listen there, and it connects from there. */
  ip: string;
  schedulerUrl: string;
  etcd: string;
  prefix: string;
  fleetKey: string;
  cpus: number;
  mem: number;
  ports: PortRange;
}

/** A launched proc as the agent keeps it; `redis` is what StatsWriter reads. */
interface SimTask extends StatsSource {
  task: redfleet.v1.ITaskInfo;
  launch: redfleet.v1.RedisLaunch;
  proc: SimProc;
  watcher?: MsgWatch;
}

export class SimAgent {
  private readonly store: AgentStore;
  private readonly subscription: Subscription;
  private readonly updates: StatusUpdates;
  private readonly stats: StatsWriter;
  private readonly reporter: ProcReporter;
  private readonly tasks = new Map<string, SimTask>();
  private readonly timers: NodeJS.Timeout[] = [];
  private stopped = false;

  constructor(readonly opts: SimAgentOptions, private readonly log: Logger, private readonly world: ProcWorld) {
    this.store = new AgentStore(opts.etcd, opts.prefix, log);
    const resources = { cpus: opts.cpus, mem: opts.mem, ports: [opts.ports] };
    this.subscription = new Subscription({ ...opts, resources, localAddress: opts.ip, redisServers: [{ path: SIM_REDIS_SERVER, version: SIM_REDIS_VERSION }] }, log, this.store, {
      stopped: () => this.stopped,
      subscribeState: () => ({ tasks: this.liveTasks().map((t) => t.task), updates: this.updates.pending }),
      onEvent: (event) => this.onEvent(event),
      heartbeatReport: () => this.reporter.take(),
    });
    this.updates = new StatusUpdates(opts.id, log, this.subscription);
    this.reporter = new ProcReporter(this.subscription);
    this.stats = new StatsWriter(this.store, log, { report: (procs) => this.reporter.round(procs) });
  }

  get id(): string {
    return this.opts.id;
  }

  get subscribed(): boolean {
    return this.subscription.subscribed;
  }

  /** Registers in etcd (over the simulator's one etcd client) and subscribes. */
  async start(etcd: Etcd3): Promise<void> {
    this.store.open(etcd);
    await this.store.register(() => ({
      id: this.opts.id,
      hostname: `sim-${this.opts.id}`,
      ip: this.opts.ip,
      scheduler: this.opts.schedulerUrl,
      resources: { cpus: this.opts.cpus, mem: this.opts.mem, ports: `${this.opts.ports.begin}-${this.opts.ports.end}` },
      redisServers: [{ path: SIM_REDIS_SERVER, version: SIM_REDIS_VERSION }],
      startedAt: new Date().toISOString(),
    }), () => !this.stopped);
    // A random phase, so that a thousand agents do not report and write their Stats in the same millisecond.
    const phase = Math.floor(Math.random() * 1000);
    this.timers.push(setTimeout(() => {
      if (this.stopped) return;
      this.timers.push(setInterval(() => void this.stats.write([...this.tasks.values()]), 1000));
      this.timers.push(setInterval(() => this.updates.resendUnacked(), 1000));
    }, phase));
    this.subscription.start();
  }

  /** Procs whose simulated process has not exited. */
  liveTasks(): SimTask[] {
    return [...this.tasks.values()].filter((t) => !t.proc.exited);
  }

  procs(): SimProc[] {
    return this.liveTasks().map((t) => t.proc);
  }

  private onEvent(event: redfleet.v1.Event): void {
    switch (event.type) {
      case pb.Event.Type.SUBSCRIBED:
        this.updates.resendUnacked();
        return;
      case pb.Event.Type.LAUNCH:
        if (event.launch?.task) void this.launch(event.launch.task);
        return;
      case pb.Event.Type.KILL:
        if (event.kill) this.stopProc(event.kill.task_id.value);
        return;
      case pb.Event.Type.ACKNOWLEDGED:
        if (event.acknowledged) this.updates.acknowledged(event.acknowledged.uuid);
        return;
      case pb.Event.Type.ERROR:
        this.log.error('scheduler error event', { detail: event.error?.message });
        return;
      default:
        return;
    }
  }

  /** A LAUNCH: checked as the real agent checks it, then a SimProc listens, its Msg is watched, RUNNING. */
  private async launch(task: redfleet.v1.ITaskInfo): Promise<void> {
    const procId = task.task_id.value;
    if (this.tasks.has(procId)) return;
    if (this.stopped) return this.updates.report(procId, pb.TaskState.TASK_FAILED, 'the agent is stopping');
    let launch: redfleet.v1.RedisLaunch;
    let checked: ReturnType<typeof checkLaunch>;
    try {
      launch = pb.RedisLaunch.decode(task.data ?? new Uint8Array());
      const portsInUse = new Set(this.liveTasks().map((t) => t.proc.port));
      checked = checkLaunch(procId, launch, { ports: this.opts.ports, memMb: this.opts.mem, portsInUse, redisServers: [SIM_REDIS_SERVER] });
    } catch (err) {
      return this.updates.report(procId, pb.TaskState.TASK_FAILED, `LAUNCH refused: ${(err as Error).message}`);
    }
    const proc = new SimProc(procId, checked.instance, this.opts.ip, checked.port, checked.capacityMb, this.world);
    // A frozen redis-server never answers the agent's INFO either: no Stats are written for it.
    const info = async () => {
      if (proc.frozen) throw new Error('no answer from the frozen proc');
      return infoText(proc, 'all');
    };
    const entry: SimTask = { task, launch, proc, running: false, redis: { get exited() { return proc.exited; }, info } };
    this.tasks.set(procId, entry);
    try {
      await proc.listen();
      if (checked.master) proc.follow(`${checked.master.ip}:${checked.master.port}`);
      entry.watcher = await this.store.watchMsg(checked.instance, procId, (msg) => void this.onMsg(entry, msg));
    } catch (err) {
      proc.crash();
      this.tasks.delete(procId);
      return this.updates.report(procId, pb.TaskState.TASK_FAILED, `launch failed: ${(err as Error).message}`);
    }
    if (proc.exited) return;
    entry.running = true;
    this.updates.report(procId, pb.TaskState.TASK_RUNNING, '', { pid: proc.pid, ip: this.opts.ip, port: proc.port, role: proc.target ? 'slave' : 'master' });
  }

  /** MASTER, SLAVEOF, SHUTDOWN, CAPACITY: the role changes, the Msg is reset with what changed, as a real agent does. */
  private async onMsg(entry: SimTask, msg: string): Promise<void> {
    if (!msg || entry.proc.exited) return;
    const { proc } = entry;
    const message = parseMessage(msg);
    let change: ProcChange | undefined;
    if (message?.verb === 'SHUTDOWN') {
      await this.store.resetMsg(proc.instance, proc.id, msg);
      this.stopProc(proc.id);
      return;
    }
    if (message?.verb === 'MASTER') {
      proc.follow(null);
      change = { type: ProcType.Master, slaveOf: '' };
    } else if (message?.verb === 'SLAVEOF') {
      proc.follow(`${message.ip}:${message.port}`);
      change = { type: ProcType.Replica, slaveOf: `${message.ip}:${message.port}` };
    } else if (message?.verb === 'CAPACITY') {
      proc.capacityMb = message.capacityMb;
      change = { capacityMb: message.capacityMb };
    }
    await this.store.resetMsg(proc.instance, proc.id, msg, change);
  }

  /** Stops a proc on request (KILL, SHUTDOWN): reported KILLED. */
  private stopProc(procId: string): void {
    const entry = this.tasks.get(procId);
    if (!entry) return this.updates.report(procId, pb.TaskState.TASK_LOST, 'no such task on this agent');
    this.end(entry);
    this.updates.report(procId, pb.TaskState.TASK_KILLED, 'redis-server stopped on request (signal SIGTERM)');
  }

  private end(entry: SimTask): void {
    entry.proc.crash();
    this.tasks.delete(entry.proc.id);
    void entry.watcher?.cancel();
  }

  /** Failure on command: the proc's process dies, reported as a real agent reports an exited redis-server. */
  killProc(procId: string): boolean {
    const entry = this.tasks.get(procId);
    if (!entry || entry.proc.exited) return false;
    this.end(entry);
    this.updates.report(procId, pb.TaskState.TASK_FAILED, 'redis-server exited unexpectedly (signal SIGKILL: simulated)');
    return true;
  }

  /**
   * Failure on command: the proc stops answering (SIGSTOP). As a real agent's own PINGs would
   * (executor/local-probe.ts), the agent tells the scheduler at once, and every 100 ms after,
   * how long the proc has been silent; the socket-free stand-in for those PINGs is the frozen flag.
   */
  freezeProc(procId: string): boolean {
    const entry = this.tasks.get(procId);
    if (!entry || entry.proc.exited) return false;
    entry.proc.freeze();
    const frozenAt = Date.now();
    const tell = setInterval(() => {
      if (this.stopped || this.tasks.get(procId) !== entry || entry.proc.exited) return clearInterval(tell);
      this.reporter.now([{ task_id: { value: procId }, silent_ms: Date.now() - frozenAt, busy: false }]);
    }, SILENCE_REPORT_MS);
    this.timers.push(tell);
    return true;
  }

  /**
   * Failure on command: the whole node is gone, at once: the stream drops, every responder closes,
   * nothing more is reported or written. Its Msg watches and its registration (revoked: a dead
   * node's lease would lapse within 10 s) are cleaned up in the background: returns `cleanedUp`,
   * which a caller may await, so that a loaded etcd cannot delay the loss itself.
   */
  lose(): { cleanedUp: Promise<void> } {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    const streamGone = this.subscription.stop();
    const entries = [...this.tasks.values()];
    for (const entry of entries) entry.proc.crash();
    this.tasks.clear();
    const cleanedUp = (async () => {
      await streamGone.catch(() => undefined);
      await Promise.all(entries.map((t) => t.watcher?.cancel()));
      await this.store.close();
    })();
    return { cleanedUp };
  }

  /** Stops cleanly, as `redfleet agent` on SIGTERM: every proc stopped and reported, then the stream ends. */
  async stop(): Promise<void> {
    for (const id of [...this.tasks.keys()]) this.stopProc(id);
    await this.updates.flush(1500);
    await this.lose().cleanedUp;
  }
}
