import type { Socket } from 'node:net';
import ipaddr from 'ipaddr.js';
import type { Logger } from '../logger.js';
import { encode, type RespValue } from './resp.js';
import type { Glob } from './glob.js';

/** Past this much unread output a client is too slow to keep: it is disconnected. */
const MAX_PENDING_OUTPUT = 1024 * 1024;
/** After a protocol error the reply gets this long to leave before the socket is destroyed. */
const CLOSE_GRACE_MS = 1000;
/** A kind of refusal is logged as a warning at most this often. */
const REFUSAL_WARN_INTERVAL_MS = 60_000;

/** One connection to the Sentinel endpoint and what it has set up. */
export interface Client {
  id: number;
  socket: Socket;
  /** The connection-limit bucket: the IPv4 address, or the IPv6 /64. */
  address: string;
  resp3: boolean;
  name: string;
  authenticated: boolean;
  channels: Set<string>;
  patterns: Map<string, Glob>;
}

/** Writes replies, or disconnects a client whose unread output is over MAX_PENDING_OUTPUT. */
export function writeReplies(client: Client, replies: RespValue | RespValue[]): void {
  const list = Array.isArray(replies) ? replies : [replies];
  if (client.socket.writableLength > MAX_PENDING_OUTPUT) {
    client.socket.destroy();
    return;
  }
  client.socket.write(list.map((r) => encode(r, client.resp3)).join(''));
}

/** Sends a last reply and closes; whatever the client still sends is no longer read. */
export function closeWith(socket: Socket, reply: RespValue): void {
  socket.removeAllListeners('data');
  socket.pause();
  socket.end(encode(reply, false));
  setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref();
}

/**
 * Logs refused clients. Each kind is a warning at most once a minute and debug otherwise, so
 * that an operator sees limits being hit but an attacker cannot flood the log.
 */
export class RefusalLog {
  private readonly lastWarned = new Map<string, number>();

  constructor(private readonly log: Logger) {}

  refused(what: string, fields: Record<string, unknown>): void {
    const now = Date.now();
    const last = this.lastWarned.get(what);
    const warn = last === undefined || now - last >= REFUSAL_WARN_INTERVAL_MS;
    if (warn) this.lastWarned.set(what, now);
    this.log.log(warn ? 'warn' : 'debug', `sentinel endpoint: ${what}`, fields);
  }
}

/**
 * The bucket a connection counts against: an IPv4 address (IPv4-mapped IPv6 included), or an
 * IPv6 /64, since one IPv6 host usually holds a whole /64.
 */
export function addressBucket(remote: string | undefined): string {
  if (!remote || !ipaddr.isValid(remote)) return remote ?? 'unknown';
  const addr = ipaddr.process(remote);
  if (addr.kind() === 'ipv4') return addr.toString();
  const parts = (addr as ipaddr.IPv6).parts.slice(0, 4);
  return `${parts.map((p) => p.toString(16)).join(':')}::/64`;
}
