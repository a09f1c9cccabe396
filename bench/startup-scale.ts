/**
 * bench/startup-scale: how fast a scheduler leads and serves on a large tree (issue 11, "Watch":
 * "leading and serving within 10 s" at 100,000 procs). Needs no live procs, only their etcd keys:
 *
 * 1. A real fleet (LocalFleet: etcd, scheduler, three real agents with real redis-servers)
 *    creates one instance of 1 + 2; once it is RUNNING with every proc's Stats written, its keys
 *    are the template (startup/template.ts). That fleet's scheduler and agents are stopped and
 *    the template removed; its etcd stays.
 * 2. `--instances` instances are stamped from the template and written in bulk (startup/fill.ts),
 *    their procs spread over `--agents` agent ids with the simulator's 127.1.x.y addresses.
 * 3. A scheduler (`redfleet scheduler`, its own etcd client) is started on that tree and timed:
 *    spawn -> API listening -> leading (/healthz) -> serving (one instance and the v1 list right),
 *    then `--steady` seconds of reads with its CPU and RSS.
 * 4. The same again (a restart): it now reads the tree in the windows the first start noted
 *    under Config/TreeWindows, as a restart of any fleet that grew under a scheduler does.
 * 5. The same again with the election held by the benchmark, so the scheduler stays a standby:
 *    the tree, the cache and the API alone (the steady figures of the JSON line).
 *
 * No agent is connected after step 1, so the scheduler runs with `--agent-timeout 86400`: it
 * would otherwise write every proc off after 10 s and start re-placing them all. Its failure
 * detector and stats poller still dial every master and replica (they are RUNNING in the tree);
 * the leader's window shows what that costs, which is why the steady figures are the standby's.
 *
 *   npm run bench:startup -- --instances 33334
 *   npm run bench:startup -- --instances 3334 --cpu-prof
 */
import { loadavg } from 'node:os';
import { readdirSync } from 'node:fs';
import { connectEtcd } from '../src/store/etcd.js';
import { DEFAULT_PREFIX, Keys } from '../src/store/keys.js';
import { LocalFleet } from '../test/harness/local-fleet.js';
import { describeMachine, machineLines } from './machine.js';
import { parseFlags, runMain, wholeFlag, type Program } from './program.js';
import { StartedHere } from './started-here.js';
import { errorLines, etcdStatus, procUsage, cpuPercent, topFunctions } from './scale/measure.js';
import { CAPACITY_MB, recordTemplate, TEMPLATE_NAME, type Template } from './startup/template.js';
import { fillFleet, instanceName, MAX_TXN_OPS } from './startup/fill.js';
import { sampleReads, timeStartup, type Expected } from './startup/probe.js';
import { startupFigures, startupLines, type Role, type StartupRun, type Window } from './startup/report.js';
import { campaignForLeadership } from '../src/store/leadership.js';

const NAME = 'startup-scale';
const USAGE = `usage: npm run bench:startup -- [--instances 3334] [--agents N] [--steady 20] [--cpu-prof]
  --instances M   instances of 1 master + 2 replicas in the tree (3 x M procs; default 3334)
  --agents N      agent ids the procs are spread over (default: one per 10 procs, at most 10,000)
  --steady S      seconds of reads and CPU/RSS sampling after the start (default 20)
  --cpu-prof      run both starts under node --cpu-prof and print the top functions of each
                  start, from the spawn until it serves`;
const PROGRAM: Program = { name: NAME, usage: USAGE };
const AGENT_TIMEOUT_SECONDS = 86_400;
const ETCD_ARGS = ['--max-txn-ops', String(MAX_TXN_OPS), '--quota-backend-bytes', String(8 * 1024 ** 3)];

interface Options {
  instances: number;
  agents: number;
  steady: number;
  cpuProf: boolean;
}

const whole = (v: string | boolean | undefined, flag: string, fallback: number, min: number, max: number): number => wholeFlag(PROGRAM, v, flag, fallback, min, max);

function options(argv: string[]): Options {
  const v = parseFlags(PROGRAM, argv, { instances: { type: 'string' }, agents: { type: 'string' }, steady: { type: 'string' }, 'cpu-prof': { type: 'boolean' } });
  const instances = whole(v.instances, 'instances', 3334, 1, 200_000);
  return {
    instances,
    agents: whole(v.agents, 'agents', Math.min(10_000, Math.max(3, Math.ceil((3 * instances) / 10))), 3, 64_000),
    steady: whole(v.steady, 'steady', 20, 5, 600),
    cpuProf: Boolean(v['cpu-prof']),
  };
}

/** The template's scheduler and agents stop (their redis-servers too); the template's keys go; etcd stays. */
async function clearTemplateFleet(fleet: LocalFleet, keys: Keys): Promise<void> {
  await fleet.killScheduler('SIGTERM');
  for (const id of [...fleet.agents.keys()]) await fleet.stopAgent(id, 'SIGTERM');
  for (const pid of fleet.redisPids()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  const etcd = connectEtcd(fleet.etcd.url);
  try {
    await etcd.delete().prefix(keys.instance(TEMPLATE_NAME));
  } finally {
    etcd.close();
  }
}

/** The middle instance as etcd holds it after the fill: what the started scheduler must serve. */
async function expectedOf(fleet: LocalFleet, keys: Keys, o: Options): Promise<Expected> {
  const name = instanceName(Math.floor(o.instances / 2));
  const etcd = connectEtcd(fleet.etcd.url);
  try {
    const kvs = await etcd.getAll().prefix(keys.procs(name)).strings();
    const ids = [...new Set(Object.keys(kvs).map((k) => k.slice(keys.procs(name).length).split('/')[0]))];
    const f = (id: string, field: string) => kvs[keys.procField(name, id, field)] ?? '';
    return { name, count: o.instances, procs: ids.map((id) => ({ id, ip: f(id, 'IP'), port: Number(f(id, 'Port')), state: f(id, 'State'), type: f(id, 'Type'), agent: f(id, 'SID') })) };
  } finally {
    etcd.close();
  }
}

async function fill(fleet: LocalFleet, template: Template, keys: Keys, o: Options): Promise<{ keys: number; bytes: number; seconds: number }> {
  const etcd = connectEtcd(fleet.etcd.url);
  try {
    const t0 = Date.now();
    let shown = -1;
    const out = await fillFleet(etcd, template, keys, o, (done) => {
      const tenth = Math.floor((done * 10) / o.instances);
      if (tenth !== shown) console.log(`  filled ${done} of ${o.instances} instances (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
      shown = tenth;
    });
    const seconds = (Date.now() - t0) / 1000;
    const stored = await etcd.getAll().prefix(keys.instances).count();
    if (stored !== out.keys) throw new Error(`etcd holds ${stored} keys under ${keys.instances}, ${out.keys} were written`);
    return { ...out, seconds };
  } finally {
    etcd.close();
  }
}

async function run(o: Options, fleet: LocalFleet, started: StartedHere): Promise<StartupRun> {
  const keys = new Keys(DEFAULT_PREFIX);
  const etcd = connectEtcd(fleet.etcd.url);
  const template = await recordTemplate(fleet, etcd, keys).finally(() => etcd.close());
  const templateKeys = template.fields.size + template.snames.size + template.procs.reduce((n, p) => n + p.fields.size, 0);
  console.log(`template: ${templateKeys} keys (${template.fields.size} instance fields, ${template.snames.size} Snames, ${template.procs.map((p) => p.fields.size).join('+')} proc fields)`);
  await clearTemplateFleet(fleet, keys);
  const filled = await fill(fleet, template, keys, o);
  const expected = await expectedOf(fleet, keys, o);
  const leader = await phase(fleet, o, expected, started, 'leader');
  const restart = await phase(fleet, o, expected, started, 'restart');
  const standby = await phase(fleet, o, expected, started, 'standby');
  const e = etcdStatus(fleet);
  return {
    instances: o.instances, agents: o.agents, templateKeys, keys: filled.keys, bytes: filled.bytes, fillSeconds: filled.seconds, leader, restart, standby,
    etcdInUseBytes: e.dbSizeInUse, etcdDbBytes: e.dbSize, etcdRssBytes: fleet.etcd.child.pid ? procUsage(fleet.etcd.child.pid).rssBytes : NaN,
  };
}

/**
 * One start of the scheduler on the filled tree, timed, then `--steady` seconds of reads. As
 * 'standby', the benchmark holds the election itself first (a leader elsewhere), so the
 * scheduler only loads the tree and serves the API: the tree's own cost, without the leader's
 * parts that dial every proc.
 */
async function phase(fleet: LocalFleet, o: Options, expected: Expected, started: StartedHere, role: Role): Promise<Window> {
  const profDir = o.cpuProf ? started.tempDir(`redfleet-startup-${role}-prof-`) : undefined;
  fleet.schedulerNodeArgs = profDir ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [];
  const etcd = connectEtcd(fleet.etcd.url);
  const holder = role === 'standby' ? await campaignForLeadership(etcd, DEFAULT_PREFIX, { id: 'bench-startup-holder', api: 'http://127.0.0.1:9' }, 30) : undefined;
  try {
    const logFrom = fleet.log('scheduler').length;
    const startup = await timeStartup(fleet, expected, CAPACITY_MB, 120_000 + o.instances * 5, role !== 'standby');
    console.log(`${role}: listening ${startup.listeningMs} ms, leading ${startup.leadingMs} ms, serving ${startup.servingMs} ms; ${o.steady} s of reads`);
    const window = await steady(fleet, o);
    await fleet.killScheduler('SIGTERM');
    const log = fleet.log('scheduler').slice(logFrom);
    const profile = profDir ? topFunctions(profDir, 5, startup.servingMs) : [];
    return { role, startup, ...window, ...logCounts(log), profile };
  } finally {
    await fleet.killScheduler('SIGTERM');
    await holder?.resign();
    etcd.close();
    fleet.schedulerNodeArgs = [];
    if (profDir) started.removeDir(profDir);
  }
}

/** What the scheduler's log says about one start: error lines, leadership lost, loop stalls, masters found silent. */
function logCounts(log: string): Pick<Window, 'errors' | 'sdown' | 'stalls' | 'leadershipLosses'> {
  return {
    errors: errorLines(log),
    sdown: log.split('"master subjectively down"').length - 1,
    stalls: log.split('event loop stalled').length - 1,
    leadershipLosses: log.split('"leadership lost: standing by and campaigning again"').length - 1,
  };
}

/** The steady window: reads, one at a time, and the scheduler's CPU and RSS (peak sampled each second). */
async function steady(fleet: LocalFleet, o: Options): Promise<Pick<Window, 'steadySeconds' | 'cpuPercent' | 'rssBytes' | 'rssPeakBytes' | 'openFds' | 'reads'>> {
  const pid = fleet.scheduler?.pid;
  if (!pid) throw new Error('the scheduler is not running');
  const u0 = procUsage(pid);
  let rssPeakBytes = u0.rssBytes;
  const peak = setInterval(() => { rssPeakBytes = Math.max(rssPeakBytes, procUsage(pid).rssBytes); }, 1000);
  const reads = await sampleReads(fleet.apiUrl, instanceName, o.instances, Date.now() + o.steady * 1000).finally(() => clearInterval(peak));
  const u1 = procUsage(pid);
  return {
    steadySeconds: o.steady,
    cpuPercent: cpuPercent(u0, u1),
    rssBytes: u1.rssBytes,
    rssPeakBytes: Math.max(rssPeakBytes, u1.rssBytes),
    openFds: readdirSync(`/proc/${pid}/fd`).length,
    reads,
  };
}

async function main(): Promise<number> {
  const o = options(process.argv.slice(2));
  const started = new StartedHere(Boolean(process.env.REDFLEET_KEEP_TEST_DIRS));
  started.cleanUpOnExit(NAME);
  const loadBefore = loadavg()[0];
  console.log(`${NAME}: ${o.instances} instances of 1+2 (${o.instances * 3} procs) over ${o.agents} agent ids, ${o.steady} s of reads; scheduler --agent-timeout ${AGENT_TIMEOUT_SECONDS}`);
  console.log(`reproduce: npm run bench:startup -- --instances ${o.instances} --agents ${o.agents} --steady ${o.steady}${o.cpuProf ? ' --cpu-prof' : ''}`);
  const fleet = await LocalFleet.start({ agents: 3, schedulerArgs: ['--agent-timeout', String(AGENT_TIMEOUT_SECONDS)], etcdArgs: ETCD_ARGS });
  try {
    const result = await run(o, fleet, started);
    const figures = startupFigures(result);
    for (const line of startupLines(result, figures)) console.log(line);
    for (const line of machineLines(describeMachine(['etcd']))) console.log(line);
    console.log(`other load: 1-min load average ${loadBefore.toFixed(2)} before, ${loadavg()[0].toFixed(2)} after`);
    console.log(JSON.stringify(figures));
    return [result.leader, result.restart, result.standby].every((w) => Number.isFinite(w.startup.servingMs)) ? 0 : 1;
  } finally {
    await fleet.killScheduler('SIGTERM');
    await fleet.stop();
  }
}

runMain(NAME, main);
