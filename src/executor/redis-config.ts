import type { Redis } from 'ioredis';
import { sha256Hex, FRAMEWORK_USER } from '../store/secrets.js';
import type { Logger } from '../logger.js';
import type { Persistence } from '../domain/backup.js';
import { REPLICA_PING_PERIOD_S } from '../domain/redis-info.js';

export interface RedisConfigInput {
  ip: string;
  port: number;
  dir: string;
  capacityMb: number;
  passwordSha256: string;
  frameworkSecret: string;
  replicaPriority: number;
  minReplicasToWrite: number;
  minReplicasMaxLag: number;
  maxClients: number;
  /** 'none' (default), 'rdb' or 'aof': where the data files go is `dir`. */
  persistence?: Persistence;
  /**
   * The proc starts from a seeded dump.rdb (a restore). An 'aof' proc then starts with
   * appendonly off, so that Redis loads the RDB rather than an (absent) AOF, and the agent turns
   * the AOF on once it runs (see enableAppendOnly).
   */
  seeded?: boolean;
}

/**
 * What the tenant (the `default` user) may run: every data command (strings, hashes, lists,
 * sets, sorted sets, streams, pub/sub, transactions, scripts), nothing that changes topology,
 * configuration or lifecycle. INFO, ROLE, PING, WAIT, HELLO and the harmless CLIENT
 * subcommands stay open: Sentinel-aware clients check a master's role with them, and WAIT is
 * how a tenant knows a write reached a replica. KEYS, SORT and FLUSH* act only on the tenant's
 * own data and stay open too. (CLIENT SETINFO, new in Redis 7.2, is added by the agent at run
 * time where the server knows it.)
 */
export const STARTUP_HZ = 100;
export const SETTLED_HZ = 10;

export const TENANT_COMMANDS = [
  '+@all', '-@admin', '-@dangerous',
  '+info', '+role', '+ping', '+wait', '+hello',
  '+client|setname', '+client|getname', '+client|id', '+client|info',
  '+keys', '+sort', '+sort_ro', '+flushdb', '+flushall',
].join(' ');

/**
 * The redis.conf of one proc. No persistence unless asked (a throwaway cache by default), diskless
 * replication with no delay (Redis 7.0 otherwise waits 5 s before the first sync), the tenant
 * as the `default` user known only by its password's SHA-256, and the framework user for
 * replication and the agent's own commands. Replicas are pointed at their master at run time
 * with REPLICAOF, which connects at once rather than on the next once-a-second cron.
 */
export function renderRedisConfig(c: RedisConfigInput): string {
  const lines = [
    `port ${c.port}`,
    `bind ${c.ip}`,
    'protected-mode no',
    'daemonize no',
    `dir ${c.dir}`,
    `logfile ${c.dir}/redis.log`,
    `pidfile ${c.dir}/redis.pid`,
    ...persistenceLines(c.persistence ?? 'none', c.seeded ?? false),
    `maxmemory ${c.capacityMb}mb`,
    `maxclients ${c.maxClients || 10000}`,
    'maxmemory-policy noeviction',
    'repl-diskless-sync yes',
    'repl-diskless-sync-delay 0',
    // A replica loads the master's snapshot straight from the socket and never writes the
    // tenant's data to disk. `swapdb` rather than `on-empty-db`: the latter falls back to a
    // temp RDB file on disk whenever the replica already holds data (a resync after a
    // failover). swapdb keeps the old dataset in memory while loading: up to 2x capacity for
    // the length of a sync, which the proc's memory ceiling allows (see cgroup.ts).
    'repl-diskless-load swapdb',
    ...clientLimits(c.capacityMb),
    // A fresh master reaps each sync's child on its next cron tick before it can start the next
    // replica's sync; at the default hz 10 that is up to 100 ms. The agent lowers hz to 10 once
    // the proc has settled (see Supervisor.bringUp).
    `hz ${STARTUP_HZ}`,
    `replica-priority ${c.replicaPriority}`,
    `repl-ping-replica-period ${REPLICA_PING_PERIOD_S}`,
    `min-replicas-to-write ${c.minReplicasToWrite}`,
    `min-replicas-max-lag ${c.minReplicasMaxLag || 10}`,
    // Stopping a proc never waits for lagging replicas: it is being deleted or fenced.
    'shutdown-on-sigterm nosave now',
    `user default on resetpass #${c.passwordSha256} ~* &* ${TENANT_COMMANDS}`,
    `user ${FRAMEWORK_USER} on resetpass #${sha256Hex(c.frameworkSecret)} ~* &* +@all`,
    `masteruser ${FRAMEWORK_USER}`,
    `masterauth ${c.frameworkSecret}`,
  ];
  return `${lines.join('\n')}\n`;
}

/**
 * rdb: Redis's classic snapshot rules (after 15 min if 1 key changed, 5 min if 10, 1 min if
 * 10 000). aof: every write appended and fsynced once a second (a redis-server crash loses no
 * acknowledged write, a machine crash at most about a second); no snapshots besides the AOF's
 * own rewrites. The files go in `dir`, created owner-only (the launcher's umask 077).
 */
export function persistenceLines(mode: Persistence, seeded: boolean): string[] {
  if (mode === 'rdb') return ['save 900 1 300 10 60 10000', 'appendonly no', 'dbfilename dump.rdb'];
  if (mode === 'aof') return ['save ""', `appendonly ${seeded ? 'no' : 'yes'}`, 'appendfsync everysec', 'dbfilename dump.rdb'];
  return ['save ""', 'appendonly no'];
}

/** After a seeded 'aof' proc loaded its RDB: the AOF starts from that data (a rewrite). */
export async function enableAppendOnly(client: Redis): Promise<void> {
  await client.call('CONFIG', 'SET', 'appendonly', 'yes');
}

/**
 * Client buffers count outside `maxmemory` unless capped: a client that never reads its replies
 * (GET of a big value, again and again) or a half-sent huge request can hold hundreds of MB.
 * A normal or pub/sub client is cut off at a quarter of the capacity (soft: an eighth for 30 s),
 * a replica's buffer at the capacity (a sync of a full dataset still fits), and one request
 * (and one bulk string) may not exceed the capacity, since no value can be larger than that.
 * Together with `maxmemory-clients` (all clients at most half the capacity, see
 * applyRuntimeLimits) a proc stays within capacity + half of it, plus Lua's heap, which Redis
 * 7.0 does not limit: the memory cgroup is the ceiling for that.
 */
export function clientLimits(capacityMb: number): string[] {
  const quarter = Math.max(4, Math.ceil(capacityMb / 4));
  const eighth = Math.max(2, Math.ceil(capacityMb / 8));
  const request = Math.max(1, capacityMb);
  return [
    `client-output-buffer-limit normal ${quarter}mb ${eighth}mb 30`,
    `client-output-buffer-limit pubsub ${quarter}mb ${eighth}mb 30`,
    `client-output-buffer-limit replica ${Math.max(16, capacityMb)}mb ${Math.max(8, Math.ceil(capacityMb / 2))}mb 60`,
    `client-query-buffer-limit ${request}mb`,
    `proto-max-bulk-len ${request}mb`,
  ];
}

/**
 * Limits set with CONFIG SET after start because older servers refuse them in redis.conf:
 * `maxmemory-clients` (Redis 7.0+) evicts the biggest clients once all clients together hold
 * more than half the capacity. A server without it keeps the per-client caps above.
 */
export async function applyRuntimeLimits(client: Redis, capacityMb: number, log: Logger): Promise<void> {
  const clientsMb = Math.max(1, Math.ceil(capacityMb / 2));
  await client.call('CONFIG', 'SET', 'maxmemory-clients', `${clientsMb}mb`).catch((err: Error) => {
    log.warn('maxmemory-clients not supported by this redis-server; per-client limits only', { error: err.message });
  });
  // The agent's own connection must never be the one evicted.
  await client.call('CLIENT', 'NO-EVICT', 'on').catch(() => undefined);
}

// Moved to src/store/redis-info.ts so the scheduler's stats poller can share them.
export { parseInfo, statsFromInfo } from '../domain/redis-info.js';
