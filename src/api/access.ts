import type { IncomingMessage } from 'node:http';
import { createHash, timingSafeEqual } from 'node:crypto';
import ipaddr from 'ipaddr.js';
import { InvalidInputError, UnauthenticatedError } from '../errors.js';
import type { FleetService } from '../domain/services.js';

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
export function principalOf(req: IncomingMessage, policy: AccessPolicy, fleet: Pick<FleetService, 'instanceWithAccessKey'>): Principal | undefined {
  const header = req.headers.authorization;
  if (header === undefined || header === '') {
    if (policy.anonymous) return { kind: 'anonymous' };
    return policy.adminTokens.length === 0 ? { kind: 'admin' } : undefined;
  }
  const token = header.startsWith('Bearer ') ? header.slice(7).trim() : '';
  if (!token) throw new UnauthenticatedError('Authorization must be "Bearer <token>"');
  if (policy.adminTokens.some((t) => sameToken(t, token))) return { kind: 'admin' };
  const name = fleet.instanceWithAccessKey(token);
  if (name) return { kind: 'instance', name };
  throw new UnauthenticatedError('the token matches no admin token and no instance access key');
}

/** Compares two tokens in constant time, whatever their lengths: their SHA-256 digests are compared. */
function sameToken(a: string, b: string): boolean {
  const digest = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();
  return timingSafeEqual(digest(a), digest(b));
}

/**
 * The client address: the socket peer, or X-Forwarded-For's nearest untrusted hop behind a
 * trusted proxy. A forwarded hop that is not an IP address is refused (400): it was either
 * forged past the proxy or the proxy is misconfigured, and as a quota key any free text would
 * give its sender a fresh quota per string.
 */
export function clientAddress(req: IncomingMessage, trustedProxies: Set<string>): string {
  const peer = normalize(req.socket.remoteAddress ?? '');
  if (!trustedProxies.has(peer)) return peer;
  const header = req.headers['x-forwarded-for'];
  const forwarded = (Array.isArray(header) ? header.join(',') : header ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  for (let i = forwarded.length - 1; i >= 0; i--) {
    const hop = parseAddress(forwarded[i]);
    if (!hop) throw new InvalidInputError('INVALID_FORWARDED_FOR', 'X-Forwarded-For', `X-Forwarded-For holds '${forwarded[i].slice(0, 64)}', which is not an IP address`);
    if (!trustedProxies.has(hop)) return hop;
  }
  return peer;
}

/**
 * The anonymous quota's key for an address: an IPv4 address counts alone, an IPv6 address
 * counts with its whole /64 (one host or one customer usually holds a /64 and can pick any
 * address inside it). IPv4-mapped IPv6 counts as the IPv4 address. Text that is no address
 * is its own key, so an old Creator value still counts against something.
 */
export function quotaKey(address: string): string {
  const text = parseAddress(address);
  if (!text) return address;
  const ip = ipaddr.parse(text);
  if (ip.kind() === 'ipv4') return text;
  const parts = (ip as ipaddr.IPv6).parts.slice(0, 4);
  return `${new ipaddr.IPv6([...parts, 0, 0, 0, 0]).toString()}/64`;
}

/**
 * An IP address in canonical text (IPv4-mapped IPv6 as IPv4), or undefined. IPv4 must be four
 * decimal parts: ipaddr.js would also take `0x7f.1`, which no proxy writes.
 */
export function parseAddress(text: string): string | undefined {
  const bare = text.trim();
  if (ipaddr.IPv4.isValidFourPartDecimal(bare)) return ipaddr.IPv4.parse(bare).toString();
  if (!ipaddr.IPv6.isValid(bare) || bare.includes('%')) return undefined;
  const v6 = ipaddr.IPv6.parse(bare);
  return v6.isIPv4MappedAddress() ? v6.toIPv4Address().toString() : v6.toString();
}

function normalize(address: string): string {
  return parseAddress(address) ?? address;
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
