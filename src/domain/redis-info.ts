import type { ProcStats } from './model.js';

/**
 * INFO parsing and the Stats JSON, shared by the agent (which writes Stats to etcd) and the
 * scheduler (which polls its own links once a second and overlays the result in its cache).
 */

/**
 * repl-ping-replica-period of every proc: a master pings its replicas once a second, so a
 * replica's master_last_io_seconds_ago tells within about a second whether its master lives.
 */
export const REPLICA_PING_PERIOD_S = 1;

/**
 * The period a planned switchover sets on the master it holds paused: in effect no PING at all
 * (Redis pings when its once-a-second cron count is a multiple of the period). A PING sent after
 * the new master's last look at the offsets would leave the old master and the other replicas a
 * PING ahead of the new master, and each would then need a full resync instead of a partial one.
 */
export const PINGS_HELD_PERIOD_S = 2_147_483_647;

/** The command that sets a proc's repl-ping-replica-period to `seconds`. */
export function pingPeriodCommand(seconds: number): [string, ...string[]] {
  return ['CONFIG', 'SET', 'repl-ping-replica-period', String(seconds)];
}

/** Parses INFO output into a flat field map. */
export function parseInfo(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    if (!line || line.startsWith('#')) continue;
    const at = line.indexOf(':');
    if (at > 0) out.set(line.slice(0, at), line.slice(at + 1));
  }
  return out;
}

/** The Stats JSON of one proc, from one INFO reply. */
export function statsFromInfo(info: Map<string, string>, now = new Date()): ProcStats {
  const num = (k: string) => Number(info.get(k) ?? 0) || 0;
  const role = info.get('role') ?? 'unknown';
  return {
    uptime: num('uptime_in_seconds'),
    usedMemory: num('used_memory'),
    clients: num('connected_clients'),
    role,
    replOffset: role === 'slave' ? num('slave_repl_offset') : num('master_repl_offset'),
    // Every key is always there (null where it does not apply), so readers see one shape.
    masterLinkStatus: role === 'slave' ? (info.get('master_link_status') ?? 'down') : null,
    lastIoSecondsAgo: role === 'slave' ? num('master_last_io_seconds_ago') : null,
    connectedReplicas: role === 'master' ? num('connected_slaves') : null,
    commandsProcessed: num('total_commands_processed'),
    keyspaceHits: num('keyspace_hits'),
    keyspaceMisses: num('keyspace_misses'),
    evictedKeys: num('evicted_keys'),
    maxMemory: num('maxmemory'),
    redisVersion: info.get('redis_version') ?? '',
    updatedAt: now.toISOString(),
  };
}

/** Memory moves below both of these are noise, not news: an idle proc's allocator drifts. */
export const MEMORY_CHANGE_BYTES = 1024 * 1024;
export const MEMORY_CHANGE_RATIO = 0.05;

/**
 * How fresh a replica's link is, in classes: a healthy link reads 0 or 1 s (the master pings
 * every second), so only a move between classes is news, not the tick of the counter.
 */
function linkClass(s: ProcStats): string {
  if (s.lastIoSecondsAgo === null || s.lastIoSecondsAgo === undefined) return '-';
  if (s.lastIoSecondsAgo < 2) return 'fresh';
  if (s.lastIoSecondsAgo < 10) return 'late';
  return 'silent';
}

/**
 * Whether `next` says something that `last` (the Stats last written to etcd) does not: a new
 * role, link status, link class, replica count or client count, or memory moved by more than
 * 1 MiB and 5 %. Offsets and uptime always move and are not news on their own: the scheduler
 * reads them every second over its own links. Pure.
 */
export function statsChanged(last: ProcStats | undefined, next: ProcStats): boolean {
  if (!last) return true;
  if (last.role !== next.role) return true;
  if ((last.masterLinkStatus ?? null) !== (next.masterLinkStatus ?? null)) return true;
  if (linkClass(last) !== linkClass(next)) return true;
  if ((last.connectedReplicas ?? null) !== (next.connectedReplicas ?? null)) return true;
  if (last.clients !== next.clients) return true;
  const moved = Math.abs(next.usedMemory - last.usedMemory);
  return moved > MEMORY_CHANGE_BYTES && moved > last.usedMemory * MEMORY_CHANGE_RATIO;
}
