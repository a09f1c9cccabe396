import { Redis } from 'ioredis';
import { FRAMEWORK_USER, frameworkSecret } from '../store/secrets.js';
import type { Proc } from '../domain/model.js';

/** ioredis gives up a connect after this long (and then retries: see retryDelay). */
const CONNECT_TIMEOUT_MS = 500;
/** A link that is down retries its connect this soon while few are down (see retryDelay). */
const RETRY_MS = 100;
/**
 * Reconnects a second at most, over all the links that are down. Below it (up to 100 links down)
 * each retries every 100 ms; past it they retry less often, so that 100,000 links to procs that
 * refuse (a scheduler started before its agents are back, a mass outage) cost 1,000 connects a
 * second, each every 100 s, instead of a million (issue 11, bench:startup). A PING or a command on
 * a link that is down fails at once either way (see ready()); a proc that comes back is heard
 * once its link retries.
 */
export const RECONNECTS_PER_SECOND = 1000;
/**
 * How long a link outside the ones the failure detector keeps (its masters') stays open after its
 * last use: a replica's, opened to sample it while its master is silent, to rank it in a failover,
 * or to read its INFO while its agent does not report, is there for the next look.
 */
export const LINK_LINGER_MS = 10_000;

interface Link {
  redis: Redis;
  address: string;
  /** The link's first connect has ended, either way: ready, refused, timed out or closed. */
  settled: boolean;
  firstConnect: Promise<void>;
  /** When the link was last asked for (Date.now()): see retain. */
  usedAt: number;
}

/**
 * The scheduler's own connections to redis-server procs, as the framework user. Commands fail
 * fast rather than queue: a hung or dead proc must show up as a failed PING at once, not as a
 * command waiting behind a reconnect.
 */
export class RedisLinks {
  private readonly links = new Map<string, Link>();
  /** The procs whose link is down: closed, or its connect failed, and waiting to retry. */
  private readonly down = new Set<string>();
  /** Procs whose links `retain` keeps however idle, besides the ones it is given (see hold). */
  private held = new Set<string>();

  /**
   * Called with the proc's id when its link, once ready, closes (the proc died, its host went, or
   * it closed the connection), not when the link is dropped here: the failure detector starts
   * counting a master's silence then.
   */
  dropped: (procId: string) => void = () => undefined;

  constructor(private readonly fleetKey: string, private readonly commandTimeoutMs = 400) {}

  /** The framework user's secret on the instance's redis-servers. */
  secretOf(instance: string): string {
    return frameworkSecret(this.fleetKey, instance);
  }

  get(proc: Proc): Redis {
    return this.link(proc).redis;
  }

  /** The procs with a link. */
  ids(): IterableIterator<string> {
    return this.links.keys();
  }

  /** Whether a link to the proc (at its current address) is open or being opened. */
  has(proc: Proc): boolean {
    return this.links.get(proc.id)?.address === `${proc.ip}:${proc.port}`;
  }

  /**
   * Resolves once the proc's link has ended its first connect, either way (ready, refused, timed
   * out, closed): at once for an older link. The failure detector counts no silence before that,
   * so a scheduler opening thousands of links at once (a restart) does not take its own slow
   * connects for silent masters; a dead or cut-off master ends the connect within 0.5 s anyway.
   */
  firstConnect(proc: Proc): Promise<void> {
    return this.link(proc).firstConnect;
  }

  /** Whether the proc's link has ended its first connect (see firstConnect). */
  settled(proc: Proc): boolean {
    return this.link(proc).settled;
  }

  private link(proc: Proc): Link {
    const address = `${proc.ip}:${proc.port}`;
    const known = this.links.get(proc.id);
    if (known && known.address === address) {
      known.usedAt = Date.now();
      return known;
    }
    known?.redis.disconnect();
    this.down.delete(proc.id);
    const redis = new Redis({
      host: proc.ip,
      port: proc.port,
      username: FRAMEWORK_USER,
      password: this.secretOf(proc.instance),
      enableOfflineQueue: false,
      enableReadyCheck: false,
      maxRetriesPerRequest: 0,
      connectTimeout: CONNECT_TIMEOUT_MS,
      commandTimeout: this.commandTimeoutMs,
      // ioredis asks for the delay before it emits 'close' (on the next tick): the link counts as down from here.
      retryStrategy: () => {
        if (this.links.get(proc.id)?.redis === redis) this.down.add(proc.id);
        return this.retryDelay();
      },
    });
    let endFirstConnect!: () => void;
    const link: Link = { redis, address, settled: false, usedAt: Date.now(), firstConnect: new Promise<void>((resolve) => { endFirstConnect = resolve; }) };
    const settle = (): void => {
      if (link.settled) return;
      link.settled = true;
      clearTimeout(bound);
      endFirstConnect();
    };
    // ioredis ends a connect by its connectTimeout; the bound only guards against a missed event.
    const bound = setTimeout(settle, 2 * CONNECT_TIMEOUT_MS);
    let open = false;
    redis.on('error', settle);
    redis.on('ready', () => {
      open = true;
      if (this.links.get(proc.id) === link) this.down.delete(proc.id);
      settle();
    });
    redis.on('close', () => {
      settle();
      if (open && this.links.get(proc.id) === link) this.dropped(proc.id);
      open = false;
    });
    this.links.set(proc.id, link);
    return link;
  }

  /**
   * How long a link that is down waits before its next connect: RETRY_MS while the links down
   * retry at most RECONNECTS_PER_SECOND together, else as long as it takes for that many a second
   * to go round them all, spread by a random quarter either side so they do not retry in step
   * (never sooner than RETRY_MS). A delay is set when the link goes down: a proc that comes back
   * while 100,000 links are down is heard up to a round (~2 minutes) later.
   */
  private retryDelay(): number {
    const roundMs = (this.down.size / RECONNECTS_PER_SECOND) * 1000;
    if (roundMs <= RETRY_MS) return RETRY_MS;
    return Math.max(RETRY_MS, Math.round(roundMs * (0.75 + Math.random() / 2)));
  }

  /** How many links are down now (see retryDelay). */
  get downCount(): number {
    return this.down.size;
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

  /**
   * Keeps the links of these procs from here on (replacing the last set held): the stats poller's,
   * whose reads come round less often than the linger when more procs are due than it reads a
   * round, so that a link is not dropped and opened again between two reads.
   */
  hold(procIds: Set<string>): void {
    this.held = procIds;
  }

  /** Drops the links to procs neither in `keep` nor held that have not been used for `lingerMs`. */
  retain(keep: Set<string>, lingerMs = LINK_LINGER_MS): void {
    const idleSince = Date.now() - lingerMs;
    for (const [id, link] of this.links) {
      if (keep.has(id) || this.held.has(id) || link.usedAt > idleSince) continue;
      link.redis.disconnect();
      this.links.delete(id);
      this.down.delete(id);
    }
  }

  close(): void {
    this.held = new Set();
    this.retain(new Set(), -Infinity);
  }
}

/** An error reply from redis-server (ioredis's ReplyError), as opposed to a timeout or a closed link. */
function isServerError(err: unknown): boolean {
  return err instanceof Error && err.name === 'ReplyError';
}

/** One error for every call on a link that is down: no stack taken each time (thousands a second in a mass outage). */
const LINK_DOWN = new Error('link down');

/** ioredis states of a link that is down: its connection closed, or its last connect failed, and it waits to retry. */
const DOWN = new Set(['reconnecting', 'close', 'end']);

/**
 * Resolves when the link is ready. Rejects at once when it is down (see DOWN): a proc whose
 * connection closed is not waited for, so a look at a host that died (its replicas' INFO, in a
 * failover of a master on the same host) costs nothing instead of the command timeout each (at
 * 1,000 agents, 49 of 70 failovers after an agent loss waited twice for a dead replica: 0.8 s;
 * BENCHMARKS, scale, fifth round). Else (connecting) waits until it is ready, its attempt fails,
 * or `ms` have passed. A partitioned proc's link stays "ready" and its command times out as before.
 */
function ready(redis: Redis, ms: number): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  if (DOWN.has(redis.status)) return Promise.reject(LINK_DOWN);
  return new Promise((resolve, reject) => {
    const done = (ok: boolean) => {
      clearTimeout(timer);
      redis.off('ready', onReady);
      redis.off('close', onClose);
      if (ok) resolve();
      else reject(new Error('not connected'));
    };
    const onReady = () => done(true);
    const onClose = () => done(false);
    const timer = setTimeout(() => done(false), ms);
    redis.once('ready', onReady);
    redis.once('close', onClose);
  });
}
