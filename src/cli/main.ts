#!/usr/bin/env node
import { cpus as osCpus, hostname, totalmem } from 'node:os';
import { resolve } from 'node:path';
import { Scheduler } from '../scheduler/scheduler.js';
import { DEFAULT_COMPACT_EVERY_SECONDS, DEFAULT_COMPACT_RETENTION_SECONDS } from '../scheduler/compactor.js';
import { DEFAULT_DELETED_RETENTION_SECONDS } from '../scheduler/reaper.js';
import { DEFAULT_STATS_HEARTBEAT_SECONDS, RedFleetAgent } from '../executor/agent.js';
import { defaultFleetKeyPath, loadFleetKey, previousFleetKeyPath } from '../store/secrets.js';
import { loadSchedulerFleetKey } from '../store/fingerprint.js';
import { connectEtcd } from '../store/etcd.js';
import { FleetKeyError } from '../errors.js';
import { DEFAULT_PREFIX } from '../store/keys.js';
import { parseHostPort } from '../net.js';
import { createLogger } from '../logger.js';
import { UsageError, intFlag, parseDuration, parseFlags, portRangeFlag, str } from './args.js';
import { DEFAULT_ANONYMOUS, parseAddress, type AccessPolicy } from '../api/access.js';
import { SENTINEL_DEFAULTS, type SentinelEndpointOptions } from '../api/sentinel.js';
import { readFileSync } from 'node:fs';
import { CLIENT_HELP, createCommand, deleteCommand, listCommand, statusCommand } from './client.js';
import { devCommand, DEV_USAGE } from './dev.js';
import { explainError, type Endpoints } from './explain.js';

export const SCHEDULER_HELP = `Usage: redfleet scheduler --etcd URLS [flags]
Runs a scheduler: the REST API, the Sentinel-compatible endpoint and the agents' endpoint. Several
may run against one etcd; one leads.

  --etcd URLS                etcd client URLs, comma-separated; default $REDFLEET_ETCD, else http://127.0.0.1:2379
  --prefix PATH              etcd key prefix; default $REDFLEET_PREFIX, else /MrRedis
  --api HOST:PORT            REST API and agent endpoint; default $REDFLEET_API, else 127.0.0.1:5656
  --sentinel HOST:PORT       Sentinel-compatible endpoint; default $REDFLEET_SENTINEL, else 127.0.0.1:26379
  --id NAME                  this scheduler's name in the election; default scheduler-<hostname>
  --fleet-key FILE           the key agents prove themselves with; default $REDFLEET_FLEET_KEY, else .redfleet/fleet.key
  --previous-fleet-key FILE  during a fleet key rotation, the old key, accepted alongside --fleet-key;
                             default $REDFLEET_PREVIOUS_FLEET_KEY, else none (docs/SECURITY.md)
  --agent-timeout SECONDS    an agent silent this long is lost and its procs replaced; default 10
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

export const AGENT_HELP = `Usage: redfleet agent --scheduler URL --id NAME [flags]
Runs an agent: offers this host's memory, CPUs and ports and runs the redis-servers it is given.

  --scheduler URL            the scheduler's API, e.g. http://10.0.0.1:5656; required
  --id NAME                  this agent's unique name (letters, digits, "_", "." or "-"); required
  --etcd URLS                etcd client URLs; default $REDFLEET_ETCD, else http://127.0.0.1:2379
  --prefix PATH              etcd key prefix; default $REDFLEET_PREFIX, else /MrRedis
  --ip ADDR                  the address clients reach this host's redis-servers at; default 127.0.0.1
  --cpus N                   CPUs to offer; default all of this host's (${osCpus().length})
  --mem MB                   memory to offer; default 75% of this host's
  --ports FIRST-LAST         ports for redis-servers; default 6380-6479
  --work-dir DIR             proc directories; default .redfleet/agents/<id>
  --redis-server PATH        the redis-server binary; default redis-server (on PATH)
  --fleet-key FILE           the fleet key file, copied from the scheduler; default $REDFLEET_FLEET_KEY, else .redfleet/fleet.key
  --previous-fleet-key FILE  during a fleet key rotation, the old key; default $REDFLEET_PREVIOUS_FLEET_KEY, else none
  --stats-heartbeat SECONDS  write a proc's Stats to etcd at least this often, else only on a meaningful change; default 5
  -h, --help                 this text`;

const HELP = `redfleet: Redis-as-a-service on a two-level scheduler

Fleet processes:
  redfleet scheduler --etcd URLS [--api HOST:PORT] [--sentinel HOST:PORT] [--fleet-key FILE] [--api-token-file FILE] ...
  redfleet agent --scheduler URL --id NAME [--etcd URLS] [--mem MB] [--ports FIRST-LAST] ...
${DEV_USAGE}

${CLIENT_HELP}

Environment: REDFLEET_API, REDFLEET_TOKEN (client commands), REDFLEET_API_TOKEN (scheduler), REDFLEET_ETCD,
REDFLEET_SENTINEL, REDFLEET_SENTINEL_PASSWORD, REDFLEET_PREFIX, REDFLEET_FLEET_KEY, REDFLEET_PREVIOUS_FLEET_KEY, REDFLEET_LOG_LEVEL.`;

/** Where the running command points, so that a library error can say what to check. */
const endpoints: Endpoints = {};

/** The previous fleet key during a rotation (--previous-fleet-key or REDFLEET_PREVIOUS_FLEET_KEY), if any. */
function previousFleetKey(flag: unknown): string | undefined {
  const path = typeof flag === 'string' ? flag : previousFleetKeyPath();
  return path ? loadFleetKey(resolve(path), false).key : undefined;
}

/** Runs `stop` on the first SIGINT/SIGTERM, then exits. */
function stopOnSignal(stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (): void => {
    if (stopping) return;
    stopping = true;
    stop().then(() => process.exit(0), (err: Error) => {
      console.error(`error while stopping: ${err.message}`);
      process.exit(1);
    });
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}

async function schedulerCommand(argv: string[]): Promise<void> {
  const { values } = parseFlags(argv, {
    etcd: { type: 'string' },
    prefix: { type: 'string' },
    api: { type: 'string' },
    sentinel: { type: 'string' },
    id: { type: 'string' },
    'fleet-key': { type: 'string' },
    'previous-fleet-key': { type: 'string' },
    'agent-timeout': { type: 'string' },
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
  });
  if (values.help) return void console.log(SCHEDULER_HELP);
  const api = parseHostPort(str(values.api, process.env.REDFLEET_API ?? '127.0.0.1:5656'), '--api');
  const sentinel = parseHostPort(str(values.sentinel, process.env.REDFLEET_SENTINEL ?? '127.0.0.1:26379'), '--sentinel');
  const etcd = str(values.etcd, process.env.REDFLEET_ETCD ?? '');
  endpoints.etcd = etcd;
  if (!etcd) throw new UsageError('scheduler needs --etcd URLS (or REDFLEET_ETCD), e.g. --etcd http://127.0.0.1:2379');
  const prefix = str(values.prefix, process.env.REDFLEET_PREFIX ?? DEFAULT_PREFIX);
  // Read before the fleet key, so that a bad flag leaves nothing behind.
  const sentinelOptions: SentinelEndpointOptions = {
    maxClients: Math.floor(intFlag(values['sentinel-max-clients'], 'sentinel-max-clients', SENTINEL_DEFAULTS.maxClients, 1)),
    maxClientsPerAddress: Math.floor(intFlag(values['sentinel-max-clients-per-ip'], 'sentinel-max-clients-per-ip', SENTINEL_DEFAULTS.maxClientsPerAddress, 1)),
    idleTimeoutMs: intFlag(values['sentinel-idle-timeout'], 'sentinel-idle-timeout', SENTINEL_DEFAULTS.idleTimeoutMs / 1000, 0) * 1000,
    password: sentinelPassword(values['sentinel-password'], values['sentinel-password-file']),
  };
  // Every flag is checked before etcd is asked anything, so a bad flag exits 2 on its own.
  const access: AccessPolicy = {
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
  const previous = previousFleetKey(values['previous-fleet-key']);
  const agentTimeoutMs = intFlag(values['agent-timeout'], 'agent-timeout', 10, 1) * 1000;
  const compactEverySeconds = intFlag(values['compact-every'], 'compact-every', DEFAULT_COMPACT_EVERY_SECONDS, 1);
  const compactRetentionSeconds = intFlag(values['compact-retention'], 'compact-retention', DEFAULT_COMPACT_RETENTION_SECONDS, 1);
  const deletedRetentionSeconds = intFlag(values['deleted-retention'], 'deleted-retention', DEFAULT_DELETED_RETENTION_SECONDS, 0);
  const keyPath = resolve(str(values['fleet-key'], defaultFleetKeyPath()));
  const log = createLogger('scheduler');
  if (values['api-token'] !== undefined) {
    log.warn('--api-token on the command line is visible to every local user (ps, /proc/PID/cmdline); use --api-token-file or REDFLEET_API_TOKEN');
  }
  const fleet = await schedulerFleetKey(etcd, prefix, keyPath);
  if (fleet.created) log.warn('created a new fleet key for a fresh fleet; copy it to every agent (--fleet-key)', { path: keyPath });
  const scheduler = new Scheduler({
    etcd,
    prefix,
    apiHost: api.host,
    apiPort: api.port,
    sentinelHost: sentinel.host,
    sentinelPort: sentinel.port,
    id: str(values.id, `scheduler-${hostname()}`),
    fleetKey: fleet.key,
    previousFleetKey: previous,
    agentTimeoutMs,
    sentinel: sentinelOptions,
    compactEverySeconds,
    compactRetentionSeconds,
    deletedRetentionSeconds,
    access,
  });
  stopOnSignal(() => scheduler.stop());
  await scheduler.start();
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

async function agentCommand(argv: string[]): Promise<void> {
  const { values } = parseFlags(argv, {
    scheduler: { type: 'string' },
    etcd: { type: 'string' },
    id: { type: 'string' },
    ip: { type: 'string' },
    cpus: { type: 'string' },
    mem: { type: 'string' },
    ports: { type: 'string' },
    'work-dir': { type: 'string' },
    'redis-server': { type: 'string' },
    'fleet-key': { type: 'string' },
    'previous-fleet-key': { type: 'string' },
    prefix: { type: 'string' },
    'stats-heartbeat': { type: 'string' },
  });
  if (values.help) return void console.log(AGENT_HELP);
  if (typeof values.scheduler !== 'string') throw new UsageError('agent needs --scheduler URL (the scheduler API, e.g. http://127.0.0.1:5656)');
  if (typeof values.id !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(values.id)) throw new UsageError('agent needs --id NAME (letters, digits, "_", "." or "-")');
  const schedulerUrl = /^https?:\/\//.test(values.scheduler) ? values.scheduler.replace(/\/$/, '') : `http://${values.scheduler}`;
  const etcd = str(values.etcd, process.env.REDFLEET_ETCD ?? 'http://127.0.0.1:2379');
  endpoints.etcd = etcd;
  endpoints.scheduler = schedulerUrl;
  const id = values.id;
  const keyPath = resolve(str(values['fleet-key'], defaultFleetKeyPath()));
  const ports = portRangeFlag(str(values.ports, '6380-6479'), 'ports');
  const agent = new RedFleetAgent({
    schedulerUrl,
    etcd,
    prefix: str(values.prefix, process.env.REDFLEET_PREFIX ?? DEFAULT_PREFIX),
    id,
    ip: str(values.ip, '127.0.0.1'),
    cpus: intFlag(values.cpus, 'cpus', osCpus().length),
    mem: intFlag(values.mem, 'mem', Math.floor((totalmem() / 1024 / 1024) * 0.75), 1),
    ports,
    workDir: resolve(str(values['work-dir'], resolve('.redfleet', 'agents', id))),
    redisServer: str(values['redis-server'], 'redis-server'),
    fleetKey: loadFleetKey(keyPath, false).key,
    statsHeartbeatSeconds: intFlag(values['stats-heartbeat'], 'stats-heartbeat', DEFAULT_STATS_HEARTBEAT_SECONDS, 1),
    previousFleetKey: previousFleetKey(values['previous-fleet-key']),
  });
  await agent.start();
  stopOnSignal(() => agent.stop());
}

const COMMANDS: Record<string, (argv: string[]) => Promise<void>> = {
  dev: devCommand,
  scheduler: schedulerCommand,
  agent: agentCommand,
  create: createCommand,
  status: statusCommand,
  list: listCommand,
  delete: deleteCommand,
};

/** Exit status of a bad command line, as for every other usage error. */
const USAGE_EXIT = 2;

async function main(): Promise<void> {
  const [command, ...rest] = process.argv.slice(2);
  if (command === undefined) {
    // No command is a mistake, not a request for help: a script that lost its arguments must fail.
    console.error(HELP);
    process.exit(USAGE_EXIT);
  }
  if (command === '--help' || command === '-h' || command === 'help') return void console.log(HELP);
  const run = COMMANDS[command];
  if (!run) throw new UsageError(`unknown command '${command}'; run 'redfleet --help'`);
  await run(rest);
}

main().catch((err: Error) => {
  const known = err instanceof UsageError || err instanceof FleetKeyError;
  console.error(`redfleet: ${known ? err.message : explainError(err, endpoints)}`);
  // A wrong or missing fleet key is a setup error like a bad flag: retrying cannot help.
  process.exit(known ? USAGE_EXIT : 1);
});
