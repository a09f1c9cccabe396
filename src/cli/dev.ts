import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startEtcdServer, type EtcdServer } from '../store/etcd-server.js';
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

/**
 * `npm start`: etcd (a child process with its data under .redfleet/, unless --etcd names one),
 * one scheduler and N agents, each its own process as in a real fleet. Ctrl-C or SIGTERM stops
 * the agents first (they shut their redis-servers down), then the scheduler, then etcd.
 */
export async function devCommand(argv: string[]): Promise<void> {
  const { values } = parseFlags(argv, {
    agents: { type: 'string' },
    api: { type: 'string' },
    sentinel: { type: 'string' },
    data: { type: 'string' },
    etcd: { type: 'string' },
  });
  if (values.help) return void console.log(DEV_HELP);
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
  const logs = join(data, 'logs');
  mkdirSync(logs, { recursive: true });
  const keyPath = join(data, 'fleet.key');
  loadFleetKey(keyPath, true);

  let etcd: EtcdServer | undefined;
  let etcdUrl = typeof values.etcd === 'string' ? values.etcd : process.env.REDFLEET_ETCD;
  if (!etcdUrl) {
    const preferred = (await portFree(2379)) ? 2379 : await freePort();
    etcd = await startEtcdServer(join(data, 'etcd'), { clientPort: preferred });
    etcdUrl = etcd.url;
  }
  const children: ChildProcess[] = [];
  const start = (name: string, args: string[]): ChildProcess => {
    const fd = openSync(join(logs, `${name}.log`), 'a');
    const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', fd, fd] });
    child.on('exit', (code, signal) => {
      if (!stopping) console.error(`${name} exited (${signal ?? code}); see ${join(logs, `${name}.log`)}`);
    });
    children.push(child);
    return child;
  };
  let stopping = false;
  const schedulerUrl = `http://${api.host}:${api.port}`;
  const scheduler = start('scheduler', ['scheduler', '--etcd', etcdUrl, '--api', `${api.host}:${api.port}`, '--sentinel', sentinel, '--fleet-key', keyPath, '--id', 'dev-scheduler']);
  await waitForHealth(schedulerUrl, scheduler);
  const agentProcs: ChildProcess[] = [];
  for (let i = 1; i <= agents; i++) {
    const first = 7000 + (i - 1) * 100;
    agentProcs.push(
      start(`agent${i}`, [
        'agent', '--scheduler', schedulerUrl, '--etcd', etcdUrl, '--id', `agent${i}`, '--ip', '127.0.0.1',
        '--mem', '1024', '--cpus', '2', '--ports', `${first}-${first + 99}`,
        '--work-dir', join(data, 'agents', `agent${i}`), '--fleet-key', keyPath,
      ]),
    );
  }
  console.log(`RedFleet dev fleet is up: etcd ${etcdUrl}, 1 scheduler, ${agents} agents.
  REST API:           ${schedulerUrl}   (MrRedis v1 routes and /api)
  Sentinel endpoint:  ${sentinel}
  Logs:               ${logs}
  etcd tree:          ETCDCTL_API=3 etcdctl --endpoints ${etcdUrl} get --prefix /MrRedis

Try:
  curl -XPOST ${schedulerUrl}/v1/CREATE/cache1/64/1/2 -D -
  curl ${schedulerUrl}/v1/STATUS/cache1
  ${cliExample(MAIN, schedulerUrl)}

Ctrl-C stops everything.`);

  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    console.log('stopping: agents (and their redis-servers), scheduler, etcd');
    await Promise.all(agentProcs.map((c) => terminate(c)));
    await terminate(scheduler);
    await etcd?.stop();
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

async function waitForHealth(url: string, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error('the scheduler exited at start; see .redfleet/logs/scheduler.log');
    try {
      const res = await fetch(`${url}/healthz`);
      // A scheduler serves /healthz as a standby before it wins the election: wait for the leader.
      if (res.ok && ((await res.json()) as { leader?: boolean }).leader !== false) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the scheduler did not answer on ${url} within 10 s`);
}

/** `signal` (SIGTERM by default), then SIGKILL after 10 s; resolves when the child is gone. */
export function terminate(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill(signal);
  });
}
