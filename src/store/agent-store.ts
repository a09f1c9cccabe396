import type { Etcd3, Lease, Watcher } from 'etcd3';
import { connectEtcd } from './etcd.js';
import { Keys } from './keys.js';
import { currentLeader, type LeaderInfo } from './leadership.js';
import type { ProcStats, ProcType } from '../domain/model.js';
import { SHUTDOWN_AT_FIELD } from '../domain/message.js';
import type { Logger } from '../logger.js';

/** /MrRedis/Agents/<id>: what an agent says about itself while it lives. */
export interface AgentRecord {
  id: string;
  /** The node's host name (os.hostname()). */
  hostname: string;
  /** The address its redis-servers listen on. */
  ip: string;
  scheduler: string;
  resources: { cpus: number; mem: number; ports: string };
  /** The redis-server binaries it offers, with their versions (the first the default). */
  redisServers?: { path: string; version: string }[];
  startedAt: string;
}

/** One proc's Stats for `writeStatsBatch`. */
export interface StatsEntry {
  instance: string;
  procId: string;
  stats: ProcStats;
}

/**
 * Procs per Stats transaction: two puts and one compare each, well inside etcd's default limit of
 * 128 operations per transaction (--max-txn-ops).
 */
const STATS_PER_TXN = 50;

/** A live watch of one proc's Msg key. */
export interface MsgWatch {
  cancel(): Promise<void>;
}

/** What a carried-out message changed in the proc (its role, its capacity), written together with the Msg reset. */
export interface ProcChange {
  type?: ProcType;
  slaveOf?: string;
  capacityMb?: number;
}

/**
 * What etcd says now about one proc and its instance, for an agent deciding whether to take a
 * proc of its earlier life back (see executor/adoption.ts). '' and 0 where a key is missing.
 */
export interface ProcAssignment {
  instanceStatus: string;
  /** The instance's current master (Mname). */
  mname: string;
  epoch: number;
  /** The proc's own fields; undefined when its tree is gone. */
  proc?: { sid: string; state: string; msg: string; shutdownAt?: string };
}

/** How long a watch creation or cancellation may take before it is abandoned. */
const WATCH_OP_TIMEOUT_MS = 3000;

/** The agent's registration lease: it lapses this long after the agent's last keepalive. */
const LEASE_TTL_SECONDS = 10;
/** A lost registration is made again after this, doubled after each failed attempt up to the max. */
const REGISTER_BACKOFF_MS = 250;
const REGISTER_BACKOFF_MAX_MS = 5000;

/**
 * Everything an agent reads and writes in etcd: its registration, the scheduler's address, its
 * procs' Msg keys and their Stats. The agent's only way to etcd; keys come from keys.ts.
 */
export class AgentStore {
  private readonly keys: Keys;
  private etcd?: Etcd3;
  private lease?: Lease;
  /** False when open() was given a client another owner closes (the agent simulator's). */
  private ownsClient = true;
  private watchQueue: Promise<unknown> = Promise.resolve();

  constructor(private readonly urls: string, private readonly prefix: string, private readonly log: Logger, private readonly leaseTtlSeconds = LEASE_TTL_SECONDS) {
    this.keys = new Keys(prefix);
  }

  /**
   * Connects to etcd (the client dials on its first call). With `shared`, uses that client
   * instead and leaves it open on close(): the agent simulator runs thousands of agents over one
   * connection.
   */
  open(shared?: Etcd3): void {
    this.ownsClient = !shared;
    this.etcd = shared ?? connectEtcd(this.urls);
  }

  private get client(): Etcd3 {
    if (!this.etcd) throw new Error('the agent store is not open');
    return this.etcd;
  }

  /**
   * /MrRedis/Agents/<id>, bound to a lease that lapses if the agent dies. A lost lease registers
   * again (with a fresh record) while `stillWanted` says so.
   */
  async register(record: () => AgentRecord, stillWanted: () => boolean, failures = 0): Promise<void> {
    const lease = this.client.lease(this.leaseTtlSeconds, { autoKeepAlive: true });
    this.lease = lease;
    let registered = false;
    let lost = false;
    lease.on('lost', (err: Error) => {
      if (lost || !stillWanted()) return;
      lost = true;
      // Backed off: a lease lost again at once (etcd down, or too loaded to keep it) must not
      // turn into a tight loop of grants and puts that loads it further (issue 11's simulator
      // re-registered 14,000 times in 5 minutes without this).
      const next = registered ? 0 : failures + 1;
      const inMs = Math.min(REGISTER_BACKOFF_MAX_MS, REGISTER_BACKOFF_MS * 2 ** Math.min(next, 10));
      this.log.warn('agent lease lost; registering again', { inMs, error: err?.message });
      setTimeout(() => {
        if (!stillWanted()) return;
        void this.register(record, stillWanted, next).catch((e: Error) => this.log.error('agent registration failed', { error: e.message }));
      }, inMs).unref();
    });
    const value = record();
    await lease.put(this.keys.agent(value.id)).value(JSON.stringify(value));
    registered = true;
  }

  /** The elected scheduler, as announced in etcd; undefined before open() or when there is none. */
  async leader(): Promise<LeaderInfo | undefined> {
    return this.etcd ? currentLeader(this.etcd, this.prefix) : undefined;
  }

  /**
   * Watches the proc's Msg key, after handing `onMsg` the message already there. Watch creations
   * and cancellations go through one queue: when a watch was cancelled while another was being
   * created on the same etcd client, the creation could hang, and with it the new proc's RUNNING
   * report. A creation that takes too long rejects; the caller may try again.
   */
  async watchMsg(instance: string, procId: string, onMsg: (msg: string) => void): Promise<MsgWatch> {
    const etcd = this.client;
    const key = this.keys.procField(instance, procId, 'Msg');
    const res = await etcd.get(key).exec();
    const start = String(Number(res.header.revision) + 1);
    const watcher = await this.watchOp(() => withTimeout(etcd.watch().key(key).startRevision(start).create(), WATCH_OP_TIMEOUT_MS));
    watcher.on('put', (kv) => onMsg(kv.value.toString()));
    const current = res.kvs[0]?.value.toString() ?? '';
    if (current) onMsg(current);
    return { cancel: () => this.cancelWatch(watcher) };
  }

  private cancelWatch(watcher: Watcher): Promise<void> {
    return this.watchOp(() => withTimeout(watcher.cancel(), WATCH_OP_TIMEOUT_MS)).catch(() => undefined);
  }

  /** Runs watch creations and cancellations one at a time. */
  private watchOp<T>(op: () => Promise<T>): Promise<T> {
    const next = this.watchQueue.then(op, op);
    this.watchQueue = next.catch(() => undefined);
    return next;
  }

  /**
   * Resets Msg to "" (only if it still holds what was acted on) together with what the message
   * changed in the proc, if anything. A failure is logged, not thrown.
   */
  async resetMsg(instance: string, procId: string, msg: string, change: ProcChange = {}): Promise<void> {
    const etcd = this.client;
    const key = this.keys.procField(instance, procId, 'Msg');
    const field = (name: string) => this.keys.procField(instance, procId, name);
    const ops = [etcd.put(key).value('')];
    if (change.type !== undefined) ops.push(etcd.put(field('Type')).value(change.type));
    if (change.slaveOf !== undefined) ops.push(etcd.put(field('SlaveOf')).value(change.slaveOf));
    if (change.capacityMb !== undefined) ops.push(etcd.put(field('Capacity')).value(String(change.capacityMb)));
    await etcd.if(key, 'Value', '==', msg).then(...ops).commit().catch((err: Error) => this.log.warn('Msg reset failed', { key, error: err.message }));
  }

  /**
   * Writes the proc's Stats (and MemUsed), only while the proc still exists in etcd: a deleted
   * instance's tree is not brought back. Resolves whether it was written.
   */
  async writeStats(instance: string, procId: string, stats: ProcStats): Promise<boolean> {
    const etcd = this.client;
    const res = await etcd
      .if(this.keys.procField(instance, procId, 'Instance'), 'Version', '>', 0)
      .then(
        etcd.put(this.keys.procField(instance, procId, 'Stats')).value(JSON.stringify(stats)),
        etcd.put(this.keys.procField(instance, procId, 'MemUsed')).value(String(stats.usedMemory)),
      )
      .commit();
    return res.succeeded;
  }

  /**
   * Several procs' Stats in one transaction (a few per agent each second, after the write rule):
   * one etcd revision for the agent's batch instead of one per proc. Each proc's key must still
   * exist; when one was deleted meanwhile the batch fails as a whole and is written proc by proc,
   * so only the deleted one is skipped. Returns the ids written.
   */
  async writeStatsBatch(entries: StatsEntry[]): Promise<Set<string>> {
    const written = new Set<string>();
    for (let i = 0; i < entries.length; i += STATS_PER_TXN) {
      const chunk = entries.slice(i, i + STATS_PER_TXN);
      if (await this.tryStatsTxn(chunk)) {
        for (const e of chunk) written.add(e.procId);
        continue;
      }
      for (const e of chunk) if (await this.writeStats(e.instance, e.procId, e.stats)) written.add(e.procId);
    }
    return written;
  }

  private async tryStatsTxn(chunk: StatsEntry[]): Promise<boolean> {
    if (chunk.length === 0) return true;
    const etcd = this.client;
    const exists = chunk.map((e) => this.keys.procField(e.instance, e.procId, 'Instance'));
    let txn = etcd.if(exists[0], 'Version', '>', 0);
    for (const key of exists.slice(1)) txn = txn.and(key, 'Version', '>', 0);
    const puts = chunk.flatMap((e) => [
      etcd.put(this.keys.procField(e.instance, e.procId, 'Stats')).value(JSON.stringify(e.stats)),
      etcd.put(this.keys.procField(e.instance, e.procId, 'MemUsed')).value(String(e.stats.usedMemory)),
    ]);
    return (await txn.then(...puts).commit()).succeeded;
  }

  /** The instance's failover epoch (0 when it has none yet). */
  async epochOf(instance: string): Promise<number> {
    const text = await this.client.get(this.keys.instanceField(instance, 'Epoch')).string();
    return Number.parseInt(text ?? '0', 10) || 0;
  }

  /** What etcd says now about a proc this agent once ran and its instance (one consistent read). */
  async assignment(instance: string, procId: string): Promise<ProcAssignment> {
    const etcd = this.client;
    const keys = [
      this.keys.instanceField(instance, 'Status'),
      this.keys.instanceField(instance, 'Mname'),
      this.keys.instanceField(instance, 'Epoch'),
      this.keys.procField(instance, procId, 'Instance'),
      this.keys.procField(instance, procId, 'SID'),
      this.keys.procField(instance, procId, 'State'),
      this.keys.procField(instance, procId, 'Msg'),
      this.keys.procField(instance, procId, SHUTDOWN_AT_FIELD),
    ];
    const res = await etcd.if(keys[0], 'Version', '!=', -1).then(...keys.map((k) => etcd.get(k))).commit();
    const [status, mname, epoch, exists, sid, state, msg, shutdownAt] = res.responses.map((r) => r.response_range.kvs[0]?.value.toString());
    return {
      instanceStatus: status ?? '',
      mname: mname ?? '',
      epoch: Number.parseInt(epoch ?? '0', 10) || 0,
      proc: exists === undefined ? undefined : { sid: sid ?? '', state: state ?? '', msg: msg ?? '', ...(shutdownAt ? { shutdownAt } : {}) },
    };
  }

  /** Gives up the registration and closes the connection. */
  async close(): Promise<void> {
    await this.lease?.revoke().catch(() => undefined);
    if (this.ownsClient) this.etcd?.close();
  }
}

/** Rejects when `promise` has not settled within `ms`. */
function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer from etcd within ${ms} ms`)), ms);
    promise.then((v) => { clearTimeout(timer); resolve(v); }, (e: unknown) => { clearTimeout(timer); reject(e as Error); });
  });
}
