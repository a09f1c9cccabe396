/**
 * bench/scale/report: bench:scale's table and its last line, one JSON object with exactly the
 * issue's keys (issue 11, section 2).
 */
import { AFTER_RESTART_MS, p, type CreatePhase, type RestartPhase, type SteadyPhase } from './phases.js';
import type { LossPhase, Stage } from './loss.js';
import type { CreationUsage, Strain } from './measure.js';
import { MIB as MiB, roundTo as round } from '../figures.js';

export interface Run {
  opts: { agents: number; instances: number };
  created: CreatePhase;
  /** CPU ms per proc placed, during the creates. */
  createCost: CreationUsage;
  steady: SteadyPhase;
  loss: LossPhase;
  restart: RestartPhase;
  schedulerErrors: string[];
  strain: Strain;
  profile: string[];
}

/** The keys, in its order. */
export interface Figures {
  agents: number;
  procs: number;
  placementsPerSecond: number;
  createToRunningP50Ms: number;
  createToRunningP99Ms: number;
  schedulerCpuPercent: number;
  schedulerRssMiB: number;
  etcdWritesPerSecond: number;
  etcdInUseMiB: number;
  apiP50Ms: number;
  apiP99Ms: number;
  agentLossRecoveryMs: number;
  startupToLeadingMs: number;
}


export function figuresOf(r: Run): Figures {
  const procs = r.opts.instances * 3;
  const seconds = (r.created.lastRunningAt - r.created.firstPostAt) / 1000;
  // GET one instance and the paged list together (the issue: "GET one instance and ... the
  // STATUS list (paged)"); the whole v1 list (MrRedis's, unpaged by design) has its own row.
  const api = [...r.steady.apiOne, ...r.steady.apiPage].sort((a, b) => a - b);
  return {
    agents: r.opts.agents,
    procs,
    placementsPerSecond: round(procs / seconds),
    createToRunningP50Ms: round(p(r.created.createToRunning, 50), 0),
    createToRunningP99Ms: round(p(r.created.createToRunning, 99), 0),
    schedulerCpuPercent: round(r.steady.cpuPercent),
    schedulerRssMiB: round(r.steady.rssBytes / MiB),
    etcdWritesPerSecond: round(r.steady.etcdWritesPerSecond),
    etcdInUseMiB: round(r.steady.etcdInUseBytes / MiB, 2),
    apiP50Ms: round(p(api, 50)),
    apiP99Ms: round(p(api, 99)),
    agentLossRecoveryMs: r.loss.unrecovered > 0 ? NaN : r.loss.recoveryMs,
    startupToLeadingMs: r.restart.startupToLeadingMs,
  };
}

function row(label: string, value: string, note = ''): string {
  return `  ${label.padEnd(34)}${value.padStart(12)}  ${note}`;
}

const fmt = (v: number, d = 1): string => (Number.isFinite(v) ? v.toFixed(d) : '-');
const stage = (s: Stage): string => `${s.count}: ${fmt(s.firstMs, 0)} / ${fmt(s.p50Ms, 0)} / ${fmt(s.lastMs, 0)}`;

export function reportLines(r: Run, f: Figures): string[] {
  const s = r.steady;
  return [
    'figures:',
    row('agents / procs', `${f.agents} / ${f.procs}`),
    row('placement (procs/s)', fmt(f.placementsPerSecond), `first POST to last RUNNING; ${r.created.failedPosts} POSTs refused`),
    row('create -> RUNNING p50 / p99 (ms)', `${fmt(f.createToRunningP50Ms, 0)} / ${fmt(f.createToRunningP99Ms, 0)}`, `max ${fmt(r.created.createToRunning[r.created.createToRunning.length - 1], 0)}`),
    row('  CPU ms per proc placed', `${fmt(r.createCost.scheduler, 2)} / ${fmt(r.createCost.simulator, 2)} / ${fmt(r.createCost.etcd, 2)}`, 'scheduler / simulator / etcd, first POST to last RUNNING'),
    row('scheduler CPU % (steady)', fmt(f.schedulerCpuPercent), `of one core, over ${s.seconds} s`),
    row('scheduler RSS MiB (steady)', fmt(f.schedulerRssMiB)),
    row('  heap used / total, external MiB', `${fmt(s.heap.usedBytes / MiB)} / ${fmt(s.heap.totalBytes / MiB)}, ${fmt(s.heap.externalBytes / MiB)}`, 'its /metrics at the end of the window'),
    row('simulator CPU % (steady)', fmt(s.simCpuPercent), 'the simulator itself, for scale'),
    row('etcd writes/s (steady)', fmt(f.etcdWritesPerSecond), 'revisions per second'),
    row('etcd in-use / db MiB', `${fmt(f.etcdInUseMiB, 2)} / ${fmt(s.etcdDbBytes / MiB, 2)}`),
    row('GET /api/instances/:name p50/p99', `${fmt(p(s.apiOne, 50))} / ${fmt(p(s.apiOne, 99))}`, `${s.apiOne.length} requests`),
    row('GET /api/instances?limit=100 p50/p99', `${fmt(p(s.apiPage, 50))} / ${fmt(p(s.apiPage, 99))}`, `${s.apiPage.length} requests, after a random name`),
    row('API p50 / p99 (the two above)', `${fmt(f.apiP50Ms)} / ${fmt(f.apiP99Ms)}`, 'the JSON\'s apiP50Ms / apiP99Ms'),
    row('GET /v1/STATUS/ (whole list) p50/p99', `${fmt(p(s.apiList, 50))} / ${fmt(p(s.apiList, 99))}`, `${s.apiList.length} requests; every instance in one answer, as MrRedis clients expect`),
    row('agent loss: masters replaced (ms)', fmt(f.agentLossRecoveryMs, 0), `${r.loss.agents.length} agents lost holding ${r.loss.masters} masters; ${r.loss.unrecovered} not replaced`),
    row('  subjectively down (ms after)', stage(r.loss.sdown), 'first / p50 / last; the scheduler\'s "+sdown" lines'),
    row('  failover written (ms after)', stage(r.loss.failover), `first / p50 / last; ${r.loss.impossible} "failover impossible"`),
    row('  new master in the API (ms after)', stage(r.loss.replaced), 'first / p50 / last; polled 8 at a time'),
    row('  CPU % during the loss', `${fmt(r.loss.schedulerCpuPercent)} / ${fmt(r.loss.simCpuPercent)}`, 'scheduler / simulator, of one core'),
    row('scheduler restart -> leading (ms)', fmt(f.startupToLeadingMs, 0), 'on the full tree'),
    row('  then +sdown / failovers', `${fmt(r.restart.sdownAfter, 0)} / ${fmt(r.restart.failoversAfter, 0)}`, `in its first ${AFTER_RESTART_MS / 1000} s leading; a healthy fleet: 0 / 0`),
    row('scheduler error lines', String(r.schedulerErrors.length), r.schedulerErrors[0]?.slice(0, 160) ?? ''),
    row('scheduler loop stalls (max ms)', `${r.strain.schedulerStalls} (${r.strain.schedulerMaxStallMs})`, 'until the agent loss; "event loop stalled" lines'),
    row('agent streams dropped / lost', `${r.strain.streamsDropped} / ${r.strain.agentsLost}`, 'no heartbeat answer in time / not back within the agent timeout'),
    row('simulator loop stalls (max lag ms)', `${r.strain.simStalls} (${fmt(r.strain.simMaxLagMs, 0)})`, 'a late simulator, not the scheduler'),
    ...(r.profile.length ? ['scheduler CPU profile (its whole life: creates, steady, agent loss):', ...r.profile.map((l) => `  ${l}`)] : []),
  ];
}
