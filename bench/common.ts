/**
 * bench/common: what the benchmarks (create-latency, failover) share, so that their figures are
 * summarised, their machines described and their processes cleaned up the same way.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { availableParallelism, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../src/net.js';

/** The pause between polls: the benchmarks wait by polling, with a bound on the number of polls. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Runs a benchmark's main and sets the exit code from it, without process.exit: pending exit
 * handlers (ours and LocalFleet's) still run and stdout is flushed.
 */
export function runMain(program: string, main: () => Promise<number>): void {
  main().then(
    (code) => { process.exitCode = code; },
    (err: Error) => {
      console.error(`${program}: ${err.stack ?? err.message}`);
      process.exitCode = 1;
    },
  );
}

/**
 * `--runs N` or `--runs=N` at argv[i], N a whole number from 1 to `max`: the value and the index
 * of the last argv entry it took (for the caller's loop), or undefined when argv[i] is another
 * option. A bad N goes to `fail`, which ends the program with the benchmark's usage error.
 */
export function runsOption(argv: string[], i: number, max: number, fail: (message: string) => never): { runs: number; last: number } | undefined {
  const arg = argv[i];
  const eq = arg.startsWith('--runs=') ? arg.slice('--runs='.length) : undefined;
  if (arg !== '--runs' && eq === undefined) return undefined;
  const last = eq === undefined ? i + 1 : i;
  const text = eq ?? argv[last];
  if (text === undefined || !new RegExp(`^[0-9]{1,${String(max).length}}$`).test(text) || Number(text) < 1 || Number(text) > max) {
    fail(`--runs must be a whole number from 1 to ${max}, got ${JSON.stringify(text)}`);
  }
  return { runs: Number(text), last };
}

// ---------------------------------------------------------------------------------------------
// figures

/** Nearest-rank percentile of an ascending array: always one of the measured values. */
function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

export interface Summary {
  n: number;
  p50: number;
  p95: number;
  min: number;
  max: number;
}

/** p50, p95, min and max of some runs; NaN (printed as '-') where there are none. */
export function summarize(values: number[]): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  return { n: sorted.length, p50: percentile(sorted, 50), p95: percentile(sorted, 95), min: sorted[0] ?? NaN, max: sorted[sorted.length - 1] ?? NaN };
}

/** A figure with `digits` decimals, or '-' for a cell with no runs (NaN) so that columns stay readable. */
export function formatMs(v: number, digits: number): string {
  return Number.isFinite(v) ? v.toFixed(digits) : '-';
}

/** How wide a p50/p95/min/max/runs table's columns are and how many decimals its figures get. */
export interface SummaryLayout {
  labelWidth: number;
  cellWidth: number;
  digits: number;
}

/** The heading line of a summary table, aligned with summaryRow() under the same layout. */
export function summaryHeader(layout: SummaryLayout): string {
  const { labelWidth: l, cellWidth: w } = layout;
  return `${'ms'.padEnd(l)}${'p50'.padStart(w)}${'p95'.padStart(w)}${'min'.padStart(w)}${'max'.padStart(w)}${'runs'.padStart(6)}`;
}

/** One line of a summary table: label, p50, p95, min, max and the number of runs. */
export function summaryRow(label: string, s: Summary, layout: SummaryLayout): string {
  const { labelWidth: l, cellWidth: w, digits: d } = layout;
  return `${label.padEnd(l)}${formatMs(s.p50, d).padStart(w)}${formatMs(s.p95, d).padStart(w)}${formatMs(s.min, d).padStart(w)}${formatMs(s.max, d).padStart(w)}${String(s.n).padStart(6)}`;
}

/** Every run in whole ms, ascending: the raw figures behind the percentiles, for the report. */
export function sortedRuns(values: number[]): string {
  return [...values].sort((a, b) => a - b).map((v) => v.toFixed(0)).join(' ');
}

// ---------------------------------------------------------------------------------------------
// the machine and other load

function firstLine(cmd: string, args: string[]): string {
  const out = spawnSync(cmd, args, { encoding: 'utf8' });
  if (out.error || out.status !== 0) return `unknown (${cmd} ${args.join(' ')} failed)`;
  return (out.stdout || out.stderr).split('\n')[0].trim();
}

/**
 * The machine a benchmark ran on, so that figures from different hosts are not compared blindly:
 * CPUs, memory, node, and the `--version` line of each program in `programs` (key: its name;
 * 'unknown (...)' when it is not installed).
 */
export function describeMachine(programs: readonly string[]): Record<string, string> {
  let cpuModel = 'unknown';
  try {
    cpuModel = /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? 'unknown';
  } catch {
    // not Linux
  }
  const nproc = firstLine('nproc', []);
  const out: Record<string, string> = {
    nproc: /^[0-9]+$/.test(nproc) ? nproc : String(availableParallelism()),
    cpu: cpuModel,
    memory: `${(totalmem() / 1024 ** 3).toFixed(1)} GiB`,
    node: process.version,
  };
  for (const program of programs) out[program] = firstLine(program, ['--version']);
  return out;
}

/** The report's `machine:` section: one indented `key value` line each, values in one column. */
export function machineLines(host: Record<string, string>): string[] {
  const width = Math.max(...Object.keys(host).map((k) => k.length)) + 1;
  return ['machine:', ...Object.entries(host).map(([k, v]) => `  ${k.padEnd(width)}${v}`)];
}

/**
 * Processes named in `names` on this machine that this benchmark did not start (a test run, a
 * dev fleet): they compete for the same CPUs and make the figures noisy. Zombies use no CPU and
 * are left out.
 */
function foreignProcesses(names: readonly string[]): string[] {
  const parentOf = new Map<number, number>();
  const comm = new Map<number, string>();
  let entries: string[] = [];
  try {
    entries = readdirSync('/proc').filter((e) => /^[0-9]+$/.test(e));
  } catch {
    return [];
  }
  for (const e of entries) {
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const fields = stat.slice(close + 2).split(' ');
      if (fields[0] === 'Z') continue;
      comm.set(Number(e), stat.slice(stat.indexOf('(') + 1, close));
      parentOf.set(Number(e), Number(fields[1]));
    } catch {
      // gone already
    }
  }
  const ours = (pid: number): boolean => {
    for (let p = pid, hops = 0; p > 1 && hops < 64; p = parentOf.get(p) ?? 0, hops++) if (p === process.pid) return true;
    return false;
  };
  const out: string[] = [];
  for (const [pid, name] of comm) if (names.includes(name) && !ours(pid)) out.push(`${name}[${pid}]`);
  return out;
}

/**
 * Other load: samples the foreign processes named in `names` between runs (untimed) and keeps
 * the most seen at once, so that the report says whether the figures were taken on a quiet
 * machine.
 */
export class OtherLoad {
  private most: string[] = [];
  private samples = 0;
  private busySamples = 0;

  constructor(private readonly names: readonly string[]) {}

  sample(): void {
    const seen = foreignProcesses(this.names);
    this.samples++;
    if (seen.length > 0) this.busySamples++;
    if (seen.length > this.most.length) this.most = seen;
  }

  /** The report's `other load:` line; `loadBefore` is the 1-min load average taken at the start. */
  line(loadBefore: number): string {
    const names = this.names.join('/');
    const busy = this.busySamples > 0
      ? `NOISY: ${names} processes not started by this benchmark were running in ${this.busySamples} of ${this.samples} samples (at most ${this.most.length}: ${this.most.slice(0, 6).join(' ')})`
      : `quiet: no ${names} processes but this benchmark's in ${this.samples} samples`;
    return `other load: ${busy}; 1-min load average ${loadBefore.toFixed(2)} before, ${loadavg()[0].toFixed(2)} after`;
  }
}

// ---------------------------------------------------------------------------------------------
// processes and directories started here

/** `n` distinct free ports on 127.0.0.1, for processes started next (bounded: throws if it cannot). */
export async function freePorts(n: number): Promise<number[]> {
  const ports: number[] = [];
  for (let tries = 0; ports.length < n && tries < 100 * n; tries++) {
    const p = await freePort();
    if (!ports.includes(p)) ports.push(p);
  }
  if (ports.length < n) throw new Error(`could not find ${n} distinct free ports`);
  return ports;
}

/**
 * Whether something accepts connections on 127.0.0.1:`port` (a started server is up). With
 * `timeoutMs`, a connect that hangs (a frozen listener) counts as closed after that long.
 */
export function portOpen(port: number, timeoutMs?: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: '127.0.0.1', port });
    if (timeoutMs !== undefined) {
      sock.setTimeout(timeoutMs, () => {
        sock.destroy();
        resolve(false);
      });
    }
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

/**
 * A redis-server config for a throwaway server in `dir`: no persistence, diskless replication
 * with no delay (as RedFleet runs its procs), `maxmemoryMb`, and any `extra` lines at the end.
 */
export function redisServerConf(port: number, dir: string, maxmemoryMb: number, extra: readonly string[] = []): string {
  return [
    `port ${port}`,
    'bind 127.0.0.1',
    'daemonize no',
    `dir ${dir}`,
    `logfile ${dir}/redis.log`,
    'save ""',
    'appendonly no',
    `maxmemory ${maxmemoryMb}mb`,
    'repl-diskless-sync yes',
    'repl-diskless-sync-delay 0',
    ...extra,
    '',
  ].join('\n');
}

/** A process started through StartedHere.spawn: whether it has exited, and the tail of its stderr. */
export interface Spawned {
  child: ChildProcess;
  exited: boolean;
  stderr: string;
}

/**
 * The processes and temporary directories a benchmark starts itself. They are removed after each
 * run, and — through cleanUpOnExit — on any exit, error or signal too, so that no redis-server
 * outlives a failed benchmark. With `keepDirs` (REDFLEET_KEEP_TEST_DIRS) directories stay for
 * inspection.
 */
export class StartedHere {
  private readonly procs = new Set<Spawned>();
  private readonly dirs = new Set<string>();

  constructor(private readonly keepDirs = false) {}

  /** Starts `cmd` with stderr captured (last 2000 characters); `extra` fields go on the result. */
  spawn<T extends object>(cmd: string, args: string[], extra: T): Spawned & T {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    const proc: Spawned & T = Object.assign({ child, exited: false, stderr: '' }, extra);
    this.procs.add(proc);
    child.stderr?.on('data', (d: Buffer) => { proc.stderr = (proc.stderr + d.toString()).slice(-2000); });
    child.on('exit', () => {
      proc.exited = true;
      this.procs.delete(proc);
    });
    child.on('error', (err) => {
      proc.exited = true;
      proc.stderr += err.message;
      this.procs.delete(proc);
    });
    return proc;
  }

  /** A new empty directory under the system temp dir, named `prefix` + random. */
  tempDir(prefix: string): string {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    this.dirs.add(dir);
    return dir;
  }

  /** Removes a directory from tempDir() (or, with keepDirs, says on stderr where it is). */
  removeDir(dir: string): void {
    if (this.keepDirs) process.stderr.write(`kept ${dir}\n`);
    else rmSync(dir, { recursive: true, force: true });
    this.dirs.delete(dir);
  }

  /** SIGKILLs every process still alive and removes every directory; synchronous, for an exit handler. */
  killAllSync(): void {
    for (const p of this.procs) p.child.kill('SIGKILL');
    if (!this.keepDirs) for (const d of this.dirs) rmSync(d, { recursive: true, force: true });
  }

  /**
   * Calls killAllSync() on exit, and turns SIGINT/SIGTERM into an exit (130) so that it, and
   * LocalFleet's own exit handler (the fleet), run on Ctrl-C too.
   */
  cleanUpOnExit(program: string): void {
    process.on('exit', () => this.killAllSync());
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      process.on(sig, () => {
        console.error(`${program}: ${sig}; stopping everything started here`);
        process.exit(130);
      });
    }
  }
}

/**
 * Sends `signal` to a spawned process and resolves once it has exited. A SIGTERM not obeyed
 * within 5 s is followed by SIGKILL; after a SIGKILL the wait ends after 5 s whatever happened,
 * so that teardown cannot hang a benchmark.
 */
export function stopProcess(p: Spawned, signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
  if (p.exited) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      if (signal === 'SIGKILL') resolve();
      else p.child.kill('SIGKILL');
    }, 5000);
    p.child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    p.child.kill(signal);
  });
}

// ---------------------------------------------------------------------------------------------
// the fleet's logs

/** One line of a RedFleet component's JSON log; `t` is its timestamp in ms since the epoch. */
export interface LogEvent {
  t: number;
  message: string;
  [field: string]: unknown;
}

/** The JSON log lines of a RedFleet component (scheduler, agent), skipping anything else in the file. */
export function parseJsonLog(text: string): LogEvent[] {
  const out: LogEvent[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const obj = JSON.parse(line) as Record<string, unknown>;
      const t = Date.parse(String(obj.timestamp ?? ''));
      if (Number.isFinite(t) && typeof obj.message === 'string') out.push({ ...obj, t, message: obj.message });
    } catch {
      // not a log line
    }
  }
  return out;
}
