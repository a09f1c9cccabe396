import { parseOperation } from '../domain/operation.js';
import { isPersistence, parseBackupSchedule, type Persistence } from '../domain/backup.js';
import { parseSurge } from '../domain/surge.js';
import { parseFailovers } from '../domain/failover-record.js';
import { InstanceStatus, InstanceType, ProcState, ProcType, type Instance, type Proc, type ProcStats } from '../domain/model.js';

/** The Instance and Proc trees as read from etcd, where every value is a plain string. */

function int(value: string | undefined): number {
  const n = Number.parseInt(value ?? '', 10);
  return Number.isFinite(n) ? n : 0;
}

function parseStats(text: string | undefined): ProcStats | undefined {
  if (!text) return undefined;
  try {
    return JSON.parse(text) as ProcStats;
  } catch {
    return undefined;
  }
}

export function procFromFields(id: string, f: Map<string, string>): Proc {
  return {
    id,
    instance: f.get('Instance') ?? '',
    nodename: f.get('Nodename') ?? '',
    capacity: int(f.get('Capacity')),
    memUsed: int(f.get('MemUsed')),
    pid: int(f.get('Pid')),
    ip: f.get('IP') ?? '',
    port: int(f.get('Port')),
    state: (f.get('State') ?? ProcState.Staging) as ProcState,
    type: (f.get('Type') ?? ProcType.Replica) as ProcType,
    slaveOf: f.get('SlaveOf') ?? '',
    eid: f.get('EID') ?? '',
    sid: f.get('SID') ?? '',
    msg: f.get('Msg') ?? '',
    redisServer: f.get('RedisServer') ?? '',
    redisVersion: f.get('RedisVersion') ?? '',
    surge: f.get('Surge') ?? '',
    stats: parseStats(f.get('Stats')),
    ...(f.get('ShutdownAt') ? { shutdownAt: f.get('ShutdownAt') } : {}),
  };
}

export function instanceFromFields(
  name: string,
  f: Map<string, string>,
  procs: Map<string, Map<string, string>>,
  snames: Set<string>,
): Instance {
  return {
    name,
    type: (f.get('Type') ?? InstanceType.MasterReplica) as InstanceType,
    status: (f.get('Status') ?? InstanceStatus.Creating) as InstanceStatus,
    capacity: int(f.get('Capacity')),
    masters: int(f.get('Masters')),
    slaves: int(f.get('Slaves')),
    expMasters: int(f.get('ExpMasters')),
    expSlaves: int(f.get('ExpSlaves')),
    dValue: Math.max(1, int(f.get('DValue'))),
    mname: f.get('Mname') ?? '',
    snames: [...snames].sort(),
    reason: f.get('Reason') ?? '',
    placement: f.get('Placement') === 'binpack' ? 'binpack' : 'spread',
    createdAt: f.get('CreatedAt') ?? '',
    expiresAt: f.get('ExpiresAt') ?? '',
    deletedAt: f.get('DeletedAt') ?? '',
    epoch: int(f.get('Epoch')),
    dataLost: f.get('DataLost') ?? '',
    downAfterMs: int(f.get('DownAfter')),
    failoverTimeoutMs: int(f.get('FailoverTimeout')),
    minReplicasMaxLag: int(f.get('MinReplicasMaxLag')),
    passwordHash: f.get('PasswordHash') ?? '',
    accessKeyHash: f.get('AccessKeyHash') ?? '',
    creator: f.get('Creator') ?? '',
    maxClients: int(f.get('MaxClients')),
    persistence: persistenceOf(f.get('Persistence')),
    backupSchedule: parseBackupSchedule(f.get('BackupSchedule')),
    restoreFrom: f.get('RestoreFrom') ?? '',
    restoreSha256: f.get('RestoreSha256') ?? '',
    redisServer: f.get('RedisServer') ?? '',
    operation: parseOperation(f.get('Operation')),
    surges: parseSurge(f.get('Surge')),
    failovers: parseFailovers(f.get('Failovers')),
    procs: [...procs.entries()].map(([id, pf]) => procFromFields(id, pf)).sort((a, b) => a.id.localeCompare(b.id)),
  };
}

/** The Persistence key; 'none' for an instance from before the key (or a value that is not a mode). */
function persistenceOf(text: string | undefined): Persistence {
  return isPersistence(text) ? text : 'none';
}

/** REDFLEET_FROZEN_CACHE=1 (the tests): instances the cache shares are frozen, so a reader that changes one throws. */
const FROZEN = process.env.REDFLEET_FROZEN_CACHE === '1';

export function frozenWhenTesting<T>(value: T): T {
  return FROZEN ? deepFreeze(value) : value;
}

function deepFreeze<T>(value: T): T {
  if (value === null || typeof value !== 'object' || Object.isFrozen(value)) return value;
  for (const child of Object.values(value as object)) deepFreeze(child);
  return Object.freeze(value);
}
