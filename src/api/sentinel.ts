import { createServer, type Server, type Socket } from 'node:net';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import ipaddr from 'ipaddr.js';
import type { Logger } from '../logger.js';
import { ProtocolError } from '../errors.js';
import { RespParser, array, bulk, bulks, encode, error, int, map, push, simple, type RespValue } from './resp.js';
import { Glob, MAX_PATTERN_BYTES } from './glob.js';

/** One instance as a Sentinel "master". */
export interface SentinelMaster {
  name: string;
  ip: string;
  port: number;
  runid: string;
  flags: string[];
  lastPingSentMs: number;
  lastOkPingReplyMs: number;
  downAfterMs: number;
  failoverTimeoutMs: number;
  configEpoch: number;
  numSlaves: number;
}

export interface SentinelReplica {
  ip: string;
  port: number;
  runid: string;
  flags: string[];
  masterLinkStatus: string;
  masterLinkDownMs: number;
  masterHost: string;
  masterPort: number;
  priority: number;
  offset: number;
}

/**
 * What the endpoint serves. `events` emits ('event', channel, message) for every failover event
 * that Sentinel would publish: +sdown, +odown, +try-failover, +selected-slave,
 * +promoted-slave, +switch-master, +failover-end, -sdown, -odown and so on.
 */
export interface SentinelSource {
  myid: string;
  masters(): SentinelMaster[];
  master(name: string): SentinelMaster | undefined;
  replicas(name: string): SentinelReplica[];
  events: EventEmitter;
}

/** Past this much unread output a client is too slow to keep: it is disconnected. */
const MAX_PENDING_OUTPUT = 1024 * 1024;
/** After a protocol error the reply gets this long to leave before the socket is destroyed. */
const CLOSE_GRACE_MS = 1000;
/** A kind of refusal is logged as a warning at most this often. */
const REFUSAL_WARN_INTERVAL_MS = 60_000;

/** Limits of the endpoint; see docs/hardening/sentinel.md for why these defaults. */
export interface SentinelEndpointOptions {
  /** Connections the endpoint holds at once (default 10,000). */
  maxClients?: number;
  /** Connections from one IPv4 address or one IPv6 /64 (default 1,000). */
  maxClientsPerAddress?: number;
  /** A connection that sent nothing for this long is closed unless it is subscribed; 0 = never (default 300 s). */
  idleTimeoutMs?: number;
  /** When set, every command but AUTH, HELLO, QUIT and RESET needs AUTH first, as with Sentinel's requirepass. */
  password?: string;
  /** Channels, and separately patterns, one client may subscribe to (default 64 each). */
  maxSubscriptions?: number;
}

export const SENTINEL_DEFAULTS = {
  maxClients: 10_000,
  maxClientsPerAddress: 1_000,
  idleTimeoutMs: 300_000,
  maxSubscriptions: 64,
} as const;

/** Commands a client may send before it has authenticated. */
const BEFORE_AUTH = new Set(['AUTH', 'HELLO', 'QUIT', 'RESET']);

interface Client {
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

/**
 * The Sentinel-compatible endpoint: enough of the Sentinel protocol that any Sentinel-aware
 * client finds an instance's current master by its name and follows failovers.
 *
 * Anyone who can reach the port can talk to it, so nothing a client sends may cost the
 * scheduler more than a bounded amount of time or memory (issue 7, A1-A3): globs are matched
 * in linear-ish time, requests are parsed incrementally and capped, and connections are capped
 * per endpoint and per address and closed when idle.
 */
export class SentinelEndpoint {
  private readonly server: Server;
  private readonly clients = new Set<Client>();
  private readonly perAddress = new Map<string, number>();
  private readonly lastWarned = new Map<string, number>();
  private nextId = 1;
  private readonly onEvent = (channel: string, message: string) => this.publish(channel, message);
  private readonly limits: Required<Omit<SentinelEndpointOptions, 'password'>>;
  private readonly passwordDigest?: Buffer;

  constructor(private readonly source: SentinelSource, private readonly log: Logger, opts: SentinelEndpointOptions = {}) {
    this.limits = {
      maxClients: opts.maxClients ?? SENTINEL_DEFAULTS.maxClients,
      maxClientsPerAddress: opts.maxClientsPerAddress ?? SENTINEL_DEFAULTS.maxClientsPerAddress,
      idleTimeoutMs: opts.idleTimeoutMs ?? SENTINEL_DEFAULTS.idleTimeoutMs,
      maxSubscriptions: opts.maxSubscriptions ?? SENTINEL_DEFAULTS.maxSubscriptions,
    };
    if (opts.password) this.passwordDigest = digest(opts.password);
    this.server = createServer((socket) => this.accept(socket));
    source.events.on('event', this.onEvent);
  }

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        const addr = this.server.address();
        resolve(typeof addr === 'object' && addr ? addr.port : port);
      });
    });
  }

  async close(): Promise<void> {
    this.source.events.off('event', this.onEvent);
    for (const c of this.clients) c.socket.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private accept(socket: Socket): void {
    const address = addressBucket(socket.remoteAddress);
    const fromAddress = this.perAddress.get(address) ?? 0;
    if (this.clients.size >= this.limits.maxClients || fromAddress >= this.limits.maxClientsPerAddress) {
      this.refusal('connection refused: max number of clients reached', { address, clients: this.clients.size, fromAddress });
      socket.on('error', () => undefined);
      this.closeWith(socket, error('ERR max number of clients reached'));
      return;
    }
    const client: Client = {
      id: this.nextId++, socket, address, resp3: false, name: '', authenticated: !this.passwordDigest, channels: new Set(), patterns: new Map(),
    };
    this.clients.add(client);
    this.perAddress.set(address, fromAddress + 1);
    socket.setNoDelay(true);
    if (this.limits.idleTimeoutMs > 0) socket.setTimeout(this.limits.idleTimeoutMs);
    socket.on('timeout', () => this.idle(client));
    const parser = new RespParser();
    socket.on('data', (chunk: Buffer) => {
      let commands: string[][];
      try {
        commands = parser.push(chunk);
      } catch (err) {
        const message = err instanceof ProtocolError ? err.message : 'protocol error';
        this.refusal('protocol error: connection closed', { address, client: client.id, error: message });
        this.closeWith(socket, error(`ERR Protocol error: ${message}`));
        return;
      }
      for (const args of commands) {
        if (socket.destroyed) return;
        this.write(client, this.dispatch(client, args));
        if (args[0].toUpperCase() === 'QUIT') socket.end();
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => this.forget(client));
  }

  /**
   * Logs a refused client. Each kind is a warning at most once a minute and debug otherwise, so
   * that an operator sees limits being hit but an attacker cannot flood the log.
   */
  private refusal(what: string, fields: Record<string, unknown>): void {
    const now = Date.now();
    const last = this.lastWarned.get(what);
    const warn = last === undefined || now - last >= REFUSAL_WARN_INTERVAL_MS;
    if (warn) this.lastWarned.set(what, now);
    this.log.log(warn ? 'warn' : 'debug', `sentinel endpoint: ${what}`, fields);
  }

  /** Sends a last reply and closes; whatever the client still sends is no longer read. */
  private closeWith(socket: Socket, reply: RespValue): void {
    socket.removeAllListeners('data');
    socket.pause();
    socket.end(encode(reply, false));
    setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref();
  }

  /** Socket timeout: only activity-free, unsubscribed connections are closed. */
  private idle(client: Client): void {
    if (client.channels.size + client.patterns.size > 0) {
      client.socket.setTimeout(this.limits.idleTimeoutMs);
      return;
    }
    client.socket.destroy();
  }

  private forget(client: Client): void {
    if (!this.clients.delete(client)) return;
    const left = (this.perAddress.get(client.address) ?? 1) - 1;
    if (left > 0) this.perAddress.set(client.address, left);
    else this.perAddress.delete(client.address);
  }

  private write(client: Client, replies: RespValue | RespValue[]): void {
    const list = Array.isArray(replies) ? replies : [replies];
    if (client.socket.writableLength > MAX_PENDING_OUTPUT) {
      client.socket.destroy();
      return;
    }
    client.socket.write(list.map((r) => encode(r, client.resp3)).join(''));
  }

  private dispatch(client: Client, args: string[]): RespValue | RespValue[] {
    const cmd = args[0].toUpperCase();
    if (!client.authenticated && !BEFORE_AUTH.has(cmd)) return error('NOAUTH Authentication required.');
    const subscribed = client.channels.size + client.patterns.size > 0;
    if (subscribed && !client.resp3 && !['SUBSCRIBE', 'PSUBSCRIBE', 'UNSUBSCRIBE', 'PUNSUBSCRIBE', 'PING', 'QUIT', 'RESET'].includes(cmd)) {
      return error(`ERR Can't execute '${args[0].toLowerCase()}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context`);
    }
    switch (cmd) {
      case 'PING':
        if (subscribed && !client.resp3) return bulks(['pong', args[1] ?? '']);
        return args[1] === undefined ? simple('PONG') : bulk(args[1]);
      case 'QUIT':
        return simple('OK');
      case 'AUTH':
        if (args.length !== 2 && args.length !== 3) return this.arity(cmd);
        return this.authenticate(client, args.length === 3 ? args[1] : 'default', args[args.length - 1]) ?? simple('OK');
      case 'HELLO':
        return this.hello(client, args);
      case 'CLIENT':
        return this.clientCommand(client, args);
      case 'ROLE':
        return array([bulk('sentinel'), bulks(this.source.masters().map((m) => m.name))]);
      case 'INFO':
        return bulk(this.info());
      case 'COMMAND':
        return array([]);
      case 'SENTINEL':
        return this.sentinel(args);
      case 'SUBSCRIBE':
      case 'PSUBSCRIBE':
        return this.subscribe(client, cmd === 'PSUBSCRIBE', args.slice(1));
      case 'UNSUBSCRIBE':
      case 'PUNSUBSCRIBE':
        return this.unsubscribe(client, cmd === 'PUNSUBSCRIBE', args.slice(1));
      case 'RESET':
        client.channels.clear();
        client.patterns.clear();
        client.resp3 = false;
        // As in Redis, RESET leaves the connection as the default user, who needs the password.
        client.authenticated = !this.passwordDigest;
        return simple('RESET');
      default:
        return error(`ERR unknown command '${args[0].slice(0, 64)}', with args beginning with: ${args.slice(1, 4).map((a) => `'${a.slice(0, 32)}'`).join(' ')}`);
    }
  }

  private arity(cmd: string): RespValue {
    return error(`ERR wrong number of arguments for '${cmd.toLowerCase()}' command`);
  }

  /**
   * Checks AUTH's user and password: an error reply, or undefined when they are right. Without
   * a configured password any AUTH succeeds, so clients configured with one keep working.
   */
  private authenticate(client: Client, user: string, password: string): RespValue | undefined {
    if (!this.passwordDigest) return undefined;
    // Both digests are 32 bytes, so the comparison takes the same time whatever was sent.
    const passwordOk = timingSafeEqual(digest(password), this.passwordDigest);
    if (!passwordOk || user !== 'default') {
      this.refusal('wrong password', { address: client.address, client: client.id });
      return error('WRONGPASS invalid username-password pair or user is disabled.');
    }
    client.authenticated = true;
    return undefined;
  }

  private hello(client: Client, args: string[]): RespValue {
    if (args[1] !== undefined && args[1] !== '2' && args[1] !== '3') return error('NOPROTO unsupported protocol version');
    let name: string | undefined;
    let credentials: [string, string] | undefined;
    for (let i = 2; i < args.length; i++) {
      const opt = args[i].toUpperCase();
      if (opt === 'AUTH' && i + 2 < args.length) {
        credentials = [args[i + 1], args[i + 2]];
        i += 2;
      } else if (opt === 'SETNAME' && i + 1 < args.length) {
        name = args[++i];
      } else {
        return error(`ERR Syntax error in HELLO option '${args[i].slice(0, 32)}'`);
      }
    }
    if (credentials) {
      const refused = this.authenticate(client, credentials[0], credentials[1]);
      if (refused) return refused;
    }
    if (!client.authenticated) return error('NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time');
    if (args[1] !== undefined) client.resp3 = args[1] === '3';
    if (name !== undefined) client.name = name;
    return map([
      ['server', bulk('redis')],
      ['version', bulk('7.0.15')],
      ['proto', int(client.resp3 ? 3 : 2)],
      ['id', int(client.id)],
      ['mode', bulk('sentinel')],
      ['role', bulk('sentinel')],
      ['modules', array([])],
    ]);
  }

  private clientCommand(client: Client, args: string[]): RespValue {
    const sub = (args[1] ?? '').toUpperCase();
    switch (sub) {
      case 'SETNAME':
        if (args.length !== 3) return this.arity('client|setname');
        client.name = args[2];
        return simple('OK');
      case 'SETINFO':
        return args.length === 4 ? simple('OK') : this.arity('client|setinfo');
      case 'GETNAME':
        return bulk(client.name || null);
      case 'ID':
        return int(client.id);
      case 'INFO':
        return bulk(`id=${client.id} addr=${client.socket.remoteAddress}:${client.socket.remotePort} name=${client.name} resp=${client.resp3 ? 3 : 2}\n`);
      default:
        return error(`ERR unknown subcommand '${(args[1] ?? '').slice(0, 32)}'. Try CLIENT HELP.`);
    }
  }

  private info(): string {
    const masters = this.source.masters();
    const lines = [
      '# Server',
      'redis_version:7.0.15',
      'redis_mode:sentinel',
      `run_id:${this.source.myid}`,
      '',
      '# Sentinel',
      `sentinel_masters:${masters.length}`,
      'sentinel_tilt:0',
      'sentinel_running_scripts:0',
      'sentinel_scripts_queue_length:0',
      ...masters.map((m, i) => `master${i}:name=${m.name},status=${m.flags.includes('o_down') ? 'odown' : m.flags.includes('s_down') ? 'sdown' : 'ok'},address=${m.ip}:${m.port},slaves=${m.numSlaves},sentinels=1`),
    ];
    return `${lines.join('\r\n')}\r\n`;
  }

  private sentinel(args: string[]): RespValue {
    const sub = (args[1] ?? '').toLowerCase();
    const name = args[2];
    switch (sub) {
      case 'get-master-addr-by-name': {
        if (args.length !== 3) return this.arity('sentinel|get-master-addr-by-name');
        const m = this.source.master(name);
        return m ? bulks([m.ip, String(m.port)]) : array(null);
      }
      case 'masters':
        return array(this.source.masters().map((m) => this.masterReply(m)));
      case 'master': {
        const m = name === undefined ? undefined : this.source.master(name);
        return m ? this.masterReply(m) : error('ERR No such master with that name');
      }
      case 'replicas':
      case 'slaves': {
        if (name === undefined || !this.source.master(name)) return error('ERR No such master with that name');
        return array(this.source.replicas(name).map((r) => this.replicaReply(r)));
      }
      case 'sentinels':
        if (name === undefined || !this.source.master(name)) return error('ERR No such master with that name');
        return array([]);
      case 'myid':
        return bulk(this.source.myid);
      case 'ckquorum':
        if (name === undefined || !this.source.master(name)) return error('ERR No such master with that name');
        return simple('OK 1 usable Sentinels. Quorum and failover authorization can be reached');
      default:
        return error(`ERR Unknown sentinel subcommand '${(args[1] ?? '').slice(0, 32)}'`);
    }
  }

  private masterReply(m: SentinelMaster): RespValue {
    const now = Date.now();
    return map([
      ['name', bulk(m.name)],
      ['ip', bulk(m.ip)],
      ['port', bulk(String(m.port))],
      ['runid', bulk(m.runid)],
      ['flags', bulk(m.flags.join(','))],
      ['link-pending-commands', bulk('0')],
      ['link-refcount', bulk('1')],
      ['last-ping-sent', bulk(String(m.lastPingSentMs ? Math.max(0, now - m.lastPingSentMs) : 0))],
      ['last-ok-ping-reply', bulk(String(Math.max(0, now - m.lastOkPingReplyMs)))],
      ['last-ping-reply', bulk(String(Math.max(0, now - m.lastOkPingReplyMs)))],
      ['down-after-milliseconds', bulk(String(m.downAfterMs))],
      ['info-refresh', bulk('1000')],
      ['role-reported', bulk('master')],
      ['role-reported-time', bulk('0')],
      ['config-epoch', bulk(String(m.configEpoch))],
      ['num-slaves', bulk(String(m.numSlaves))],
      ['num-other-sentinels', bulk('0')],
      ['quorum', bulk('1')],
      ['failover-timeout', bulk(String(m.failoverTimeoutMs))],
      ['parallel-syncs', bulk('1')],
    ]);
  }

  private replicaReply(r: SentinelReplica): RespValue {
    return map([
      ['name', bulk(`${r.ip}:${r.port}`)],
      ['ip', bulk(r.ip)],
      ['port', bulk(String(r.port))],
      ['runid', bulk(r.runid)],
      ['flags', bulk(r.flags.join(','))],
      ['link-pending-commands', bulk('0')],
      ['link-refcount', bulk('1')],
      ['role-reported', bulk('slave')],
      ['master-link-down-time', bulk(String(r.masterLinkDownMs))],
      ['master-link-status', bulk(r.masterLinkStatus === 'up' ? 'ok' : 'err')],
      ['master-host', bulk(r.masterHost)],
      ['master-port', bulk(String(r.masterPort))],
      ['slave-priority', bulk(String(r.priority))],
      ['slave-repl-offset', bulk(String(r.offset))],
      ['replica-announced', bulk('1')],
    ]);
  }

  private subscribe(client: Client, pattern: boolean, names: string[]): RespValue[] | RespValue {
    if (names.length === 0) return this.arity(pattern ? 'psubscribe' : 'subscribe');
    const refused = this.overSubscriptionCaps(client, pattern, names);
    if (refused) return refused;
    return names.map((n) => {
      if (pattern) client.patterns.set(n, new Glob(n));
      else client.channels.add(n);
      return push([bulk(pattern ? 'psubscribe' : 'subscribe'), bulk(n), int(client.channels.size + client.patterns.size)]);
    });
  }

  /** An error reply when adding `names` would pass a cap; then none of them is added. */
  private overSubscriptionCaps(client: Client, pattern: boolean, names: string[]): RespValue | undefined {
    const max = this.limits.maxSubscriptions;
    if (pattern && names.some((n) => Buffer.byteLength(n) > MAX_PATTERN_BYTES)) {
      return error(`ERR pattern too long: at most ${MAX_PATTERN_BYTES} bytes`);
    }
    const held = pattern ? client.patterns : client.channels;
    const after = new Set([...held.keys(), ...names]).size;
    if (after <= max) return undefined;
    this.refusal('subscription refused over the cap', { address: client.address, client: client.id, pattern, max });
    return error(`ERR too many ${pattern ? 'patterns' : 'channels'} for one client: at most ${max}`);
  }

  private unsubscribe(client: Client, pattern: boolean, names: string[]): RespValue[] {
    const all = pattern ? [...client.patterns.keys()] : [...client.channels];
    const targets = names.length > 0 ? names : all;
    const kind = pattern ? 'punsubscribe' : 'unsubscribe';
    if (targets.length === 0) return [push([bulk(kind), bulk(null), int(client.channels.size + client.patterns.size)])];
    return targets.map((n) => {
      if (pattern) client.patterns.delete(n);
      else client.channels.delete(n);
      return push([bulk(kind), bulk(n), int(client.channels.size + client.patterns.size)]);
    });
  }

  private publish(channel: string, message: string): void {
    this.log.info('sentinel event', { instance: eventInstance(message), channel, event: message });
    const bytes = Buffer.from(channel, 'utf8');
    for (const c of this.clients) {
      if (c.channels.has(channel)) this.write(c, push([bulk('message'), bulk(channel), bulk(message)]));
      for (const [pattern, glob] of c.patterns) {
        if (glob.matches(bytes)) this.write(c, push([bulk('pmessage'), bulk(pattern), bulk(channel), bulk(message)]));
      }
    }
  }
}

/**
 * The instance a Sentinel event is about, read from the message as Sentinel shapes it:
 * `master <name> <ip> <port> ...`, `slave <ip:port> <ip> <port> @ <name> <ip> <port>`, or
 * for +switch-master `<name> <old ip> <old port> <new ip> <new port>`.
 */
export function eventInstance(message: string): string | undefined {
  const words = message.split(' ');
  const at = words.indexOf('@');
  if (at >= 0) return words[at + 1];
  if (words[0] === 'master') return words[1];
  return words[0] || undefined;
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
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
