import { Range, type Etcd3 } from 'etcd3';
import { InstanceStatus } from '../domain/model.js';
import type { Keys } from './keys.js';
import type { NewInstance } from './fleet-store.js';

/** How many times the general path reads the old tree again when it changed under the write. */
const ROUNDS = 5;

/** The keys of a fresh instance, as MrRedis lays them out (with RedFleet's own beside them). */
function freshFields(spec: NewInstance): Record<string, string> {
  return {
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
}

/**
 * Writes a new instance in one transaction and returns its revision, or undefined when a live
 * instance holds the name. A name never used costs one transaction; a name whose earlier
 * instance is DELETED (or whose tree holds strays) costs a read of that tree first, and the
 * transaction then deletes every old key it does not write again, so a re-create inherits
 * nothing.
 */
export async function writeNewInstance(etcd: Etcd3, keys: Keys, spec: NewInstance): Promise<string | undefined> {
  const fields = freshFields(spec);
  const fresh = await writeOnEmptyTree(etcd, keys, spec.name, fields);
  if (fresh) return fresh;
  const putKeys = new Set(Object.keys(fields).map((f) => keys.instanceField(spec.name, f)));
  // A few rounds: the old tree may change between the read and the transaction (a late
  // Stats write, a purge); the guard on Status's mod revision notices, and we read again.
  for (let round = 0; round < ROUNDS; round++) {
    const old = await etcd.getAll().prefix(keys.instance(spec.name)).keys();
    const status = await etcd.get(keys.instanceField(spec.name, 'Status')).exec();
    const statusKv = status.kvs[0];
    if (statusKv && statusKv.value.toString() !== InstanceStatus.Deleted) return undefined;
    const guard = statusKv
      ? etcd.if(keys.instanceField(spec.name, 'Status'), 'Mod', '==', statusKv.mod_revision)
      : etcd.if(keys.instanceField(spec.name, 'Status'), 'Version', '==', 0);
    // One delete per stale key, not a prefix delete: etcd refuses a put inside a deleted range
    // of the same transaction ("duplicate key given in txn request").
    const stale = old.filter((key) => !putKeys.has(key)).map((key) => etcd.delete().key(key));
    const puts = Object.entries(fields).map(([f, v]) => etcd.put(keys.instanceField(spec.name, f)).value(v));
    const res = await guard.then(...stale, ...puts).commit();
    if (res.succeeded) return res.header.revision;
  }
  return undefined;
}

/**
 * The fields, only while no key at all lies under the instance's name: one comparison over the
 * key range (each key in it must have version 0, and an empty range passes). Undefined when the
 * tree has keys: a live, DELETED or half-purged instance, for the general path to judge.
 */
async function writeOnEmptyTree(etcd: Etcd3, keys: Keys, name: string, fields: Record<string, string>): Promise<string | undefined> {
  const tree = Range.prefix(keys.instance(name));
  const res = await etcd.kv.txn({
    compare: [{ key: tree.start, range_end: tree.end, target: 'Version', result: 'Equal', version: 0 }],
    success: Object.entries(fields).map(([f, v]) => ({ request_put: { key: Buffer.from(keys.instanceField(name, f)), value: Buffer.from(v) } })),
    failure: [],
  });
  return res.succeeded ? res.header.revision : undefined;
}
