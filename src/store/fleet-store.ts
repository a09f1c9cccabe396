import type { DeleteBuilder, PutBuilder } from 'etcd3';
import { InstanceStatus, InstanceType, ProcState, ProcType, type Placement, type Proc } from '../domain/model.js';
import { MASTER_MESSAGE, shutdownFields, slaveOfMessage } from '../domain/message.js';
import { appendFailover, type FailoverRecord } from '../domain/failover-record.js';
import { FleetCache } from './fleet-cache.js';
import { writeNewInstance } from './instance-create.js';

export interface NewInstance {
  name: string;
  type: InstanceType;
  capacity: number;
  expSlaves: number;
  dValue: number;
  placement: Placement;
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
  type: ProcType;
  slaveOf: string;
  agentId: string;
  /** The redis-server binary it is launched with, and its version. */
  redisServer?: string;
  redisVersion?: string;
  /** The surge request it is placed for (see domain/surge.ts). */
  surge?: string;
}

/**
 * The fleet's state: the watched in-memory tree of FleetCache (every read), and the writes.
 * Every write goes to etcd first, in one transaction, and returns once the cache has seen it
 * (`caughtUp`), so a read that follows a write sees it.
 */
export class FleetStore extends FleetCache {
  // ---- writes (etcd first; the cache follows through the watch) ----

  /**
   * Writes a new instance in one transaction. Succeeds when the name is unused, or when the
   * earlier instance of that name is DELETED: then every key of the old tree that the create does
   * not write again (ExpiresAt, Creator, MaxClients, DataLost, its procs ...) is deleted in the
   * same transaction, so a re-create inherits nothing. Returns false when a live instance holds
   * the name.
   */
  async createInstance(spec: NewInstance): Promise<boolean> {
    const revision = await writeNewInstance(this.etcd, this.keys, spec);
    if (revision === undefined) return false;
    await this.caughtUp(revision);
    return true;
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

  /**
   * Replaces one instance field's value, only while it still reads `before` ('' for absent or
   * empty) and the instance exists. Returns whether it wrote.
   */
  async swapInstanceField(name: string, field: string, before: string, after: string): Promise<boolean> {
    const key = this.keys.instanceField(name, field);
    const current = await this.etcd.get(key).string();
    if ((current ?? '') !== before) return false;
    const guard = current === null ? this.etcd.if(key, 'Version', '==', 0) : this.etcd.if(key, 'Value', '==', current);
    const res = await guard.and(this.keys.instanceField(name, 'Status'), 'Version', '>', 0).then(this.etcd.put(key).value(after)).commit();
    await this.caughtUp(res.header.revision);
    return res.succeeded;
  }

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
        ...(p.redisServer ? { RedisServer: p.redisServer, RedisVersion: p.redisVersion ?? '' } : {}),
        ...(p.surge ? { Surge: p.surge } : {}),
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
   * transaction (only while the proc exists). Returns whether the instance fields went in.
   */
  async updateProc(name: string, procId: string, fields: Record<string, string>, instanceFields: Record<string, string>, dropSname: boolean, expectStatus?: string): Promise<boolean> {
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
        return true;
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
    return res.succeeded && Object.keys(instanceFields).length > 0;
  }

  /**
   * Writes a message into the proc's Msg key only while it is empty: an order never overwrites
   * one its agent has not carried out yet (a failover's SLAVEOF above all). `also`: more proc keys
   * written with it (a SHUTDOWN's mark). Returns whether it wrote.
   */
  async sendMsg(name: string, procId: string, msg: string, also: Record<string, string> = {}): Promise<boolean> {
    const key = this.keys.procField(name, procId, 'Msg');
    const more = Object.entries(also).map(([f, v]) => this.etcd.put(this.keys.procField(name, procId, f)).value(v));
    const res = await this.etcd.if(key, 'Value', '==', '').then(this.etcd.put(key).value(msg), ...more).commit();
    await this.caughtUp(res.header.revision);
    return res.succeeded;
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
  async failover(name: string, f: { expectStatus: string; epoch: number; newMaster: Proc; repoint: Proc[]; fence?: Proc; reason: string; record: FailoverRecord }): Promise<boolean> {
    const k = this.keys;
    const put = (key: string, value: string) => this.etcd.put(key).value(value);
    const to = `${f.newMaster.ip}:${f.newMaster.port}`;
    const ops = [
      put(k.instanceField(name, 'Mname'), f.newMaster.id),
      put(k.instanceField(name, 'Epoch'), String(f.epoch)),
      put(k.instanceField(name, 'Reason'), f.reason),
      put(k.instanceField(name, 'Failovers'), appendFailover(this.instance(name)?.failovers ?? [], f.record)),
      put(k.procField(name, f.newMaster.id, 'Type'), 'M'),
      put(k.procField(name, f.newMaster.id, 'SlaveOf'), ''),
      put(k.procField(name, f.newMaster.id, 'Msg'), MASTER_MESSAGE),
      this.etcd.delete().key(k.sname(name, f.newMaster.id)),
    ];
    for (const r of f.repoint) {
      ops.push(put(k.procField(name, r.id, 'SlaveOf'), to), put(k.procField(name, r.id, 'Msg'), slaveOfMessage(f.newMaster)));
    }
    if (f.fence) for (const [field, value] of Object.entries(shutdownFields())) ops.push(put(k.procField(name, f.fence.id, field), value));
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
