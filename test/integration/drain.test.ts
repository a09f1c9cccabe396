import { expect } from 'chai';
import { LocalFleet } from '../harness/local-fleet.js';
import { AckedWriter } from '../harness/acked-writer.js';

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

const LIVE = ['STAGING', 'STARTING', 'RUNNING'];

function liveOn(inst: Json, agent: string): Json[] {
  return inst.procs.filter((p: Json) => p.agent === agent && LIVE.includes(p.state));
}

async function agentView(fleet: LocalFleet, id: string): Promise<Json> {
  return (await fleet.api('GET', '/api/agents')).json.find((a: Json) => a.id === id);
}

/**
 * Agent maintenance (issue 9, part 4) on a real fleet: `redfleet drain agent1 --wait` moves every
 * proc off agent1 (replicas replaced elsewhere, masters switched over first) while writers that
 * wait for `WAIT 1` run against every instance; nothing acknowledged is lost, nothing off agent1
 * restarts, and agent1 gets no new proc until it is undrained.
 */
describe('drain: moving everything off an agent', function () {
  this.timeout(400_000);
  let fleet: LocalFleet;
  const names = ['dr1', 'dr2', 'dr3'];
  const passwords = new Map<string, string>();

  before(async () => {
    fleet = await LocalFleet.start({ agents: 4 });
    for (const name of names) {
      const created = await fleet.api('POST', '/api/instances', { name, capacityMb: 32, replicas: 2 });
      expect(created.status).to.equal(202, created.text);
      passwords.set(name, created.json.password);
    }
    for (const name of names) await settled(name);
  });

  after(async () => {
    await fleet?.stop();
  });

  async function view(name: string): Promise<Json> {
    return (await fleet.api('GET', `/api/instances/${name}`)).json;
  }

  /** RUNNING with its master and two counted replicas, and no other live proc. */
  async function settled(name: string, timeoutMs = 60_000): Promise<Json> {
    return fleet.waitFor(async () => {
      const i = await view(name);
      const live = i.procs.filter((p: Json) => LIVE.includes(p.state));
      const linked = i.slaves.filter((s: Json) => s.stats?.masterLinkStatus === 'up');
      return i.status === 'RUNNING' && live.length === 3 && i.slaves.length === 2 && linked.length === 2 && !i.operation?.state?.startsWith('running') ? i : undefined;
    }, timeoutMs, `${name} to settle with 1+2 procs`);
  }

  /** Makes sure agent1 holds at least one master and one replica, switching a master onto it if need be. */
  async function mastersAndReplicasOnAgent1(): Promise<void> {
    const views = await Promise.all(names.map(view));
    if (views.some((i) => i.master.agent === 'agent1') && views.some((i) => i.slaves.some((s: Json) => s.agent === 'agent1'))) return;
    const target = views.find((i) => i.slaves.some((s: Json) => s.agent === 'agent1'))!;
    const to = target.slaves.find((s: Json) => s.agent === 'agent1').id;
    const res = await fleet.api('POST', `/api/instances/${target.name}/failover`, { to });
    expect(res.status).to.equal(202, res.text);
    await fleet.waitFor(async () => (await view(target.name)).master?.agent === 'agent1', 30_000, 'a master on agent1');
    for (const name of names) await settled(name);
  }

  it('refuses bad input: 400 naming id for a bad agent id, 404 for an unknown agent, nothing written', async () => {
    const bad = await fleet.api('POST', '/api/agents/-nope!/drain');
    expect(bad.status).to.equal(400, bad.text);
    expect(bad.json.error.field).to.equal('id');
    const unknown = await fleet.api('POST', '/api/agents/agent99/drain');
    expect(unknown.status).to.equal(404, unknown.text);
    const undrainUnknown = await fleet.api('POST', '/api/agents/agent99/undrain');
    expect(undrainUnknown.status).to.equal(404, undrainUnknown.text);
    expect([...fleet.tree('/MrRedis/Drains/').keys()]).to.deep.equal([]);
  });

  it('drains agent1 with --wait: nothing left on it, zero loss, counts kept, nothing else restarted', async () => {
    await mastersAndReplicasOnAgent1();
    const before = await Promise.all(names.map(view));
    const mastersHere = before.filter((i) => i.master.agent === 'agent1').length;
    const replicasHere = before.reduce((n, i) => n + i.slaves.filter((s: Json) => s.agent === 'agent1').length, 0);
    expect(mastersHere, 'masters on agent1').to.be.greaterThan(0);
    expect(replicasHere, 'replicas on agent1').to.be.greaterThan(0);
    // Procs elsewhere must keep running as they are (the same pid), masters included.
    const elsewhere = new Map<string, number>();
    for (const i of before) for (const p of i.procs) if (p.agent !== 'agent1' && LIVE.includes(p.state)) elsewhere.set(p.id, p.pid);
    const writers = names.map((name) => new AckedWriter(fleet.sentinelPort, name, passwords.get(name)!));
    writers.forEach((w, i) => w.start(`drain-${names[i]}:`));
    try {
      for (const w of writers) await w.waitForAcks(50);
      const out = await fleet.cli(['drain', 'agent1', '--wait', '--timeout', '300']);
      expect(out.code).to.equal(0, `${out.stdout}\n${out.stderr}`);
      expect(out.stdout).to.match(/proc\(s\) left; (moving|waiting|looking)/, 'a progress line says what is left');
      expect(out.stdout).to.match(/drained: the agent runs nothing/);
      for (const w of writers) await w.waitForAcks(50);
      const after = await Promise.all(names.map((name) => settled(name)));
      for (const w of writers) await w.stop();
      for (const [i, inst] of after.entries()) {
        expect(liveOn(inst, 'agent1'), `${inst.name} procs on agent1`).to.deep.equal([]);
        expect(inst.replicas).to.equal(2);
        expect(inst.master.agent).to.not.equal('agent1');
        expect(writers[i].acked.size, `${inst.name} acked writes`).to.be.greaterThan(50);
        expect(await writers[i].missingOn(inst.master, passwords.get(inst.name)!), `${inst.name} lost writes; errors: ${writers[i].errors.slice(-3).join(' | ')}`).to.deep.equal([]);
        for (const p of inst.procs) if (elsewhere.has(p.id)) expect(p.pid, `pid of ${p.id}`).to.equal(elsewhere.get(p.id));
        expect(inst.operation?.kind).to.equal('drain');
        expect(inst.operation?.state).to.equal('done');
      }
      const agent1 = await agentView(fleet, 'agent1');
      expect(agent1).to.include({ draining: true, left: 0 });
      expect(agent1.drain.state).to.equal('drained');
      expect(agent1.tasks).to.deep.equal([]);
      expect(JSON.parse(fleet.tree('/MrRedis/Drains/').get('/MrRedis/Drains/agent1')!).state).to.equal('drained');
    } finally {
      for (const w of writers) await w.stop();
    }
  });

  it('puts no new proc on the drained agent, and gives it procs again once undrained', async () => {
    const created = await fleet.api('POST', '/api/instances', { name: 'dr4', capacityMb: 32, replicas: 2 });
    expect(created.status).to.equal(202, created.text);
    const inst = await settled('dr4');
    expect(liveOn(inst, 'agent1')).to.deep.equal([]);
    const out = await fleet.cli(['undrain', 'agent1']);
    expect(out.code).to.equal(0, out.stderr);
    const agent1 = await agentView(fleet, 'agent1');
    expect(agent1).to.include({ draining: false });
    expect(agent1.drain).to.equal(null);
    expect([...fleet.tree('/MrRedis/Drains/').keys()]).to.deep.equal([]);
    // agent1 is now the emptiest agent: a spread placement puts a proc of a new instance there.
    const again = await fleet.api('POST', '/api/instances', { name: 'dr5', capacityMb: 32, replicas: 2 });
    expect(again.status).to.equal(202, again.text);
    const placed = await settled('dr5');
    expect(liveOn(placed, 'agent1')).to.have.length(1);
  });

  it('an undrain stops a drain under way: what moved stays moved, the rest stays put', async () => {
    const all = ['dr1', 'dr2', 'dr3', 'dr4', 'dr5'];
    const before = (await Promise.all(all.map(view))).reduce((n, i) => n + liveOn(i, 'agent2').length, 0);
    expect(before).to.be.greaterThan(1);
    const started = await fleet.api('POST', '/api/agents/agent2/drain');
    expect(started.status).to.equal(202, started.text);
    const stopped = await fleet.api('POST', '/api/agents/agent2/undrain');
    expect(stopped.status).to.equal(200, stopped.text);
    expect(stopped.json).to.include({ draining: false });
    // The move under way (one instance at most) ends; nothing else moves.
    await fleet.waitFor(async () => {
      const views = await Promise.all(all.map(view));
      return views.every((i) => i.operation?.state !== 'running') ? views : undefined;
    }, 60_000, 'the move under way to end');
    const views = await Promise.all(all.map((n) => settled(n)));
    const left = views.reduce((n, i) => n + liveOn(i, 'agent2').length, 0);
    expect(left, 'procs still on agent2').to.be.greaterThan(0);
    const moved = views.filter((i) => i.operation?.kind === 'drain' && i.operation.params.agent === 'agent2');
    expect(moved.length, 'instances moved off agent2 after the undrain').to.be.at.most(1);
  });
});

/**
 * A drain with nowhere to move a proc (3 agents, a 1+2 instance at distribution 1: every other
 * agent already holds one of its procs) waits and says why, changes nothing meanwhile, and goes
 * on by itself once a fourth agent joins.
 */
describe('drain: waiting for room', function () {
  this.timeout(300_000);
  let fleet: LocalFleet;

  before(async () => {
    fleet = await LocalFleet.start({ agents: 3 });
  });

  after(async () => {
    await fleet?.stop();
  });

  it('waits with its reason while no agent can take the proc, then finishes when one joins', async () => {
    const created = await fleet.api('POST', '/api/instances', { name: 'stuck', capacityMb: 32, replicas: 2, distribution: 1 });
    expect(created.status).to.equal(202, created.text);
    const password = created.json.password;
    const before = await fleet.waitForStatus('stuck', 'RUNNING', 60_000);
    const pids = new Map(before.procs.map((p: Json) => [p.id, p.pid]));
    const res = await fleet.api('POST', '/api/agents/agent1/drain');
    expect(res.status).to.equal(202, res.text);
    expect(res.json.draining).to.equal(true);
    const waiting = await fleet.waitFor(async () => {
      const a = await agentView(fleet, 'agent1');
      return a.drain?.waitingReason ? a : undefined;
    }, 20_000, 'the drain to say why it waits');
    expect(waiting.drain.state).to.equal('draining');
    expect(waiting.left).to.equal(1);
    expect(waiting.drain.waitingReason).to.match(/stuck: nowhere to move a 32 MB proc off agent1/);
    expect(waiting.drain.waitingReason).to.match(/already holding distribution 1/);
    // A scheduler restart keeps the drain (its record is in etcd) and the next leader goes on waiting.
    await fleet.killScheduler('SIGKILL');
    await fleet.startScheduler();
    await fleet.waitFor(async () => (await fleet.api('GET', '/healthz')).json.agents === 3, 30_000, 'agents to resubscribe');
    const resumed = await fleet.waitFor(async () => {
      const a = await agentView(fleet, 'agent1');
      return a?.drain?.waitingReason ? a : undefined;
    }, 20_000, 'the restarted scheduler to pick the drain up');
    expect(resumed.draining).to.equal(true);
    const still = (await fleet.api('GET', '/api/instances/stuck')).json;
    expect(still.status).to.equal('RUNNING');
    for (const p of still.procs) expect(p.pid, `pid of ${p.id}`).to.equal(pids.get(p.id));

    const writer = new AckedWriter(fleet.sentinelPort, 'stuck', password);
    writer.start('stuck:');
    try {
      await writer.waitForAcks(50);
      await fleet.startAgent('agent4');
      const done = await fleet.waitFor(async () => {
        const a = await agentView(fleet, 'agent1');
        return a.drain?.state === 'drained' ? a : undefined;
      }, 180_000, 'the drain to finish once agent4 joined');
      expect(done.left).to.equal(0);
      await writer.waitForAcks(50);
      const after = await fleet.waitFor(async () => {
        const i = (await fleet.api('GET', '/api/instances/stuck')).json;
        return i.status === 'RUNNING' && i.master && i.slaves.length === 2 && liveOn(i, 'agent1').length === 0 ? i : undefined;
      }, 60_000, 'stuck to run off agent1');
      expect(liveOn(after, 'agent4')).to.have.length(1);
      await writer.stop();
      expect(await writer.missingOn(after.master, password), writer.errors.slice(-3).join(' | ')).to.deep.equal([]);
    } finally {
      await writer.stop();
    }
  });
});
