import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Etcd3, Lease, Namespace, Watcher } from 'etcd3';
import { Keys } from './keys.js';

/** What the elected scheduler announces: who it is and where agents reach its API. */
export interface LeaderInfo {
  id: string;
  api: string;
}

const ELECTION = 'scheduler';

/** The election's keys, laid out as etcd3's Election lays them out: `<prefix>/Config/election/scheduler/<lease id>`. */
function electionSpace(etcd: Etcd3, prefix: string): Namespace {
  return etcd.namespace(`${new Keys(prefix).configDir}election/${ELECTION}/`);
}

/**
 * One term of leadership: held while the campaign's lease is alive. Emits 'lost' (reason) once,
 * either when etcd says the lease is gone or, sooner, when the lease has gone unrenewed so long
 * that etcd may already have expired it: a leader that cannot prove its lease must stop acting
 * before another scheduler can be elected, not after.
 */
export class LeaderTerm extends EventEmitter {
  private ended = false;
  private reason = '';

  /**
   * @param revision the etcd revision at which this term began (our campaign key, or the delete
   * of the last older one): a store that has seen it has seen every write of earlier leaders.
   */
  constructor(private readonly lease: Lease, private readonly watchdog: LeaseWatchdog, readonly revision: string) {
    super();
    watchdog.onLost((reason) => this.end(reason));
  }

  get lost(): boolean {
    return this.ended;
  }

  /** Resolves with the reason once the term is over (at once if it already is). */
  whenLost(): Promise<string> {
    if (this.ended) return Promise.resolve(this.reason);
    return new Promise((resolve) => this.once('lost', resolve));
  }

  /** Gives the term up: the lease is revoked, so a standby is elected at once. */
  async resign(): Promise<void> {
    this.end('resigned');
    await this.lease.revoke().catch(() => undefined);
  }

  private end(reason: string): void {
    if (this.ended) return;
    this.ended = true;
    this.reason = reason;
    this.watchdog.stop();
    // Revoke rather than let it lapse: once etcd answers again, a standby need not wait the TTL.
    if (reason !== 'resigned') void this.lease.revoke().catch(() => undefined);
    this.emit('lost', reason);
  }
}

/**
 * Tracks how long etcd is bound to keep a lease: until the send time of the last renewal it
 * acknowledged, plus the TTL. Fires `lost` a margin before that, or when etcd reports the lease
 * gone. Send times are used, not reply times, because etcd renews on receipt.
 */
class LeaseWatchdog {
  private safeUntil: number;
  private readonly inFlight: number[] = [];
  private readonly timer: NodeJS.Timeout;
  private listener?: (reason: string) => void;
  private firedReason?: string;

  constructor(lease: Lease, private readonly ttlMs: number, askedAt: number) {
    this.safeUntil = askedAt + ttlMs;
    // etcd renews on receipt (never before our send) and sweeps expired leases every 500 ms, so
    // a small margin keeps us ahead of it without standing down over an ordinary slow renewal.
    const margin = Math.min(500, ttlMs / 10);
    lease.on('keepaliveFired', () => this.inFlight.push(Date.now()));
    lease.on('keepaliveFailed', () => this.inFlight.splice(0));
    lease.on('keepaliveSucceeded', () => {
      const sent = this.inFlight.shift() ?? Date.now();
      this.safeUntil = Math.max(this.safeUntil, sent + this.ttlMs);
    });
    lease.on('lost', (err: Error) => this.fire(`etcd reports the lease lost: ${err.message}`));
    this.timer = setInterval(() => {
      if (Date.now() > this.safeUntil - margin) this.fire(`the lease went unrenewed for ${this.ttlMs - margin} ms; etcd may have expired it`);
    }, 100);
    this.timer.unref();
  }

  onLost(listener: (reason: string) => void): void {
    this.listener = listener;
    if (this.firedReason !== undefined) listener(this.firedReason);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private fire(reason: string): void {
    if (this.firedReason !== undefined) return;
    this.firedReason = reason;
    this.stop();
    this.listener?.(reason);
  }
}

/**
 * Campaigns for leadership among the fleet's schedulers and resolves with the term once elected
 * (the oldest campaign key wins, as in etcd's own election recipe). Rejects when the lease is
 * lost while waiting, or when `signal` aborts; either way the lease is revoked.
 */
export async function campaignForLeadership(etcd: Etcd3, prefix: string, me: LeaderInfo, ttlSeconds: number, signal?: AbortSignal): Promise<LeaderTerm> {
  const election = electionSpace(etcd, prefix);
  await removeEarlierSelf(election, me.id);
  const askedAt = Date.now();
  const lease = election.lease(ttlSeconds);
  const watchdog = new LeaseWatchdog(lease, ttlSeconds * 1000, askedAt);
  let failed: ((err: Error) => void) | undefined;
  const lost = new Promise<never>((_, reject) => {
    failed = reject;
  });
  lost.catch(() => undefined);
  watchdog.onLost((reason) => failed?.(new Error(`lost the election lease while campaigning: ${reason}`)));
  const onAbort = (): void => failed?.(new Error('campaign stopped'));
  signal?.addEventListener('abort', onAbort);
  try {
    if (signal?.aborted) throw new Error('campaign stopped');
    const id = await Promise.race([lease.grant(), lost]);
    const put = await Promise.race([lease.put(id).value(JSON.stringify(me)).exec(), lost]);
    const mine = BigInt(put.header.revision);
    const lastDelete = await Promise.race([waitForEarlierCampaigns(election, mine, lost), lost]);
    // The lease may have lapsed while we waited: leading without our own key would let a second
    // scheduler lead too.
    const still = await Promise.race([election.get(id).exec(), lost]);
    if (still.kvs.length === 0) throw new Error('the campaign key vanished before the election was won');
    return new LeaderTerm(lease, watchdog, (lastDelete > mine ? lastDelete : mine).toString());
  } catch (err) {
    watchdog.stop();
    void lease.revoke().catch(() => undefined);
    throw err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

/**
 * A scheduler restarted after a crash finds its earlier self's campaign still holding the lease
 * for up to the TTL. That is this same scheduler (ids are unique per scheduler), so it takes its
 * place at once rather than waiting out its own ghost.
 */
async function removeEarlierSelf(election: Namespace, id: string): Promise<void> {
  const earlier = await election.getAll().exec();
  for (const kv of earlier.kvs) {
    if (parseLeader(kv.value.toString())?.id === id) await election.delete().key(kv.key.toString());
  }
}

/**
 * Resolves once no campaign key older than ours (by create revision) is left, with the revision
 * of the last delete it waited for (0 when there was none).
 */
async function waitForEarlierCampaigns(election: Namespace, mine: bigint, lost: Promise<never>): Promise<bigint> {
  let lastDelete = 0n;
  for (;;) {
    const older = await election.getAll().maxCreateRevision((mine - 1n).toString()).sort('Create', 'Descend').limit(1).exec();
    const kv = older.kvs[0];
    if (!kv) return lastDelete;
    const watcher = await election.watch().key(kv.key.toString()).startRevision(older.header.revision).only('delete').create();
    try {
      const deleted = new Promise<void>((resolve, reject) => {
        watcher.once('delete', (gone) => {
          const at = BigInt(gone.mod_revision);
          if (at > lastDelete) lastDelete = at;
          resolve();
        });
        // A watch that dies (its revision compacted away) could miss the delete: start over.
        watcher.on('error', reject);
      });
      await Promise.race([deleted, lost]);
    } finally {
      await watcher.cancel().catch(() => undefined);
    }
  }
}

/** The elected scheduler, or undefined when there is none (or etcd cannot say right now). */
export async function currentLeader(etcd: Etcd3, prefix: string): Promise<LeaderInfo | undefined> {
  const election = etcd.namespace(new Keys(prefix).configDir).election(ELECTION);
  try {
    return parseLeader((await election.leader()) ?? '');
  } catch {
    return undefined;
  }
}

/**
 * Who leads, kept current by a watch on the election keys, so a standby can name the leader in
 * every refusal without asking etcd (which may be the very thing that is down).
 */
export class LeaderWatch {
  private readonly campaigns = new Map<string, { created: bigint; leader: LeaderInfo | undefined }>();
  private watcher?: Watcher;
  private stopped = false;

  constructor(private readonly etcd: Etcd3, private readonly prefix: string) {}

  async start(): Promise<void> {
    const election = electionSpace(this.etcd, this.prefix);
    const now = await election.getAll().exec();
    this.campaigns.clear();
    for (const kv of now.kvs) this.campaigns.set(kv.key.toString(), { created: BigInt(kv.create_revision), leader: parseLeader(kv.value.toString()) });
    this.watcher = await election.watch().prefix('').startRevision((BigInt(now.header.revision) + 1n).toString()).create();
    this.watcher.on('put', (kv) => this.campaigns.set(kv.key.toString(), { created: BigInt(kv.create_revision), leader: parseLeader(kv.value.toString()) }));
    this.watcher.on('delete', (kv) => this.campaigns.delete(kv.key.toString()));
    // etcd3 resumes a broken watch by itself; an error means this one is dead (e.g. its revision
    // was compacted away during a long outage), so list and watch afresh.
    const watcher = this.watcher;
    watcher.on('error', () => {
      if (this.watcher === watcher) void this.restart();
    });
  }

  private async restart(): Promise<void> {
    const dead = this.watcher;
    this.watcher = undefined;
    await dead?.cancel().catch(() => undefined);
    while (!this.stopped) {
      try {
        await this.start();
        return;
      } catch {
        await sleep(1000);
      }
    }
  }

  /** The oldest campaign's announcement: the leader, as agents find it. */
  leader(): LeaderInfo | undefined {
    let oldest: { created: bigint; leader: LeaderInfo | undefined } | undefined;
    for (const c of this.campaigns.values()) if (!oldest || c.created < oldest.created) oldest = c;
    return oldest?.leader;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.watcher?.cancel().catch(() => undefined);
  }
}

function parseLeader(text: string): LeaderInfo | undefined {
  try {
    const v = JSON.parse(text) as LeaderInfo;
    return typeof v.id === 'string' && typeof v.api === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}
