/**
 * bench/startup/report: bench:startup's table and its last line, one JSON object.
 */
import { formatMs as fmt, MIB as MiB, percentile, roundTo as round } from '../figures.js';
import type { Reads, Startup } from './probe.js';

/**
 * 'leader': the first start on the tree, with no hint of its windows (the benchmark wrote the tree
 * itself); 'restart': the leader started again, reading in the windows the first start noted, as
 * every restart of a fleet that grew under a scheduler does; 'standby': the election held elsewhere.
 */
export type Role = 'leader' | 'restart' | 'standby';

/** One start of the scheduler on the tree and the steady window after it. */
export interface Window {
  role: Role;
  startup: Startup;
  steadySeconds: number;
  cpuPercent: number;
  rssBytes: number;
  rssPeakBytes: number;
  openFds: number;
  reads: Reads;
  /** From the scheduler's log of this start: error lines, "master subjectively down", loop stalls, terms lost. */
  errors: string[];
  sdown: number;
  stalls: number;
  leadershipLosses: number;
  /** Top functions of its start (spawn to serving), with --cpu-prof. */
  profile: string[];
}

export interface StartupRun {
  instances: number;
  agents: number;
  templateKeys: number;
  keys: number;
  bytes: number;
  fillSeconds: number;
  leader: Window;
  restart: Window;
  standby: Window;
  etcdInUseBytes: number;
  etcdDbBytes: number;
  etcdRssBytes: number;
}

export interface StartupFigures {
  procs: number;
  fillSeconds: number;
  startupToLeadingMs: number;
  startupToServingMs: number;
  firstStartToLeadingMs: number;
  firstStartToServingMs: number;
  schedulerRssMiB: number;
  schedulerCpuPercent: number;
  apiGetP50Ms: number;
  apiGetP99Ms: number;
  apiPageP99Ms: number;
  v1StatusP50Ms: number;
  v1StatusP99Ms: number;
  etcdInUseMiB: number;
}


/**
 * The start is the restarted leader's (it must lead to count; the first start, with no hint of the
 * tree's windows, has its own keys); the steady figures are the standby's: the
 * tree, the cache and the API on their own, since with no agent connected a leader spends its
 * time dialling procs that are not there (the table shows its window too).
 */
export function startupFigures(r: StartupRun): StartupFigures {
  const s = r.standby;
  return {
    procs: r.instances * 3,
    fillSeconds: round(r.fillSeconds),
    startupToLeadingMs: r.restart.startup.firstLeadingMs,
    startupToServingMs: r.restart.startup.servingMs,
    firstStartToLeadingMs: r.leader.startup.firstLeadingMs,
    firstStartToServingMs: r.leader.startup.servingMs,
    schedulerRssMiB: round(s.rssBytes / MiB),
    schedulerCpuPercent: round(s.cpuPercent),
    apiGetP50Ms: round(percentile(s.reads.one, 50)),
    apiGetP99Ms: round(percentile(s.reads.one, 99)),
    apiPageP99Ms: round(percentile(s.reads.page, 99)),
    v1StatusP50Ms: round(percentile(s.reads.list, 50)),
    v1StatusP99Ms: round(percentile(s.reads.list, 99)),
    etcdInUseMiB: round(r.etcdInUseBytes / MiB, 1),
  };
}

function row(label: string, value: string, note = ''): string {
  return `  ${label.padEnd(38)}${value.padStart(18)}  ${note}`;
}

function latency(label: string, sorted: number[]): string {
  return row(label, `${fmt(percentile(sorted, 50), 1)} / ${fmt(percentile(sorted, 99), 1)}`, `${sorted.length} requests, max ${fmt(sorted[sorted.length - 1], 1)}`);
}

const ROLE_NOTES: Record<Role, string> = {
  leader: ' (first start: no hint of the windows; no agent connected: its failure detector and stats poller dial every proc)',
  restart: ' (the leader started again: it reads in the windows the first start noted; no agent connected)',
  standby: ' (the benchmark holds the election: the tree and the API alone)',
};

function windowLines(w: Window, procs: number): string[] {
  const s = w.startup;
  return [
    `${w.role}${ROLE_NOTES[w.role]}:`,
    row('tree read (ms, its log)', fmt(s.treeReadMs, 0), 'every key, in pages, into the cache'),
    row('start -> API listening (ms)', fmt(s.listeningMs, 0), 'the tree is read before the API listens'),
    row('start -> leading: log / healthz (ms)', `${fmt(s.firstLeadingMs, 0)} / ${fmt(s.leadingMs, 0)}`, 'its first "leading" line / /healthz first seen leader'),
    row('start -> serving (ms)', fmt(s.servingMs, 0), Number.isFinite(s.servingMs) ? 'one instance and the v1 list answer right' : `not serving: ${s.lastMismatch.slice(0, 160)}`),
    row('CPU % / open fds', `${fmt(w.cpuPercent, 1)} / ${w.openFds}`, `of one core over ${w.steadySeconds} s after serving`),
    row('RSS MiB (end / peak)', `${fmt(w.rssBytes / MiB, 1)} / ${fmt(w.rssPeakBytes / MiB, 1)}`, `${fmt(w.rssBytes / procs / 1024, 2)} KiB per proc`),
    latency('GET /api/instances/:name p50/p99', w.reads.one),
    latency('GET /api/instances?limit=100 p50/p99', w.reads.page),
    latency('GET /v1/STATUS/ (list) p50/p99', w.reads.list),
    row('failed reads', String(w.reads.failed)),
    row('error lines / terms lost / loop stalls', `${w.errors.length} / ${w.leadershipLosses} / ${w.stalls}`, w.errors[0]?.slice(0, 140) ?? ''),
    row('"master subjectively down" lines', String(w.sdown)),
    ...(w.profile.length ? [`  CPU profile of this start (spawn to serving, under --cpu-prof):`, ...w.profile.map((l) => `    ${l}`)] : []),
  ];
}

export function startupLines(r: StartupRun, f: StartupFigures): string[] {
  return [
    'figures:',
    row('instances / procs / agents', `${r.instances} / ${f.procs} / ${r.agents}`),
    row('etcd keys written / MiB', `${r.keys} / ${fmt(r.bytes / MiB, 1)}`, `${r.templateKeys} keys per instance, as the template`),
    row('fill (s)', fmt(f.fillSeconds, 1), `${fmt(r.keys / r.fillSeconds, 0)} keys/s`),
    row('etcd in-use / db MiB', `${fmt(f.etcdInUseMiB, 1)} / ${fmt(r.etcdDbBytes / MiB, 1)}`, `etcd RSS ${fmt(r.etcdRssBytes / MiB, 0)} MiB`),
    ...windowLines(r.leader, f.procs),
    ...windowLines(r.restart, f.procs),
    ...windowLines(r.standby, f.procs),
    'the JSON line: the restarted leader\'s start (firstStart*: the first, with no hint); CPU, RSS and reads of the standby window (the steady tree)',
  ];
}
