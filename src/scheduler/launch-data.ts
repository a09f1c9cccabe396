import { InstanceStatus, ProcType, type Instance } from '../domain/model.js';
import type { NewProc } from '../store/fleet-store.js';
import type { redfleet } from '../proto/redfleet.js';
import { pb } from '../proto/messages.js';
import type { Need } from './need.js';
import type { TaskLaunch } from './offers.js';

/** Seconds a master accepts writes without hearing from a replica (min-replicas-max-lag). */
const DEFAULT_MIN_REPLICAS_MAX_LAG = 3;

export type LaunchData = Pick<redfleet.v1.IRedisLaunch, 'persistence' | 'restore_backup' | 'restore_sha256' | 'reuse_dir_of'>;

/**
 * The RedisLaunch fields about a proc's data (issue 9 part 6): its persistence; for a master
 * restarted in place, the dead master whose kept directory it takes over; for the first master of
 * an instance created with `restoreFrom`, the backup it is seeded from and that backup's SHA-256
 * (checked at create, checked again by the agent). Replicas start empty and sync from the master.
 */
export function launchData(inst: Instance, p: NewProc, need: Need): LaunchData {
  const data: LaunchData = {};
  if (inst.persistence !== 'none') data.persistence = inst.persistence;
  if (p.type !== ProcType.Master) return data;
  if (need.inPlace) data.reuse_dir_of = need.inPlace.id;
  // Only while the instance is being created: a later empty restart does not go back to the backup.
  if (inst.restoreFrom && inst.restoreSha256 && inst.status === InstanceStatus.Creating) {
    data.restore_backup = inst.restoreFrom;
    data.restore_sha256 = inst.restoreSha256;
  }
  return data;
}

/** The LAUNCH of one placed proc: its resources and the RedisLaunch its agent starts it from. */
export function launchOf(inst: Instance, p: NewProc, master: { ip: string; port: number }, cpus: number, data: LaunchData): TaskLaunch {
  const replica = p.type === ProcType.Replica;
  return {
    taskId: p.id,
    name: `redis ${inst.name} ${replica ? 'replica' : 'master'}`,
    resources: { cpus, mem: p.capacity, ports: [{ begin: p.port, end: p.port }] },
    data: pb.RedisLaunch.encode({
      instance: inst.name,
      proc_id: p.id,
      role: replica ? pb.RedisLaunch.Role.SLAVE : pb.RedisLaunch.Role.MASTER,
      port: p.port,
      capacity_mb: p.capacity,
      master_ip: replica ? master.ip : undefined,
      master_port: replica ? master.port : undefined,
      password_sha256: inst.passwordHash,
      min_replicas_to_write: inst.expSlaves > 0 ? 1 : 0,
      min_replicas_max_lag: inst.minReplicasMaxLag || DEFAULT_MIN_REPLICAS_MAX_LAG,
      max_clients: inst.maxClients || undefined,
      ...data,
      redis_server: p.redisServer || undefined,
    }).finish(),
  };
}
