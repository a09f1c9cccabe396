import { expect } from 'chai';
import { DEFAULT_STATS_HEARTBEAT_SECONDS, StatsWriter, type StatsSource } from '../../src/executor/stats-writer.js';
import { ProcReporter, type ProcReport } from '../../src/executor/proc-report.js';
import { AgentReports, parseStats, REPORT_FRESH_MS, reportFreshMs, type ReportedHealth } from '../../src/scheduler/agent-reports.js';
import { StatsPoller } from '../../src/scheduler/stats-poller.js';
import { withProcStats } from '../../src/store/stats-overlay.js';
import { pb } from '../../src/proto/messages.js';
import type { redfleet } from '../../src/proto/redfleet.js';
import type { AgentStore } from '../../src/store/agent-store.js';
import type { Logger } from '../../src/logger.js';
import { InstanceStatus, InstanceType, ProcState, ProcType, type Instance, type Proc, type ProcStats } from '../../src/domain/model.js';

/** A logger that keeps its warnings. */
function quietLog(): Logger & { warnings: string[] } {
  const warnings: string[] = [];
  const log = { warnings, warn: (msg: string) => warnings.push(msg), debug: () => undefined, info: () => undefined, error: () => undefined };
  return log as unknown as Logger & { warnings: string[] };
}

/** An etcd stand-in for the StatsWriter: it records each Stats write. */
function fakeStore(): AgentStore & { writes: string[] } {
  const writes: string[] = [];
  const writeStatsBatch = async (entries: { procId: string }[]) => {
    for (const e of entries) writes.push(e.procId);
    return new Set(entries.map((e) => e.procId));
  };
  return { writes, writeStatsBatch } as unknown as AgentStore & { writes: string[] };
}

function source(procId: string, info: () => Promise<string>): StatsSource {
  return { task: { task_id: { value: procId } }, launch: { instance: 'inst' }, running: true, redis: { exited: null, info } };
}

const INFO = 'role:master\r\nused_memory:1000000\r\nconnected_clients:1\r\nconnected_slaves:0\r\nuptime_in_seconds:5\r\n';

const stats = (over: Partial<ProcStats> = {}): ProcStats => ({ uptime: 5, usedMemory: 1000, clients: 1, role: 'master', replOffset: 0, updatedAt: new Date().toISOString(), ...over });

function proc(id: string, agent: string, over: Partial<Proc> = {}): Proc {
  return {
    id, instance: id.split('::')[0], nodename: agent, capacity: 16, memUsed: 0, pid: 1, ip: '127.0.0.1', port: 7000,
    state: ProcState.Running, type: ProcType.Master, slaveOf: '', eid: agent, sid: agent, ...over,
  } as Proc;
}

function instance(name: string, procs: Proc[], status = InstanceStatus.Running): Instance {
  return { name, type: InstanceType.Standalone, status, mname: procs[0]?.id ?? '', procs } as unknown as Instance;
}

describe('stats: the agent\'s REPORT and the etcd Stats heartbeat (issue 11)', () => {
  it('writes etcd Stats every 20 s by default, unless something meaningful changed', () => {
    expect(DEFAULT_STATS_HEARTBEAT_SECONDS).to.equal(20);
  });

  it('reads INFO once a round for both: every round is reported, etcd only gets the first and the changes', async () => {
    const store = fakeStore();
    const reported: ProcReport[][] = [];
    const writer = new StatsWriter(store, quietLog(), { report: (procs) => reported.push(procs) });
    let reads = 0;
    let info = INFO;
    const p = source('inst::a', async () => { reads += 1; return info; });
    await writer.write([p]);
    await writer.write([p]);
    info = INFO.replace('connected_clients:1', 'connected_clients:2');
    await writer.write([p]);
    expect(reads).to.equal(3);
    expect(reported.map((r) => r.length)).to.deep.equal([1, 1, 1]);
    expect(JSON.parse(reported[2][0].stats ?? '')).to.include({ clients: 2, role: 'master', usedMemory: 1_000_000 });
    expect(store.writes).to.deep.equal(['inst::a', 'inst::a'], 'the first round and the new client, not the idle second round');
  });

  it('reports the procs that answered without waiting for a hung one', async () => {
    const reported: ProcReport[][] = [];
    const writer = new StatsWriter(fakeStore(), quietLog(), { report: (procs) => reported.push(procs) });
    const hung = source('inst::hung', () => new Promise<string>(() => undefined));
    const t0 = Date.now();
    void writer.write([source('inst::ok', async () => INFO), hung]);
    while (reported.length === 0 && Date.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 20));
    expect(Date.now() - t0).to.be.below(2000);
    expect(reported[0].map((r) => r.task_id.value)).to.deep.equal(['inst::ok']);
  });

  it('keeps a round\'s figures for the next heartbeat answer, once; sends a silent proc at once, only within a session', () => {
    const sent: redfleet.v1.ICall[] = [];
    const link = { subscribed: false, send: (call: redfleet.v1.ICall) => { sent.push(call); return Promise.resolve(); } };
    const reporter = new ProcReporter(link);
    const entry = { task_id: { value: 'inst::a' }, stats: '{}' };
    expect(reporter.take()).to.equal(undefined, 'nothing before a round');
    reporter.round([entry]);
    reporter.round([{ ...entry, stats: '{"newer":1}' }]);
    expect(reporter.take()?.procs?.map((p) => p.stats)).to.deep.equal(['{"newer":1}'], 'the latest round replaces one not yet taken');
    expect(reporter.take()).to.equal(undefined, 'each round travels once');
    reporter.round([]);
    expect(reporter.take()).to.equal(undefined, 'an empty round says nothing');
    expect(sent).to.have.length(0, 'rounds are never sent on their own');
    reporter.now([{ task_id: { value: 'inst::a' }, silent_ms: 2000 }]);
    expect(sent).to.have.length(0, 'no REPORT without a session');
    link.subscribed = true;
    reporter.now([]);
    reporter.now([{ task_id: { value: 'inst::a' }, silent_ms: 2000 }]);
    expect(sent.map((c) => [c.type, c.report?.procs?.[0]?.silent_ms])).to.deep.equal([[pb.Call.Type.REPORT, 2000]], 'a silent proc is reported at once');
  });

  it('takes only the reporting agent\'s own procs, skips bad stats, and hands every entry to the hook', () => {
    const overlaid: string[] = [];
    const hooked: [string, string, ReportedHealth][] = [];
    const owners: Record<string, string> = { 'inst::mine': 'a1', 'inst::quiet': 'a1', 'inst::bad': 'a1', 'inst::theirs': 'a2' };
    const log = quietLog();
    const reports = new AgentReports({
      procAgent: (id) => owners[id],
      overlayStats: (id) => overlaid.push(id),
      onProcReport: (agent, procId, health) => hooked.push([agent, procId, health]),
    }, log);
    reports.accept('a1', { procs: [
      { task_id: { value: 'inst::mine' }, stats: JSON.stringify(stats()) },
      { task_id: { value: 'inst::quiet' }, silent_ms: 1500, busy: true },
      { task_id: { value: 'inst::bad' }, stats: '{"usedMemory": "lots"' },
      { task_id: { value: 'inst::theirs' }, stats: JSON.stringify(stats()) },
      { task_id: { value: 'inst::other' }, stats: JSON.stringify(stats()) },
    ] }, 1000);
    expect(overlaid).to.deep.equal(['inst::mine']);
    expect(hooked).to.deep.equal([['a1', 'inst::mine', { silentMs: 0, busy: false }], ['a1', 'inst::quiet', { silentMs: 1500, busy: true }]]);
    expect(log.warnings.filter((w) => /another agent/.test(w))).to.have.length(1, 'logged once for the call');
    expect(log.warnings.filter((w) => /not Stats JSON/.test(w))).to.have.length(1);
    expect(reports.lastReportAt('a1')).to.equal(1000);
    expect(reports.lastReportAt('a2')).to.equal(undefined);
    expect(reports.reported('inst::mine', 1000 + REPORT_FRESH_MS)).to.equal(true);
    expect(reports.reported('inst::mine', 1001 + REPORT_FRESH_MS)).to.equal(false);
    expect(reports.reported('inst::theirs', 1000)).to.equal(false);
    expect(reports.reported('inst::bad', 1000)).to.equal(false);
    // Agents that answer a heartbeat every 3 s report that often: their figures stay fresh longer.
    const slower = new AgentReports({ procAgent: (id) => owners[id], overlayStats: () => undefined }, log, reportFreshMs(3000));
    slower.accept('a1', { procs: [{ task_id: { value: 'inst::mine' }, stats: JSON.stringify(stats()) }] }, 1000);
    expect(REPORT_FRESH_MS).to.equal(reportFreshMs(1000));
    expect(slower.reported('inst::mine', 1000 + reportFreshMs(3000))).to.equal(true);
    expect(slower.reported('inst::mine', 1001 + reportFreshMs(3000))).to.equal(false);
  });

  it('parses reported stats defensively', () => {
    expect(parseStats(JSON.stringify(stats({ updatedAt: '2026-11-30T06:00:00Z' })))?.updatedAt).to.equal('2026-11-30T06:00:00.000Z');
    for (const bad of ['', 'null', '[]', '"x"', '{}', JSON.stringify({ ...stats(), usedMemory: 'x' }), JSON.stringify({ ...stats(), updatedAt: 'soon' }), JSON.stringify({ ...stats(), role: 1 })]) {
      expect(parseStats(bad), bad).to.equal(undefined);
    }
  });

  it('overlays a proc\'s newer stats on a copy of a shared instance, which stays as it was', () => {
    const old = stats({ updatedAt: '2026-11-30T06:00:00.000Z', usedMemory: 1 });
    const inst = instance('s', [proc('s::a', 'a1', { stats: old }), proc('s::b', 'a2')]);
    const fresh = stats({ updatedAt: '2026-11-30T06:00:01.000Z', usedMemory: 2 });
    const copy = withProcStats(inst, 's::a', fresh);
    expect(copy).to.not.equal(inst);
    expect(copy.procs[0]).to.include({ stats: fresh, memUsed: 2 });
    expect(copy.procs[1]).to.equal(inst.procs[1]);
    expect(inst.procs[0].stats).to.equal(old);
    // Older than the proc's own Stats: the proc is kept as it is.
    expect(withProcStats(inst, 's::a', stats({ updatedAt: '2026-11-30T05:59:59.000Z' })).procs[0]).to.equal(inst.procs[0]);
  });

  it('the poller reads INFO only of procs no agent reports, and keeps the reported procs\' stats', async () => {
    const reportedProcs = new Set(['s::m', 'c::m']);
    const calls: string[] = [];
    let retained = new Set<string>();
    const store = {
      instances: () => [
        instance('s', [proc('s::m', 'a1')]),
        instance('o', [proc('o::m', 'old-agent')]),
        instance('c', [proc('c::m', 'a1')], InstanceStatus.Creating),
        instance('d', [proc('d::m', 'a1', { state: ProcState.Failed })]),
      ],
      overlayStats: () => undefined,
      retainPolledStats: (ids: Set<string>) => { retained = ids; },
    };
    const links = { call: async (p: Proc) => { calls.push(p.id); return INFO; }, hold: () => undefined };
    const reports = { reported: (id: string) => reportedProcs.has(id), sweep: () => undefined };
    await new StatsPoller(store, links, reports, quietLog()).poll();
    expect(calls).to.deep.equal(['o::m']);
    expect([...retained].sort()).to.deep.equal(['c::m', 'o::m', 's::m']);
  });

  it('a new term\'s poller reads nothing for its start grace (the agents report meanwhile), then reads as before', async () => {
    const calls: string[] = [];
    const store = { instances: () => [instance('o', [proc('o::m', 'silent-agent')])], overlayStats: () => undefined, retainPolledStats: () => undefined };
    const links = { call: async (p: Proc) => { calls.push(p.id); return INFO; }, hold: () => undefined };
    const reports = { reported: () => false, sweep: () => undefined };
    const poller = new StatsPoller(store, links, reports, quietLog(), 3_600_000, 1000, 300);
    poller.start();
    try {
      await poller.poll();
      expect(calls, 'within the grace').to.deep.equal([]);
      await new Promise((r) => setTimeout(r, 350));
      await poller.poll();
      expect(calls, 'after it').to.deep.equal(['o::m']);
    } finally {
      poller.stop();
    }
  });

  it('the poller reads at most its budget a round, the procs read longest ago first, so each gets its turn', async () => {
    const procs = ['a', 'b', 'c', 'd', 'e'].map((n) => instance(n, [proc(`${n}::m`, 'silent-agent')]));
    const calls: string[] = [];
    const store = { instances: () => procs, overlayStats: () => undefined, retainPolledStats: () => undefined };
    const links = { call: async (p: Proc) => { calls.push(p.id); return INFO; }, hold: () => undefined };
    const reports = { reported: () => false, sweep: () => undefined };
    const poller = new StatsPoller(store, links, reports, quietLog(), 1000, 2);
    const rounds: string[][] = [];
    for (let i = 0; i < 3; i++) {
      calls.length = 0;
      await poller.poll();
      rounds.push([...calls]);
      await new Promise((r) => setTimeout(r, 2));
    }
    expect(rounds.map((r) => r.length)).to.deep.equal([2, 2, 2]);
    expect(new Set(rounds.flat()).size, 'all five read within three rounds').to.equal(5);
    expect(rounds[1].some((id) => rounds[0].includes(id)), 'nothing read twice before every proc was read once').to.equal(false);
  });
});
