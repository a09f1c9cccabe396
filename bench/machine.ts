/**
 * bench/machine: the machine a benchmark ran on and the other load on it, for the report's
 * `machine:` and `other load:` lines.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism, loadavg, totalmem } from 'node:os';

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
