import { Redis } from 'ioredis';
import { FRAMEWORK_USER, frameworkSecret } from '../store/secrets.js';
import type { Proc } from '../domain/model.js';

/**
 * The scheduler's own connections to redis-server procs, as the framework user. Commands fail
 * fast rather than queue: a hung or dead proc must show up as a failed PING at once, not as a
 * command waiting behind a reconnect.
 */
export class RedisLinks {
  private readonly links = new Map<string, { redis: Redis; address: string }>();

  constructor(private readonly fleetKey: string, private readonly commandTimeoutMs = 400) {}

  /** The framework user's secret on the instance's redis-servers. */
  secretOf(instance: string): string {
    return frameworkSecret(this.fleetKey, instance);
  }

  get(proc: Proc): Redis {
    const address = `${proc.ip}:${proc.port}`;
    const known = this.links.get(proc.id);
    if (known && known.address === address) return known.redis;
    known?.redis.disconnect();
    const redis = new Redis({
      host: proc.ip,
      port: proc.port,
      username: FRAMEWORK_USER,
      password: this.secretOf(proc.instance),
      enableOfflineQueue: false,
      enableReadyCheck: false,
      maxRetriesPerRequest: 0,
      connectTimeout: 500,
      commandTimeout: this.commandTimeoutMs,
      retryStrategy: () => 100,
    });
    redis.on('error', () => undefined);
    this.links.set(proc.id, { redis, address });
    return redis;
  }

  /** Runs one command; undefined when the proc did not answer in time. */
  async call(proc: Proc, ...args: string[]): Promise<unknown> {
    const redis = this.get(proc);
    try {
      if (redis.status !== 'ready') await ready(redis, this.commandTimeoutMs);
      return await redis.call(args[0], ...args.slice(1));
    } catch {
      return undefined;
    }
  }

  /**
   * Runs one command and tells an error reply apart from no reply: the failure detector must
   * know that a master answering `-BUSY` is alive. `error` is the server's error text, or
   * undefined when nothing came back in time.
   */
  async probe(proc: Proc, ...args: string[]): Promise<{ reply?: unknown; error?: string }> {
    const redis = this.get(proc);
    try {
      if (redis.status !== 'ready') await ready(redis, this.commandTimeoutMs);
      return { reply: await redis.call(args[0], ...args.slice(1)) };
    } catch (err) {
      return { error: isServerError(err) ? (err as Error).message : undefined };
    }
  }

  /** Drops links to procs that are no longer wanted. */
  retain(procIds: Set<string>): void {
    for (const [id, link] of this.links) {
      if (procIds.has(id)) continue;
      link.redis.disconnect();
      this.links.delete(id);
    }
  }

  close(): void {
    this.retain(new Set());
  }
}

/** An error reply from redis-server (ioredis's ReplyError), as opposed to a timeout or a closed link. */
function isServerError(err: unknown): boolean {
  return err instanceof Error && err.name === 'ReplyError';
}

/** Resolves when the link is ready, rejects after `ms`. */
function ready(redis: Redis, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (ok: boolean) => {
      clearTimeout(timer);
      redis.off('ready', onReady);
      if (ok) resolve();
      else reject(new Error('not connected'));
    };
    const onReady = () => done(true);
    const timer = setTimeout(() => done(false), ms);
    redis.once('ready', onReady);
  });
}
