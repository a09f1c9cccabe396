/**
 * bench/failover/sentinel-run: the Sentinel side. Per run three redis-server started here
 * (REPLICAOF-linked) and three `redis-sentinel` (quorum 2, down-after-milliseconds 1000,
 * failover-timeout 10000), all removed afterwards. The timeline comes from the sentinels' logs.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePorts, portOpen, redisServerConf } from '../servers.js';
import { StartedHere, stopProcess, type Spawned } from '../started-here.js';
import {
  CAPACITY_MB, DOWN_AFTER_MS, EVENTS, REPLICAS, SENTINEL_FAILOVER_TIMEOUT_MS, SENTINEL_QUORUM, SENTINELS, SETUP_TIMEOUT_MS,
  type EventName, type Fault, type Outcome, type Run,
} from './parameters.js';
import { Prober, resume } from './prober.js';
import { command, masterAddr, pairs } from './sentinel-protocol.js';
import { series } from './series.js';
import { waitFor } from './wait.js';

export type Child = Spawned & { what: string };

/** Processes and directories of the Sentinel side, so that an exit can still remove them. */
export const started = new StartedHere(Boolean(process.env.REDFLEET_KEEP_TEST_DIRS));

async function waitListening(c: Child, port: number): Promise<void> {
  await waitFor(`${c.what} to listen on ${port}`, SETUP_TIMEOUT_MS, async () => {
    if (c.exited) throw new Error(`${c.what} exited at start: ${c.stderr.trim() || 'see its log'}`);
    return (await portOpen(port, 500)) ? true : undefined;
  });
}

function sentinelConf(port: number, masterPort: number, dir: string, n: number): string {
  return [
    `port ${port}`,
    'bind 127.0.0.1',
    'daemonize no',
    `dir ${dir}`,
    `logfile ${dir}/sentinel-${n}.log`,
    'sentinel resolve-hostnames no',
    `sentinel monitor mymaster 127.0.0.1 ${masterPort} ${SENTINEL_QUORUM}`,
    `sentinel down-after-milliseconds mymaster ${DOWN_AFTER_MS}`,
    `sentinel failover-timeout mymaster ${SENTINEL_FAILOVER_TIMEOUT_MS}`,
    'sentinel parallel-syncs mymaster 1',
    '',
  ].join('\n');
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** `123:X 24 Sep 2025 20:34:00.123 # +sdown master mymaster 127.0.0.1 6379` -> time and text. */
function parseRedisLog(text: string): { t: number; text: string }[] {
  const out: { t: number; text: string }[] = [];
  const re = /^\d+:[A-Z] (\d{1,2}) (\w{3}) (\d{4}) (\d{2}):(\d{2}):(\d{2})\.(\d{3}) \S (.*)$/;
  for (const line of text.split('\n')) {
    const m = re.exec(line);
    if (!m) continue;
    const month = MONTHS.indexOf(m[2]);
    if (month < 0) continue;
    const t = new Date(Number(m[3]), month, Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6]), Number(m[7])).getTime();
    out.push({ t, text: m[8] });
  }
  return out;
}

function sentinelEvents(dir: string, wall: number): Partial<Record<EventName, number>> {
  const lines = Array.from({ length: SENTINELS }, (_, k) => {
    try {
      return parseRedisLog(readFileSync(join(dir, `sentinel-${k + 1}.log`), 'utf8'));
    } catch {
      return [];
    }
  }).flat().filter((l) => l.t >= wall - 5).sort((a, b) => a.t - b.t);
  const out: Partial<Record<EventName, number>> = {};
  const patterns: Record<EventName, RegExp> = {
    '+sdown': /^\+sdown master mymaster /,
    '+odown': /^\+odown master mymaster /,
    '+try-failover': /^\+try-failover master mymaster /,
    '+promoted-slave': /^\+promoted-slave slave .* @ mymaster /,
    '+switch-master': /^\+switch-master mymaster /,
  };
  for (const ev of EVENTS) {
    const l = lines.find((x) => patterns[ev].test(x.text));
    if (l) out[ev] = l.t - wall;
  }
  return out;
}

/** The three redis-servers of one run, the replicas linked to the first; resolves once both links are up. */
export async function startRedis(dir: string, redisPorts: number[], children: Child[]): Promise<Child[]> {
  const masterPort = redisPorts[0];
  const redis = redisPorts.map((port, k) => {
    const d = join(dir, `redis${k}`);
    mkdirSync(d);
    writeFileSync(join(d, 'redis.conf'), redisServerConf(port, d, CAPACITY_MB));
    const c = started.spawn('redis-server', [join(d, 'redis.conf')], { what: `redis-server ${port}` });
    children.push(c);
    return c;
  });
  await Promise.all(redis.map((c, k) => waitListening(c, redisPorts[k])));
  for (const port of redisPorts.slice(1)) await command(port, ['REPLICAOF', '127.0.0.1', String(masterPort)]);
  await Promise.all(redisPorts.slice(1).map((port) => waitFor(`replica ${port} to link up`, SETUP_TIMEOUT_MS, async () => {
    const text = String(await command(port, ['INFO', 'replication']));
    return /^master_link_status:up/m.test(text) ? true : undefined;
  })));
  return redis;
}

/** The three sentinels of one run; resolves once each sees the master, its replicas and the other sentinels. */
export async function startSentinels(dir: string, sentinelPorts: number[], masterPort: number, children: Child[]): Promise<void> {
  const sentinels = sentinelPorts.map((port, k) => {
    const conf = join(dir, `sentinel-${k + 1}.conf`);
    writeFileSync(conf, sentinelConf(port, masterPort, dir, k + 1), { mode: 0o600 });
    const c = started.spawn('redis-sentinel', [conf], { what: `redis-sentinel ${port}` });
    children.push(c);
    return c;
  });
  await Promise.all(sentinels.map((c, k) => waitListening(c, sentinelPorts[k])));
  await Promise.all(sentinelPorts.map((port) => waitFor(`sentinel ${port} to see the master with ${REPLICAS} replicas and ${SENTINELS - 1} other sentinels`, SETUP_TIMEOUT_MS, async () => {
    const m = pairs(await command(port, ['SENTINEL', 'master', 'mymaster']));
    return m.flags === 'master' && Number(m['num-slaves']) === REPLICAS && Number(m['num-other-sentinels']) === SENTINELS - 1 ? true : undefined;
  })));
}

async function sentinelRun(i: number, fault: Fault): Promise<Run> {
  const dir = started.tempDir('redfleet-bench-failover-');
  const children: Child[] = [];
  const label = `run ${i}`;
  let prober: Prober | undefined;
  let frozenPid = 0;
  try {
    const ports = await freePorts(1 + REPLICAS + SENTINELS);
    const redisPorts = ports.slice(0, 1 + REPLICAS);
    const sentinelPorts = ports.slice(1 + REPLICAS);
    const masterPort = redisPorts[0];
    const redis = await startRedis(dir, redisPorts, children);
    await startSentinels(dir, sentinelPorts, masterPort, children);
    prober = new Prober(sentinelPorts.map((port) => ({ host: '127.0.0.1', port })), 'mymaster');
    prober.start();
    await prober.ready(masterPort);
    const masterPid = redis[0].child.pid!;
    const wall = prober.inject(masterPid, fault, masterPort);
    if (fault === 'SIGSTOP') frozenPid = masterPid;
    const hit = await prober.waitNewMaster();
    const notes: string[] = [];
    if (frozenPid) {
      resume(frozenPid);
      frozenPid = 0;
    }
    const named = await Promise.all(sentinelPorts.map((port) => masterAddr(port, 'mymaster').catch((err: Error) => `error ${err.message}`)));
    if (!named.includes(`127.0.0.1:${hit.port}`)) notes.push(`first write went to port ${hit.port} but the sentinels name ${named.join(', ')}`);
    if (!redisPorts.slice(1).includes(hit.port)) notes.push(`port ${hit.port} was not one of the replicas`);
    return { system: 'Sentinel', fault, label, ms: hit.ms, port: hit.port, wall, events: sentinelEvents(dir, wall), oldAlive: hit.oldAlive, errors: hit.errors, notes };
  } finally {
    if (frozenPid) resume(frozenPid);
    await prober?.stop();
    await Promise.all(children.map((c) => stopProcess(c, 'SIGKILL')));
    started.removeDir(dir);
  }
}

export async function benchSentinel(runs: number, out: Outcome): Promise<void> {
  await series('Sentinel', runs, sentinelRun, out);
}
