import { Redis } from 'ioredis';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * A client that writes through the Sentinel-compatible endpoint (so it follows every switchover
 * and failover as a real client would) and keeps each key whose write was acknowledged: `SET`
 * followed by `WAIT 1 100` answering at least one replica, or (for a standalone instance,
 * `replicas: 0`) the `SET` reply alone. Day-2 operation tests run one during the operation and
 * then check that every acknowledged key is on the instance's master.
 */
export class AckedWriter {
  private readonly redis: Redis;
  /** key -> value of every acknowledged write. */
  readonly acked = new Map<string, string>();
  /** Writes attempted, and errors seen (the first 50), for the failure message. */
  attempts = 0;
  readonly errors: string[] = [];
  /** Longest time between two acknowledged writes, in ms (the client's write gap). */
  maxGapMs = 0;
  private lastAck = 0;
  private stopped = false;
  private loop?: Promise<void>;

  constructor(sentinelPort: number, readonly name: string, password: string, private readonly needReplica = true) {
    this.redis = new Redis({
      sentinels: [{ host: '127.0.0.1', port: sentinelPort }],
      name,
      password,
      commandTimeout: 1000,
      retryStrategy: () => 10,
      sentinelRetryStrategy: () => 10,
    });
    this.redis.on('error', () => undefined);
  }

  /** Starts writing `<prefix><n>` keys, one every `everyMs` (at most `maxWrites`, a bound on the loop). */
  start(prefix = 'acked:', everyMs = 5, maxWrites = 200_000): void {
    this.loop = (async () => {
      for (let i = 0; !this.stopped && i < maxWrites; i++) {
        const key = `${prefix}${i}`;
        this.attempts++;
        try {
          await this.redis.set(key, String(i));
          const replicas = this.needReplica ? Number(await this.redis.wait(1, 100)) : 1;
          if (replicas >= 1) this.ack(key, String(i));
        } catch (err) {
          if (this.stopped) return;
          if (this.errors.length < 50) this.errors.push(`${new Date().toISOString()} ${(err as Error).message.slice(0, 80)}`);
          await sleep(10);
        }
        await sleep(everyMs);
      }
    })();
  }

  private ack(key: string, value: string): void {
    const now = Date.now();
    if (this.lastAck) this.maxGapMs = Math.max(this.maxGapMs, now - this.lastAck);
    this.lastAck = now;
    this.acked.set(key, value);
  }

  /** Waits until at least `n` more writes are acknowledged (bounded by `timeoutMs`). */
  async waitForAcks(n: number, timeoutMs = 10_000): Promise<void> {
    const target = this.acked.size + n;
    const deadline = Date.now() + timeoutMs;
    while (this.acked.size < target) {
      if (Date.now() > deadline) throw new Error(`writer ${this.name}: only ${this.acked.size} of ${target} writes acknowledged; errors: ${this.errors.slice(-5).join(' | ')}`);
      await sleep(20);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    this.redis.disconnect();
  }

  /**
   * The acknowledged keys missing from the master at `master` (read with the instance's
   * password). An empty list means no acknowledged write was lost.
   */
  async missingOn(master: { ip: string; port: number }, password: string): Promise<string[]> {
    const r = new Redis({ host: master.ip, port: master.port, password, lazyConnect: true });
    r.on('error', () => undefined);
    try {
      await r.connect();
      const keys = [...this.acked.keys()];
      const missing: string[] = [];
      for (let i = 0; i < keys.length; i += 500) {
        const batch = keys.slice(i, i + 500);
        const values = await r.mget(...batch);
        batch.forEach((k, j) => { if (values[j] !== this.acked.get(k)) missing.push(k); });
      }
      return missing;
    } finally {
      r.disconnect();
    }
  }
}
