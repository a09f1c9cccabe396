import { expect } from 'chai';
import { Redis } from 'ioredis';
import { AckedWriter } from '../harness/acked-writer.js';
import { LocalFleet } from '../harness/local-fleet.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
type View = any;

async function roleOf(proc: { ip: string; port: number }, password: string): Promise<string> {
  const r = new Redis({ host: proc.ip, port: proc.port, password, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return ((await r.role()) as string[])[0];
  } finally {
    r.disconnect();
  }
}

const NAMES = Array.from({ length: 9 }, (_, i) => `bal${i + 1}`);

describe('balanced masters and rebalance', function () {
  this.timeout(300_000);
  let fleet: LocalFleet;
  const passwords = new Map<string, string>();

  before(async () => {
    fleet = await LocalFleet.start({ agents: 3 });
  });

  after(async () => {
    await fleet?.stop();
  });

  async function view(name: string): Promise<View> {
    return (await fleet.api('GET', `/api/instances/${name}`)).json;
  }

  /** Masters per agent, from the API's view of every instance. */
  async function mastersPerAgent(): Promise<Record<string, number>> {
    const counts: Record<string, number> = {};
    for (const name of NAMES) {
      const m = (await view(name)).master;
      counts[m.agent] = (counts[m.agent] ?? 0) + 1;
    }
    return counts;
  }

  /** Runs a rebalance to its end with writers on two instances; checks zero loss and no restart. */
  async function rebalance(interrupt = false): Promise<View> {
    const writers = ['bal1', 'bal2', 'bal3'].map((n) => new AckedWriter(fleet.sentinelPort, n, passwords.get(n) as string));
    const pids = new Map<string, number>();
    for (const name of NAMES) for (const p of (await view(name)).procs) pids.set(p.id, p.pid);
    writers.forEach((w, i) => w.start(`w${i}:`));
    try {
      await Promise.all(writers.map((w) => w.waitForAcks(50)));
      const res = await fleet.api('POST', '/api/rebalance');
      expect(res.status, res.text).to.equal(202);
      if (interrupt) {
        // SIGKILL the scheduler once the first move is under way; the next one resumes the run.
        await fleet.waitFor(async () => (await fleet.api('GET', '/api/rebalance')).json.step?.startsWith('moving'), 20_000, 'the first move');
        await fleet.killScheduler('SIGKILL');
        await fleet.startScheduler();
      }
      const done = await fleet.waitFor(async () => {
        const r = (await fleet.api('GET', '/api/rebalance')).json;
        return r.id === res.json.id && r.state !== 'running' ? r : undefined;
      }, 120_000, 'the rebalance to end');
      expect(done.state, JSON.stringify(done)).to.equal('done');
      await Promise.all(writers.map((w) => w.waitForAcks(50, 20_000)));
      await Promise.all(writers.map((w) => w.stop()));
      for (const w of writers) {
        const inst = await view(w.name);
        expect(await w.missingOn(inst.master, passwords.get(w.name) as string), `${w.name} lost acknowledged writes`).to.deep.equal([]);
      }
      for (const name of NAMES) for (const p of (await view(name)).procs) expect(p.pid, `${p.id} restarted`).to.equal(pids.get(p.id));
      return done;
    } finally {
      await Promise.all(writers.map((w) => w.stop()));
    }
  }

  it('9 sequential creates of 1+2 on 3 agents put 3 masters on each agent', async () => {
    for (const name of NAMES) {
      const res = await fleet.api('POST', '/api/instances', { name, capacityMb: 16, replicas: 2 });
      expect(res.status, res.text).to.equal(202);
      passwords.set(name, res.json.password);
      await fleet.waitForStatus(name, 'RUNNING', 60_000);
    }
    expect(await mastersPerAgent()).to.deep.equal({ agent1: 3, agent2: 3, agent3: 3 });
  });

  it('3 more agents join and a rebalance runs: no agent over ceil(9/6)+1 = 3 masters, zero loss', async () => {
    for (const id of ['agent4', 'agent5', 'agent6']) await fleet.startAgent(id);
    await fleet.waitFor(async () => (await fleet.api('GET', '/healthz')).json.agents === 6, 30_000, 'six agents');
    const dry = await fleet.api('POST', '/api/rebalance', { dryRun: true });
    expect(dry.status).to.equal(200);
    expect(dry.json.plan.limit).to.equal(3);
    expect(dry.json.plan.agents).to.equal(6);
    expect(fleet.tree('/MrRedis/Config/Rebalance').size, 'a dry run writes nothing').to.equal(0);
    const done = await rebalance();
    expect(done.plan.limit).to.equal(3);
    expect(Math.max(...Object.values(await mastersPerAgent()))).to.be.at.most(3);
  });

  /** Switches every master over to its replica on agent1. */
  async function allOnAgent1(): Promise<void> {
    for (const name of NAMES) {
      const inst = await view(name);
      if (inst.master.agent === 'agent1') continue;
      const onAgent1 = inst.slaves.find((p: View) => p.agent === 'agent1');
      const res = await fleet.api('POST', `/api/instances/${name}/failover`, { to: onAgent1.id });
      expect(res.status, res.text).to.equal(202);
      await fleet.waitFor(async () => {
        const i = await view(name);
        return i.operation?.state === 'done' && i.master?.agent === 'agent1' && i.slaves.length === 2;
      }, 20_000, `${name}'s master on agent1`);
    }
  }

  it('masters switched over onto one agent on purpose: the rebalance spreads them again', async () => {
    await allOnAgent1();
    expect((await mastersPerAgent()).agent1).to.equal(9);
    const cli = await fleet.cli(['rebalance', '--dry-run']);
    expect(cli.code, cli.stderr).to.equal(0);
    expect(cli.stdout).to.match(/move bal[0-9]: agent1 -> agent[23]/);
    const done = await rebalance();
    expect(done.plan.moves.length).to.equal(6);
    expect(done.skipped).to.deep.equal([]);
    const counts = await mastersPerAgent();
    expect(Math.max(...Object.values(counts)), JSON.stringify(counts)).to.be.at.most(3);
    // One master per instance, as the servers themselves say.
    for (const name of NAMES) {
      const inst = await view(name);
      const roles = await Promise.all(inst.procs.map((p: View) => roleOf(p, passwords.get(name) as string)));
      expect(roles.sort(), name).to.deep.equal(['master', 'slave', 'slave']);
    }
  });

  it('a rebalance cut short by a scheduler SIGKILL is resumed by the next one and ends balanced', async () => {
    await allOnAgent1();
    const done = await rebalance(true);
    expect(done.plan.moves.length).to.equal(6);
    const counts = await mastersPerAgent();
    expect(Math.max(...Object.values(counts)), JSON.stringify(counts)).to.be.at.most(3);
    expect(fleet.log('scheduler')).to.match(/resuming a rebalance/);
  });
});
