import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { FRAMEWORK_USER } from '../store/secrets.js';
import type { Logger } from '../logger.js';
import { renderRedisConfig, type RedisConfigInput } from './redis-config.js';

export interface RedisProcessOptions extends RedisConfigInput {
  procId: string;
  redisServer: string;
  log: Logger;
}

/** How a redis-server ended: `requested` when the agent stopped it on purpose. */
export interface ProcExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  requested: boolean;
}

/**
 * One supervised redis-server: its own directory and config, spawned as a child so that its
 * exit is seen at once ('exit' event), with a framework-user connection for the agent's commands.
 */
export class RedisProcess extends EventEmitter {
  readonly client: Redis;
  private child?: ChildProcess;
  private stopping = false;
  private exitInfo?: ProcExit;

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
    return this.child?.pid ?? 0;
  }

  get exited(): ProcExit | undefined {
    return this.exitInfo;
  }

  /** Spawns redis-server and resolves once it accepts commands; rejects if it dies first. */
  async start(): Promise<void> {
    const { dir } = this.opts;
    mkdirSync(dir, { recursive: true });
    const conf = join(dir, 'redis.conf');
    writeFileSync(conf, renderRedisConfig(this.opts), { mode: 0o600 });
    const child = spawn(this.opts.redisServer, [conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-2000); });
    child.on('exit', (code, signal) => {
      this.exitInfo = { code, signal, requested: this.stopping };
      // A clean stop leaves nothing behind; after a crash the log stays for a post-mortem
      // (the agent clears it at its next start). The config holds a secret: always removed.
      rmSync(this.stopping ? dir : conf, { recursive: true, force: true });
      this.client.disconnect();
      this.emit('exit', this.exitInfo);
    });
    child.on('error', (err) => {
      this.opts.log.error('redis-server could not be started', { proc: this.opts.procId, error: err.message });
    });
    const deadline = Date.now() + 10_000;
    while (!(await portOpen(this.opts.ip, this.opts.port))) {
      if (this.exitInfo) throw new Error(`redis-server exited at start (code ${this.exitInfo.code}): ${stderr.trim() || 'see redis.log'}`);
      if (Date.now() > deadline) throw new Error('redis-server did not listen within 10 s');
      await sleep(2);
    }
    await this.client.connect();
    await this.client.ping();
    // Redis 7.2+ has CLIENT SETINFO, which clients send on connect; older servers refuse the rule.
    await this.client.call('ACL', 'SETUSER', 'default', '+client|setinfo').catch(() => undefined);
  }

  /**
   * SIGTERM (redis-server exits at once: no persistence, and `shutdown-on-sigterm nosave now`
   * skips waiting for replicas), then SIGKILL after `graceMs`, which also ends a hung or
   * SIGSTOPped server: a fenced old master must not linger. Resolves when the process is gone.
   */
  async stop(graceMs = 250): Promise<void> {
    if (this.exitInfo || !this.child) return;
    this.stopping = true;
    const gone = new Promise<void>((r) => this.once('exit', () => r()));
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child?.kill('SIGKILL'), graceMs);
    await gone;
    clearTimeout(timer);
  }

  async info(): Promise<string> {
    return this.client.info();
  }
}

function portOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host, port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export { portOpen };
