import { setTimeout as sleep } from 'node:timers/promises';
import { InstanceStatus, ProcType, type Instance, type Proc } from '../domain/model.js';
import { backupIdAt, isBackupId } from '../domain/backup.js';
import { isRunning, runningMaster } from '../domain/rules.js';
import type { Operation } from '../domain/operation.js';
import { OperationRefusedError } from '../errors.js';
import { FRAMEWORK_USER } from '../store/secrets.js';
import type { FleetStore } from '../store/fleet-store.js';
import type { Logger } from '../logger.js';
import type { BackupStorage } from './backup-storage.js';
import type { OperationHandler, Progress } from './operations.js';
import { rdbSnapshot } from './rdb-snapshot.js';

/** The restore re-asserts its step every this many 200 ms looks (5 s). */
const RESTORE_RECHECK_TICKS = 25;
/** How long the snapshot's source may stay silent (its fork and the first bytes, then between chunks). */
const SNAPSHOT_IDLE_MS = 60_000;

export interface BackupDeps {
  store: FleetStore;
  storage: BackupStorage;
  /** The framework user's secret on an instance's redis-servers. */
  secretOf: (instance: string) => string;
  log: Logger;
}

/**
 * Where a backup is taken from: the replica in sync that is furthest along, never the master of
 * an instance that has replicas. A standalone instance has only its master: the snapshot is then
 * taken from it by the same replication handshake, which costs the master one fork (as an RDB
 * save does) but no pause of its clients. Throws 409 when no source is there now.
 */
export function backupSource(inst: Instance): Proc {
  const replicas = inst.procs.filter((p) => p.type === ProcType.Replica && isRunning(p) && p.stats?.masterLinkStatus === 'up');
  if (replicas.length > 0) return replicas.sort((a, b) => (b.stats?.replOffset ?? 0) - (a.stats?.replOffset ?? 0))[0];
  const master = runningMaster(inst);
  if (inst.expSlaves === 0 && master) return master;
  if (inst.expSlaves > 0) throw new OperationRefusedError(`instance '${inst.name}' has no replica in sync to take a backup from (a backup never runs on the master of a replicated instance); try again once its status is RUNNING`);
  throw new OperationRefusedError(`instance '${inst.name}' has no running master to take a backup from; try again once its status is RUNNING`);
}

/**
 * The 'backup' operation: an RDB snapshot from a replica (see backupSource and rdb-snapshot.ts),
 * streamed into the backup storage with its SHA-256. Its checkpoint holds the backup id, so a
 * scheduler that takes over mid-way finishes the same backup (or takes it again under that id).
 */
export function backupHandler(deps: BackupDeps): OperationHandler {
  return {
    kind: 'backup',
    check: (name) => {
      const inst = deps.store.instance(name);
      if (inst) backupSource(inst);
    },
    run: (name, op, progress) => takeBackup(deps, name, op, progress),
  };
}

async function takeBackup(deps: BackupDeps, name: string, op: Operation, progress: Progress): Promise<void> {
  const resumed = typeof op.data.backupId === 'string' && isBackupId(op.data.backupId) ? op.data.backupId : undefined;
  if (resumed && (await deps.storage.list(name)).some((b) => b.id === resumed)) return;
  const inst = deps.store.instance(name);
  if (!inst) throw new Error(`instance '${name}' is gone`);
  const source = backupSource(inst);
  const id = resumed ?? backupIdAt(new Date());
  const role = source.type === ProcType.Master ? 'master (standalone: one fork)' : 'replica';
  await progress(`taking an RDB snapshot from ${role} ${source.id} at ${source.ip}:${source.port}`, { backupId: id, source: source.id });
  const data = await rdbSnapshot({ host: source.ip, port: source.port, user: FRAMEWORK_USER, password: deps.secretOf(name), idleTimeoutMs: SNAPSHOT_IDLE_MS });
  const backup = await deps.storage.put(name, id, data);
  deps.log.info('backup stored', { instance: name, proc: source.id, agent: source.sid, backup: id, bytes: backup.bytes, sha256: backup.sha256 });
  await progress(`stored backup ${id}: ${backup.bytes} bytes, sha256 ${backup.sha256}`, { backupId: id, source: source.id, bytes: backup.bytes, sha256: backup.sha256 });
}

/**
 * The 'restore' operation, recorded when an instance is created with `restoreFrom`: the creator
 * seeds its first master from the backup (see launch-data.ts); this shows that in the status and
 * ends once the instance runs with the data.
 */
export function restoreHandler(store: FleetStore): OperationHandler {
  return {
    kind: 'restore',
    run: async (name, op, progress) => {
      const step = `seeding the master from backup ${String(op.params.from)} (the agent fetches it and checks its SHA-256)`;
      for (let i = 0; ; i++) {
        // Said again now and then: a term that ended meanwhile stops this loop (OperationAbandoned).
        if (i % RESTORE_RECHECK_TICKS === 0) await progress(step);
        const inst = store.instance(name);
        if (!inst || inst.status === InstanceStatus.Deleting || inst.status === InstanceStatus.Deleted) throw new Error(`instance '${name}' was deleted before its restore finished`);
        if (inst.status !== InstanceStatus.Creating) return;
        await sleep(200);
      }
    },
  };
}
