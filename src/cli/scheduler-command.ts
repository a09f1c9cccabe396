import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { readFileSync } from 'node:fs';
import { DEFAULT_COMPACT_EVERY_SECONDS, DEFAULT_COMPACT_RETENTION_SECONDS } from '../scheduler/compactor.js';
import { DEFAULT_DELETED_RETENTION_SECONDS } from '../scheduler/reaper.js';
import { defaultFleetKeyPath } from '../store/secrets.js';
import { loadSchedulerFleetKey } from '../store/fingerprint.js';
import { connectEtcd } from '../store/etcd.js';
import { DEFAULT_PREFIX } from '../store/keys.js';
import { parseHostPort } from '../net.js';
import { createLogger } from '../logger.js';
import { DEFAULT_ANONYMOUS, parseAddress, type AccessPolicy } from '../api/access.js';
import { SENTINEL_DEFAULTS, type SentinelEndpointOptions } from '../sentinel/endpoint.js';
import { intFlag, parseDuration, parseFlags, str } from './args.js';
import { UsageError } from '../errors.js';
import type { Endpoints } from './explain.js';
import { previousFleetKey } from './fleet-key.js';
import { stopOnSignal } from './signals.js';
import { SchedulerProcess, type SchedulerProcessOptions } from './scheduler-process.js';

export const SCHEDULER_HELP = `Usage: redfleet scheduler --etcd URLS [flags]
Runs a scheduler: the REST API, the Sentinel-compatible endpoint and the agents' endpoint. Several
may run against one etcd; one leads.

  --etcd URLS                etcd client URLs, comma-separated; default $REDFLEET_ETCD, else http://127.0.0.1:2379
  --prefix PATH              etcd key prefix; default $REDFLEET_PREFIX, else /MrRedis
  --api HOST:PORT            REST API and agent endpoint; default $REDFLEET_API, else 127.0.0.1:5656
  --sentinel HOST:PORT       Sentinel-compatible endpoint; default $REDFLEET_SENTINEL, else 127.0.0.1:26379
  --metrics HOST:PORT        also serve /metrics here, without a token (it is always on the API port)
  --id NAME                  this scheduler's name in the election; default scheduler-<hostname>
  --fleet-key FILE           the key agents prove themselves with; default $REDFLEET_FLEET_KEY, else .redfleet/fleet.key
  --previous-fleet-key FILE  during a fleet key rotation, the old key, accepted alongside --fleet-key;
                             default $REDFLEET_PREVIOUS_FLEET_KEY, else none (docs/SECURITY.md)
  --backup-dir DIR           where backups are stored (<instance>/<timestamp>.rdb); default $REDFLEET_BACKUP_DIR,
                             else backups/ beside the fleet key file
  --agent-timeout SECONDS    an agent silent this long is lost and its procs replaced; default 10
  --agent-heartbeat SECONDS  how often each agent must answer a heartbeat; one silent for 3 of them has
                             its stream dropped; default 1 (raise it for fleets of many hundreds of agents)
  --api-token-file FILE      admin tokens, one a line (at least 16 characters each); default none
  --api-token TOKEN          an admin token; repeatable. Visible in \`ps\` to every local user: prefer
                             --api-token-file or REDFLEET_API_TOKEN (comma-separated). Without any
                             token the API is open and must stay on loopback.
  --trusted-proxy ADDR       a proxy whose X-Forwarded-For names the client; repeatable; default none
  --anonymous                allow creates without a token, within these limits; default off
  --anonymous-per-client N   live anonymous instances per IPv4 address or IPv6 /64; default ${DEFAULT_ANONYMOUS.perClient}
  --anonymous-ttl DURATION   lifetime of an anonymous instance, counted from its creation; default 12h
  --anonymous-capacity MB    largest anonymous capacity; default ${DEFAULT_ANONYMOUS.maxCapacityMb}
  --anonymous-maxclients N   redis maxclients of an anonymous instance; default ${DEFAULT_ANONYMOUS.maxClients}
  --compact-every SECONDS    how often the leader compacts etcd's history; default 60
  --compact-retention SECONDS
                             etcd history kept by each compaction; default 300
  --deleted-retention SECONDS
                             a DELETED instance's tree is purged this long after its delete; default 3600
  --sentinel-max-clients N   connections the Sentinel endpoint takes in all; default ${SENTINEL_DEFAULTS.maxClients}
  --sentinel-max-clients-per-ip N
                             connections per IPv4 address or IPv6 /64; default ${SENTINEL_DEFAULTS.maxClientsPerAddress}
  --sentinel-idle-timeout SECONDS
                             close a connection that sent nothing this long (subscribed ones are kept;
                             0 = never); default ${SENTINEL_DEFAULTS.idleTimeoutMs / 1000}
  --sentinel-password-file FILE
                             clients must AUTH with this password first, like Sentinel's requirepass;
                             default $REDFLEET_SENTINEL_PASSWORD, else none
  --sentinel-password PASSWORD
                             the same; visible in \`ps\`: prefer the file or the environment
  -h, --help                 this text`;

type Flags = Record<string, string | boolean | undefined>;

const SCHEDULER_FLAGS = {
  etcd: { type: 'string' },
  prefix: { type: 'string' },
  api: { type: 'string' },
  sentinel: { type: 'string' },
  metrics: { type: 'string' },
  id: { type: 'string' },
  'fleet-key': { type: 'string' },
  'previous-fleet-key': { type: 'string' },
  'agent-timeout': { type: 'string' },
  'agent-heartbeat': { type: 'string' },
  'api-token': { type: 'string', multiple: true },
  'api-token-file': { type: 'string' },
  anonymous: { type: 'boolean' },
  'anonymous-per-client': { type: 'string' },
  'anonymous-ttl': { type: 'string' },
  'anonymous-capacity': { type: 'string' },
  'anonymous-maxclients': { type: 'string' },
  'trusted-proxy': { type: 'string', multiple: true },
  'sentinel-max-clients': { type: 'string' },
  'sentinel-max-clients-per-ip': { type: 'string' },
  'sentinel-idle-timeout': { type: 'string' },
  'sentinel-password': { type: 'string' },
  'sentinel-password-file': { type: 'string' },
  'compact-every': { type: 'string' },
  'compact-retention': { type: 'string' },
  'deleted-retention': { type: 'string' },
  'backup-dir': { type: 'string' },
} as const;

/** `redfleet scheduler`: runs a scheduler (leader or standby) until SIGINT/SIGTERM. */
export async function schedulerCommand(argv: string[], endpoints: Endpoints): Promise<void> {
  const { values } = parseFlags(argv, SCHEDULER_FLAGS);
  if (values.help) return void console.log(SCHEDULER_HELP);
  const opts = schedulerOptions(values, endpoints);
  const keyPath = resolve(str(values['fleet-key'], defaultFleetKeyPath()));
  const log = createLogger('scheduler');
  if (values['api-token'] !== undefined) {
    log.warn('--api-token on the command line is visible to every local user (ps, /proc/PID/cmdline); use --api-token-file or REDFLEET_API_TOKEN');
  }
  const fleet = await schedulerFleetKey(opts.etcd, opts.prefix, keyPath);
  if (fleet.created) log.warn('created a new fleet key for a fresh fleet; copy it to every agent (--fleet-key)', { path: keyPath });
  const scheduler = new SchedulerProcess({ ...opts, fleetKey: fleet.key, backups: backupOptions(values, keyPath) });
  stopOnSignal(() => scheduler.stop());
  await scheduler.start();
}

/** Every option but the fleet key, each flag checked before etcd is asked anything (a bad flag exits 2 on its own). */
function schedulerOptions(values: Flags, endpoints: Endpoints): Omit<SchedulerProcessOptions, 'fleetKey' | 'backups'> {
  const api = parseHostPort(str(values.api, process.env.REDFLEET_API ?? '127.0.0.1:5656'), '--api');
  const sentinel = parseHostPort(str(values.sentinel, process.env.REDFLEET_SENTINEL ?? '127.0.0.1:26379'), '--sentinel');
  const etcd = str(values.etcd, process.env.REDFLEET_ETCD ?? '');
  endpoints.etcd = etcd;
  if (!etcd) throw new UsageError('scheduler needs --etcd URLS (or REDFLEET_ETCD), e.g. --etcd http://127.0.0.1:2379');
  const prefix = str(values.prefix, process.env.REDFLEET_PREFIX ?? DEFAULT_PREFIX);
  // Read before the fleet key, so that a bad flag leaves nothing behind.
  const sentinelOptions = sentinelEndpointOptions(values);
  const access = accessPolicy(values);
  const previous = previousFleetKey(values['previous-fleet-key']);
  return {
    etcd,
    prefix,
    apiHost: api.host,
    apiPort: api.port,
    sentinelHost: sentinel.host,
    sentinelPort: sentinel.port,
    id: str(values.id, `scheduler-${hostname()}`),
    previousFleetKey: previous,
    agentTimeoutMs: intFlag(values['agent-timeout'], 'agent-timeout', 10, 1) * 1000,
    agentHeartbeatSeconds: heartbeatFlag(values['agent-heartbeat']),
    sentinel: sentinelOptions,
    compactEverySeconds: intFlag(values['compact-every'], 'compact-every', DEFAULT_COMPACT_EVERY_SECONDS, 1),
    compactRetentionSeconds: intFlag(values['compact-retention'], 'compact-retention', DEFAULT_COMPACT_RETENTION_SECONDS, 1),
    deletedRetentionSeconds: intFlag(values['deleted-retention'], 'deleted-retention', DEFAULT_DELETED_RETENTION_SECONDS, 0),
    access,
    metrics: values.metrics === undefined ? undefined : parseHostPort(str(values.metrics, ''), '--metrics'),
  };
}

/** --agent-heartbeat: whole seconds from 1 to 60 (the agents' stream watchdog counts in them). */
function heartbeatFlag(value: Flags[string]): number {
  const seconds = intFlag(value, 'agent-heartbeat', 1, 1);
  if (!Number.isInteger(seconds) || seconds > 60) throw new UsageError(`--agent-heartbeat must be a whole number of seconds from 1 to 60, got '${String(value)}'`);
  return seconds;
}

/**
 * --backup-dir, else REDFLEET_BACKUP_DIR, else `backups/` beside the fleet key (one machine needs
 * no flag). REDFLEET_BACKUP_MINUTE_MS shortens a schedule's minute, for tests only (docs/operations.md).
 */
function backupOptions(values: Flags, keyPath: string): { dir: string; minuteMs?: number } {
  const dir = resolve(str(values['backup-dir'], process.env.REDFLEET_BACKUP_DIR || join(dirname(keyPath), 'backups')));
  const minute = process.env.REDFLEET_BACKUP_MINUTE_MS;
  return { dir, minuteMs: minute ? intFlag(minute, 'REDFLEET_BACKUP_MINUTE_MS', 60_000, 100) : undefined };
}

function sentinelEndpointOptions(values: Flags): SentinelEndpointOptions {
  return {
    maxClients: Math.floor(intFlag(values['sentinel-max-clients'], 'sentinel-max-clients', SENTINEL_DEFAULTS.maxClients, 1)),
    maxClientsPerAddress: Math.floor(intFlag(values['sentinel-max-clients-per-ip'], 'sentinel-max-clients-per-ip', SENTINEL_DEFAULTS.maxClientsPerAddress, 1)),
    idleTimeoutMs: intFlag(values['sentinel-idle-timeout'], 'sentinel-idle-timeout', SENTINEL_DEFAULTS.idleTimeoutMs / 1000, 0) * 1000,
    password: sentinelPassword(values['sentinel-password'], values['sentinel-password-file']),
  };
}

function accessPolicy(values: Flags): AccessPolicy {
  return {
    adminTokens: adminTokens(values['api-token'] as unknown as string[] | undefined, values['api-token-file']),
    trustedProxies: trustedProxies(values['trusted-proxy'] as unknown as string[] | undefined),
    anonymous: values.anonymous
      ? {
          perClient: intFlag(values['anonymous-per-client'], 'anonymous-per-client', DEFAULT_ANONYMOUS.perClient, 1),
          ttlSeconds: typeof values['anonymous-ttl'] === 'string' ? parseDuration(values['anonymous-ttl']) : DEFAULT_ANONYMOUS.ttlSeconds,
          maxCapacityMb: intFlag(values['anonymous-capacity'], 'anonymous-capacity', DEFAULT_ANONYMOUS.maxCapacityMb, 1),
          maxClients: intFlag(values['anonymous-maxclients'], 'anonymous-maxclients', DEFAULT_ANONYMOUS.maxClients, 1),
          maxReplicas: DEFAULT_ANONYMOUS.maxReplicas,
        }
      : undefined,
  };
}

/** --trusted-proxy values in the canonical form the API compares peers in (`::ffff:10.0.0.1` is 10.0.0.1). */
function trustedProxies(flags: string[] | undefined): Set<string> {
  const out = new Set<string>();
  for (const flag of flags ?? []) {
    const address = parseAddress(flag);
    if (!address) throw new UsageError(`--trusted-proxy must be an IP address, got '${flag}'`);
    out.add(address);
  }
  return out;
}

/**
 * The fleet key, created only for a fresh fleet: etcd is asked first whether this fleet already
 * has a key (a fingerprint), so a scheduler started without its file stops instead of inventing one.
 */
async function schedulerFleetKey(etcdUrls: string, prefix: string, keyPath: string): Promise<{ key: string; created: boolean }> {
  const etcd = connectEtcd(etcdUrls);
  try {
    return await loadSchedulerFleetKey(etcd, prefix, keyPath);
  } catch (err) {
    // FleetKeyError says what to do; an etcd error is put in words by explainError.
    throw err;
  } finally {
    etcd.close();
  }
}

/** Admin tokens from --api-token (repeatable), REDFLEET_API_TOKEN (comma-separated) and --api-token-file (one a line). */
function adminTokens(flags: string[] | undefined, file: string | boolean | undefined): string[] {
  const tokens = [...(flags ?? []), ...(process.env.REDFLEET_API_TOKEN ?? '').split(',')];
  if (typeof file === 'string') {
    try {
      tokens.push(...readFileSync(file, 'utf8').split('\n'));
    } catch (err) {
      throw new UsageError(`--api-token-file ${file}: ${(err as Error).message}`);
    }
  }
  const clean = tokens.map((t) => t.trim()).filter(Boolean);
  if (clean.some((t) => t.length < 16)) throw new UsageError('every admin token must be at least 16 characters');
  return clean;
}

/** The Sentinel endpoint's password: --sentinel-password, else --sentinel-password-file (first line), else REDFLEET_SENTINEL_PASSWORD. */
function sentinelPassword(flag: string | boolean | undefined, file: string | boolean | undefined): string | undefined {
  if (typeof flag === 'string') return flag || undefined;
  if (typeof file === 'string') {
    try {
      const first = readFileSync(file, 'utf8').split('\n')[0].trim();
      if (!first) throw new UsageError(`--sentinel-password-file ${file} is empty`);
      return first;
    } catch (err) {
      if (err instanceof UsageError) throw err;
      throw new UsageError(`--sentinel-password-file ${file}: ${(err as Error).message}`);
    }
  }
  return process.env.REDFLEET_SENTINEL_PASSWORD || undefined;
}
