import { createServer, type Server, type Socket } from 'node:net';
import type { EventEmitter } from 'node:events';
import type { Logger } from '../logger.js';
import { ProtocolError } from '../errors.js';
import { RespParser, array, bulk, bulks, encode, error, int, map, push, simple, type RespValue } from './resp.js';

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

interface Client {
  id: number;
  socket: Socket;
  resp3: boolean;
  name: string;
  channels: Set<string>;
  patterns: Map<string, RegExp>;
}

/**
 * The Sentinel-compatible endpoint: enough of the Sentinel protocol that any Sentinel-aware
 * client finds an instance's current master by its name and follows failovers.
 */
export class SentinelEndpoint {
  private readonly server: Server;
  private readonly clients = new Set<Client>();
  private nextId = 1;
  private readonly onEvent = (channel: string, message: string) => this.publish(channel, message);

  constructor(private readonly source: SentinelSource, private readonly log: Logger) {
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
    const client: Client = { id: this.nextId++, socket, resp3: false, name: '', channels: new Set(), patterns: new Map() };
    this.clients.add(client);
    socket.setNoDelay(true);
    const parser = new RespParser();
    socket.on('data', (chunk: Buffer) => {
      let commands: string[][];
      try {
        commands = parser.push(chunk);
      } catch (err) {
        const message = err instanceof ProtocolError ? err.message : 'protocol error';
        socket.end(encode(error(`ERR Protocol error: ${message}`), false));
        return;
      }
      for (const args of commands) {
        if (socket.destroyed) return;
        this.write(client, this.dispatch(client, args));
        if (args[0].toUpperCase() === 'QUIT') socket.end();
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => this.clients.delete(client));
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
        return args.length === 2 || args.length === 3 ? simple('OK') : this.arity(cmd);
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
        return simple('RESET');
      default:
        return error(`ERR unknown command '${args[0].slice(0, 64)}', with args beginning with: ${args.slice(1, 4).map((a) => `'${a.slice(0, 32)}'`).join(' ')}`);
    }
  }

  private arity(cmd: string): RespValue {
    return error(`ERR wrong number of arguments for '${cmd.toLowerCase()}' command`);
  }

  private hello(client: Client, args: string[]): RespValue {
    if (args[1] !== undefined) {
      if (args[1] !== '2' && args[1] !== '3') return error('NOPROTO unsupported protocol version');
      client.resp3 = args[1] === '3';
    }
    for (let i = 2; i < args.length; i++) {
      const opt = args[i].toUpperCase();
      if (opt === 'AUTH') i += 2;
      else if (opt === 'SETNAME') client.name = args[++i] ?? '';
      else return error(`ERR Syntax error in HELLO option '${args[i].slice(0, 32)}'`);
    }
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
    return names.map((n) => {
      if (pattern) client.patterns.set(n, globToRegExp(n));
      else client.channels.add(n);
      return push([bulk(pattern ? 'psubscribe' : 'subscribe'), bulk(n), int(client.channels.size + client.patterns.size)]);
    });
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
    this.log.info('sentinel event', { channel, event: message });
    for (const c of this.clients) {
      if (c.channels.has(channel)) this.write(c, push([bulk('message'), bulk(channel), bulk(message)]));
      for (const [pattern, re] of c.patterns) {
        if (re.test(channel)) this.write(c, push([bulk('pmessage'), bulk(pattern), bulk(channel), bulk(message)]));
      }
    }
  }
}

/** Redis glob (`*`, `?`, `[abc]`, `\x`) as a RegExp. */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '\\' && i + 1 < glob.length) re += `\\${glob[++i]}`;
    else if (c === '[') {
      const end = glob.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        const body = glob.slice(i + 1, end).replace(/\\/g, '\\\\').replace(/^\^/, '^').replace(/^!/, '^');
        re += `[${body}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\]\\/]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 's');
}
