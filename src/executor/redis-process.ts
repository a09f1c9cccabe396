import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { accessSync, chmodSync, constants, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { FRAMEWORK_USER } from '../store/secrets.js';
import type { Logger } from '../logger.js';
import { applyRuntimeLimits, renderRedisConfig, type RedisConfigInput } from './redis-config.js';
import type { ProcCgroup } from './cgroup.js';
import { watchMemory } from './memory-watch.js';
import { pidRunning, watchPid } from './pid-watch.js';
import { parseInfo } from '../domain/redis-info.js';

export interface RedisProcessOptions extends RedisConfigInput {
  procId: string;
  redisServer: string;
  log: Logger;
  /** The proc's memory cgroup, where the node has one (see cgroup.ts). */
  cgroup?: ProcCgroup;
  /** Its memory ceiling; enforced by sampling (memory-watch.ts) where there is no cgroup. */
  memoryCeilingBytes?: number;
}

/**
 * $1: a cgroup.procs file to join ('' for none), $2: redis-server, $3: its config. Failing to
 * join the cgroup is reported on stderr but does not stop the proc.
 */
const LAUNCHER = 'umask 077; if [ -n "$1" ]; then echo $$ > "$1" || echo "could not join memory cgroup $1" >&2; fi; exec "$2" "$3"';

/** How a redis-server ended: `requested` when the agent stopped it on purpose. */
export interface ProcExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  requested: boolean;
  /** Why it ended when that is known better than by its exit status (never started, OOM-killed). */
  reason?: string;
  /** The last lines of its redis.log, read before its directory was removed. */
  logTail: string[];
}

/** Lines of redis.log kept (in the agent's log and the exit) when a proc's directory goes. */
const LOG_TAIL_LINES = 20;

/**
 * One supervised redis-server: its own directory and config, spawned as a child so that its
 * exit is seen at once ('exit' event), with a framework-user connection for the agent's commands.
 * 'exit' is emitted exactly once, also when the server never started (a missing binary). One
 * adopted from an earlier life of the agent (adopt()) is not a child: its exit is polled for.
 */
export class RedisProcess extends EventEmitter {
  readonly client: Redis;
  private child?: ChildProcess;
  private stopping = false;
  private exitInfo?: ProcExit;
  /** Set when the agent killed the proc for going over its ceiling (no cgroup on this node). */
  private overCeiling?: string;
  /** The pid of a redis-server adopted from an earlier life of the agent (not our child). */
  private adoptedPid = 0;
  /** `INFO server` run_id, read once it answers: what identifies this start of the server. */
  runId = '';

  constructor(readonly opts: RedisProcessOptions) {
    super();
    this.client = new Redis({
      host: opts.ip,
      port: opts.port,
      username: FRAMEWORK_USER,
      password: opts.frameworkSecret,
      lazyConnect: true,
      maxRetriesPerRequest: 1,
      connectTimeout: 1000,
      retryStrategy: () => (this.exitInfo ? null : 50),
    });
    this.client.on('error', () => undefined);
  }

  get pid(): number {
    return this.child?.pid ?? this.adoptedPid;
  }

  /** Whether this redis-server was started by an earlier life of the agent and adopted. */
  get adopted(): boolean {
    return this.adoptedPid > 0;
  }

  get exited(): ProcExit | undefined {
    return this.exitInfo;
  }

  /** Spawns redis-server and resolves once it accepts commands; rejects (with the reason) if it dies first. */
  async start(): Promise<void> {
    const { dir, redisServer } = this.opts;
    if (!isExecutable(redisServer)) {
      const reason = `redis-server binary not found at ${redisServer} (ENOENT)`;
      this.finish({ code: null, signal: null, reason });
      throw new Error(reason);
    }
    // The directory holds the tenant's secrets (config) and, briefly, its log: owner only.
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
    const conf = join(dir, 'redis.conf');
    writeFileSync(conf, renderRedisConfig(this.opts), { mode: 0o600 });
    // Through a shell so that redis-server starts with umask 077 (its log and pid files are
    // created owner-only) and inside its memory cgroup before it allocates anything. `exec`
    // keeps the pid, so signals reach redis-server itself.
    const child = spawn('/bin/sh', ['-c', LAUNCHER, 'redfleet-launch', this.opts.cgroup?.procsFile ?? '', redisServer, conf], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.child = child;
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-2000); });
    const unwatch = child.pid ? this.watchCeiling(child.pid) : () => undefined;
    child.on('exit', (code, signal) => {
      unwatch();
      this.finish({ code, signal, reason: this.overCeiling ?? this.oomReason() ?? lastLine(stderr) });
    });
    // Spawning itself failed (the shell is missing, EAGAIN): Node emits 'error' and never 'exit'.
    child.on('error', (err) => this.finish({ code: null, signal: null, reason: `redis-server could not be started: ${err.message}` }));
    const deadline = Date.now() + 10_000;
    while (!(await portOpen(this.opts.ip, this.opts.port))) {
      if (this.exitInfo) throw new Error(`redis-server exited at start: ${describeExit(this.exitInfo)}`);
      if (Date.now() > deadline) throw new Error('redis-server did not listen within 10 s');
      await sleep(2);
    }
    await this.client.connect();
    this.runId = parseInfo(await this.client.info('server')).get('run_id') ?? '';
    // Redis 7.2+ has CLIENT SETINFO, which clients send on connect; older servers refuse the rule.
    await this.client.call('ACL', 'SETUSER', 'default', '+client|setinfo').catch(() => undefined);
    await applyRuntimeLimits(this.client, this.opts.capacityMb, this.opts.log);
  }

  /**
   * Takes over a redis-server an earlier life of the agent started (the caller has checked that
   * `pid` is it): its exit is polled for, since it is not this process's child, and its memory
   * ceiling is watched as for a fresh launch. Its config, log and data stay where they are.
   */
  async adopt(pid: number, runId: string): Promise<void> {
    this.adoptedPid = pid;
    this.runId = runId;
    const unwatchCeiling = this.watchCeiling(pid);
    const unwatchPid = watchPid(pid, () => {
      unwatchCeiling();
      this.finish({ code: null, signal: null, reason: this.overCeiling ?? this.oomReason() });
    });
    this.once('exit', () => unwatchPid());
    if (!pidRunning(pid)) return;
    await this.client.connect();
    await this.client.call('CLIENT', 'NO-EVICT', 'on').catch(() => undefined);
  }

  /** Sends `signal` to the redis-server, a child or an adopted one. */
  private signal(signal: NodeJS.Signals): void {
    if (this.child) {
      this.child.kill(signal);
      return;
    }
    try {
      if (this.adoptedPid > 0) process.kill(this.adoptedPid, signal);
    } catch {
      // it is gone already; the pid watch reports the exit
    }
  }

  /**
   * SIGTERM (redis-server exits at once: no persistence, and `shutdown-on-sigterm nosave now`
   * skips waiting for replicas), then SIGKILL after `graceMs`, which also ends a hung or
   * SIGSTOPped server: a fenced old master must not linger. Resolves when the process is gone,
   * at once when it never started.
   */
  async stop(graceMs = 250): Promise<void> {
    if (this.exitInfo) return;
    this.stopping = true;
    if (!this.child && !this.adoptedPid) return;
    const gone = new Promise<void>((r) => this.once('exit', () => r()));
    this.signal('SIGTERM');
    const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
    await gone;
    clearTimeout(timer);
  }

  /**
   * Records the end once, keeps the log's last lines, and removes the proc's directory, crashed
   * or not: it may hold the tenant's data (a sync's RDB) and holds its secrets (the config).
   */
  private finish(end: Omit<ProcExit, 'requested' | 'logTail'>): void {
    if (this.exitInfo) return;
    const logTail = readTail(join(this.opts.dir, 'redis.log'), LOG_TAIL_LINES);
    this.exitInfo = { ...end, requested: this.stopping, logTail };
    rmSync(this.opts.dir, { recursive: true, force: true });
    this.opts.cgroup?.remove();
    this.client.disconnect();
    this.emit('exit', this.exitInfo);
  }

  /** Without a cgroup, the agent samples the proc's memory and kills it over the ceiling. */
  private watchCeiling(pid: number): () => void {
    const limit = this.opts.memoryCeilingBytes;
    if (this.opts.cgroup || !limit) return () => undefined;
    return watchMemory(pid, limit, (used) => {
      this.overCeiling = `killed by the agent over its memory ceiling (${Math.round(used / 1024 / 1024)} MB > ${Math.round(limit / 1024 / 1024)} MB; no memory cgroup on this node)`;
      this.opts.log.warn('redis-server over its memory ceiling: killing it', { proc: this.opts.procId, usedBytes: used, limitBytes: limit });
      this.signal('SIGKILL');
    });
  }

  /** Set when the kernel killed the proc at its cgroup's memory ceiling. */
  private oomReason(): string | undefined {
    const cgroup = this.opts.cgroup;
    if (!cgroup || cgroup.oomKills() === 0) return undefined;
    return `killed by the kernel at its memory ceiling (${Math.round(cgroup.limitBytes / 1024 / 1024)} MB, cgroup ${cgroup.dir})`;
  }

  async info(): Promise<string> {
    return this.client.info();
  }
}

/** The reason an exit gives: the known reason, else the log's last line, else the exit status. */
export function describeExit(exit: ProcExit): string {
  const how = exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`;
  if (exit.reason) return exit.reason;
  const last = exit.logTail[exit.logTail.length - 1]?.replace(/^\d+:[A-Z] [^*#.-]*[*#.-] /, '').trim();
  return last ? `${how}: ${last.slice(0, 300)}` : how;
}

/** Whether `command` names an executable file, as a path or found on PATH. */
function isExecutable(command: string): boolean {
  const candidates = command.includes('/') ? [command] : (process.env.PATH ?? '').split(':').filter(Boolean).map((d) => join(d, command));
  return candidates.some((path) => {
    try {
      accessSync(path, constants.X_OK);
      return statSync(path).isFile();
    } catch {
      return false;
    }
  });
}

function lastLine(text: string): string | undefined {
  const lines = text.trim().split('\n');
  return lines[lines.length - 1]?.trim() || undefined;
}

function readTail(path: string, lines: number): string[] {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines);
  } catch {
    return [];
  }
}

/** Whether something accepts TCP connections at host:port. */
export function portOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host, port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}
