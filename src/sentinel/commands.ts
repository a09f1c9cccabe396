import { createHash, timingSafeEqual } from 'node:crypto';
import type { SentinelFailoverReply, SentinelSource } from '../domain/services.js';
import { array, bulk, bulks, error, int, map, simple, type RespValue } from './resp.js';
import type { Client, RefusalLog } from './connection.js';
import { WHILE_SUBSCRIBED, subscribe, subscriptions, unsubscribe } from './pubsub.js';
import { infoText, masterReply, replicaReply } from './replies.js';

/** Commands a client may send before it has authenticated. */
const BEFORE_AUTH = new Set(['AUTH', 'HELLO', 'QUIT', 'RESET']);

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

function arity(cmd: string): RespValue {
  return error(`ERR wrong number of arguments for '${cmd.toLowerCase()}' command`);
}

/** The commands the endpoint answers: connection commands, pub/sub and SENTINEL's subcommands. */
export class SentinelCommands {
  private readonly passwordDigest?: Buffer;

  constructor(
    private readonly source: SentinelSource,
    private readonly refusals: RefusalLog,
    private readonly maxSubscriptions: number,
    password: string | undefined,
  ) {
    if (password) this.passwordDigest = digest(password);
  }

  /** Whether a new connection needs AUTH first. */
  get needsAuth(): boolean {
    return Boolean(this.passwordDigest);
  }

  dispatch(client: Client, args: string[]): RespValue | RespValue[] {
    const cmd = args[0].toUpperCase();
    if (!client.authenticated && !BEFORE_AUTH.has(cmd)) return error('NOAUTH Authentication required.');
    const subscribed = subscriptions(client) > 0;
    if (subscribed && !client.resp3 && !WHILE_SUBSCRIBED.has(cmd)) {
      return error(`ERR Can't execute '${args[0].toLowerCase()}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context`);
    }
    switch (cmd) {
      case 'PING':
        if (subscribed && !client.resp3) return bulks(['pong', args[1] ?? '']);
        return args[1] === undefined ? simple('PONG') : bulk(args[1]);
      case 'QUIT':
        return simple('OK');
      case 'AUTH':
        if (args.length !== 2 && args.length !== 3) return arity(cmd);
        return this.authenticate(client, args.length === 3 ? args[1] : 'default', args[args.length - 1]) ?? simple('OK');
      case 'HELLO':
        return this.hello(client, args);
      case 'CLIENT':
        return clientCommand(client, args);
      case 'ROLE':
        return array([bulk('sentinel'), bulks(this.source.masters().map((m) => m.name))]);
      case 'INFO':
        return bulk(infoText(this.source.myid, this.source.masters()));
      case 'COMMAND':
        return array([]);
      case 'SENTINEL':
        return this.sentinel(args);
      case 'SUBSCRIBE':
      case 'PSUBSCRIBE':
        if (args.length < 2) return arity(cmd === 'PSUBSCRIBE' ? 'psubscribe' : 'subscribe');
        return subscribe(client, cmd === 'PSUBSCRIBE', args.slice(1), this.maxSubscriptions, this.refusals);
      case 'UNSUBSCRIBE':
      case 'PUNSUBSCRIBE':
        return unsubscribe(client, cmd === 'PUNSUBSCRIBE', args.slice(1));
      case 'RESET':
        return this.reset(client);
      default:
        return error(`ERR unknown command '${args[0].slice(0, 64)}', with args beginning with: ${args.slice(1, 4).map((a) => `'${a.slice(0, 32)}'`).join(' ')}`);
    }
  }

  private reset(client: Client): RespValue {
    client.channels.clear();
    client.patterns.clear();
    client.resp3 = false;
    // As in Redis, RESET leaves the connection as the default user, who needs the password.
    client.authenticated = !this.passwordDigest;
    return simple('RESET');
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
      this.refusals.refused('wrong password', { address: client.address, client: client.id });
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

  private sentinel(args: string[]): RespValue {
    const sub = (args[1] ?? '').toLowerCase();
    const name = args[2];
    const known = (): boolean => name !== undefined && this.source.master(name) !== undefined;
    switch (sub) {
      case 'get-master-addr-by-name': {
        if (args.length !== 3) return arity('sentinel|get-master-addr-by-name');
        const m = this.source.master(name);
        return m ? bulks([m.ip, String(m.port)]) : array(null);
      }
      case 'masters':
        return array(this.source.masters().map(masterReply));
      case 'master': {
        const m = name === undefined ? undefined : this.source.master(name);
        return m ? masterReply(m) : error('ERR No such master with that name');
      }
      case 'replicas':
      case 'slaves':
        if (!known()) return error('ERR No such master with that name');
        return array(this.source.replicas(name).map(replicaReply));
      case 'sentinels':
        if (!known()) return error('ERR No such master with that name');
        return array([]);
      case 'failover':
        if (args.length !== 3) return arity('sentinel|failover');
        return FAILOVER_REPLIES[this.source.failover(name)];
      case 'myid':
        return bulk(this.source.myid);
      case 'ckquorum':
        if (!known()) return error('ERR No such master with that name');
        return simple('OK 1 usable Sentinels. Quorum and failover authorization can be reached');
      default:
        return error(`ERR Unknown sentinel subcommand '${(args[1] ?? '').slice(0, 32)}'`);
    }
  }
}

/** SENTINEL FAILOVER's replies, in Sentinel's words where Sentinel has them. */
const FAILOVER_REPLIES: Record<SentinelFailoverReply, RespValue> = {
  'started': simple('OK'),
  'no-such-master': error('ERR No such master with that name'),
  'in-progress': error('INPROG Failover already in progress'),
  'no-good-slave': error('NOGOODSLAVE No suitable replica to promote'),
  'not-leader': error('ERR this scheduler is a standby; send SENTINEL FAILOVER to the leading scheduler\'s endpoint'),
};

function clientCommand(client: Client, args: string[]): RespValue {
  const sub = (args[1] ?? '').toUpperCase();
  switch (sub) {
    case 'SETNAME':
      if (args.length !== 3) return arity('client|setname');
      client.name = args[2];
      return simple('OK');
    case 'SETINFO':
      return args.length === 4 ? simple('OK') : arity('client|setinfo');
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
