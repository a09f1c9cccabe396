import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DeleteBuilder, Etcd3, PutBuilder, Watcher } from 'etcd3';
import { Keys } from './keys.js';
import { InstanceStatus, InstanceType, ProcState, ProcType, type Instance, type Proc, type ProcStats } from '../domain/model.js';
import { instanceFromFields } from './records.js';
import { MASTER_MESSAGE, SHUTDOWN_MESSAGE, slaveOfMessage } from '../domain/message.js';
import type { Logger } from '../logger.js';

interface InstanceNode {
  fields: Map<string, string>;
  procs: Map<string, Map<string, string>>;
  snames: Set<string>;
}

export interface NewInstance {
  name: string;
  type: InstanceType;
  capacity: number;
  expSlaves: number;
  dValue: number;
  placement: 'spread' | 'binpack';
  passwordHash: string;
  extra?: Record<string, string>;
}

export interface NewProc {
  id: string;
  instance: string;
  nodename: string;
  capacity: number;
  ip: string;
  port: number;
  type: 'M' | 'S';
  slaveOf: string;
  agentId: string;
}

/**
 * The whole /MrRedis tree in memory, filled once at start and kept current by one etcd watch.
 * Reads never touch etcd. Writers get the etcd revision of their write and can wait until the
 * cache has seen it (`caughtUp`), so a read that follows a write sees it.
 *
 * Events: 'instance' (name) whenever anything of an instance but its Stats changes;
 * 'agents' whenever an agent registration key changes.
 */
export class FleetStore extends EventEmitter {
  readonly keys: Keys;
  private readonly nodes = new Map<string, InstanceNode>();
  private readonly agentRecords = new Map<string, string>();
  private revision = 0n;
  private waiters: { rev: bigint; resolve: () => void }[] = [];
  private watcher?: Watcher;
  private stopped = false;
  /** Stats the scheduler read itself (StatsPoller), by proc id: fresher than the agent's etcd writes. */
  private readonly polledStats = new Map<string, ProcStats>();

  constructor(readonly etcd: Etcd3, prefix: string, private readonly log?: Logger) {
    super();
    this.keys = new Keys(prefix);
  }

  /** Loads the tree and starts the watch from the revision just after the load. */
  async start(): Promise<void> {
    await this.load();
    await this.watchFrom(this.revision + 1n);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.watcher?.cancel().catch(() => undefined);
  }

  /** Replaces the whole cache with a fresh read; returns the names of the instances it held before. */
  private async load(): Promise<Set<string>> {
    const res = await this.etcd.getAll().prefix(this.keys.root).exec();
    const before = new Set(this.nodes.keys());
    this.nodes.clear();
    this.agentRecords.clear();
    for (const kv of res.kvs) this.route(kv.key.toString(), kv.value.toString());
    this.advance(BigInt(res.header.revision));
    return before;
  }

  private async watchFrom(rev: bigint): Promise<void> {
    const watcher = await this.etcd.watch().prefix(this.keys.root).startRevision(rev.toString()).create();
    this.watcher = watcher;
    watcher.on('data', (res) => {
      const touched = new Set<string>();
      for (const ev of res.events) {
        const key = ev.kv.key.toString();
        const name = this.route(key, ev.type === 'Delete' ? undefined : ev.kv.value.toString());
        if (name) touched.add(name);
      }
      this.advance(BigInt(res.header.revision));
      for (const name of touched) this.emit(name === '\0agents' ? 'agents' : 'instance', name);
    });
    // etcd3 emits 'error' only when etcd cancelled the watch, and then drops it. The usual cause:
    // the stream broke, and by the time it came back its next revision had been compacted
    // ("required revision has been compacted"). The missed events are gone, so read the tree
    // afresh and watch again from there.
    watcher.on('error', (err) => {
      if (this.watcher !== watcher || this.stopped) return;
      this.log?.warn('etcd watch cancelled; reloading the tree', { error: err.message });
      void this.resync();
    });
    watcher.on('disconnected', () => this.log?.warn('etcd watch disconnected; it resumes from the last revision'));
  }

  /** Reloads the tree and re-creates the watch, retrying while etcd is unreachable. */
  private async resync(): Promise<void> {
    for (let attempt = 1; !this.stopped; attempt++) {
      try {
        const before = await this.load();
        await this.watchFrom(this.revision + 1n);
        for (const name of new Set([...before, ...this.nodes.keys()])) this.emit('instance', name);
        this.emit('agents', '\0agents');
        this.log?.info('etcd tree reloaded', { revision: this.revision.toString() });
        return;
      } catch (err) {
        this.log?.warn('etcd tree reload failed; trying again', { attempt, error: (err as Error).message });
        await sleep(Math.min(200 * attempt, 2000));
      }
    }
  }

  /** Resolves once the cache reflects every write up to `rev`. */
  caughtUp(rev: string | bigint | undefined): Promise<void> {
    if (rev === undefined) return Promise.resolve();
    const want = BigInt(rev);
    if (want <= this.revision) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ rev: want, resolve }));
  }

  private advance(rev: bigint): void {
    if (rev > this.revision) this.revision = rev;
    const ready = this.waiters.filter((w) => w.rev <= this.revision);
    this.waiters = this.waiters.filter((w) => w.rev > this.revision);
    for (const w of ready) w.resolve();
  }

  /**
   * Applies one key (value undefined: deleted). Returns the instance name it touched,
   * '\0agents' for an agent key, and '' when nobody needs telling (config, Stats, MemUsed).
   */
  private route(key: string, value: string | undefined): string {
    const rel = key.slice(this.keys.root.length).split('/');
    if (rel[0] === 'Agents' && rel.length === 2) {
      setOrDelete(this.agentRecords, rel[1], value);
      return '\0agents';
    }
    if (rel[0] !== 'Instances' || rel.length < 3) return '';
    const name = rel[1];
    const node = this.node(name);
    if (rel.length === 3) {
      setOrDelete(node.fields, rel[2], value);
    } else if (rel[2] === 'Snames' && rel.length === 4) {
      if (value === undefined) node.snames.delete(rel[3]);
      else node.snames.add(rel[3]);
    } else if (rel[2] === 'Procs' && rel.length === 5) {
      let proc = node.procs.get(rel[3]);
      if (!proc) {
        proc = new Map();
        node.procs.set(rel[3], proc);
      }
      setOrDelete(proc, rel[4], value);
      if (proc.size === 0) {
        node.procs.delete(rel[3]);
        this.polledStats.delete(rel[3]);
      }
      if (rel[4] === 'Stats' || rel[4] === 'MemUsed') return '';
    }
    if (node.fields.size === 0 && node.procs.size === 0 && node.snames.size === 0) this.nodes.delete(name);
    return name;
  }

  private node(name: string): InstanceNode {
    let node = this.nodes.get(name);
    if (!node) {
      node = { fields: new Map(), procs: new Map(), snames: new Set() };
      this.nodes.set(name, node);
    }
    return node;
  }

  // ---- reads (memory only) ----

  instance(name: string): Instance | undefined {
    const node = this.nodes.get(name);
    if (!node || !node.fields.has('Status')) return undefined;
    const inst = instanceFromFields(name, node.fields, node.procs, node.snames);
    for (const proc of inst.procs) {
      const polled = this.polledStats.get(proc.id);
      if (!polled || (proc.stats && proc.stats.updatedAt >= polled.updatedAt)) continue;
      proc.stats = polled;
      proc.memUsed = polled.usedMemory;
    }
    return inst;
  }

  /**
   * Overlays stats the scheduler read itself over the agent's last etcd write: agents write only
   * on change or heartbeat, while API reads and the Sentinel view want every-second figures.
   * Memory only; the newer of the two wins.
   */
  overlayStats(procId: string, stats: ProcStats): void {
    this.polledStats.set(procId, stats);
  }

  /** Forgets polled stats of procs no longer polled, so an ended proc shows its last etcd Stats. */
  retainPolledStats(procIds: Set<string>): void {
    for (const id of this.polledStats.keys()) if (!procIds.has(id)) this.polledStats.delete(id);
  }

  /** The first instance whose `field` satisfies `matches`, found without building any Instance. */
  instanceWhere(field: string, matches: (value: string) => boolean): string | undefined {
    for (const [name, node] of this.nodes) {
      const value = node.fields.get(field);
      if (value && node.fields.has('Status') && matches(value)) return name;
    }
    return undefined;
  }

  instanceNames(): string[] {
    return [...this.nodes.keys()].filter((n) => this.nodes.get(n)?.fields.has('Status')).sort();
  }

  instances(): Instance[] {
    return this.instanceNames().map((n) => this.instance(n)!);
  }

  /** Ids of the agents registered in etcd (each registration lives on its agent's lease). */
  agentIds(): string[] {
    return [...this.agentRecords.keys()].sort();
  }

  agentRecord(id: string): Record<string, unknown> | undefined {
    const text = this.agentRecords.get(id);
    if (!text) return undefined;
    try {
      return JSON.parse(text) as Record<string, unknown>;
    } catch {
      return undefined;
    }
  }

  // ---- writes (etcd first; the cache follows through the watch) ----

  /**
   * Writes a new instance in one transaction. Succeeds when the name is unused, or when the
   * earlier instance of that name is DELETED: then every key of the old tree that the create does
   * not write again (ExpiresAt, Creator, MaxClients, DataLost, its procs ...) is deleted in the
   * same transaction, so a re-create inherits nothing. Returns false when a live instance holds
   * the name.
   */
  async createInstance(spec: NewInstance): Promise<boolean> {
    const k = this.keys;
    const fields: Record<string, string> = {
      Type: spec.type,
      Status: InstanceStatus.Creating,
      Capacity: String(spec.capacity),
      Masters: '0',
      Slaves: '0',
      ExpMasters: '1',
      ExpSlaves: String(spec.expSlaves),
      DValue: String(spec.dValue),
      Mname: '',
      Reason: 'waiting for offers',
      Placement: spec.placement,
      CreatedAt: new Date().toISOString(),
      PasswordHash: spec.passwordHash,
      Epoch: '0',
      DownAfter: '1000',
      ...spec.extra,
    };
    const putKeys = new Set(Object.keys(fields).map((f) => k.instanceField(spec.name, f)));
    // A few rounds: the old tree may change between the read and the transaction (a late
    // Stats write, a purge); the guard on Status's mod revision notices, and we read again.
    for (let round = 0; round < 5; round++) {
      const old = await this.etcd.getAll().prefix(k.instance(spec.name)).keys();
      const status = await this.etcd.get(k.instanceField(spec.name, 'Status')).exec();
      const statusKv = status.kvs[0];
      if (statusKv && statusKv.value.toString() !== InstanceStatus.Deleted) return false;
      const guard = statusKv
        ? this.etcd.if(k.instanceField(spec.name, 'Status'), 'Mod', '==', statusKv.mod_revision)
        : this.etcd.if(k.instanceField(spec.name, 'Status'), 'Version', '==', 0);
      // One delete per stale key, not a prefix delete: etcd refuses a put inside a deleted range
      // of the same transaction ("duplicate key given in txn request").
      const stale = old.filter((key) => !putKeys.has(key)).map((key) => this.etcd.delete().key(key));
      const puts = Object.entries(fields).map(([f, v]) => this.etcd.put(k.instanceField(spec.name, f)).value(v));
      const res = await guard.then(...stale, ...puts).commit();
      if (!res.succeeded) continue;
      await this.caughtUp(res.header.revision);
      return true;
    }
    return false;
  }

  /**
   * Removes a DELETED instance's whole tree, only while it is still DELETED and its Status has
   * not been rewritten since `statusModRevision` was read (so a re-create in between survives).
   * Returns the number of keys removed (0 when it did not run).
   */
  async purgeInstance(name: string): Promise<number> {
    const statusKey = this.keys.instanceField(name, 'Status');
    const status = (await this.etcd.get(statusKey).exec()).kvs[0];
    if (!status || status.value.toString() !== InstanceStatus.Deleted) return 0;
    const res = await this.etcd
      .if(statusKey, 'Mod', '==', status.mod_revision)
      .then(this.etcd.delete().prefix(this.keys.instance(name)))
      .commit();
    if (!res.succeeded) return 0;
    await this.caughtUp(res.header.revision);
    const deleted = res.responses[0]?.response_delete_range?.deleted;
    return Number(deleted ?? 0);
  }

  /** Sets instance fields, only while the instance exists. */
  /**
   * Sets instance fields, only while the instance exists and, when `expectStatus` is given, only
   * while its Status still reads that: a status derived from an older view must never overwrite
   * a newer one (a delete that came in meanwhile, above all). Returns whether it wrote.
   */
  async setInstance(name: string, fields: Record<string, string>, expectStatus?: string): Promise<boolean> {
    const k = this.keys;
    const puts = Object.entries(fields).map(([f, v]) => this.etcd.put(k.instanceField(name, f)).value(v));
    const statusKey = k.instanceField(name, 'Status');
    const txn = expectStatus === undefined ? this.etcd.if(statusKey, 'Version', '>', 0) : this.etcd.if(statusKey, 'Value', '==', expectStatus);
    const res = await txn.then(...puts).commit();
    await this.caughtUp(res.header.revision);
    return res.succeeded;
  }

  /**
   * Moves an instance to DELETING unless it is already DELETING or DELETED.
   * Returns the status it had, or undefined when there is no such instance.
   */
  async markDeleting(name: string): Promise<string | undefined> {
    const current = this.instance(name);
    if (!current) return undefined;
    if (current.status === InstanceStatus.Deleting || current.status === InstanceStatus.Deleted) return current.status;
    const statusKey = this.keys.instanceField(name, 'Status');
    const res = await this.etcd
      .if(statusKey, 'Value', '==', current.status)
      .then(this.etcd.put(statusKey).value(InstanceStatus.Deleting), this.etcd.put(this.keys.instanceField(name, 'Reason')).value('delete requested'))
      .commit();
    await this.caughtUp(res.header.revision);
    return res.succeeded ? current.status : this.markDeleting(name);
  }

  /** Writes new procs (and their Snames entries) in one transaction. */
  async addProcs(name: string, procs: NewProc[], instanceFields: Record<string, string> = {}): Promise<void> {
    const k = this.keys;
    const ops = [];
    for (const p of procs) {
      const fields: Record<string, string> = {
        Instance: p.instance,
        Nodename: p.nodename,
        Capacity: String(p.capacity),
        MemUsed: '0',
        Pid: '0',
        IP: p.ip,
        Port: String(p.port),
        State: ProcState.Staging,
        Type: p.type,
        SlaveOf: p.slaveOf,
        EID: `redfleet-executor-${p.agentId}`,
        SID: p.agentId,
        Msg: '',
        Stats: '',
      };
      for (const [f, v] of Object.entries(fields)) ops.push(this.etcd.put(k.procField(name, p.id, f)).value(v));
      if (p.type === ProcType.Replica) ops.push(this.etcd.put(k.sname(name, p.id)).value(''));
    }
    for (const [f, v] of Object.entries(instanceFields)) ops.push(this.etcd.put(k.instanceField(name, f)).value(v));
    const res = await this.etcd.if(k.instanceField(name, 'Status'), 'Version', '>', 0).then(...ops).commit();
    await this.caughtUp(res.header.revision);
  }

  /**
   * One proc's fields, with instance fields and the removal of its Snames entry, in one
   * transaction (only while the proc exists).
   */
  async updateProc(name: string, procId: string, fields: Record<string, string>, instanceFields: Record<string, string>, dropSname: boolean, expectStatus?: string): Promise<void> {
    const k = this.keys;
    if (Object.keys(instanceFields).length > 0 && expectStatus !== undefined) {
      // Instance fields only on top of the status they were derived from; else the proc alone.
      const both = await this.etcd
        .if(k.procField(name, procId, 'Instance'), 'Version', '>', 0)
        .and(k.instanceField(name, 'Status'), 'Value', '==', expectStatus)
        .then(
          ...Object.entries(fields).map(([f, v]) => this.etcd.put(k.procField(name, procId, f)).value(v)),
          ...Object.entries(instanceFields).map(([f, v]) => this.etcd.put(k.instanceField(name, f)).value(v)),
          ...(dropSname ? [this.etcd.delete().key(k.sname(name, procId))] : []),
        )
        .commit();
      if (both.succeeded) {
        await this.caughtUp(both.header.revision);
        return;
      }
      instanceFields = {};
    }
    const ops: (PutBuilder | DeleteBuilder)[] = [
      ...Object.entries(fields).map(([f, v]) => this.etcd.put(k.procField(name, procId, f)).value(v)),
      ...Object.entries(instanceFields).map(([f, v]) => this.etcd.put(k.instanceField(name, f)).value(v)),
    ];
    if (dropSname) ops.push(this.etcd.delete().key(k.sname(name, procId)));
    const res = await this.etcd.if(k.procField(name, procId, 'Instance'), 'Version', '>', 0).then(...ops).commit();
    await this.caughtUp(res.header.revision);
  }

  async setProc(name: string, procId: string, fields: Record<string, string>): Promise<void> {
    const k = this.keys;
    const ops = Object.entries(fields).map(([f, v]) => this.etcd.put(k.procField(name, procId, f)).value(v));
    const res = await this.etcd.if(k.procField(name, procId, 'Instance'), 'Version', '>', 0).then(...ops).commit();
    await this.caughtUp(res.header.revision);
  }

  /**
   * A failover, in one transaction: the new Mname and epoch, MASTER to the chosen replica,
   * SLAVEOF to the others, SHUTDOWN to the old master when it may still be running.
   */
  async failover(name: string, f: { expectStatus: string; epoch: number; newMaster: Proc; repoint: Proc[]; fence?: Proc; reason: string }): Promise<boolean> {
    const k = this.keys;
    const put = (key: string, value: string) => this.etcd.put(key).value(value);
    const to = `${f.newMaster.ip}:${f.newMaster.port}`;
    const ops = [
      put(k.instanceField(name, 'Mname'), f.newMaster.id),
      put(k.instanceField(name, 'Epoch'), String(f.epoch)),
      put(k.instanceField(name, 'Reason'), f.reason),
      put(k.procField(name, f.newMaster.id, 'Type'), 'M'),
      put(k.procField(name, f.newMaster.id, 'SlaveOf'), ''),
      put(k.procField(name, f.newMaster.id, 'Msg'), MASTER_MESSAGE),
      this.etcd.delete().key(k.sname(name, f.newMaster.id)),
    ];
    for (const r of f.repoint) {
      ops.push(put(k.procField(name, r.id, 'SlaveOf'), to), put(k.procField(name, r.id, 'Msg'), slaveOfMessage(f.newMaster)));
    }
    if (f.fence) ops.push(put(k.procField(name, f.fence.id, 'Msg'), SHUTDOWN_MESSAGE));
    const res = await this.etcd.if(k.instanceField(name, 'Status'), 'Value', '==', f.expectStatus).then(...ops).commit();
    await this.caughtUp(res.header.revision);
    return res.succeeded;
  }

  /** Deletes the trees of procs that have ended (and their Snames entries). */
  async removeProcs(name: string, procIds: string[]): Promise<void> {
    if (procIds.length === 0) return;
    const ops = procIds.flatMap((id) => [this.etcd.delete().prefix(this.keys.proc(name, id)), this.etcd.delete().key(this.keys.sname(name, id))]);
    const res = await this.etcd.if(this.keys.instanceField(name, 'Status'), 'Version', '>', 0).then(...ops).commit();
    await this.caughtUp(res.header.revision);
  }

  async clearSnames(name: string): Promise<void> {
    const res = await this.etcd.delete().prefix(this.keys.snames(name));
    await this.caughtUp(res.header.revision);
  }

  /** Writes the framework id once; later schedulers find and keep it. */
  async ensureFrameworkId(id: string): Promise<string> {
    const key = this.keys.config('FrameworkID');
    await this.etcd
      .if(key, 'Version', '==', 0)
      .then(this.etcd.put(key).value(id), this.etcd.put(this.keys.config('RegisteredAt')).value(new Date().toISOString()))
      .commit();
    return (await this.etcd.get(key).string()) ?? id;
  }
}

function setOrDelete(map: Map<string, string>, key: string, value: string | undefined): void {
  if (value === undefined) map.delete(key);
  else map.set(key, value);
}

