import { ProcType, type Instance, type Proc } from '../domain/model.js';
import { announcedMaster, runningReplicas } from '../domain/rules.js';

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

function v1Proc(p: Proc): V1Proc {
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
 * Which proc of an instance is announced as its master. The scheduler passes its failure
 * detector's rule (`Failover.announced`), so the API and the Sentinel endpoint name the same
 * master; without one, only a running Mname proc is named.
 */
export type MasterRule = (inst: Instance) => Proc | undefined;

/** The master clients should use; exactly what the Sentinel endpoint answers. */
export function masterOf(inst: Instance, rule: MasterRule = announcedMaster): Proc | undefined {
  return rule(inst);
}

export function replicasOf(inst: Instance, rule: MasterRule = announcedMaster): Proc[] {
  const master = masterOf(inst, rule);
  return runningReplicas(inst, master);
}

export function v1Status(inst: Instance, rule: MasterRule = announcedMaster): V1Status {
  const master = masterOf(inst, rule);
  return {
    Name: inst.name,
    Type: inst.type,
    Status: inst.status,
    Capacity: inst.capacity,
    Master: master ? v1Proc(master) : null,
    Slaves: replicasOf(inst, rule).map(v1Proc),
  };
}

/** The JSON API's view of an instance; never carries a secret or its hash. */
export function instanceView(inst: Instance, extra: Record<string, unknown> = {}, rule: MasterRule = announcedMaster): Record<string, unknown> {
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
    stats: p.stats ?? null,
  });
  const master = masterOf(inst, rule);
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
    master: master ? proc(master) : null,
    slaves: replicasOf(inst, rule).map(proc),
    procs: inst.procs.map(proc),
    ...extra,
  };
}
