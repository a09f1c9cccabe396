/**
 * bench/scale/measure: what bench:scale reads while it runs: a process's CPU time and RSS from
 * /proc, etcd's revision and sizes, the API's latency, the scheduler's log (when each instance
 * first reached RUNNING) and a V8 CPU profile's top functions.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import type { LocalFleet } from '../../test/harness/local-fleet.js';
import { parseJsonLog } from '../fleet-log.js';

const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

export interface ProcUsage {
  at: number;
  cpuSeconds: number;
  rssBytes: number;
}

/** CPU time (user + system) and RSS of one process, from /proc. */
export function procUsage(pid: number): ProcUsage {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const cpuSeconds = (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  const rss = /^VmRSS:\s+([0-9]+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return { at: Date.now(), cpuSeconds, rssBytes: Number(rss?.[1] ?? 0) * 1024 };
}

/** CPU % of one core between two readings. */
export function cpuPercent(a: ProcUsage, b: ProcUsage): number {
  return ((b.cpuSeconds - a.cpuSeconds) / Math.max((b.at - a.at) / 1000, 0.001)) * 100;
}

export interface EtcdStatus {
  at: number;
  revision: number;
  dbSize: number;
  dbSizeInUse: number;
}

export function etcdStatus(fleet: LocalFleet): EtcdStatus {
  const [s] = JSON.parse(fleet.etcdctl('endpoint', 'status', '-w', 'json')) as { Status: { dbSize: number; dbSizeInUse: number; header: { revision: number } } }[];
  return { at: Date.now(), revision: s.Status.header.revision, dbSize: s.Status.dbSize, dbSizeInUse: s.Status.dbSizeInUse };
}

/** When each instance first reached RUNNING, from the scheduler's log ("instance status"). */
export function firstRunning(schedulerLog: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of schedulerLog.split('\n')) {
    if (!line.includes('"instance status"') || !line.includes('"status":"RUNNING"')) continue;
    const [ev] = parseJsonLog(line);
    const name = typeof ev?.instance === 'string' ? ev.instance : undefined;
    if (ev && name && !out.has(name)) out.set(name, ev.t);
  }
  return out;
}

/** The number of error lines in a component's log. */
export function errorLines(log: string): string[] {
  return log.split('\n').filter((l) => l.includes('"level":"error"'));
}

/** Milliseconds one GET takes, or NaN when it failed. */
export async function timedGet(url: string): Promise<number> {
  const t0 = performance.now();
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    await res.arrayBuffer();
    return res.ok ? performance.now() - t0 : NaN;
  } catch {
    return NaN;
  }
}

/**
 * Samples the API until `until` (bounded by `maxRequests`): GET /api/instances/<a random name>
 * and, every tenth time, the whole v1 STATUS list, one request at a time at most every `gapMs`.
 */
export async function sampleApi(apiUrl: string, names: string[], until: number, gapMs = 100, maxRequests = 5000): Promise<{ one: number[]; list: number[] }> {
  const one: number[] = [];
  const list: number[] = [];
  for (let i = 0; i < maxRequests && Date.now() < until; i++) {
    const name = names[Math.floor(Math.random() * names.length)];
    one.push(await timedGet(`${apiUrl}/api/instances/${name}`));
    if (i % 10 === 0) list.push(await timedGet(`${apiUrl}/v1/STATUS/`));
    await new Promise((r) => setTimeout(r, gapMs));
  }
  return { one: one.filter(Number.isFinite), list: list.filter(Number.isFinite) };
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

/** The top `n` functions by self time of the .cpuprofile files in `dir` (V8's --cpu-prof), as "share% name (file:line)". */
export function topFunctions(dir: string, n = 5): string[] {
  let files: string[] = [];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  } catch {
    return [];
  }
  const self = new Map<string, number>();
  let total = 0;
  for (const f of files) {
    const profile = JSON.parse(readFileSync(join(dir, f), 'utf8')) as { nodes: ProfileNode[] };
    for (const node of profile.nodes) {
      const hits = node.hitCount ?? 0;
      total += hits;
      const { functionName, url, lineNumber } = node.callFrame;
      const where = url ? `${url.replace(/^.*\/(dist|node_modules)\//, '$1/')}:${lineNumber + 1}` : '';
      const key = `${functionName || '(anonymous)'}${where ? ` (${where})` : ''}`;
      self.set(key, (self.get(key) ?? 0) + hits);
    }
  }
  return [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, v]) => `${((v / Math.max(total, 1)) * 100).toFixed(1)}% ${k}`);
}
