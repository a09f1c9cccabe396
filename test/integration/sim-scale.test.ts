import { expect } from 'chai';
import { setTimeout as sleep } from 'node:timers/promises';
import { LocalFleet } from '../harness/local-fleet.js';
import { SimAgents, type SimProcInfo } from '../harness/sim-agents.js';

/*
 * Correctness at a modest scale (issue 11): 200 simulated agents (bench/sim-agents.ts, speaking the
 * real protocol to the real scheduler and etcd) and 990 procs (330 instances of 1 + 2). Everything
 * is placed and RUNNING; then two agents are lost at once, one master's process dies and another
 * master freezes, and every one of those masters is failed over and every instance is whole again,
 * with no error line in the scheduler's log. No timing is asserted: bench:scale measures.
 */

const AGENTS = 200;
const INSTANCES = 330;
const CREATE_BATCH = 30;

interface InstanceView {
  name: string;
  status: string;
  epoch: string | number;
  master: { id: string; agent: string } | null;
  slaves: { id: string; agent: string }[];
}

async function list(fleet: LocalFleet): Promise<InstanceView[]> {
  const res = await fleet.api('GET', '/api/instances');
  return Array.isArray(res.json) ? (res.json as InstanceView[]) : [];
}

/** The list, at most every 250 ms: waitFor asks every 25 ms, and 330 instances each time load the scheduler under test. */
async function listSlowly(fleet: LocalFleet): Promise<InstanceView[]> {
  await sleep(225);
  return list(fleet);
}

/** Whether the instance is whole: RUNNING, a master and both replicas, none of them on `gone` agents or among `deadProcs`. */
function whole(inst: InstanceView, gone: Set<string>, deadProcs: Set<string>): boolean {
  if (inst.status !== 'RUNNING' || !inst.master || inst.slaves.length !== 2) return false;
  return [inst.master, ...inst.slaves].every((p) => !gone.has(p.agent) && !deadProcs.has(p.id));
}

describe('simulated scale: 200 agents, 990 procs', function () {
  this.timeout(300_000);
  let fleet: LocalFleet;
  let sim: SimAgents | undefined;

  before(async () => {
    fleet = await LocalFleet.start({ agents: 0 });
    // Room for 16 procs each (16 MB, 0.1 cpu a proc): a lost agent takes a realistic share with it.
    // Two simulator processes, as bench:scale runs them at size: replicas and masters in different shards.
    sim = await SimAgents.start(fleet, { agents: AGENTS, shards: 2, cpus: 2, mem: 256 });
  });

  after(async () => {
    // The scheduler first: otherwise it would see every proc stop with the simulator and restart the instances.
    await fleet?.killScheduler('SIGTERM');
    await sim?.stop();
    await fleet?.stop();
  });

  it('places everything, fails over every master lost with two agents, a dead and a frozen master, and logs no error', async () => {
    const names = Array.from({ length: INSTANCES }, (_, i) => `sim${i}`);
    // Paced: each batch RUNNING before the next, so that the scheduler is never asked to place
    // hundreds at once on a machine shared with other suites (bench:scale measures bursts).
    for (let i = 0; i < names.length; i += CREATE_BATCH) {
      const batch = names.slice(i, i + CREATE_BATCH);
      const answers = await Promise.all(batch.map((name) => fleet.api('POST', '/api/instances', { name, capacityMb: 16, replicas: 2 })));
      expect(answers.map((a) => a.status)).to.deep.equal(answers.map(() => 202));
      await fleet.waitFor(async () => (await listSlowly(fleet)).filter((inst) => whole(inst, new Set(), new Set())).length >= i + batch.length, 60_000, `${i + batch.length} instances RUNNING`);
    }
    const procs: SimProcInfo[] = await sim!.procs();
    expect(procs).to.have.length(INSTANCES * 3);

    const masters = procs.filter((p) => p.role === 'master');
    const lostAgents = [...new Set(masters.map((m) => m.agent))].slice(0, 2);
    const killed = masters.find((m) => !lostAgents.includes(m.agent))!;
    const frozen = masters.find((m) => !lostAgents.includes(m.agent) && m.agent !== killed.agent)!;
    const failedMasters = masters.filter((m) => lostAgents.includes(m.agent) || m === killed || m === frozen);
    const epochBefore = new Map((await list(fleet)).map((i) => [i.name, Number(i.epoch)]));
    await Promise.all([sim!.loseAgents(lostAgents), sim!.killProc(killed.proc), sim!.freeze(frozen.proc)]);

    const gone = new Set(lostAgents);
    const dead = new Set([killed.proc, frozen.proc]);
    await fleet.waitFor(async () => (await listSlowly(fleet)).filter((i) => whole(i, gone, dead)).length === INSTANCES, 120_000, 'every instance whole again');
    const after = new Map((await list(fleet)).map((i) => [i.name, i]));
    for (const m of failedMasters) {
      const inst = after.get(m.instance)!;
      expect(inst.master!.id, `${m.instance}'s master`).to.not.equal(m.proc);
      expect(Number(inst.epoch), `${m.instance}'s epoch`).to.be.greaterThan(epochBefore.get(m.instance) ?? 0);
    }
    // Let the last writes of the failovers land before reading the log.
    await sleep(500);
    const errors = fleet.log('scheduler').split('\n').filter((l) => l.includes('"level":"error"'));
    expect(errors, errors.slice(0, 5).join('\n')).to.deep.equal([]);
  });
});
