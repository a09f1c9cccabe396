/**
 * bench/scale/measure: what bench:scale reads while it runs: a process's CPU time and RSS from
 * /proc, etcd's revision and sizes, the API's latency, the scheduler's log (when each instance
 * first reached RUNNING) and a V8 CPU profile's top functions.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import type { LocalFleet } from '../../test/harness/local-fleet.js';
import type { SimAgents } from '../../test/harness/sim-agents.js';
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

/** The CPU seconds used so far by the scheduler, the simulator's processes (together) and etcd. */
export interface CreationUsage {
  scheduler: number;
  simulator: number;
  etcd: number;
}

export function creationUsage(fleet: LocalFleet, sim: SimAgents): CreationUsage {
  const cpu = (pid: number | undefined) => (pid ? procUsage(pid).cpuSeconds : NaN);
  return { scheduler: cpu(fleet.scheduler?.pid), simulator: sim.pids.reduce((sum, pid) => sum + cpu(pid), 0), etcd: cpu(fleet.etcd.child.pid) };
}

/**
 * Milliseconds of CPU per proc placed, between two readings taken at the first POST and once the
 * last instance was RUNNING: what each proc costs each process, whatever the machine's other load
 * did to the rate (a figure to extrapolate from: at 1,000 placements a second, 1 ms is one core).
 */
export function perProcCost(a: CreationUsage, b: CreationUsage, procs: number): CreationUsage {
  const ms = (x: number, y: number) => ((y - x) * 1000) / procs;
  return { scheduler: ms(a.scheduler, b.scheduler), simulator: ms(a.simulator, b.simulator), etcd: ms(a.etcd, b.etcd) };
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

/** Health signs in the logs: the scheduler's loop stalls and dropped agent streams, the simulator's own stalls. */
export interface Strain {
  schedulerStalls: number;
  schedulerMaxStallMs: number;
  streamsDropped: number;
  agentsLost: number;
  simStalls: number;
  simMaxLagMs: number;
}

export function strainOf(schedulerLog: string, simLog: string, simMaxLagMs: number): Strain {
  const stalls = schedulerLog.split('\n').filter((l) => l.includes('scheduler event loop stalled')).map((l) => Number(/"stalledMs":([0-9]+)/.exec(l)?.[1] ?? 0));
  return {
    schedulerStalls: stalls.length,
    schedulerMaxStallMs: Math.max(0, ...stalls),
    streamsDropped: schedulerLog.split('"dropping agent stream"').length - 1,
    agentsLost: schedulerLog.split('agent lost: no resubscription').length - 1,
    simStalls: simLog.split('simulator event loop stalled').length - 1,
    simMaxLagMs: simMaxLagMs,
  };
}

/** The number of error lines in a component's log. */
export function errorLines(log: string): string[] {
  return log.split('\n').filter((l) => l.includes('"level":"error"'));
}

/** The scheduler's V8 heap, as its own /metrics gives it (prom-client's default metrics); NaN where absent. */
export interface Heap {
  usedBytes: number;
  totalBytes: number;
  externalBytes: number;
}

export async function schedulerHeap(apiUrl: string): Promise<Heap> {
  let text = '';
  try {
    const res = await fetch(`${apiUrl}/metrics`, { signal: AbortSignal.timeout(10_000) });
    text = res.ok ? await res.text() : '';
  } catch {
    text = '';
  }
  const gauge = (name: string): number => Number(new RegExp(`^${name} ([0-9.e+]+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { usedBytes: gauge('nodejs_heap_size_used_bytes'), totalBytes: gauge('nodejs_heap_size_total_bytes'), externalBytes: gauge('nodejs_external_memory_bytes') };
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
 * and, every tenth time, a page of the JSON list (`?limit=100&after=<a random name>`, the paged
 * list the issue's API goal names) and the whole v1 STATUS list, one request at a time at most
 * every `gapMs`.
 */
export async function sampleApi(apiUrl: string, names: string[], until: number, gapMs = 100, maxRequests = 5000): Promise<{ one: number[]; page: number[]; list: number[] }> {
  const one: number[] = [];
  const page: number[] = [];
  const list: number[] = [];
  const anyName = (): string => names[Math.floor(Math.random() * names.length)];
  for (let i = 0; i < maxRequests && Date.now() < until; i++) {
    one.push(await timedGet(`${apiUrl}/api/instances/${anyName()}`));
    if (i % 10 === 0) {
      page.push(await timedGet(`${apiUrl}/api/instances?limit=100&after=${encodeURIComponent(anyName())}`));
      list.push(await timedGet(`${apiUrl}/v1/STATUS/`));
    }
    await new Promise((r) => setTimeout(r, gapMs));
  }
  return { one: one.filter(Number.isFinite), page: page.filter(Number.isFinite), list: list.filter(Number.isFinite) };
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

function frameName(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  const where = url ? `${url.replace(/^.*\/(dist|node_modules)\//, '$1/')}:${lineNumber + 1}` : '';
  return `${functionName || '(anonymous)'}${where ? ` (${where})` : ''}`;
}

interface Profile {
  nodes: ProfileNode[];
  samples?: number[];
  timeDeltas?: number[];
}

/**
 * Each node's hits counted again from the samples taken within the first `untilMs` of the
 * profile (V8 records one sample id and the time since the last one per tick).
 */
function hitsUntil(profile: Profile, untilMs: number): ProfileNode[] {
  const hits = new Map<number, number>();
  let atUs = 0;
  const samples = profile.samples ?? [];
  for (let i = 0; i < samples.length; i++) {
    atUs += profile.timeDeltas?.[i] ?? 0;
    if (atUs > untilMs * 1000) break;
    hits.set(samples[i], (hits.get(samples[i]) ?? 0) + 1);
  }
  return profile.nodes.map((n) => ({ ...n, hitCount: hits.get(n.id) ?? 0 }));
}

function readProfiles(dir: string, untilMs?: number): ProfileNode[][] {
  try {
    const profiles = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as Profile);
    return profiles.map((p) => (untilMs === undefined ? p.nodes : hitsUntil(p, untilMs)));
  } catch {
    return [];
  }
}

/** Inclusive hits of each node (itself and everything it called). */
function inclusiveHits(nodes: ProfileNode[]): Map<number, number> {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const out = new Map<number, number>();
  const visit = (n: ProfileNode): number => {
    const known = out.get(n.id);
    if (known !== undefined) return known;
    let sum = n.hitCount ?? 0;
    for (const c of n.children ?? []) sum += visit(byId.get(c) as ProfileNode);
    out.set(n.id, sum);
    return sum;
  };
  for (const n of nodes) visit(n);
  return out;
}

/**
 * The scheduler's CPU profile (V8's --cpu-prof files in `dir`): the top `n` functions by self
 * time, and the top `n` entry points into RedFleet's own code (the first dist/src frame from the
 * root of each stack) by total time, callees included, so that the second list says which part
 * of the scheduler the time is spent for. Each as "share% name (file:line)" of the busy (non-idle)
 * samples. With `untilMs`, only the samples of the profile's first `untilMs` count (a start).
 */
export function topFunctions(dir: string, n = 5, untilMs?: number): string[] {
  const self = new Map<string, number>();
  const entry = new Map<string, number>();
  let busy = 0;
  let idle = 0;
  for (const nodes of readProfiles(dir, untilMs)) {
    const incl = inclusiveHits(nodes);
    const byId = new Map(nodes.map((x) => [x.id, x]));
    const walk = (node: ProfileNode, inOurs: boolean): void => {
      const key = frameName(node);
      const hits = node.hitCount ?? 0;
      if (key.startsWith('(idle)')) idle += hits;
      else busy += hits;
      self.set(key, (self.get(key) ?? 0) + hits);
      const ours = /\/dist\/(src|bench)\//.test(node.callFrame.url);
      if (ours && !inOurs) entry.set(key, (entry.get(key) ?? 0) + (incl.get(node.id) ?? 0));
      for (const c of node.children ?? []) walk(byId.get(c) as ProfileNode, inOurs || ours);
    };
    const root = nodes.find((x) => x.callFrame.functionName === '(root)') ?? nodes[0];
    if (root) walk(root, false);
  }
  if (busy === 0) return [];
  const share = (v: number) => `${((v / busy) * 100).toFixed(1)}%`;
  const top = (m: Map<string, number>, k: number) => [...m.entries()].filter(([key]) => !key.startsWith('(idle)') && !key.startsWith('(root)')).sort((a, b) => b[1] - a[1]).slice(0, k);
  return [
    `busy ${((busy / (busy + idle)) * 100).toFixed(1)}% of the samples; shares below are of the busy samples`,
    'top 5 by self time:',
    ...top(self, n).map(([k, v]) => `  ${share(v)} ${k}`),
    'where it starts: first RedFleet frame of each stack, callees included:',
    ...top(entry, 2 * n).map(([k, v]) => `  ${share(v)} ${k}`),
  ];
}
