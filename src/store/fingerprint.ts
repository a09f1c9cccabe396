import { createHmac } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { Etcd3 } from 'etcd3';
import { FleetKeyError } from '../errors.js';
import { Keys } from './keys.js';
import { loadFleetKey, sameSecret } from './secrets.js';

/**
 * What the fingerprint is an HMAC of. Versioned, so a later scheme can sit beside this one; the
 * fingerprint proves which key a fleet uses without ever letting etcd readers learn the key.
 */
const FINGERPRINT_LABEL = 'redfleet fleet-key fingerprint v1';

/** HMAC-SHA256(fleet key, a fixed label), hex: stored at `<prefix>/Config/FleetKeyFingerprint`. */
export function fleetKeyFingerprint(fleetKey: string): string {
  return createHmac('sha256', fleetKey).update(FINGERPRINT_LABEL).digest('hex');
}

/** The fingerprint etcd holds, or undefined for a fleet whose scheduler never started. */
export async function storedFingerprint(etcd: Etcd3, prefix: string): Promise<string | undefined> {
  return (await etcd.get(new Keys(prefix).config('FleetKeyFingerprint')).string()) ?? undefined;
}

/**
 * The scheduler's fleet key from its file. A missing file is created only for a fresh fleet
 * (no fingerprint in etcd): inventing a key for a fleet that has one would start a scheduler
 * that every agent refuses.
 */
export async function loadSchedulerFleetKey(etcd: Etcd3, prefix: string, path: string): Promise<{ key: string; created: boolean }> {
  if (existsSync(path)) return loadFleetKey(path, false);
  if (await storedFingerprint(etcd, prefix)) {
    throw new FleetKeyError(
      'FLEET_KEY_MISSING',
      `no fleet key at ${path}, but this fleet already has one (its fingerprint is in etcd at ${new Keys(prefix).config('FleetKeyFingerprint')}); ` +
        `copy the fleet key file of this fleet's other schedulers or agents (their --fleet-key file) to ${path}, or pass --fleet-key FILE`,
    );
  }
  return loadFleetKey(path, true);
}

export type FingerprintOutcome = 'written' | 'matched' | 'rotated';

/**
 * Checks the fleet key against etcd's fingerprint before the scheduler campaigns. A fresh fleet
 * gets the fingerprint written (create-if-absent, so two first starts cannot both win). A match
 * of `previousKey` (during a key rotation) is accepted and replaced by the current key's.
 * Anything else throws FleetKeyError: a scheduler with a foreign key must never lead, since it
 * would refuse every agent and write off every proc.
 */
export async function verifyFleetKey(etcd: Etcd3, prefix: string, fleetKey: string, previousKey?: string): Promise<FingerprintOutcome> {
  const key = new Keys(prefix).config('FleetKeyFingerprint');
  const mine = fleetKeyFingerprint(fleetKey);
  const res = await etcd.if(key, 'Version', '==', 0).then(etcd.put(key).value(mine)).else(etcd.get(key)).commit();
  if (res.succeeded) return 'written';
  const stored = res.responses[0]?.response_range?.kvs[0]?.value.toString() ?? '';
  if (sameSecret(stored, mine)) return 'matched';
  if (previousKey && sameSecret(stored, fleetKeyFingerprint(previousKey))) {
    const swap = await etcd.if(key, 'Value', '==', stored).then(etcd.put(key).value(mine)).commit();
    if (swap.succeeded) return 'rotated';
    return verifyFleetKey(etcd, prefix, fleetKey, previousKey);
  }
  throw new FleetKeyError(
    'FLEET_KEY_MISMATCH',
    `this scheduler's fleet key does not match the fleet's (fingerprint at ${key}); it would refuse every agent, so it will not campaign. ` +
      'Start it with the fleet key file the other schedulers and agents use (--fleet-key FILE).',
  );
}
