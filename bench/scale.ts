/**
 * bench/scale: how far one scheduler and one etcd go (issue 11). Starts etcd and the scheduler
 * (LocalFleet, no real agents) and `--agents` simulated agents (bench/sim-agents.ts, a child
 * process speaking the real protocol); creates `--instances` instances of 1 master + 2 replicas
 * through the API at a ramping rate; holds steady for `--steady` seconds; loses 1% of the agents
 * at once; restarts the scheduler on the full tree. Prints a table, and as its last line one JSON
 * object with the issue's keys.
 *
 *   npm run bench:scale -- --agents 100 --instances 300
 *   npm run bench:scale -- --agents 1000 --instances 3334 --cpu-prof
 *
 * With --cpu-prof the first scheduler runs under `node --cpu-prof`, and its top 5 functions by
 * self time are printed. Everything it starts is stopped at the end, on error and on Ctrl-C; every
 * loop is bounded in count and time. Raise `ulimit -n` to 3 x procs + 1000 (docs/scale.md).
 */
import { loadavg } from 'node:os';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { LocalFleet } from '../test/harness/local-fleet.js';
import { SimAgents } from '../test/harness/sim-agents.js';
import { describeMachine, machineLines } from './machine.js';
import { parseFlags, runMain, wholeFlag, type Program } from './program.js';
import { StartedHere } from './started-here.js';
import { creationUsage, errorLines, perProcCost, strainOf, topFunctions } from './scale/measure.js';
import { awaitRunning, createRamped, restartScheduler, steady } from './scale/phases.js';
import { loseOnePercent } from './scale/loss.js';
import { figuresOf, reportLines, type Run } from './scale/report.js';

const NAME = 'scale';
const USAGE = `usage: npm run bench:scale -- [--agents 100] [--instances 300] [--steady 30] [--rate 20] [--rate-step 20] [--max-rate 200] [--sim-shards K] [--agent-timeout S] [--agent-heartbeat S] [--cpu-prof] [--sim-cpu-prof]
  --agents N      simulated agents (default 100)
  --sim-shards K  simulator processes sharing the agents (default: one per 7,000 procs, for the open-files limit; at most 8)
  --instances M   instances of 1 master + 2 replicas (3 x M procs; default 300)
  --steady S      seconds held steady after every instance is RUNNING (default 30)
  --rate R        creates in the first second, then --rate-step more each second up to --max-rate
  --agent-timeout S  the scheduler's --agent-timeout (default: its own, 10 s); a starved host drops
                  agent streams that a longer timeout lets come back before their procs are written off
  --agent-heartbeat S  the scheduler's --agent-heartbeat (default: its own, 1 s): fewer heartbeat
                  calls, and 3 x S of silence before a stream is dropped
  --cpu-prof      profile the scheduler (node --cpu-prof) and print its top 5 functions
  --sim-cpu-prof  profile the simulator's processes too, and print their top 5 (all shards together)`;
const PROGRAM: Program = { name: NAME, usage: USAGE };

interface Options {
  agents: number;
  instances: number;
  steady: number;
  rate: number;
  rateStep: number;
  maxRate: number;
  simShards: number;
  agentTimeout?: number;
  agentHeartbeat?: number;
  cpuProf: boolean;
  simCpuProf: boolean;
}

const whole = (v: string | boolean | undefined, flag: string, fallback: number, min: number, max: number): number => wholeFlag(PROGRAM, v, flag, fallback, min, max);

function options(argv: string[]): Options {
  const v = parseFlags(PROGRAM, argv, {
    agents: { type: 'string' }, instances: { type: 'string' }, steady: { type: 'string' }, rate: { type: 'string' },
    'rate-step': { type: 'string' }, 'max-rate': { type: 'string' }, 'sim-shards': { type: 'string' }, 'agent-timeout': { type: 'string' }, 'agent-heartbeat': { type: 'string' }, 'cpu-prof': { type: 'boolean' }, 'sim-cpu-prof': { type: 'boolean' },
  });
  const agents = whole(v.agents, 'agents', 100, 3, 64_000);
  const instances = whole(v.instances, 'instances', 300, 1, 200_000);
  // Each simulator process holds ~2 fds per proc (ulimit -n here: 20,000): as many processes as
  // that needs and no more, since on 2 vCPUs every extra process costs the scheduler CPU
  // (docs/BENCHMARKS.md#scale: 3-5 shards used more CPU than one).
  const shards = Math.min(8, Math.max(1, Math.ceil((3 * instances) / 7000)));
  return {
    agents,
    instances,
    steady: whole(v.steady, 'steady', 30, 5, 3600),
    rate: whole(v.rate, 'rate', 20, 1, 10_000),
    rateStep: whole(v['rate-step'], 'rate-step', 20, 0, 10_000),
    maxRate: whole(v['max-rate'], 'max-rate', 200, 1, 10_000),
    simShards: whole(v['sim-shards'], 'sim-shards', shards, 1, 64),
    agentTimeout: v['agent-timeout'] === undefined ? undefined : whole(v['agent-timeout'], 'agent-timeout', 10, 1, 3600),
    agentHeartbeat: v['agent-heartbeat'] === undefined ? undefined : whole(v['agent-heartbeat'], 'agent-heartbeat', 1, 1, 60),
    cpuProf: Boolean(v['cpu-prof']),
    simCpuProf: Boolean(v['sim-cpu-prof']),
  };
}

/** Each agent's resources: room for twice its share of procs (0.1 cpu and 16 MB each), within its 100 ports. */
function agentResources(o: Options): { cpus: number; mem: number } {
  const share = Math.min(100, Math.ceil((2 * 3 * o.instances) / o.agents) + 4);
  return { cpus: Math.ceil(share / 10), mem: share * 16 };
}

async function run(o: Options, fleet: LocalFleet, profDir: string): Promise<Run> {
  const simStart = Date.now();
  const simProfDir = join(profDir, 'sim');
  const nodeArgs = o.simCpuProf ? ['--cpu-prof', `--cpu-prof-dir=${simProfDir}`] : [];
  const sim = await SimAgents.start(fleet, { agents: o.agents, shards: o.simShards, nodeArgs, ...agentResources(o), timeoutMs: 60_000 + o.agents * 100 });
  console.log(`${o.agents} simulated agents subscribed in ${((Date.now() - simStart) / 1000).toFixed(1)} s, over ${o.simShards} simulator process(es)`);
  try {
    const before = creationUsage(fleet, sim);
    const posted = await createRamped(fleet, o.instances, o.rate, o.rateStep, o.maxRate);
    console.log(`${o.instances} creates posted in ${((Date.now() - posted.firstPostAt) / 1000).toFixed(1)} s (${posted.failedPosts} refused)`);
    let shown = -1;
    const created = await awaitRunning(fleet, posted, 120_000 + o.instances * 200, (n) => {
      if (Math.floor(n / Math.max(1, Math.ceil(o.instances / 10))) !== shown) console.log(`  RUNNING ${n} of ${o.instances}`);
      shown = Math.floor(n / Math.max(1, Math.ceil(o.instances / 10)));
    });
    const createCost = perProcCost(before, creationUsage(fleet, sim), o.instances * 3);
    const steadyPhase = await steady(fleet, sim, created.names, o.steady);
    const status = await sim.status().catch(() => ({} as Record<string, number>));
    const strain = strainOf(fleet.log('scheduler'), fleet.log('sim-agents'), Number(status.maxLoopLagMs ?? NaN));
    const loss = await loseOnePercent(fleet, sim, o.agents, 120_000);
    const restart = await restartScheduler(fleet).catch((err: Error) => {
      console.log(`scheduler restart: failed: ${err.message}`);
      return { startupToLeadingMs: NaN, sdownAfter: NaN, failoversAfter: NaN };
    });
    const errors = errorLines(fleet.log('scheduler'));
    await fleet.killScheduler('SIGTERM');
    return { opts: o, created, createCost, steady: steadyPhase, loss, restart, schedulerErrors: errors, strain, profile: o.cpuProf ? topFunctions(profDir) : [] };
  } finally {
    await fleet.killScheduler('SIGTERM');
    // A profiled simulator writes its profile only when it exits on its own: give it time.
    await sim.stop(o.simCpuProf ? 120_000 : undefined);
    if (o.simCpuProf) for (const line of ['simulator CPU profile (all shards):', ...topFunctions(simProfDir).map((l) => `  ${l}`)]) console.log(line);
  }
}

async function main(): Promise<number> {
  const o = options(process.argv.slice(2));
  const started = new StartedHere(Boolean(process.env.REDFLEET_KEEP_TEST_DIRS));
  started.cleanUpOnExit(NAME);
  const loadBefore = loadavg()[0];
  console.log(`${NAME}: ${o.agents} simulated agents, ${o.instances} instances of 1+2 (${o.instances * 3} procs, ${16} MB), ramp ${o.rate}/s +${o.rateStep}/s up to ${o.maxRate}/s, ${o.steady} s steady`);
  console.log(`reproduce: npm run bench:scale -- --agents ${o.agents} --instances ${o.instances} --steady ${o.steady} --rate ${o.rate} --rate-step ${o.rateStep} --max-rate ${o.maxRate} --sim-shards ${o.simShards}${o.agentTimeout ? ` --agent-timeout ${o.agentTimeout}` : ''}${o.agentHeartbeat ? ` --agent-heartbeat ${o.agentHeartbeat}` : ''}${o.cpuProf ? ' --cpu-prof' : ''}`);
  const profDir = started.tempDir('redfleet-scale-prof-');
  mkdirSync(profDir, { recursive: true });
  // The first scheduler only: the restarted one (startup on the full tree) runs unprofiled.
  const fleet = await LocalFleet.start({ agents: 0, schedulerArgs: [...(o.agentTimeout ? ['--agent-timeout', String(o.agentTimeout)] : []), ...(o.agentHeartbeat ? ['--agent-heartbeat', String(o.agentHeartbeat)] : [])], schedulerNodeArgs: o.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [] });
  fleet.schedulerNodeArgs = [];
  try {
    const result = await run(o, fleet, profDir);
    const figures = figuresOf(result);
    for (const line of reportLines(result, figures)) console.log(line);
    for (const line of machineLines(describeMachine(['etcd']))) console.log(line);
    console.log(`other load: 1-min load average ${loadBefore.toFixed(2)} before, ${loadavg()[0].toFixed(2)} after`);
    console.log(JSON.stringify(figures));
    return result.loss.unrecovered > 0 ? 1 : 0;
  } finally {
    await fleet.stop();
    started.removeDir(profDir);
  }
}

runMain(NAME, main);
