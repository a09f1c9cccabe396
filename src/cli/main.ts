#!/usr/bin/env node
import { cpus as osCpus, hostname, totalmem } from 'node:os';
import { resolve } from 'node:path';
import { Scheduler } from '../scheduler/scheduler.js';
import { RedFleetAgent } from '../executor/agent.js';
import { defaultFleetKeyPath, loadFleetKey } from '../store/secrets.js';
import { loadSchedulerFleetKey } from '../store/fingerprint.js';
import { connectEtcd } from '../store/etcd.js';
import { FleetKeyError } from '../errors.js';
import { DEFAULT_PREFIX } from '../store/keys.js';
import { parseHostPort } from '../net.js';
import { parsePortRange } from '../proto/messages.js';
import { createLogger } from '../logger.js';
import { UsageError, intFlag, parseDuration, parseFlags, str } from './args.js';
import { DEFAULT_ANONYMOUS } from '../api/access.js';
import { readFileSync } from 'node:fs';
import { CLIENT_HELP, createCommand, deleteCommand, listCommand, statusCommand } from './client.js';
import { devCommand, DEV_HELP } from './dev.js';

const HELP = `redfleet: Redis-as-a-service on a two-level scheduler

Fleet processes:
  redfleet scheduler --etcd URLS [--prefix /MrRedis] [--api HOST:PORT] [--sentinel HOST:PORT] [--id NAME] [--fleet-key FILE]
                     [--agent-timeout SECONDS] [--api-token TOKEN]... [--api-token-file FILE] [--trusted-proxy ADDR]...
                     [--anonymous [--anonymous-per-client 6] [--anonymous-ttl 12h] [--anonymous-capacity 64] [--anonymous-maxclients 50]]
  redfleet agent --scheduler URL --etcd URLS --id NAME [--ip ADDR] [--cpus N] [--mem MB] [--ports FIRST-LAST]
                 [--work-dir DIR] [--redis-server PATH] [--fleet-key FILE] [--prefix /MrRedis]
${DEV_HELP}

${CLIENT_HELP}

Environment: REDFLEET_API, REDFLEET_TOKEN (client commands), REDFLEET_API_TOKEN (scheduler), REDFLEET_ETCD,
REDFLEET_SENTINEL, REDFLEET_PREFIX, REDFLEET_FLEET_KEY, REDFLEET_LOG_LEVEL.`;

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
    'agent-timeout': { type: 'string' },
    'api-token': { type: 'string', multiple: true },
    'api-token-file': { type: 'string' },
    anonymous: { type: 'boolean' },
    'anonymous-per-client': { type: 'string' },
    'anonymous-ttl': { type: 'string' },
    'anonymous-capacity': { type: 'string' },
    'anonymous-maxclients': { type: 'string' },
    'trusted-proxy': { type: 'string', multiple: true },
  });
  if (values.help) return void console.log(HELP);
  const api = parseHostPort(str(values.api, process.env.REDFLEET_API ?? '127.0.0.1:5656'), '--api');
  const sentinel = parseHostPort(str(values.sentinel, process.env.REDFLEET_SENTINEL ?? '127.0.0.1:26379'), '--sentinel');
  const etcd = str(values.etcd, process.env.REDFLEET_ETCD ?? '');
  if (!etcd) throw new UsageError('scheduler needs --etcd URLS (or REDFLEET_ETCD), e.g. --etcd http://127.0.0.1:2379');
  const prefix = str(values.prefix, process.env.REDFLEET_PREFIX ?? DEFAULT_PREFIX);
  const keyPath = resolve(str(values['fleet-key'], defaultFleetKeyPath()));
  const log = createLogger('scheduler');
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
    agentTimeoutMs: intFlag(values['agent-timeout'], 'agent-timeout', 10, 1) * 1000,
    access: {
      adminTokens: adminTokens(values['api-token'] as unknown as string[] | undefined, values['api-token-file']),
      trustedProxies: new Set((values['trusted-proxy'] as unknown as string[] | undefined) ?? []),
      anonymous: values.anonymous
        ? {
            perClient: intFlag(values['anonymous-per-client'], 'anonymous-per-client', DEFAULT_ANONYMOUS.perClient, 1),
            ttlSeconds: typeof values['anonymous-ttl'] === 'string' ? parseDuration(values['anonymous-ttl']) : DEFAULT_ANONYMOUS.ttlSeconds,
            maxCapacityMb: intFlag(values['anonymous-capacity'], 'anonymous-capacity', DEFAULT_ANONYMOUS.maxCapacityMb, 1),
            maxClients: intFlag(values['anonymous-maxclients'], 'anonymous-maxclients', DEFAULT_ANONYMOUS.maxClients, 1),
            maxReplicas: DEFAULT_ANONYMOUS.maxReplicas,
          }
        : undefined,
    },
  });
  stopOnSignal(() => scheduler.stop());
  await scheduler.start();
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
    if (err instanceof FleetKeyError) throw err;
    throw new Error(`cannot read the fleet's key fingerprint from etcd at ${etcdUrls} (${(err as Error).message}); check that etcd runs there and --etcd is right`);
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
    prefix: { type: 'string' },
  });
  if (values.help) return void console.log(HELP);
  if (typeof values.scheduler !== 'string') throw new UsageError('agent needs --scheduler URL (the scheduler API, e.g. http://127.0.0.1:5656)');
  if (typeof values.id !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(values.id)) throw new UsageError('agent needs --id NAME (letters, digits, "_", "." or "-")');
  const schedulerUrl = /^https?:\/\//.test(values.scheduler) ? values.scheduler.replace(/\/$/, '') : `http://${values.scheduler}`;
  const id = values.id;
  const keyPath = resolve(str(values['fleet-key'], defaultFleetKeyPath()));
  let ports;
  try {
    ports = parsePortRange(str(values.ports, '6380-6479'));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const agent = new RedFleetAgent({
    schedulerUrl,
    etcd: str(values.etcd, process.env.REDFLEET_ETCD ?? 'http://127.0.0.1:2379'),
    prefix: str(values.prefix, process.env.REDFLEET_PREFIX ?? DEFAULT_PREFIX),
    id,
    ip: str(values.ip, '127.0.0.1'),
    cpus: intFlag(values.cpus, 'cpus', osCpus().length),
    mem: intFlag(values.mem, 'mem', Math.floor((totalmem() / 1024 / 1024) * 0.75), 1),
    ports,
    workDir: resolve(str(values['work-dir'], resolve('.redfleet', 'agents', id))),
    redisServer: str(values['redis-server'], 'redis-server'),
    fleetKey: loadFleetKey(keyPath, false).key,
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

async function main(): Promise<void> {
  const [command, ...rest] = process.argv.slice(2);
  if (!command || command === '--help' || command === '-h' || command === 'help') return void console.log(HELP);
  const run = COMMANDS[command];
  if (!run) throw new UsageError(`unknown command '${command}'; run 'redfleet --help'`);
  await run(rest);
}

main().catch((err: Error) => {
  console.error(`redfleet: ${err.message}`);
  // A wrong or missing fleet key is a setup error like a bad flag: retrying cannot help.
  process.exit(err instanceof UsageError || err instanceof FleetKeyError ? 2 : 1);
});
