import { resolve } from 'node:path';
import { loadFleetKey, previousFleetKeyPath } from '../store/secrets.js';

/** The previous fleet key during a rotation (--previous-fleet-key or REDFLEET_PREVIOUS_FLEET_KEY), if any. */
export function previousFleetKey(flag: unknown): string | undefined {
  const path = typeof flag === 'string' ? flag : previousFleetKeyPath();
  return path ? loadFleetKey(resolve(path), false).key : undefined;
}
