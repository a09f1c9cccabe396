import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { stopChild } from '../devtools/child-process.js';
import { startEtcdServer, type EtcdServer } from '../devtools/etcd-server.js';
import { loadFleetKey } from '../store/secrets.js';
import { freePort, parseHostPort, portFree } from '../net.js';
import { intFlag, parseFlags, str } from './args.js';

export const DEV_USAGE = `Laptop fleet:
  redfleet dev [--agents 3] [--api 127.0.0.1:5656] [--sentinel 127.0.0.1:26379] [--data .redfleet] [--etcd URLS]`;

const DEFAULT_API = '127.0.0.1:5656';

export const DEV_HELP = `Usage: redfleet dev [flags]
A whole fleet on this host (what npm start runs): etcd, one scheduler and N agents, each its own
process, logs under DIR/logs. Ctrl-C stops everything.

  --agents N            agents to start, 1024 MB and 2 CPUs each; default 3
  --api HOST:PORT       the scheduler's REST API; default $REDFLEET_API, else ${DEFAULT_API}
  --sentinel HOST:PORT  the Sentinel-compatible endpoint; default $REDFLEET_SENTINEL, else 127.0.0.1:26379
                        (a free port when a system redis-sentinel holds 26379)
  --data DIR            etcd data, fleet key, agents' work dirs and logs; default $REDFLEET_DATA, else .redfleet
  --etcd URLS           use this etcd instead of starting one; default $REDFLEET_ETCD, else start one
  -h, --help            this text`;

const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));

/** What `redfleet dev` was asked for, flags and environment resolved. */
interface DevOptions {
  agents: number;
  /** The data directory, absolute. */
  data: string;
  api: { host: string; port: number };
  sentinel: string;
  /** An etcd to use instead of starting one. */
  etcd?: string;
}

/** The agents, the scheduler and etcd, in the order Ctrl-C stops them; each as far as it started. */
interface DevFleet {
  agents: ChildProcess[];
  scheduler?: ChildProcess;
  etcd?: EtcdServer;
}

/** Grace between SIGTERM and SIGKILL for a dev child: agents shut their redis-servers down first. */
const STOP_GRACE_MS = 10_000;

/**
 * `npm start`: etcd (a child process with its data under .redfleet/, unless --etcd names one),
 * one scheduler and N agents, each its own process as in a real fleet. Ctrl-C or SIGTERM stops
 * the agents first (they shut their redis-servers down), then the scheduler, then etcd.
 */
export async function devCommand(argv: string[]): Promise<void> {
  const opts = await devOptions(argv);
  if (!opts) return void console.log(DEV_HELP);
  const logs = join(opts.data, 'logs');
  mkdirSync(logs, { recursive: true });
  const keyPath = join(opts.data, 'fleet.key');
  loadFleetKey(keyPath, true);

  let etcd: EtcdServer | undefined;
  let etcdUrl = opts.etcd;
  if (!etcdUrl) {
    const preferred = (await portFree(2379)) ? 2379 : await freePort();
    etcd = await startEtcdServer(join(opts.data, 'etcd'), { clientPort: preferred });
    etcdUrl = etcd.url;
  }
  const state = { stopping: false };
  const fleet: DevFleet = { agents: [], etcd };
  try {
    await startFleet(fleet, opts, { logs, keyPath, etcdUrl, state });
  } catch (err) {
    // What started must not outlive a failed start: etcd would keep its port and data dir.
    state.stopping = true;
    await stopFleet(fleet);
    throw err;
  }
  console.log(banner(etcdUrl, opts, schedulerUrlOf(opts), logs));
  stopOnSignal(fleet, state);
}

function schedulerUrlOf(opts: DevOptions): string {
  return `http://${opts.api.host}:${opts.api.port}`;
}

/** The scheduler, once it leads, then the agents; each joins `fleet` as it starts. */
async function startFleet(
  fleet: DevFleet,
  opts: DevOptions,
  at: { logs: string; keyPath: string; etcdUrl: string; state: { stopping: boolean } },
): Promise<void> {
  const { logs, keyPath, etcdUrl, state } = at;
  const start = (name: string, args: string[]): ChildProcess => startCli(logs, name, args, state);
  const schedulerUrl = schedulerUrlOf(opts);
  fleet.scheduler = start('scheduler', ['scheduler', '--etcd', etcdUrl, '--api', `${opts.api.host}:${opts.api.port}`, '--sentinel', opts.sentinel, '--fleet-key', keyPath, '--id', 'dev-scheduler']);
  await waitForHealth(schedulerUrl, fleet.scheduler, join(logs, 'scheduler.log'));
  for (let i = 1; i <= opts.agents; i++) {
    const first = 7000 + (i - 1) * 100;
    fleet.agents.push(
      start(`agent${i}`, [
        'agent', '--scheduler', schedulerUrl, '--etcd', etcdUrl, '--id', `agent${i}`, '--ip', '127.0.0.1',
        '--mem', '1024', '--cpus', '2', '--ports', `${first}-${first + 99}`,
        '--work-dir', join(opts.data, 'agents', `agent${i}`), '--fleet-key', keyPath,
      ]),
    );
  }
}

/** Flags and environment, checked; undefined for --help. The ports must be free. */
async function devOptions(argv: string[]): Promise<DevOptions | undefined> {
  const { values } = parseFlags(argv, {
    agents: { type: 'string' },
    api: { type: 'string' },
    sentinel: { type: 'string' },
    data: { type: 'string' },
    etcd: { type: 'string' },
  });
  if (values.help) return undefined;
  const agents = intFlag(values.agents, 'agents', 3, 1);
  const data = resolve(str(values.data, process.env.REDFLEET_DATA ?? '.redfleet'));
  const api = parseHostPort(str(values.api, process.env.REDFLEET_API ?? DEFAULT_API), '--api');
  let sentinel = str(values.sentinel, process.env.REDFLEET_SENTINEL ?? '127.0.0.1:26379');
  if (sentinel === '127.0.0.1:26379' && !(await portFree(26379))) {
    // A system redis-sentinel (Debian's package starts one) may hold the default port.
    sentinel = `127.0.0.1:${await freePort()}`;
    console.log(`port 26379 is taken (a system redis-sentinel?); the Sentinel-compatible endpoint uses ${sentinel}`);
  }
  if (!(await portFree(api.port))) throw new Error(`port ${api.port} is taken; stop what holds it or pass --api HOST:PORT`);
  const etcd = typeof values.etcd === 'string' ? values.etcd : process.env.REDFLEET_ETCD;
  return { agents, data, api, sentinel, etcd: etcd || undefined };
}

/** One `redfleet` process of the dev fleet, logging to LOGS/NAME.log; an unexpected exit is said on stderr. */
function startCli(logs: string, name: string, args: string[], state: { stopping: boolean }): ChildProcess {
  const fd = openSync(join(logs, `${name}.log`), 'a');
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', fd, fd] });
  child.on('exit', (code, signal) => {
    if (!state.stopping) console.error(`${name} exited (${signal ?? code}); see ${join(logs, `${name}.log`)}`);
  });
  return child;
}

function banner(etcdUrl: string, opts: DevOptions, schedulerUrl: string, logs: string): string {
  return `RedFleet dev fleet is up: etcd ${etcdUrl}, 1 scheduler, ${opts.agents} agents.
  Dashboard:          ${schedulerUrl}/
  REST API:           ${schedulerUrl}   (MrRedis v1 routes and /api; OpenAPI at ${schedulerUrl}/api/openapi.json)
  Metrics:            ${schedulerUrl}/metrics   (Prometheus text)
  Sentinel endpoint:  ${opts.sentinel}
  Logs:               ${logs}
  etcd tree:          ETCDCTL_API=3 etcdctl --endpoints ${etcdUrl} get --prefix /MrRedis

Try:
  curl -XPOST ${schedulerUrl}/v1/CREATE/cache1/64/1/2 -D -
  curl ${schedulerUrl}/v1/STATUS/cache1
  ${cliExample(MAIN, schedulerUrl)}

Ctrl-C stops everything.`;
}

/** The agents (and their redis-servers), then the scheduler, then etcd; each given STOP_GRACE_MS. */
async function stopFleet(fleet: DevFleet): Promise<void> {
  await Promise.all(fleet.agents.map((c) => stopChild(c, 'SIGTERM', STOP_GRACE_MS)));
  if (fleet.scheduler) await stopChild(fleet.scheduler, 'SIGTERM', STOP_GRACE_MS);
  await fleet.etcd?.stop();
}

/** On SIGINT or SIGTERM: stops the fleet, then exits 0. */
function stopOnSignal(fleet: DevFleet, state: { stopping: boolean }): void {
  const stop = async (): Promise<void> => {
    if (state.stopping) return;
    state.stopping = true;
    console.log('stopping: agents (and their redis-servers), scheduler, etcd');
    await stopFleet(fleet);
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
}

/**
 * The banner's CLI line. The client finds the API through --api or REDFLEET_API, else the default
 * address: when the dev fleet listens elsewhere, the example must say where, or a copy-paste of it
 * talks to nothing (or to another fleet).
 */
export function cliExample(main: string, schedulerUrl: string): string {
  const atDefault = schedulerUrl === `http://${DEFAULT_API}`;
  return `node ${main} create cache2 --capacity 64 --replicas 2 --wait${atDefault ? '' : ` --api ${schedulerUrl}`}`;
}

async function waitForHealth(url: string, child: ChildProcess, log: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`the scheduler exited at start; see ${log}`);
    try {
      const res = await fetch(`${url}/healthz`);
      // A scheduler serves /healthz as a standby before it wins the election: wait for the leader.
      if (res.ok && ((await res.json()) as { leader?: boolean }).leader !== false) return;
    } catch {
      // not listening yet
    }
    await sleep(50);
  }
  throw new Error(`the scheduler did not answer on ${url} within 10 s`);
}
