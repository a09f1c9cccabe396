/**
 * bench/sim/commands: what a simulated redis-server answers, command by command, and its INFO
 * text, with the fields the scheduler and the agent's Stats read (domain/redis-info.ts,
 * scheduler/replica-vote.ts, promotion.ts) in Redis 7's spelling.
 */
import type { Reply } from './resp.js';
import type { SimProc } from './sim-proc.js';

const OK: Reply = { status: 'OK' };
export const SIM_REDIS_VERSION = '7.0.15';

/** The reply to one command (not MULTI/EXEC/DISCARD, which the connection handles). */
export function replyTo(proc: SimProc, args: string[]): Reply {
  const name = (args[0] ?? '').toUpperCase();
  const sub = (args[1] ?? '').toUpperCase();
  switch (name) {
    case 'PING':
      return { status: 'PONG' };
    case 'AUTH':
    case 'SELECT':
    case 'QUIT':
      return OK;
    case 'INFO':
      return infoText(proc, (args[1] ?? 'all').toLowerCase());
    case 'ROLE':
      return roleReply(proc);
    case 'REPLICAOF':
    case 'SLAVEOF':
      proc.follow(sub === 'NO' ? null : `${args[1]}:${args[2]}`);
      return OK;
    case 'CLIENT':
      return sub === 'KILL' ? 0 : OK;
    case 'CONFIG':
      return sub === 'GET' ? [] : OK;
    case 'PUBLISH':
      return 0;
    case 'SCRIPT':
    case 'FUNCTION':
      return { error: 'NOTBUSY No scripts in execution right now.' };
    default:
      return { error: `ERR unknown command '${args[0] ?? ''}' (simulated redis-server)` };
  }
}

function roleReply(proc: SimProc): Reply {
  if (!proc.target) return ['master', proc.offset, proc.followers().map((f) => [f.ip, String(f.port), String(f.offset)])];
  proc.syncWithMaster();
  const [ip, port] = proc.target.split(':');
  return ['slave', ip, Number(port), proc.linkDownSince ? 'connect' : 'connected', proc.offset];
}

/** INFO [section]: `all`/`everything`/empty gives every section. */
export function infoText(proc: SimProc, section: string): string {
  const all = section === 'all' || section === 'everything' || section === 'default';
  const parts: string[] = [];
  if (all || section === 'server') parts.push(serverSection(proc));
  if (all || section === 'clients') parts.push(`# Clients\r\nconnected_clients:${proc.clients}\r\n`);
  if (all || section === 'memory') {
    proc.driftMemory();
    parts.push(`# Memory\r\nused_memory:${proc.usedMemory}\r\nmaxmemory:${proc.capacityMb * 1024 * 1024}\r\n`);
  }
  if (all || section === 'stats') parts.push(`# Stats\r\ntotal_commands_processed:${proc.commands}\r\nkeyspace_hits:0\r\nkeyspace_misses:0\r\nevicted_keys:0\r\n`);
  if (all || section === 'replication') parts.push(replicationSection(proc));
  return parts.join('\r\n');
}

function serverSection(proc: SimProc): string {
  const uptime = Math.floor((Date.now() - proc.startedAt) / 1000);
  return `# Server\r\nredis_version:${SIM_REDIS_VERSION}\r\nredis_mode:standalone\r\nprocess_id:${proc.pid}\r\ntcp_port:${proc.port}\r\nuptime_in_seconds:${uptime}\r\n`;
}

function replicationSection(proc: SimProc): string {
  if (!proc.target) {
    const followers = proc.followers();
    const lines = followers.map((f, i) => `slave${i}:ip=${f.ip},port=${f.port},state=online,offset=${f.offset},lag=0`);
    return ['# Replication', 'role:master', `connected_slaves:${followers.length}`, ...lines, `master_repl_offset:${proc.offset}`, ''].join('\r\n');
  }
  const now = Date.now();
  proc.syncWithMaster(now);
  const [host, port] = proc.target.split(':');
  const down = proc.linkDownSince !== 0;
  return [
    '# Replication',
    'role:slave',
    `master_host:${host}`,
    `master_port:${port}`,
    `master_link_status:${down ? 'down' : 'up'}`,
    `master_last_io_seconds_ago:${down ? -1 : Math.floor((now - proc.lastIoAt) / 1000)}`,
    'master_sync_in_progress:0',
    `slave_read_repl_offset:${proc.offset}`,
    `slave_repl_offset:${proc.offset}`,
    ...(down ? [`master_link_down_since_seconds:${Math.floor((now - proc.linkDownSince) / 1000)}`] : []),
    'slave_priority:100',
    'slave_read_only:1',
    'connected_slaves:0',
    `master_repl_offset:${proc.offset}`,
    '',
  ].join('\r\n');
}
