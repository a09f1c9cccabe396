import { request, Agent as HttpAgent, type IncomingMessage, type ClientRequest } from 'node:http';
import { createHash, randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { chmodSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import type { Etcd3, Lease, Watcher } from 'etcd3';
import { connectEtcd } from '../store/etcd.js';
import { currentLeader } from '../store/leadership.js';
import { Keys } from '../store/keys.js';
import { dataKey, eventKey, frameworkSecret, randomToken, sameSecret, schedulerProof, subscribeSignature } from '../store/secrets.js';
import { FrameDecoder } from '../proto/recordio.js';
import { openEvent } from '../proto/sealed-event.js';
import { ProtocolError } from '../errors.js';
import { pb, toResourceList, type PortRange, type Resources } from '../proto/messages.js';
import type { redfleet } from '../proto/redfleet.js';
import { createLogger, type Logger } from '../logger.js';
import { RedisProcess, sleep, portOpen, describeExit, type ProcExit } from './redis-process.js';
import { checkLaunch, type CheckedLaunch } from './launch-check.js';
import { CgroupParent, memoryCeilingBytes } from './cgroup.js';
import { SETTLED_HZ } from './redis-config.js';
import { startReplicationHeartbeat } from './replication-heartbeat.js';
import { AWAIT_MASTER_MS, awaitMasterRole } from './replica-link.js';
import { parseInfo, statsChanged, statsFromInfo } from '../domain/redis-info.js';
import { ProcType, type ProcStats } from '../domain/model.js';
import { parseMessage, type ProcMessage } from '../domain/message.js';

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
  redisServer: string;
  fleetKey: string;
  /** During a fleet key rotation, the old key (see docs/hardening/session.md). */
  previousFleetKey?: string;
  /** Stop every redis-server when the agent stops (default), or leave them running. */
  stopProcsOnExit?: boolean;
  /** Seconds between Stats writes of a proc whose stats did not change meaningfully (default 5). */
  statsHeartbeatSeconds?: number;
}

export const DEFAULT_STATS_HEARTBEAT_SECONDS = 5;

interface RunningProc {
  task: redfleet.v1.ITaskInfo;
  launch: redfleet.v1.RedisLaunch;
  redis: RedisProcess;
  watcher?: Watcher;
  running: boolean;
  /** The master this proc should replicate from; null once told MASTER. Messages change it. */
  target: { ip: string; port: number } | null;
  /** Why its launch failed, when the agent stopped it for that reason. */
  failure?: string;
}

/**
 * A SHUTDOWN is for a master that was failed over: SIGKILL follows SIGTERM this soon. A healthy
 * redis-server without persistence exits on SIGTERM within a few ms; a frozen (SIGSTOPped) one
 * ignores it, and its tenants' clients stay stuck on its socket until the process is gone.
 */
const SHUTDOWN_GRACE_MS = 50;
/** A scheduler stream silent for this many heartbeat intervals is dropped and the agent subscribes again. */
const SILENT_HEARTBEATS = 3;
/** Calls (UPDATE, HEARTBEAT, the challenge) are small: a scheduler that takes longer is not answering. */
const CALL_TIMEOUT_MS = 2000;

/**
 * The per-node agent and executor. It subscribes to the scheduler and keeps the event stream
 * open (resubscribing with backoff when it breaks), launches and supervises redis-server,
 * reports every state change until it is acknowledged, writes each proc's Stats when they change
 * (and at least every few seconds), and carries out the SHUTDOWN / MASTER / SLAVEOF messages it watches for in etcd.
 */
export class RedFleetAgent {
  private readonly log: Logger;
  private readonly keys: Keys;
  private readonly procs = new Map<string, RunningProc>();
  /** Status updates not yet acknowledged, by uuid (hex). */
  private readonly unacked = new Map<string, redfleet.v1.ITaskStatus>();
  private readonly httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 8 });
  private etcd?: Etcd3;
  private lease?: Lease;
  private stream?: ClientRequest;
  private subscribed = false;
  /** The session the current stream opened: its token authorizes every call, at that scheduler. */
  private session?: { token: string; scheduler: string };
  /** Which fleet key signs the next SUBSCRIBE (see fleetKeys); moves on after a 401 during a rotation. */
  private keyIndex = 0;
  /** The scheduler API currently in use (see findScheduler). */
  private schedulerUrl: string;
  private stopped = false;
  private timers: NodeJS.Timeout[] = [];
  private watchQueue: Promise<unknown> = Promise.resolve();
  private loop?: Promise<void>;
  /** See memoryCgroups(): undefined until first asked, null where the node has none. */
  private cgroupParent?: CgroupParent | null;

  constructor(private readonly opts: AgentOptions) {
    this.log = createLogger('agent', { agent: opts.id });
    this.keys = new Keys(opts.prefix);
    this.schedulerUrl = opts.schedulerUrl;
  }

  get resources(): Resources {
    return { cpus: this.opts.cpus, mem: this.opts.mem, ports: [this.opts.ports] };
  }

  async start(): Promise<void> {
    this.reapOrphans();
    this.etcd = connectEtcd(this.opts.etcd);
    await this.register();
    this.timers.push(setInterval(() => void this.writeStats(), 1000));
    this.timers.push(setInterval(() => this.resendUnacked(), 1000));
    this.loop = this.subscribeLoop();
    this.log.info('agent started', { scheduler: this.opts.schedulerUrl, ip: this.opts.ip, mem: this.opts.mem, cpus: this.opts.cpus, ports: `${this.opts.ports.begin}-${this.opts.ports.end}` });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    // The session ends with the stream: keep it open until the procs' last updates are acknowledged.
    if (this.opts.stopProcsOnExit !== false) {
      await Promise.all([...this.procs.values()].map((p) => p.redis.stop().catch(() => undefined)));
      // Give the scheduler a moment to hear that the procs ended.
      const deadline = Date.now() + 1500;
      while (this.unacked.size > 0 && Date.now() < deadline) {
        this.resendUnacked();
        await sleep(100);
      }
    }
    this.stream?.destroy();
    for (const p of this.procs.values()) await this.cancelWatch(p.watcher);
    await this.loop;
    await this.lease?.revoke().catch(() => undefined);
    this.etcd?.close();
    this.httpAgent.destroy();
    this.log.info('agent stopped');
  }

  /**
   * redis-servers left running by an earlier life of this agent (killed with SIGKILL, say) are
   * not adopted: the scheduler has already counted them lost or will when this agent subscribes
   * without them, and a stale master must never serve again. Kill them and clear their dirs.
   */
  private reapOrphans(): void {
    // Proc directories hold tenants' secrets: the work dir is the agent's alone.
    mkdirSync(this.opts.workDir, { recursive: true, mode: 0o700 });
    chmodSync(this.opts.workDir, 0o700);
    let entries: string[] = [];
    try {
      entries = readdirSync(this.opts.workDir);
    } catch {
      return;
    }
    for (const entry of entries) {
      const dir = join(this.opts.workDir, entry);
      const pid = Number(readIfExists(join(dir, 'redis.pid')).trim());
      if (pid > 0 && readIfExists(`/proc/${pid}/comm`).trim() === 'redis-server') {
        this.log.warn('killing an orphaned redis-server from an earlier run', { pid, dir });
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // it went away meanwhile
        }
      }
      rmSync(dir, { recursive: true, force: true });
    }
  }

  /** /MrRedis/Agents/<id>, bound to a lease that lapses if the agent dies. */
  private async register(): Promise<void> {
    const etcd = this.etcd!;
    this.lease = etcd.lease(10, { autoKeepAlive: true });
    this.lease.on('lost', () => {
      if (this.stopped) return;
      this.log.warn('agent lease lost; registering again');
      void this.register().catch((err: Error) => this.log.error('agent registration failed', { error: err.message }));
    });
    const record = {
      id: this.opts.id,
      hostname: hostname(),
      ip: this.opts.ip,
      scheduler: this.opts.schedulerUrl,
      resources: { cpus: this.opts.cpus, mem: this.opts.mem, ports: `${this.opts.ports.begin}-${this.opts.ports.end}` },
      startedAt: new Date().toISOString(),
    };
    await this.lease.put(this.keys.agent(this.opts.id)).value(JSON.stringify(record));
  }

  // ---- the scheduler connection ----

  private async subscribeLoop(): Promise<void> {
    let backoff = 100;
    while (!this.stopped) {
      const started = Date.now();
      try {
        await this.streamOnce();
      } catch (err) {
        if (!this.stopped) this.log.warn('scheduler stream failed', { error: (err as Error).message, scheduler: this.schedulerUrl });
      }
      this.subscribed = false;
      this.session = undefined;
      if (this.stopped) return;
      if (Date.now() - started > 10_000) backoff = 100;
      await sleep(backoff);
      backoff = Math.min(backoff * 2, 3000);
    }
  }

  /**
   * The elected scheduler's API, as announced in etcd, else the one given with --scheduler.
   * Asked afresh before every subscription, so agents follow a scheduler failover.
   */
  private async findScheduler(): Promise<string> {
    const leader = this.etcd ? await currentLeader(this.etcd, this.opts.prefix) : undefined;
    const url = leader?.api ?? this.opts.schedulerUrl;
    if (url !== this.schedulerUrl) this.log.info('scheduler address', { scheduler: url, leader: leader?.id ?? '' });
    this.schedulerUrl = url;
    return url;
  }

  /** The fleet keys this agent may sign with: the current one, then the previous one during a rotation. */
  private get fleetKeys(): string[] {
    return this.opts.previousFleetKey ? [this.opts.fleetKey, this.opts.previousFleetKey] : [this.opts.fleetKey];
  }

  /**
   * One session: fetch a nonce, SUBSCRIBE signed with the fleet key, check that SUBSCRIBED proves
   * the scheduler holds that key too, then follow the sealed event stream until it ends. A stream
   * that cannot prove itself, or goes silent for three heartbeat intervals, is dropped.
   */
  private async streamOnce(): Promise<void> {
    const scheduler = await this.findScheduler();
    const fleetKey = this.fleetKeys[this.keyIndex % this.fleetKeys.length];
    const serverNonce = await this.challenge(scheduler);
    const clientNonce = randomToken();
    const call: redfleet.v1.ICall = {
      type: pb.Call.Type.SUBSCRIBE,
      agent_id: { value: this.opts.id },
      subscribe: {
        agent_info: { hostname: this.opts.ip, id: { value: this.opts.id }, resources: toResourceList(this.resources) },
        tasks: [...this.procs.values()].filter((p) => !p.redis.exited).map((p) => p.task),
        unacknowledged_updates: [...this.unacked.values()].map((status) => ({ status })),
      },
    };
    const body = pb.Call.encode(call).finish();
    const bodySha = createHash('sha256').update(body).digest('hex');
    const headers = {
      'Content-Type': 'application/x-protobuf',
      Accept: 'application/recordio',
      'Content-Length': body.length,
      Authorization: `RedFleet-HMAC ${subscribeSignature(fleetKey, this.opts.id, serverNonce, clientNonce, bodySha)}`,
      'X-RedFleet-Agent': this.opts.id,
      'X-RedFleet-Nonce': serverNonce,
      'X-RedFleet-Client-Nonce': clientNonce,
      'X-RedFleet-Body-Sha256': bodySha,
    };
    return new Promise((resolve, reject) => {
      const req = request(`${scheduler}/api/v1/agent`, { method: 'POST', agent: false, headers });
      this.stream = req;
      let watchdog: NodeJS.Timeout | undefined;
      // Until SUBSCRIBED: room for the scheduler's check of an older stream (2 s) and a slow start.
      let silenceMs = 10_000;
      const arm = () => {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => req.destroy(new Error(`the scheduler stream was silent for ${silenceMs} ms`)), silenceMs);
      };
      arm();
      req.on('response', (res: IncomingMessage) => {
        if (res.statusCode !== 200) {
          clearTimeout(watchdog);
          if (res.statusCode === 401 && this.fleetKeys.length > 1) this.keyIndex += 1;
          void readSmall(res).then((text) => reject(new Error(`SUBSCRIBE answered ${res.statusCode}: ${text}`)));
          return;
        }
        const decoder = new FrameDecoder();
        let verified: { key: Buffer; seq: number } | undefined;
        res.on('data', (chunk: Buffer) => {
          arm();
          try {
            for (const frame of decoder.push(chunk)) {
              let event: redfleet.v1.Event;
              if (!verified) {
                const opened = this.openSession(frame, fleetKey, clientNonce, serverNonce, scheduler);
                verified = { key: opened.key, seq: 1 };
                event = opened.event;
                silenceMs = SILENT_HEARTBEATS * (event.subscribed?.heartbeat_interval_seconds || 1) * 1000;
                arm();
              } else {
                verified.seq += 1;
                event = openEvent(verified.key, verified.seq, frame);
              }
              this.onEvent(event);
            }
          } catch (err) {
            this.log.warn('dropping the scheduler stream', { scheduler, error: (err as Error).message });
            req.destroy(err as Error);
          }
        });
        res.on('close', () => {
          clearTimeout(watchdog);
          resolve();
        });
        res.on('error', (err) => {
          clearTimeout(watchdog);
          reject(err);
        });
      });
      req.on('error', (err) => {
        clearTimeout(watchdog);
        reject(err);
      });
      req.end(body);
    });
  }

  /**
   * Checks the first frame: it must be SUBSCRIBED, carry the scheduler's proof for this agent,
   * these nonces and this session, and be sealed with the session's event key. Only then does the
   * agent use the session token; a scheduler without the fleet key never gets a call on it.
   */
  private openSession(frame: Buffer, fleetKey: string, clientNonce: string, serverNonce: string, scheduler: string): { key: Buffer; event: redfleet.v1.Event } {
    const claimed = pb.Event.decode(frame);
    const session = claimed.subscribed?.session ?? '';
    if (claimed.type !== pb.Event.Type.SUBSCRIBED || !session) throw new ProtocolError('the scheduler did not open with SUBSCRIBED and a session');
    const proof = schedulerProof(fleetKey, this.opts.id, clientNonce, serverNonce, session);
    if (!sameSecret(proof, claimed.subscribed?.proof ?? new Uint8Array())) throw new ProtocolError('the scheduler could not prove that it holds the fleet key');
    const key = eventKey(fleetKey, this.opts.id, clientNonce, serverNonce, session);
    const event = openEvent(key, 1, frame);
    this.session = { token: session, scheduler };
    return { key, event };
  }

  /** GET /api/v1/agent/challenge: a single-use nonce to sign SUBSCRIBE with. */
  private challenge(scheduler: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const req = request(`${scheduler}/api/v1/agent/challenge`, { method: 'GET', agent: this.httpAgent, timeout: CALL_TIMEOUT_MS }, (res) => {
        void readSmall(res).then((text) => {
          let nonce: unknown;
          try {
            nonce = (JSON.parse(text) as { nonce?: unknown }).nonce;
          } catch {
            nonce = undefined;
          }
          if (res.statusCode === 200 && typeof nonce === 'string') resolve(nonce);
          else reject(new Error(`challenge answered ${res.statusCode}: ${text.slice(0, 200)}`));
        });
      });
      req.on('timeout', () => req.destroy(new Error('no challenge from the scheduler in time')));
      req.on('error', reject);
      req.end();
    });
  }

  private onEvent(event: redfleet.v1.Event): void {
    switch (event.type) {
      case pb.Event.Type.SUBSCRIBED:
        this.subscribed = true;
        this.log.info('subscribed', { frameworkId: event.subscribed?.framework_id?.value, scheduler: this.session?.scheduler });
        this.resendUnacked();
        return;
      case pb.Event.Type.HEARTBEAT:
        // The scheduler counts an agent that does not answer as gone (a dead TCP connection accepts writes).
        void this.sendCall({ type: pb.Call.Type.HEARTBEAT });
        return;
      case pb.Event.Type.LAUNCH:
        if (!event.launch?.task) return;
        // While stopping, the stream stays open only to deliver the last updates: start nothing new.
        if (this.stopped) this.report(event.launch.task.task_id.value, pb.TaskState.TASK_FAILED, 'the agent is stopping');
        else void this.launch(event.launch.task);
        return;
      case pb.Event.Type.KILL:
        if (event.kill) void this.kill(event.kill.task_id.value);
        return;
      case pb.Event.Type.ACKNOWLEDGED:
        if (event.acknowledged) this.unacked.delete(Buffer.from(event.acknowledged.uuid).toString('hex'));
        return;
      case pb.Event.Type.ERROR:
        this.log.error('scheduler error event', { detail: event.error?.message });
        return;
      default:
        return;
    }
  }

  // ---- status updates ----

  private report(procId: string, state: redfleet.v1.TaskState, message = '', data?: redfleet.v1.IRedisState): void {
    const uuid = Buffer.from(randomUUID().replace(/-/g, ''), 'hex');
    const status: redfleet.v1.ITaskStatus = {
      task_id: { value: procId },
      state,
      message,
      agent_id: { value: this.opts.id },
      timestamp: Date.now() / 1000,
      uuid,
      data: data ? pb.RedisState.encode(data).finish() : undefined,
    };
    this.unacked.set(uuid.toString('hex'), status);
    this.log.info('task status', { proc: procId, state: pb.TaskState[state], detail: message });
    void this.sendUpdate(status);
  }

  private sendUpdate(status: redfleet.v1.ITaskStatus): Promise<void> {
    return this.sendCall({ type: pb.Call.Type.UPDATE, agent_id: { value: this.opts.id }, update: { status } });
  }

  /**
   * A call within the current session. Without one (between streams) nothing is sent: unacked
   * updates travel in the next SUBSCRIBE, and a heartbeat is only owed on a live stream.
   */
  private sendCall(call: redfleet.v1.ICall): Promise<void> {
    const session = this.session;
    if (!session) return Promise.resolve();
    const body = pb.Call.encode(call).finish();
    return new Promise((resolve) => {
      const req = request(`${session.scheduler}/api/v1/agent`, {
        method: 'POST',
        agent: this.httpAgent,
        timeout: CALL_TIMEOUT_MS,
        headers: { 'Content-Type': 'application/x-protobuf', 'Content-Length': body.length, Authorization: `RedFleet-Session ${session.token}` },
      });
      req.on('response', (res) => {
        if (res.statusCode === 403) void readSmall(res).then((text) => this.log.warn('scheduler refused a call', { call: pb.Call.Type[call.type], detail: text.slice(0, 300) }));
        else res.resume();
        resolve();
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve());
      req.end(body);
    });
  }

  /** Updates are retried until the scheduler acknowledges them on the stream. */
  private resendUnacked(): void {
    if (!this.subscribed) return;
    for (const status of this.unacked.values()) {
      if (Date.now() / 1000 - (status.timestamp ?? 0) < 1) continue;
      void this.sendUpdate(status);
    }
  }

  // ---- redis-server lifecycle ----

  private async launch(task: redfleet.v1.ITaskInfo): Promise<void> {
    const procId = task.task_id.value;
    if (this.procs.has(procId)) return;
    let launch: redfleet.v1.RedisLaunch;
    let checked: CheckedLaunch;
    try {
      launch = pb.RedisLaunch.decode(task.data ?? new Uint8Array());
      checked = checkLaunch(procId, launch, { ports: this.opts.ports, memMb: this.opts.mem, portsInUse: this.portsInUse() });
    } catch (err) {
      // Nothing was written or spawned: the LAUNCH is refused as a whole.
      this.log.warn('LAUNCH refused', { proc: procId, error: (err as Error).message });
      this.report(procId, pb.TaskState.TASK_FAILED, `LAUNCH refused: ${(err as Error).message}`);
      return;
    }
    const log = this.log.child({ instance: checked.instance, proc: procId });
    const dirName = procId.replace(/[^A-Za-z0-9_.-]/g, '_');
    const ceiling = memoryCeilingBytes(checked.capacityMb);
    const redis = new RedisProcess({
      procId,
      redisServer: this.opts.redisServer,
      log,
      ip: this.opts.ip,
      port: checked.port,
      dir: join(this.opts.workDir, dirName),
      capacityMb: checked.capacityMb,
      passwordSha256: checked.passwordSha256,
      frameworkSecret: frameworkSecret(dataKey(this.opts.fleetKey, this.opts.previousFleetKey), checked.instance),
      replicaPriority: checked.replicaPriority,
      minReplicasToWrite: checked.minReplicasToWrite,
      minReplicasMaxLag: checked.minReplicasMaxLag,
      maxClients: checked.maxClients,
      cgroup: this.memoryCgroups()?.create(dirName, ceiling),
      memoryCeilingBytes: ceiling,
    });
    const isReplica = checked.role === 'replica';
    const proc: RunningProc = { task, launch, redis, running: false, target: checked.master ?? null };
    this.procs.set(procId, proc);
    redis.on('exit', (exit: ProcExit) => this.exited(proc, exit));
    // No TASK_STARTING: on a small node every update costs the critical path of a create an
    // etcd write and a maintainer pass; STAGING goes straight to RUNNING (or FAILED).
    try {
      await redis.start();
      log.debug('redis-server ready', { port: launch.port });
      redis.once('exit', startReplicationHeartbeat(redis.client));
      // The Msg watch and the replica's link are set up side by side: neither waits on the other.
      const following = isReplica ? this.follow(proc) : undefined;
      proc.watcher = await this.watchMsg(proc);
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
    this.report(procId, pb.TaskState.TASK_RUNNING, '', { pid: redis.pid, ip: this.opts.ip, port: launch.port, role: launch.role === pb.RedisLaunch.Role.MASTER ? 'master' : 'slave' });
  }

  /**
   * Points a new replica at its master as soon as the master listens, then waits for the link.
   * A SLAVEOF or MASTER message that arrives meanwhile (a failover during the start) changes the
   * target, and the wait follows it instead of waiting for a master that is gone.
   */
  private async follow(proc: RunningProc): Promise<void> {
    const deadline = Date.now() + 30_000;
    let sentTo = '';
    for (let i = 0; ; i++) {
      const target = proc.target;
      if (proc.redis.exited || !target) return;
      if (Date.now() > deadline) throw new Error(`no link to master ${target.ip}:${target.port} within 30 s`);
      const address = `${target.ip}:${target.port}`;
      if (sentTo !== address) {
        if (await portOpen(target.ip, target.port)) {
          await proc.redis.client.call('REPLICAOF', target.ip, String(target.port));
          this.log.debug('REPLICAOF sent', { proc: proc.task.task_id.value, master: address });
          sentTo = address;
        }
      } else if (parseInfo(await proc.redis.client.info('replication')).get('master_link_status') === 'up') {
        return;
      }
      await sleep(i < 3000 ? 3 : 250);
    }
  }

  private exited(proc: RunningProc, exit: ProcExit): void {
    const procId = proc.task.task_id.value;
    void this.cancelWatch(proc.watcher);
    this.procs.delete(procId);
    this.keepLogTail(proc, exit);
    const how = exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`;
    if (proc.failure) this.report(procId, pb.TaskState.TASK_FAILED, `launch failed: ${proc.failure}`);
    else if (exit.requested) this.report(procId, pb.TaskState.TASK_KILLED, `redis-server stopped on request (${how})`);
    else if (!proc.running) this.report(procId, pb.TaskState.TASK_FAILED, `launch failed: ${describeExit(exit)}`);
    else this.report(procId, pb.TaskState.TASK_FAILED, `redis-server exited unexpectedly (${describeExit(exit)})`);
  }

  /** The proc's directory is gone with its exit: its log's last lines live on in the agent's log. */
  private keepLogTail(proc: RunningProc, exit: ProcExit): void {
    if (exit.logTail.length === 0) return;
    const level = exit.requested && !proc.failure ? 'debug' : 'warn';
    this.log.log(level, 'redis-server log tail', { instance: proc.launch.instance, proc: proc.task.task_id.value, log: exit.logTail.join('\n') });
  }

  /** Ports held by this agent's procs: a LAUNCH may not take one twice. */
  private portsInUse(): Set<number> {
    return new Set([...this.procs.values()].map((p) => p.redis.opts.port));
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

  private async kill(procId: string): Promise<void> {
    const proc = this.procs.get(procId);
    if (!proc) {
      this.report(procId, pb.TaskState.TASK_LOST, 'no such task on this agent');
      return;
    }
    // stop() returns at once for a proc that never started; exited() reports it either way.
    await proc.redis.stop();
  }

  // ---- messages (Msg key) ----

  /**
   * Watches the proc's Msg key (after acting on any message already there). Watch creations and
   * cancellations go through one queue: when a watch was cancelled while another was being
   * created on the same etcd client, the creation could hang, and with it the new proc's RUNNING
   * report. A creation that still takes too long is abandoned and tried again.
   */
  private async watchMsg(proc: RunningProc): Promise<Watcher> {
    const key = this.keys.procField(proc.launch.instance, proc.task.task_id.value, 'Msg');
    const etcd = this.etcd!;
    for (let attempt = 1; ; attempt++) {
      try {
        const res = await etcd.get(key).exec();
        const watcher = await this.watchOp(() => withTimeout(etcd.watch().key(key).startRevision(String(Number(res.header.revision) + 1)).create(), 3000));
        watcher.on('put', (kv) => void this.onMsg(proc, key, kv.value.toString()));
        const current = res.kvs[0]?.value.toString() ?? '';
        if (current) void this.onMsg(proc, key, current);
        return watcher;
      } catch (err) {
        if (attempt >= 5 || proc.redis.exited) throw err;
        this.log.warn('Msg watch not ready; trying again', { proc: proc.task.task_id.value, attempt, error: (err as Error).message });
      }
    }
  }

  private cancelWatch(watcher: Watcher | undefined): Promise<void> {
    if (!watcher) return Promise.resolve();
    return this.watchOp(() => withTimeout(watcher.cancel(), 3000)).catch(() => undefined);
  }

  /** Runs watch creations and cancellations one at a time. */
  private watchOp<T>(op: () => Promise<T>): Promise<T> {
    const next = this.watchQueue.then(op, op);
    this.watchQueue = next.catch(() => undefined);
    return next;
  }

  private async onMsg(proc: RunningProc, key: string, msg: string): Promise<void> {
    if (!msg) return;
    const procId = proc.task.task_id.value;
    const log = this.log.child({ instance: proc.launch.instance, proc: procId });
    const fields: Record<string, string> = {};
    log.info('message received', { msg });
    let message: ProcMessage | undefined;
    try {
      message = parseMessage(msg);
      if (message?.verb === 'SHUTDOWN') {
        // A fenced master must go at once: the stop does not wait for the Msg reset's round trip.
        await Promise.all([proc.redis.stop(SHUTDOWN_GRACE_MS), this.resetMsg(key, msg, fields)]);
      } else if (message?.verb === 'MASTER') {
        proc.target = null;
        await promote(proc.redis.client);
        fields.Type = ProcType.Master;
        fields.SlaveOf = '';
      } else if (message?.verb === 'SLAVEOF') {
        const target = { ip: message.ip, port: message.port };
        proc.target = target;
        const secret = frameworkSecret(dataKey(this.opts.fleetKey, this.opts.previousFleetKey), proc.launch.instance);
        if (!await awaitMasterRole(target, secret, AWAIT_MASTER_MS, () => proc.target === target && !proc.redis.exited)) {
          if (proc.target !== target) return;
          log.warn('the new master did not take the role in time; following it anyway', { master: `${target.ip}:${target.port}`, waitedMs: AWAIT_MASTER_MS });
        }
        await proc.redis.client.call('REPLICAOF', target.ip, String(target.port));
        fields.Type = ProcType.Replica;
        fields.SlaveOf = `${target.ip}:${target.port}`;
      }
      log.info('message carried out', { msg });
    } catch (err) {
      log.warn('message failed', { msg, error: (err as Error).message });
    }
    if (message?.verb !== 'SHUTDOWN') await this.resetMsg(key, msg, fields);
  }

  /** Resets Msg to "" (only if it still holds what we acted on) together with any field changes. */
  private async resetMsg(key: string, msg: string, fields: Record<string, string>): Promise<void> {
    const etcd = this.etcd!;
    const base = key.slice(0, key.length - 'Msg'.length);
    const ops = [etcd.put(key).value(''), ...Object.entries(fields).map(([f, v]) => etcd.put(`${base}${f}`).value(v))];
    await etcd.if(key, 'Value', '==', msg).then(...ops).commit().catch((err: Error) => this.log.warn('Msg reset failed', { key, error: err.message }));
  }

  // ---- stats ----

  /** The Stats last written to etcd per proc, and when: a write is skipped unless it says something new. */
  private readonly statsWritten = new Map<string, { stats: ProcStats; at: number }>();

  /**
   * Every second: each running proc's INFO, written as Stats (and MemUsed) only when something
   * meaningful changed (see statsChanged) or the heartbeat is due. At 300 procs a write every
   * second grew etcd by ~150 KiB/s; the scheduler reads every-second figures over its own links.
   */
  private async writeStats(): Promise<void> {
    const running = [...this.procs.values()].filter((p) => p.running && !p.redis.exited);
    for (const id of this.statsWritten.keys()) if (!this.procs.has(id)) this.statsWritten.delete(id);
    await Promise.all(running.map((p) => this.writeStatsOf(p)));
  }

  private async writeStatsOf(p: RunningProc): Promise<void> {
    const etcd = this.etcd;
    if (!etcd) return;
    const procId = p.task.task_id.value;
    try {
      const stats = statsFromInfo(parseInfo(await p.redis.info()));
      const last = this.statsWritten.get(procId);
      const heartbeatMs = (this.opts.statsHeartbeatSeconds ?? DEFAULT_STATS_HEARTBEAT_SECONDS) * 1000;
      if (last && Date.now() - last.at < heartbeatMs && !statsChanged(last.stats, stats)) return;
      const res = await etcd
        .if(this.keys.procField(p.launch.instance, procId, 'Instance'), 'Version', '>', 0)
        .then(
          etcd.put(this.keys.procField(p.launch.instance, procId, 'Stats')).value(JSON.stringify(stats)),
          etcd.put(this.keys.procField(p.launch.instance, procId, 'MemUsed')).value(String(stats.usedMemory)),
        )
        .commit();
      if (res.succeeded) this.statsWritten.set(procId, { stats, at: Date.now() });
    } catch (err) {
      this.log.debug('stats failed', { proc: procId, error: (err as Error).message });
    }
  }
}

/** A response body of at most 4 KiB, as text (error bodies, the challenge). */
function readSmall(res: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    res.on('data', (chunk: Buffer) => {
      if (text.length < 4096) text += chunk.toString('utf8');
    });
    res.on('end', () => resolve(text.slice(0, 4096)));
    res.on('error', () => resolve(text.slice(0, 4096)));
  });
}

/**
 * Makes the proc a master and drops the tenant's clients in one MULTI/EXEC, as Sentinel does:
 * the clients connected while it was a replica reconnect and ask the endpoint again, while a
 * client that finds the new master after the switch can never be caught by the kill (with two
 * separate commands, one that connected in between was dropped and could give up for good).
 * Only the tenant's clients go: the scheduler's own link (framework user) stays up to see the
 * new role.
 */
async function promote(client: RedisProcess['client']): Promise<void> {
  const results = await client.multi()
    .call('REPLICAOF', 'NO', 'ONE')
    .call('CLIENT', 'KILL', 'TYPE', 'normal', 'USER', 'default', 'SKIPME', 'yes')
    .call('CLIENT', 'KILL', 'TYPE', 'pubsub', 'USER', 'default', 'SKIPME', 'yes')
    .exec();
  if (!results) throw new Error('MULTI/EXEC for the promotion was aborted');
  const failed = results.find(([err]) => err);
  if (failed) throw failed[0] as Error;
}

function readIfExists(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** Rejects when `promise` has not settled within `ms`. */
function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer from etcd within ${ms} ms`)), ms);
    promise.then((v) => { clearTimeout(timer); resolve(v); }, (e: unknown) => { clearTimeout(timer); reject(e as Error); });
  });
}
