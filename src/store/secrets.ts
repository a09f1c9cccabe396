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

/**
 * The key the framework-user secrets derive from: the previous fleet key while a rotation is in
 * progress, so that redis-servers already running keep the secret they were started with and the
 * scheduler and replicas still reach them (docs/hardening/session.md: rotation and its limits).
 */
export function dataKey(fleetKey: string, previousFleetKey?: string): string {
  return previousFleetKey || fleetKey;
}

/** A random single-use value (nonce) or bearer token, URL-safe. */
export function randomToken(bytes = 24): string {
  return randomBytes(bytes).toString('base64url');
}

/**
 * What an agent signs to SUBSCRIBE: its id, the scheduler's single-use nonce, its own nonce and
 * the SHA-256 (hex) of the body, under the fleet key. The nonce makes a captured SUBSCRIBE
 * worthless; the body hash binds the signed headers to the body read after they are checked.
 */
export function subscribeSignature(fleetKey: string, agentId: string, serverNonce: string, clientNonce: string, bodySha256: string): string {
  return createHmac('sha256', fleetKey).update(`subscribe|${agentId}|${serverNonce}|${clientNonce}|${bodySha256}`).digest('base64url');
}

/** The scheduler's answer in SUBSCRIBED: proof that it holds the fleet key the agent used, bound to this session. */
export function schedulerProof(fleetKey: string, agentId: string, clientNonce: string, serverNonce: string, session: string): Buffer {
  return createHmac('sha256', fleetKey).update(`scheduler|${agentId}|${clientNonce}|${serverNonce}|${session}`).digest();
}

/** The key that signs every event frame of one session; both ends derive it, it never travels. */
export function eventKey(fleetKey: string, agentId: string, clientNonce: string, serverNonce: string, session: string): Buffer {
  return createHmac('sha256', fleetKey).update(`events|${agentId}|${clientNonce}|${serverNonce}|${session}`).digest();
}

/** Compares two secrets in constant time (for equal lengths). */
export function sameSecret(a: string | Uint8Array, b: string | Uint8Array): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The previous fleet key's file during a rotation (--previous-fleet-key), if one is set. */
export function previousFleetKeyPath(): string | undefined {
  return process.env.REDFLEET_PREVIOUS_FLEET_KEY || undefined;
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
