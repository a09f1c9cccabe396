/**
 * bench/startup/probe: what bench:startup times and samples against a scheduler started on the
 * filled tree: process start -> API listening -> leading -> serving the right data, and then the
 * steady window's reads (one instance, pages of 100, the whole v1 STATUS list).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { LocalFleet } from '../../test/harness/local-fleet.js';

/** One instance as etcd holds it: what the API must answer with. */
export interface Expected {
  name: string;
  count: number;
  procs: { id: string; ip: string; port: number; state: string; type: string; agent: string }[];
}

export interface Startup {
  listeningMs: number;
  leadingMs: number;
  /** From the scheduler's log: its tree read (ms it took) and when it first logged "leading" (from the spawn). */
  treeReadMs: number;
  firstLeadingMs: number;
  servingMs: number;
  /** Why serving was not reached (the last mismatch), when it was not. */
  lastMismatch: string;
}

async function getJson(url: string, timeoutMs = 10_000): Promise<{ status: number; json: any; headers?: Headers }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    return { status: res.status, json: text ? JSON.parse(text) : undefined, headers: res.headers };
  } catch {
    return { status: 0, json: undefined };
  }
}

/** '' when GET /api/instances/<name> names the expected procs, else what differs. */
function instanceMismatch(json: any, e: Expected): string { // eslint-disable-line @typescript-eslint/no-explicit-any
  if (json?.name !== e.name || json?.status !== 'RUNNING') return `GET /api/instances/${e.name}: ${JSON.stringify(json)?.slice(0, 160)}`;
  const got = (json.procs as { id: string; ip: string; port: number; state: string; agent: string }[]).map((p) => `${p.id} ${p.ip}:${p.port} ${p.state} ${p.agent}`).sort();
  const want = e.procs.map((p) => `${p.id} ${p.ip}:${p.port} ${p.state} ${p.agent}`).sort();
  return got.join('|') === want.join('|') ? '' : `procs of ${e.name}: got ${got.join(', ')}; want ${want.join(', ')}`;
}

/**
 * '' when the v1 list holds every instance and the expected one reads right: RUNNING, its
 * capacity, its replicas' addresses as Slaves, and as Master either none (no agent has been heard
 * from since the start, so the scheduler announces none) or the expected master.
 */
function v1Mismatch(json: any, e: Expected, capacityMb: number): string { // eslint-disable-line @typescript-eslint/no-explicit-any
  if (!Array.isArray(json) || json.length !== e.count) return `GET /v1/STATUS/: ${Array.isArray(json) ? json.length : typeof json} entries, want ${e.count}`;
  const entry = json.find((s: { Name: string }) => s.Name === e.name);
  const addr = (p: { ip: string; port: number }) => `${p.ip}:${p.port}`;
  const master = e.procs.find((p) => p.type === 'M');
  const replicas = e.procs.filter((p) => p.type !== 'M').map(addr).sort().join(',');
  const slaves = (entry?.Slaves ?? []).map((s: { IP: string; Port: string }) => `${s.IP}:${s.Port}`).sort().join(',');
  const masterOk = entry?.Master === null || (master && `${entry?.Master?.IP}:${entry?.Master?.Port}` === addr(master));
  if (entry?.Status !== 'RUNNING' || entry?.Capacity !== capacityMb || slaves !== replicas || !masterOk) return `v1 STATUS of ${e.name}: ${JSON.stringify(entry)?.slice(0, 200)}`;
  return '';
}

/**
 * Starts the scheduler and times it from the spawn: until /healthz answers, until it says
 * leader, and until GET /api/instances/<name> and GET /v1/STATUS/ answer with the right data
 * (polled every 20 ms, bounded by `timeoutMs`). A standby (`leader` false: another holds the
 * election) serves reads too; it is checked as soon as it listens.
 */
export async function timeStartup(fleet: LocalFleet, e: Expected, capacityMb: number, timeoutMs: number, leader = true): Promise<Startup> {
  const t0 = Date.now();
  const logFrom = fleet.log('scheduler').length;
  await fleet.startScheduler(0);
  const out: Startup = { listeningMs: NaN, leadingMs: NaN, treeReadMs: NaN, firstLeadingMs: NaN, servingMs: NaN, lastMismatch: 'no answer' };
  const fromLog = () => Object.assign(out, logTimes(fleet.log('scheduler').slice(logFrom), t0));
  for (let i = 0; Date.now() - t0 < timeoutMs && i < timeoutMs / 20; i++) {
    const health = await getJson(`${fleet.apiUrl}/healthz`, 2000);
    if (health.status === 200 && Number.isNaN(out.listeningMs)) out.listeningMs = Date.now() - t0;
    if (health.json?.leader === true && Number.isNaN(out.leadingMs)) out.leadingMs = Date.now() - t0;
    if (!Number.isNaN(leader ? out.leadingMs : out.listeningMs)) {
      const one = await getJson(`${fleet.apiUrl}/api/instances/${e.name}`);
      out.lastMismatch = instanceMismatch(one.json, e) || v1Mismatch((await getJson(`${fleet.apiUrl}/v1/STATUS/`, 30_000)).json, e, capacityMb);
      if (!out.lastMismatch) {
        out.servingMs = Date.now() - t0;
        return fromLog();
      }
    }
    await sleep(20);
  }
  return fromLog();
}

/** The tree read's duration and the first "leading" line (ms after `t0`), from a scheduler's JSON log. */
function logTimes(log: string, t0: number): Pick<Startup, 'treeReadMs' | 'firstLeadingMs'> {
  const first = (message: string): Record<string, unknown> | undefined => {
    const line = log.split('\n').find((l) => l.includes(`"message":"${message}"`));
    return line ? (JSON.parse(line) as Record<string, unknown>) : undefined;
  };
  const leading = first('leading');
  return { treeReadMs: Number(first('etcd tree read')?.ms ?? NaN), firstLeadingMs: leading ? Date.parse(String(leading.timestamp)) - t0 : NaN };
}

export interface Reads {
  one: number[];
  page: number[];
  list: number[];
  failed: number;
}

async function timed(url: string): Promise<{ ms: number; next?: string }> {
  const t0 = performance.now();
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    await res.arrayBuffer();
    return res.ok ? { ms: performance.now() - t0, next: res.headers.get('X-Next-After') ?? undefined } : { ms: NaN };
  } catch {
    return { ms: NaN };
  }
}

/**
 * One request at a time, every `gapMs`, until `until` (bounded by `maxRounds`): GET one random
 * instance each round, the next page of 100 (`?limit=100&after=`, walking the whole list and
 * starting over) every other round, and the whole v1 STATUS list every tenth round.
 */
export async function sampleReads(apiUrl: string, nameOf: (i: number) => string, count: number, until: number, gapMs = 50, maxRounds = 2000): Promise<Reads> {
  const r: Reads = { one: [], page: [], list: [], failed: 0 };
  const keep = (into: number[], ms: number) => (Number.isFinite(ms) ? into.push(ms) : r.failed++);
  let after: string | undefined;
  for (let i = 0; i < maxRounds && Date.now() < until; i++) {
    keep(r.one, (await timed(`${apiUrl}/api/instances/${nameOf(Math.floor(Math.random() * count))}`)).ms);
    if (i % 2 === 1) {
      const page = await timed(`${apiUrl}/api/instances?limit=100${after === undefined ? '' : `&after=${encodeURIComponent(after)}`}`);
      keep(r.page, page.ms);
      after = page.next;
    }
    if (i % 10 === 0) keep(r.list, (await timed(`${apiUrl}/v1/STATUS/`)).ms);
    await sleep(gapMs);
  }
  for (const a of [r.one, r.page, r.list]) a.sort((x, y) => x - y);
  return r;
}
