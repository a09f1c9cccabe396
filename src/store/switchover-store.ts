import type { Proc } from '../domain/model.js';
import { MASTER_MESSAGE, slaveOfMessage } from '../domain/message.js';
import type { FleetStore } from './fleet-store.js';
import { appendFailover, type FailoverRecord } from '../domain/failover-record.js';

export interface SwitchoverWrite {
  /** The master being replaced: the write happens only while Mname still names it. */
  oldMaster: Proc;
  newMaster: Proc;
  /** The other replicas, re-pointed at the new master. */
  repoint: Proc[];
  /** The instance's Status the switchover was decided on. */
  expectStatus: string;
  epoch: number;
  /** The history entry written with it. */
  record: FailoverRecord;
}

/**
 * A planned switchover, in one transaction (the sibling of FleetStore.failover): the new Mname
 * and raised Epoch, MASTER to the promoted replica, and SLAVEOF the new master to every other
 * proc, the old master included. Unlike a failover nothing is fenced: the old master stays, as a
 * replica (Type S, in Snames). Written only while Status and Mname are still what the switchover
 * was decided on, so a failover or another switchover in between wins. Returns whether it wrote.
 */
export async function writeSwitchover(store: FleetStore, name: string, w: SwitchoverWrite): Promise<boolean> {
  const { etcd, keys: k } = store;
  const put = (key: string, value: string) => etcd.put(key).value(value);
  const follow = slaveOfMessage(w.newMaster);
  const to = `${w.newMaster.ip}:${w.newMaster.port}`;
  const ops = [
    put(k.instanceField(name, 'Mname'), w.newMaster.id),
    put(k.instanceField(name, 'Epoch'), String(w.epoch)),
    put(k.instanceField(name, 'Failovers'), appendFailover(store.instance(name)?.failovers ?? [], w.record)),
    put(k.procField(name, w.newMaster.id, 'Type'), 'M'),
    put(k.procField(name, w.newMaster.id, 'SlaveOf'), ''),
    put(k.procField(name, w.newMaster.id, 'Msg'), MASTER_MESSAGE),
    etcd.delete().key(k.sname(name, w.newMaster.id)),
    put(k.procField(name, w.oldMaster.id, 'Type'), 'S'),
    put(k.procField(name, w.oldMaster.id, 'SlaveOf'), to),
    put(k.procField(name, w.oldMaster.id, 'Msg'), follow),
    put(k.sname(name, w.oldMaster.id), ''),
  ];
  for (const r of w.repoint) ops.push(put(k.procField(name, r.id, 'SlaveOf'), to), put(k.procField(name, r.id, 'Msg'), follow));
  const res = await etcd
    .if(k.instanceField(name, 'Status'), 'Value', '==', w.expectStatus)
    .and(k.instanceField(name, 'Mname'), 'Value', '==', w.oldMaster.id)
    .then(...ops)
    .commit();
  await store.caughtUp(res.header.revision);
  return res.succeeded;
}
