import { InstanceStatus, ProcType, type Instance } from '../domain/model.js';
import type { NewProc } from '../store/fleet-store.js';
import type { redfleet } from '../proto/redfleet.js';
import type { Need } from './need.js';

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
