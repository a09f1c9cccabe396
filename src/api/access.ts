import type { IncomingMessage } from 'node:http';
import { UnauthenticatedError } from '../errors.js';
import { sameSecret, sha256Hex } from '../store/secrets.js';
import type { FleetStore } from '../store/fleet-store.js';

/** Limits for instances created without a token (getaredis's defaults). */
export interface AnonymousPolicy {
  ttlSeconds: number;
  maxCapacityMb: number;
  maxReplicas: number;
  maxClients: number;
  perClient: number;
}

export const DEFAULT_ANONYMOUS: AnonymousPolicy = {
  ttlSeconds: 12 * 3600,
  maxCapacityMb: 64,
  maxReplicas: 2,
  maxClients: 50,
  perClient: 6,
};

export interface AccessPolicy {
  /** Admin tokens; none means open mode (every caller is admin, the API listens on loopback only). */
  adminTokens: string[];
  /** Set when anonymous creates are allowed. */
  anonymous?: AnonymousPolicy;
  /** Peers whose X-Forwarded-For is believed. */
  trustedProxies: Set<string>;
}

export type Principal =
  | { kind: 'admin' }
  | { kind: 'instance'; name: string }
  | { kind: 'anonymous' };

/**
 * Who is calling: an admin token, an instance's access key, or nobody. An instance key is
 * recognised by its SHA-256, which is all etcd keeps of it.
 */
export function principalOf(req: IncomingMessage, policy: AccessPolicy, store: FleetStore): Principal | undefined {
  const header = req.headers.authorization;
  if (header === undefined || header === '') {
    if (policy.anonymous) return { kind: 'anonymous' };
    return policy.adminTokens.length === 0 ? { kind: 'admin' } : undefined;
  }
  const token = header.startsWith('Bearer ') ? header.slice(7).trim() : '';
  if (!token) throw new UnauthenticatedError('Authorization must be "Bearer <token>"');
  if (policy.adminTokens.some((t) => sameSecret(t, token))) return { kind: 'admin' };
  const hash = sha256Hex(token);
  // Every request with a token lands here: look at one field, do not build every instance.
  const name = store.instanceWhere('AccessKeyHash', (stored) => sameSecret(stored, hash));
  if (name) return { kind: 'instance', name };
  throw new UnauthenticatedError('the token matches no admin token and no instance access key');
}

/** The client's address: the socket peer, or X-Forwarded-For's nearest untrusted hop behind a trusted proxy. */
export function clientAddress(req: IncomingMessage, trustedProxies: Set<string>): string {
  const peer = normalize(req.socket.remoteAddress ?? '');
  if (!trustedProxies.has(peer)) return peer;
  const forwarded = String(req.headers['x-forwarded-for'] ?? '').split(',').map((s) => normalize(s.trim())).filter(Boolean);
  for (let i = forwarded.length - 1; i >= 0; i--) {
    if (!trustedProxies.has(forwarded[i])) return forwarded[i];
  }
  return peer;
}

function normalize(address: string): string {
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}

/**
 * Runs anonymous creates from one address one at a time, so that two concurrent requests cannot
 * both take the last slot of a quota.
 */
export class PerClientLock {
  private readonly tails = new Map<string, Promise<unknown>>();

  async run<T>(client: string, job: () => Promise<T>): Promise<T> {
    const before = this.tails.get(client) ?? Promise.resolve();
    const mine = before.catch(() => undefined).then(job);
    this.tails.set(client, mine);
    try {
      return await mine;
    } finally {
      if (this.tails.get(client) === mine) this.tails.delete(client);
    }
  }
}
