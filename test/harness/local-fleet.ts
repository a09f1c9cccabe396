import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, readdirSync, readlinkSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { startEtcdCluster, startEtcdServer, type EtcdServer } from '../../src/devtools/etcd-server.js';
import { loadFleetKey } from '../../src/store/secrets.js';
import { freePort, portFree } from '../../src/net.js';
import type { TestNetwork } from './netns.js';
import { stopChild } from '../../src/devtools/child-process.js';

/** The compiled CLI, run as real processes just as an operator would run them. */
export const CLI = resolve(fileURLToPath(new URL('../../src/cli/main.js', import.meta.url)));

export interface AgentSpec {
  mem?: number;
  cpus?: number;
  ports?: number;
  /** Run the agent (and so its redis-servers) inside this test host's network namespace. */
  host?: { ns: string; ip: string };
  /** The agent's --redis-server (default: redis-server on PATH). */
  redisServer?: string;
  /** The first of its ports (default: a free range). An agent restarted as before passes `fleet.agentFirstPort.get(id)`. */
  firstPort?: number;
  /** More flags for `redfleet agent`. */
  args?: string[];
}

export interface ApiResponse {
  status: number;
  headers: Headers;
  text: string;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

const live = new Set<LocalFleet>();

/**
 * What a failed test leaves behind for a reader of CI's output: each live fleet's last scheduler
 * lines at warn level or above (the scheduler's own account of what went wrong), then its last
 * lines of any level (what it was doing: an instance requested, placed, launched, a status), since
 * a test that times out waiting may have been waiting on something the scheduler saw no fault in.
 */
export function liveFleetsReport(lines = 25, recent = 40): string {
  const out: string[] = [];
  for (const fleet of live) {
    const all = fleet.log('scheduler').split('\n').filter((l) => l.length > 0);
    const warned = all.filter((l) => /"level":"(warn|error)"/.test(l));
    if (warned.length > 0) out.push(`--- scheduler of ${fleet.dir}: last ${Math.min(lines, warned.length)} of ${warned.length} warn/error lines`, ...warned.slice(-lines).map((l) => l.slice(0, 600)));
    if (all.length > 0) out.push(`--- scheduler of ${fleet.dir}: its last ${Math.min(recent, all.length)} lines`, ...all.slice(-recent).map((l) => l.slice(0, 400)));
  }
  return out.join('\n');
}

process.on('exit', () => {
  for (const fleet of live) fleet.killAllSync();
});

/**
 * A whole fleet on this machine for tests and benchmarks: a real etcd, a scheduler process and
 * agent processes (the compiled `redfleet` CLI), all on free loopback ports under one temporary
 * directory. `stop()` kills every process it started, any redis-server whose working directory
 * lies under that directory (even one orphaned by a SIGKILLed agent), and removes the directory.
 */
export class LocalFleet {
  readonly dir: string;
  readonly fleetKeyPath: string;
  etcd!: EtcdServer;
  apiPort = 0;
  sentinelPort = 0;
  scheduler?: ChildProcess;
  readonly agents = new Map<string, ChildProcess>();
  /** The first port each agent id was last given (a restart with the same --ports passes it as firstPort). */
  readonly agentFirstPort = new Map<string, number>();
  private readonly children = new Set<ChildProcess>();

  /** Sent by waitForStatus and cli() when the scheduler requires a token. */
  adminToken = '';

  /** Where agents reach etcd and the scheduler: 127.0.0.1, or a test network's bridge address. */
  reachAt = '127.0.0.1';

  /** Node flags for the scheduler process (bench:scale's --cpu-prof; NODE_OPTIONS refuses it). */
  schedulerNodeArgs: string[] = [];

  private constructor(readonly schedulerArgs: string[]) {
    this.dir = mkdtempSync(join(tmpdir(), 'redfleet-test-'));
    this.fleetKeyPath = join(this.dir, 'fleet.key');
    loadFleetKey(this.fleetKeyPath, true);
    live.add(this);
  }

  /** `etcdMembers` above 1 runs an etcd cluster of that many members on loopback (not with `network`). */
  /** `etcdArgs`: more flags for a single-member etcd (bench:startup raises its transaction and size limits). */
  static async start(opts: { agents?: number; agent?: AgentSpec; schedulerArgs?: string[]; schedulerNodeArgs?: string[]; adminToken?: string; network?: TestNetwork; etcdMembers?: number; etcdArgs?: string[] } = {}): Promise<LocalFleet> {
    const fleet = new LocalFleet(opts.schedulerArgs ?? []);
    fleet.schedulerNodeArgs = opts.schedulerNodeArgs ?? [];
    fleet.adminToken = opts.adminToken ?? '';
    if (opts.network) {
      if (!fleet.adminToken) throw new Error('a fleet on a test network listens beyond loopback, which needs an admin token');
      fleet.reachAt = opts.network.hostIp;
    }
    try {
      fleet.etcd = (opts.etcdMembers ?? 1) > 1
        ? await startEtcdCluster(join(fleet.dir, 'etcd'), opts.etcdMembers as number)
        : await startEtcdServer(join(fleet.dir, 'etcd'), { extraHosts: opts.network ? [opts.network.hostIp] : [], extraArgs: opts.etcdArgs });
      fleet.apiPort = await freePort();
      fleet.sentinelPort = await freePort();
      await fleet.startScheduler();
      for (let i = 1; i <= (opts.agents ?? 3); i++) await fleet.startAgent(`agent${i}`, opts.agent);
      // Generous: a timeout only decides how long a broken start takes to report, and a machine
      // shared with other suites can take well over 10 s to start three agent processes.
      await fleet.waitFor(async () => (await fleet.api('GET', '/healthz')).json.agents === (opts.agents ?? 3), 30_000, 'agents to subscribe');
    } catch (err) {
      await fleet.stop();
      throw err;
    }
    return fleet;
  }

  get apiUrl(): string {
    return `http://${this.reachAt}:${this.apiPort}`;
  }

  private get etcdUrl(): string {
    return this.etcd.url.replaceAll('127.0.0.1', this.reachAt);
  }

  private launch(name: string, args: string[], ns?: string, nodeArgs: string[] = []): ChildProcess {
    const fd = openSync(join(this.dir, `${name}.log`), 'a');
    const [cmd, argv] = ns ? ['ip', ['netns', 'exec', ns, process.execPath, ...nodeArgs, CLI, ...args]] : [process.execPath, [...nodeArgs, CLI, ...args]];
    const child = spawn(cmd, argv, { stdio: ['ignore', fd, fd], env: { REDFLEET_LOG_LEVEL: 'info', ...process.env } });
    this.children.add(child);
    child.on('exit', () => this.children.delete(child));
    return child;
  }

  log(name: string): string {
    try {
      return readFileSync(join(this.dir, `${name}.log`), 'utf8');
    } catch {
      return '';
    }
  }

  /**
   * Starts the scheduler and waits (up to `leaderWithinMs`) until it leads; with 0 it returns once
   * the process is spawned, for a caller that times the start itself (bench:startup).
   */
  async startScheduler(leaderWithinMs = 15_000): Promise<void> {
    this.scheduler = this.launch('scheduler', [
      'scheduler', '--etcd', this.etcd.url, '--api', `${this.reachAt}:${this.apiPort}`, '--sentinel', `127.0.0.1:${this.sentinelPort}`,
      '--fleet-key', this.fleetKeyPath, '--id', 'test-scheduler',
      ...this.schedulerArgs,
    ], undefined, this.schedulerNodeArgs);
    if (leaderWithinMs === 0) return;
    // A scheduler listens (as a standby) before it wins the election; tests want the leader.
    await this.waitFor(async () => (await this.api('GET', '/healthz').catch(() => undefined))?.json?.leader === true, leaderWithinMs, 'the scheduler to lead');
  }

  /**
   * Another scheduler of this fleet on its own API and Sentinel ports (a standby while the first
   * leads). Resolves once it serves its API.
   */
  async startStandby(id: string, args: string[] = []): Promise<{ child: ChildProcess; apiUrl: string; sentinelPort: number }> {
    const apiPort = await freePort();
    const sentinelPort = await freePort();
    const child = this.launch(id, [
      'scheduler', '--etcd', this.etcd.url, '--api', `${this.reachAt}:${apiPort}`, '--sentinel', `127.0.0.1:${sentinelPort}`,
      '--fleet-key', this.fleetKeyPath, '--id', id, ...this.schedulerArgs, ...args,
    ]);
    const apiUrl = `http://${this.reachAt}:${apiPort}`;
    await this.waitFor(async () => (await this.apiAt(apiUrl, 'GET', '/healthz').catch(() => undefined))?.status === 200, 15_000, `scheduler ${id} to listen`);
    return { child, apiUrl, sentinelPort };
  }

  async killScheduler(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.scheduler) await killAndWait(this.scheduler, signal);
    this.scheduler = undefined;
  }

  async startAgent(id: string, spec: AgentSpec = {}): Promise<ChildProcess> {
    const count = spec.ports ?? 20;
    const first = spec.firstPort ?? await freeRange(count);
    this.agentFirstPort.set(id, first);
    const child = this.launch(id, [
      'agent', '--scheduler', this.apiUrl, '--etcd', this.etcdUrl, '--id', id, '--ip', spec.host?.ip ?? '127.0.0.1',
      '--mem', String(spec.mem ?? 1024), '--cpus', String(spec.cpus ?? 2), '--ports', `${first}-${Math.min(65535, first + count - 1)}`,
      '--work-dir', join(this.dir, 'agents', id), '--fleet-key', this.fleetKeyPath,
      ...(spec.redisServer ? ['--redis-server', spec.redisServer] : []),
      ...(spec.args ?? []),
    ], spec.host?.ns);
    this.agents.set(id, child);
    return child;
  }

  /** The pid of a running agent's process. */
  agentPid(id: string): number {
    const pid = this.agents.get(id)?.pid;
    if (!pid) throw new Error(`no agent ${id} running`);
    return pid;
  }

  async stopAgent(id: string, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.agents.get(id);
    if (child) await killAndWait(child, signal);
    this.agents.delete(id);
  }

  async api(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiResponse> {
    return this.apiAt(this.apiUrl, method, path, body, headers);
  }

  /** `api`, against another scheduler's API (a standby's). */
  async apiAt(baseUrl: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiResponse> {
    const res = await fetch(`${baseUrl}${path}`, {
      method,
      headers: body === undefined ? headers : { 'Content-Type': 'application/json', ...headers },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, headers: res.headers, text, json };
  }

  /** Runs the real etcdctl against this fleet's etcd. */
  etcdctl(...args: string[]): string {
    const out = spawnSync('etcdctl', ['--endpoints', this.etcd.url, ...args], { encoding: 'utf8', env: { ...process.env, ETCDCTL_API: '3' } });
    if (out.status !== 0) throw new Error(`etcdctl ${args.join(' ')} failed: ${out.stderr}`);
    return out.stdout;
  }

  /** `etcdctl get --prefix` as a key → value map. */
  tree(prefix: string): Map<string, string> {
    const lines = this.etcdctl('get', '--prefix', prefix).split('\n');
    const out = new Map<string, string>();
    for (let i = 0; i + 1 < lines.length; i += 2) out.set(lines[i], lines[i + 1]);
    return out;
  }

  /** Runs the redfleet CLI; resolves with its output and exit code. */
  cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolvePromise) => {
      const token = this.adminToken ? { REDFLEET_TOKEN: this.adminToken } : {};
      const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, REDFLEET_API: this.apiUrl, ...token, ...env } });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
      child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
      child.on('exit', (code) => resolvePromise({ code, stdout, stderr }));
    });
  }

  /** `what` may be a function, for a message that says what was last seen. */
  async waitFor<T>(probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs: number, what: string | (() => string)): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let lastError: unknown;
    for (;;) {
      try {
        const value = await probe();
        if (value) return value;
      } catch (err) {
        lastError = err;
      }
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'function' ? what() : what}${lastError ? `: ${(lastError as Error).message}` : ''}`);
      await sleep(25);
    }
  }

  /** Waits until the instance reads `status` (from the JSON API) and returns it. */
  async waitForStatus(name: string, status: string, timeoutMs = 20_000): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
    let last: ApiResponse | undefined;
    const lastSeen = (): string => {
      if (!last) return 'no answer';
      const procs = (last.json?.procs ?? []).map((p: { id: string; state: string; agent?: string }) => `${p.id.slice(-8)}@${p.agent ?? '?'} ${p.state}`).join(', ');
      return `HTTP ${last.status}, status ${last.json?.status}, reason '${last.json?.reason ?? ''}', procs [${procs}]`;
    };
    return this.waitFor(async () => {
      last = await this.api('GET', `/api/instances/${name}`, undefined, this.adminToken ? { Authorization: `Bearer ${this.adminToken}` } : {});
      return last.json?.status === status ? last.json : undefined;
    }, timeoutMs, () => `${name} to be ${status} (last seen: ${lastSeen()})`);
  }

  /** pids of redis-server processes whose working directory lies in this fleet's directory. */
  redisPids(): number[] {
    const pids: number[] = [];
    for (const entry of readdirSync('/proc')) {
      if (!/^[0-9]+$/.test(entry)) continue;
      try {
        const cwd = readlinkSync(`/proc/${entry}/cwd`);
        const comm = readFileSync(`/proc/${entry}/comm`, 'utf8').trim();
        if (comm === 'redis-server' && cwd.startsWith(this.dir)) pids.push(Number(entry));
      } catch {
        // the process went away or is not ours to read
      }
    }
    return pids;
  }

  killAllSync(): void {
    for (const child of this.children) child.kill('SIGKILL');
    for (const m of this.etcd?.members ?? []) m.child.kill('SIGKILL');
    for (const pid of this.redisPids()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  async stop(): Promise<void> {
    await Promise.all([...this.agents.keys()].map((id) => this.stopAgent(id, 'SIGTERM')));
    await Promise.all([...this.children].map((c) => killAndWait(c, 'SIGKILL')));
    await this.etcd?.stop();
    for (const pid of this.redisPids()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const first of this.agentFirstPort.values()) rangesInUse.delete(first);
    if (process.env.REDFLEET_KEEP_TEST_DIRS) console.log(`kept ${this.dir}`);
    else rmSync(this.dir, { recursive: true, force: true });
    live.delete(this);
  }
}

/** Sends `signal` (SIGKILL after 10 s) and resolves when the child is gone. */
export function killAndWait(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  return stopChild(child, signal, 10_000);
}

/**
 * `count` consecutive free ports below the kernel's ephemeral range (32768 up), so that no
 * outgoing connection's local port lands in an agent's range while a test runs.
 */
/**
 * Port ranges handed to agents of live fleets in this process, by first port: a range is free
 * only at the moment it is checked, so two agents started close together could otherwise get
 * overlapping ranges (their redis-servers then collide on ports). Released when the fleet stops.
 */
const rangesInUse = new Map<number, number>();

async function freeRange(count: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const first = 20000 + Math.floor(Math.random() * (12000 - count));
    if ([...rangesInUse].some(([f, n]) => first < f + n && f < first + count)) continue;
    rangesInUse.set(first, count);
    const checks = await Promise.all(Array.from({ length: count }, (_, i) => portFree(first + i)));
    if (checks.every(Boolean)) return first;
    rangesInUse.delete(first);
  }
  throw new Error(`no ${count} free consecutive ports found`);
}

/** Whether a process with this pid still exists. */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
