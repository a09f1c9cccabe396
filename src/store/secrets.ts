import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync, existsSync, chmodSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/** The name of the Redis user that replication and the agents use; tenants never see its secret. */
export const FRAMEWORK_USER = 'redfleet';

/** 32 random bytes, URL-safe: the tenant password, shown once and never stored. */
export function generatePassword(): string {
  return randomBytes(32).toString('base64url');
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/**
 * The framework user's secret for one instance, derived from the fleet key, so the scheduler
 * and every agent agree on it without it ever being written to etcd or sent on the wire.
 */
export function frameworkSecret(fleetKey: string, instance: string): string {
  return createHmac('sha256', fleetKey).update(`framework-user:${instance}`).digest('base64url');
}

/** What an agent presents to the scheduler: proof that it holds the fleet key, bound to its id. */
export function agentToken(fleetKey: string, agentId: string): string {
  return createHmac('sha256', fleetKey).update(`agent:${agentId}`).digest('base64url');
}

/** Compares two secrets in constant time (for equal lengths). */
export function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export function defaultFleetKeyPath(): string {
  return process.env.REDFLEET_FLEET_KEY ?? resolve('.redfleet', 'fleet.key');
}

/** Reads the fleet key; creates one (mode 0600) when `create` is set and the file is missing. */
export function loadFleetKey(path: string, create: boolean): { key: string; created: boolean } {
  if (existsSync(path)) {
    const key = readFileSync(path, 'utf8').trim();
    if (key.length < 16) throw new Error(`fleet key file ${path} is too short; delete it or put 32+ random bytes in it`);
    return { key, created: false };
  }
  if (!create) throw new Error(`fleet key file ${path} not found; copy the scheduler's fleet key here or pass --fleet-key`);
  mkdirSync(dirname(path), { recursive: true });
  const key = randomBytes(32).toString('base64url');
  writeFileSync(path, `${key}\n`, { mode: 0o600 });
  chmodSync(path, 0o600);
  return { key, created: true };
}
