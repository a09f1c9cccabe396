import { hostname } from 'node:os';
import { AgentStore, type AgentRecord } from '../store/agent-store.js';
import { dataKey, frameworkSecret } from '../store/secrets.js';
import { pb, type PortRange, type Resources } from '../proto/messages.js';
import type { redfleet } from '../proto/redfleet.js';
import { createLogger, type Logger } from '../logger.js';
import { MessageWatch } from './message-watch.js';
import { prepareWorkDir, reapOrphans } from './orphans.js';
import { CheckpointFile, CheckpointRecorder } from './checkpoint.js';
import { recoverProcs } from './recovery.js';
import { StatsWriter } from './stats-writer.js';
import { ProcReporter, type ProcReport } from './proc-report.js';
import { StatusUpdates } from './status-updates.js';
import { Subscription } from './subscription.js';
import { Supervisor } from './supervisor.js';
import { ProcData } from './proc-data.js';
import { LocalProbe, probeTargets, type ProcHealth, type ProcHealthChange } from './local-probe.js';
import { binaryPaths, probeBinaries, type RedisBinary } from './redis-binaries.js';

export { DEFAULT_STATS_HEARTBEAT_SECONDS } from './stats-writer.js';
export type { ProcReport } from './proc-report.js';

/**
 * How often the agent PINGs each of its procs, and how long one may stay silent before the
 * scheduler is told. 100 ms rather than 200: the scheduler samples the replicas from the first
 * report on, so a later report delays the failover by as much (docs/failure-detection.md).
 */
const PROBE_EVERY_MS = 100;

/** The entries of the once-a-second REPORT, each with what the agent's own PINGs say of its proc. */
function withHealth(procs: ProcReport[], health: Map<string, ProcHealth>): ProcReport[] {
  return procs.map((p) => {
    const h = health.get(p.task_id.value);
    return h ? { ...p, silent_ms: h.silentMs, busy: h.busy } : p;
  });
}

export interface AgentOptions {
  schedulerUrl: string;
  etcd: string;
  prefix: string;
  id: string;
  ip: string;
  cpus: number;
  mem: number;
  ports: PortRange;
  workDir: string;
  /** The default redis-server binary (a comma list: the first is the default, all are offered). */
  redisServer: string;
  /** More binaries to offer besides (rolling upgrades). */
  redisServers?: string[];
  fleetKey: string;
  /** During a fleet key rotation, the old key (see docs/hardening/session.md). */
  previousFleetKey?: string;
  /**
   * Stop every redis-server when the agent stops (default), or leave them running, checkpointed,
   * for the next agent with this id to adopt (--keep-procs-on-stop: an agent upgrade).
   */
  stopProcsOnExit?: boolean;
  /** Seconds between etcd Stats writes of a proc whose stats did not change meaningfully (default 20). */
  statsHeartbeatSeconds?: number;
  /**
   * Told at once when a proc's local PINGs find it silent (100 ms) or busy, every 100 ms while it
   * stays so, and when it answers again (see local-probe.ts). Default: a REPORT to the scheduler.
   */
  onProcHealth?: ProcHealthChange;
}

/**
 * The per-node agent and executor. It subscribes to the scheduler and keeps the event stream
 * open (resubscribing with backoff when it breaks: subscription.ts), launches and supervises
 * redis-server (supervisor.ts), reports every state change until it is acknowledged
 * (status-updates.ts), reads each proc's INFO every second for one REPORT to the scheduler and
 * for its etcd Stats, written when they change and at the stats heartbeat (stats-writer.ts,
 * proc-report.ts), PINGs each running proc locally and reports a silent or busy one at once
 * (local-probe.ts), and carries out the SHUTDOWN / MASTER / SLAVEOF messages it watches for in
 * etcd (message-watch.ts). It checkpoints the procs it runs (checkpoint.ts), so that after a
 * crash or an upgrade the next agent with its id takes them back without a restart
 * (recovery.ts). This class starts and stops them and wires them together.
 */
export class RedFleetAgent {
  private readonly log: Logger;
  private readonly store: AgentStore;
  private readonly subscription: Subscription;
  private readonly updates: StatusUpdates;
  private readonly supervisor: Supervisor;
  private readonly stats: StatsWriter;
  /** First-line failure detection: this agent's own PINGs of its procs. */
  private readonly probe: LocalProbe;
  private readonly reporter: ProcReporter;
  /** The redis-server binaries offered, with their versions; the first is the default. */
  private readonly binaries: RedisBinary[];
  private readonly checkpoints: CheckpointRecorder;
  private readonly secretOf: (instance: string) => string;
  private stopped = false;
  private timers: NodeJS.Timeout[] = [];

  constructor(private readonly opts: AgentOptions) {
    this.log = createLogger('agent', { agent: opts.id });
    this.store = new AgentStore(opts.etcd, opts.prefix, this.log);
    const secretOf = (instance: string) => frameworkSecret(dataKey(opts.fleetKey, opts.previousFleetKey), instance);
    this.secretOf = secretOf;
    this.checkpoints = new CheckpointRecorder(new CheckpointFile(opts.workDir, this.log), (instance) => this.store.epochOf(instance), this.log);
    this.binaries = probeBinaries(binaryPaths([opts.redisServer, ...(opts.redisServers ?? [])]), this.log);
    this.subscription = new Subscription({ ...opts, resources: this.resources, redisServers: this.binaries }, this.log, this.store, {
      stopped: () => this.stopped,
      subscribeState: () => ({ tasks: this.supervisor.tasks(), updates: this.updates.pending }),
      onEvent: (event) => this.onEvent(event),
      heartbeatReport: () => this.reporter.take(),
    });
    this.updates = new StatusUpdates(opts.id, this.log, this.subscription);
    const messages = new MessageWatch(this.store, this.log, secretOf, (proc) => this.checkpoints.record(proc));
    const data = new ProcData(opts.workDir, this.log, () => this.subscription.currentSession());
    this.supervisor = new Supervisor({ ...opts, redisServers: this.binaries.map((b) => b.path) }, this.log, this.updates, messages, secretOf, this.checkpoints, data);
    this.reporter = new ProcReporter(this.subscription);
    this.stats = new StatsWriter(this.store, this.log, { heartbeatSeconds: opts.statsHeartbeatSeconds, report: (procs) => this.reporter.round(withHealth(procs, this.probe.snapshot())) });
    // The agent's own PINGs: a silent or busy proc goes to the scheduler at once, in a REPORT of its own.
    const tell: ProcHealthChange = (procId, h) => this.report([{ task_id: { value: procId }, silent_ms: h.silentMs, busy: h.busy }]);
    this.probe = new LocalProbe(() => probeTargets(this.supervisor.all()), this.log, { onChange: opts.onProcHealth ?? tell, pingEveryMs: PROBE_EVERY_MS, silentAfterMs: PROBE_EVERY_MS });
  }

  /** Each running proc's health from the agent's own PINGs, for the periodic report. */
  procHealth(): Map<string, ProcHealth> {
    return this.probe.snapshot();
  }

  /**
   * Sends a REPORT now with these procs. The stats round sends one every second with the figures
   * of every proc that answered INFO; the agent's own failure detection calls this at once with
   * a proc that went silent or busy (`silent_ms`, `busy`), rather than wait for the next round.
   * Nothing is sent while the agent is not subscribed, and nothing is retried.
   */
  report(procs: ProcReport[]): void {
    this.reporter.now(procs);
  }

  get resources(): Resources {
    return { cpus: this.opts.cpus, mem: this.opts.mem, ports: [this.opts.ports] };
  }

  async start(): Promise<void> {
    prepareWorkDir(this.opts.workDir);
    this.store.open();
    // Before the SUBSCRIBE, which lists the adopted procs: the scheduler keeps those and writes
    // off the rest.
    const adopted = await recoverProcs({
      agentId: this.opts.id,
      workDir: this.opts.workDir,
      log: this.log,
      store: this.store,
      file: this.checkpoints.file,
      frameworkSecretOf: this.secretOf,
      adopt: (cp) => this.supervisor.adopt(cp),
    });
    reapOrphans(this.opts.workDir, this.log, adopted);
    await this.store.register(() => this.record(), () => !this.stopped);
    this.timers.push(setInterval(() => void this.stats.write(this.supervisor.all()), 1000));
    this.timers.push(setInterval(() => this.updates.resendUnacked(), 1000));
    this.probe.start();
    this.subscription.start();
    this.log.info('agent started', { scheduler: this.opts.schedulerUrl, ip: this.opts.ip, mem: this.opts.mem, cpus: this.opts.cpus, ports: `${this.opts.ports.begin}-${this.opts.ports.end}` });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    // Before the procs stop: their ends are told by their exits, not as silence.
    this.probe.stop();
    // The session ends with the stream: keep it open until the procs' last updates are acknowledged.
    if (this.opts.stopProcsOnExit !== false) {
      await this.supervisor.stopAll();
      // Give the scheduler a moment to hear that the procs ended.
      await this.updates.flush(1500);
    } else {
      this.log.info('leaving the redis-servers running for the next agent with this id to adopt', { procs: this.supervisor.tasks().length });
    }
    await this.checkpoints.settled();
    await this.subscription.stop();
    await this.supervisor.cancelWatches();
    await this.store.close();
    this.log.info('agent stopped');
  }

  /** What /MrRedis/Agents/<id> says about this agent. */
  private record(): AgentRecord {
    return {
      id: this.opts.id,
      hostname: hostname(),
      ip: this.opts.ip,
      scheduler: this.opts.schedulerUrl,
      resources: { cpus: this.opts.cpus, mem: this.opts.mem, ports: `${this.opts.ports.begin}-${this.opts.ports.end}` },
      redisServers: this.binaries,
      startedAt: new Date().toISOString(),
    };
  }

  /** The scheduler's events (but HEARTBEAT, which the subscription answers). */
  private onEvent(event: redfleet.v1.Event): void {
    switch (event.type) {
      case pb.Event.Type.SUBSCRIBED:
        this.updates.resendUnacked();
        return;
      case pb.Event.Type.LAUNCH:
        if (!event.launch?.task) return;
        // While stopping, the stream stays open only to deliver the last updates: start nothing new.
        if (this.stopped) this.updates.report(event.launch.task.task_id.value, pb.TaskState.TASK_FAILED, 'the agent is stopping');
        else void this.supervisor.launch(event.launch.task);
        return;
      case pb.Event.Type.KILL:
        if (event.kill) void this.supervisor.kill(event.kill.task_id.value);
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
}
