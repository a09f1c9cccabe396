import { ProcType, type Instance, type Proc } from '../domain/model.js';
import { runningReplicas } from '../domain/rules.js';
import type { MasterRule } from '../domain/services.js';

/** MrRedis v1 STATUS shapes: the same field names its clients parse. */
export interface V1Proc {
  IP: string;
  Port: string;
  MemoryCapacity: number;
  MemoryUsed: number;
  Uptime: number;
  ClientsConnected: number;
  LastSyncedToMaster: number;
}

export interface V1Status {
  Name: string;
  Type: string;
  Status: string;
  Capacity: number;
  Master: V1Proc | null;
  Slaves: V1Proc[];
}

export function v1Proc(p: Proc): V1Proc {
  return {
    IP: p.ip,
    Port: String(p.port),
    MemoryCapacity: p.capacity,
    MemoryUsed: p.stats?.usedMemory ?? p.memUsed,
    Uptime: p.stats?.uptime ?? 0,
    ClientsConnected: p.stats?.clients ?? 0,
    LastSyncedToMaster: p.stats?.lastIoSecondsAgo ?? 0,
  };
}

/**
 * Every view names the master the scheduler announces (`FleetService.announcedMaster`, the
 * failure detector's rule), so the API and the Sentinel endpoint name the same master, and the
 * running replicas of that master.
 */
export function v1Status(inst: Instance, rule: MasterRule): V1Status {
  return v1StatusWith(inst, rule(inst));
}

/** The v1 STATUS of an instance whose announced master is `master` (none: undefined). */
export function v1StatusWith(inst: Instance, master: Proc | undefined): V1Status {
  return {
    Name: inst.name,
    Type: inst.type,
    Status: inst.status,
    Capacity: inst.capacity,
    Master: master ? v1Proc(master) : null,
    Slaves: runningReplicas(inst, master).map(v1Proc),
  };
}

/** The JSON API's view of an instance; never carries a secret or its hash. */
export function instanceView(inst: Instance, rule: MasterRule, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const proc = (p: Proc) => ({
    id: p.id,
    role: p.type === ProcType.Master ? 'master' : 'replica',
    state: p.state,
    ip: p.ip,
    port: p.port,
    agent: p.sid,
    nodename: p.nodename,
    pid: p.pid,
    slaveOf: p.slaveOf,
    redisServer: p.redisServer ? { path: p.redisServer, version: p.redisVersion } : null,
    stats: p.stats ?? null,
  });
  const master = rule(inst);
  return {
    name: inst.name,
    type: inst.type,
    status: inst.status,
    reason: inst.reason,
    capacityMb: inst.capacity,
    replicas: inst.expSlaves,
    distribution: inst.dValue,
    placement: inst.placement,
    createdAt: inst.createdAt,
    expiresAt: inst.expiresAt || null,
    ttlRemainingSeconds: inst.expiresAt ? Math.max(0, Math.round((Date.parse(inst.expiresAt) - Date.now()) / 1000)) : null,
    epoch: inst.epoch,
    dataLost: inst.dataLost || null,
    persistence: inst.persistence,
    backup: inst.backupSchedule ?? null,
    restoredFrom: inst.restoreFrom || null,
    operation: inst.operation ?? null,
    failovers: [...inst.failovers].reverse(),
    redisServer: inst.redisServer || null,
    master: master ? proc(master) : null,
    slaves: runningReplicas(inst, master).map(proc),
    procs: inst.procs.map(proc),
    ...extra,
  };
}
