import { expect } from 'chai';
import { Redis } from 'ioredis';
import { LocalFleet } from '../harness/local-fleet.js';
import { AckedWriter } from '../harness/acked-writer.js';
import { InstanceProbe } from '../harness/instance-probe.js';

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

const MB = 1024 * 1024;
/** The agents' memory cgroup ceiling for a capacity (executor/cgroup.ts: 2 x capacity + 48 MB). */
const ceiling = (capacityMb: number) => (2 * capacityMb + 48) * MB;

/**
 * Resize (issue 9 part 1) on a real fleet: agent1 and agent2 are large, agent3 has room for one
 * 32 MB proc and a little more, so it holds one replica of the 1+2 instance; agent4 joins for the
 * grow that agent3 cannot hold. An AckedWriter (SET + WAIT 1 100 through the Sentinel endpoint)
 * runs through every change, and no acknowledged write may be lost.
 */
describe('resize: PATCH capacityMb and redfleet resize', function () {
  this.timeout(240_000);
  const name = 'rs1';
  let fleet: LocalFleet;
  let probe: InstanceProbe;
  let password = '';
  let writer: AckedWriter | undefined;

  before(async () => {
    fleet = await LocalFleet.start({ agents: 2 });
    await fleet.startAgent('agent3', { mem: 48 });
    await fleet.waitFor(async () => (await fleet.api('GET', '/healthz')).json.agents === 3, 30_000, 'agent3 to subscribe');
    const created = await fleet.api('POST', '/api/instances', { name, capacityMb: 32, replicas: 2 });
    expect(created.status).to.equal(202, created.text);
    password = created.json.password;
    probe = new InstanceProbe(fleet, name);
    await whole();
  });

  after(async () => {
    await writer?.stop();
    await fleet?.stop();
  });

  /** RUNNING with the master and two running replicas, nothing else live, and no operation running. */
  async function whole(): Promise<Json> {
    return fleet.waitFor(async () => {
      const i = await probe.view();
      const live = await probe.liveProcs();
      return i.status === 'RUNNING' && i.slaves.length === 2 && live.length === 3 && i.procs.length === 3 && i.operation?.state !== 'running' ? i : undefined;
    }, 60_000, `${name} to be whole`);
  }

  async function withWriter<T>(prefix: string, body: () => Promise<T>): Promise<T> {
    writer = new AckedWriter(fleet.sentinelPort, name, password);
    writer.start(prefix);
    try {
      await writer.waitForAcks(50);
      const result = await body();
      await writer.waitForAcks(50);
      await writer.stop();
      const inst = await whole();
      expect(await writer.missingOn(inst.master, password)).to.deep.equal([], `lost acknowledged writes; errors: ${writer.errors.slice(-5).join(' | ')}`);
      return result;
    } finally {
      await writer.stop();
      writer = undefined;
    }
  }

  async function operationEnd(opId: string): Promise<Json> {
    return fleet.waitFor(async () => {
      const i = await probe.view();
      if (i.operation?.id !== opId) throw new Error(`operation ${opId} replaced by ${JSON.stringify(i.operation)}`);
      return i.operation.state !== 'running' ? i : undefined;
    }, 120_000, `operation ${opId} to end`);
  }

  /** maxmemory, the proc's Capacity key and the cgroup ceiling (where there is one) on every live proc. */
  async function expectCapacity(capacityMb: number): Promise<void> {
    expect(probe.key('Capacity')).to.equal(String(capacityMb));
    let cgroups = 0;
    for (const p of await probe.liveProcs()) {
      expect(await probe.config(p, 'maxmemory'), `maxmemory of ${p.id}`).to.equal(String(capacityMb * MB));
      expect(probe.key(`Procs/${p.id}/Capacity`), `Capacity of ${p.id}`).to.equal(String(capacityMb));
      const limit = InstanceProbe.cgroupLimit(p.pid);
      if (limit === undefined) continue;
      expect(limit, `memory cgroup ceiling of ${p.id}`).to.equal(ceiling(capacityMb));
      cgroups++;
    }
    if (cgroups === 0) console.log('      (no memory cgroups on this node: ceilings not checked)');
  }

  async function pids(): Promise<Map<string, number>> {
    return new Map((await probe.liveProcs()).map((p: Json) => [p.id, p.pid]));
  }

  async function freeMem(): Promise<Map<string, number>> {
    const agents = (await fleet.api('GET', '/api/agents')).json as Json[];
    return new Map(agents.map((a) => [a.id, a.free.mem]));
  }

  it('grows in place with redfleet resize --wait: pids unchanged, maxmemory and Capacity on every proc, the agents hold the extra memory', async () => {
    const before = await pids();
    const freeBefore = await freeMem();
    const out = await withWriter('grow:', () => fleet.cli(['resize', name, '--capacity', '40', '--wait']));
    expect(out.code).to.equal(0, out.stderr + out.stdout);
    expect(out.stdout).to.match(/resize: .* \(\d+ s\)/, 'a progress line');
    expect(out.stdout).to.match(/resize: done/);
    expect(await pids()).to.deep.equal(before, 'no proc restarted or moved');
    await expectCapacity(40);
    const freeAfter = await freeMem();
    for (const agent of ['agent1', 'agent2', 'agent3']) expect(freeAfter.get(agent), agent).to.equal(freeBefore.get(agent)! - 8);
    expect((await probe.view()).operation).to.include({ kind: 'resize', state: 'done' });
  });

  it('refuses to shrink below used_memory (409 with the numbers) and shrinks above it in place', async () => {
    const inst = await whole();
    const master = new Redis({ host: inst.master.ip, port: inst.master.port, password });
    try {
      for (let i = 0; i < 6; i++) await master.set(`big:${i}`, 'x'.repeat(MB));
      await master.wait(2, 2000);
    } finally {
      master.disconnect();
    }
    const used = Number(await probe.info(inst.master, 'used_memory'));
    expect(used).to.be.greaterThan(6 * MB);
    // The check reads the procs' stats, which follow within a few seconds.
    await fleet.waitFor(async () => (await probe.liveProcs()).every((p: Json) => (p.stats?.usedMemory ?? 0) > 6 * MB), 30_000, 'the stats to show the data');
    const treeBefore = probe.stableTree();
    const refused = await fleet.api('PATCH', `/api/instances/${name}`, { capacityMb: 4 });
    expect(refused.status).to.equal(409, refused.text);
    expect(refused.json.error.field).to.equal('capacityMb');
    expect(refused.json.error.message).to.match(/used_memory \d+ bytes \(\d+\.\d MB\) > 4 MB/);
    expect(probe.stableTree()).to.deep.equal(treeBefore, 'a refused resize writes nothing');
    const before = await pids();
    const freeBefore = await freeMem();
    await withWriter('shrink:', async () => {
      const res = await fleet.api('PATCH', `/api/instances/${name}`, { capacityMb: 36 });
      expect(res.status).to.equal(202, res.text);
      const end = await operationEnd(res.json.operation.id);
      expect(end.operation.state).to.equal('done', JSON.stringify(end.operation));
    });
    expect(await pids()).to.deep.equal(before);
    await expectCapacity(36);
    const freeAfter = await freeMem();
    for (const agent of ['agent1', 'agent2', 'agent3']) expect(freeAfter.get(agent), agent).to.equal(freeBefore.get(agent)! + 4);
  });

  it('moves the proc whose agent lacks room when growing: a new replica elsewhere, the others untouched', async () => {
    await fleet.startAgent('agent4');
    await fleet.waitFor(async () => (await fleet.api('GET', '/healthz')).json.agents === 4, 30_000, 'agent4 to subscribe');
    const inst = await whole();
    const cramped = inst.procs.find((p: Json) => p.agent === 'agent3');
    expect(cramped.role).to.equal('replica', 'agent3 holds a replica (the master goes where most memory is free)');
    const before = await pids();
    await withWriter('move:', async () => {
      const res = await fleet.api('PATCH', `/api/instances/${name}`, { capacityMb: 64 });
      expect(res.status).to.equal(202, res.text);
      const end = await operationEnd(res.json.operation.id);
      expect(end.operation.state).to.equal('done', JSON.stringify(end.operation));
    });
    const after = await pids();
    expect(after.has(cramped.id)).to.equal(false, 'the cramped replica is gone');
    for (const [id, pid] of before) if (id !== cramped.id) expect(after.get(id), id).to.equal(pid, 'the other procs kept their pid');
    const moved = (await probe.liveProcs()).find((p: Json) => !before.has(p.id));
    expect(moved.agent).to.equal('agent4');
    expect(moved.role).to.equal('replica');
    await expectCapacity(64);
    const view = await whole();
    expect(view.replicas).to.equal(2);
    expect(view.master.id).to.equal(inst.master.id);
  });

  it('moves a master whose agent lacks room: a switchover to a replica elsewhere, then the old master replaced', async () => {
    // binpack puts the master on the fullest agent that fits: agent3, where 48 MB leave no room for 64.
    const other = 'rs2';
    const created = await fleet.api('POST', '/api/instances', { name: other, capacityMb: 32, replicas: 2, placement: 'binpack' });
    expect(created.status).to.equal(202, created.text);
    const otherProbe = new InstanceProbe(fleet, other);
    const inst = await fleet.waitFor(async () => {
      const i = await otherProbe.view();
      return i.status === 'RUNNING' && i.slaves.length === 2 ? i : undefined;
    }, 60_000, `${other} to run`);
    const oldMaster = inst.procs.find((p: Json) => p.id === inst.master.id);
    expect(oldMaster.agent).to.equal('agent3');
    const before = new Map((await otherProbe.liveProcs()).map((p: Json) => [p.id, p.pid]));
    const otherWriter = new AckedWriter(fleet.sentinelPort, other, created.json.password);
    otherWriter.start('master-move:');
    try {
      await otherWriter.waitForAcks(50);
      const res = await fleet.api('PATCH', `/api/instances/${other}`, { capacityMb: 64 });
      expect(res.status).to.equal(202, res.text);
      const end = await fleet.waitFor(async () => {
        const i = await otherProbe.view();
        return i.operation?.id === res.json.operation.id && i.operation.state !== 'running' ? i : undefined;
      }, 120_000, 'the resize to end');
      expect(end.operation.state).to.equal('done', JSON.stringify(end.operation));
      await otherWriter.waitForAcks(50);
      await otherWriter.stop();
      const after = await fleet.waitFor(async () => {
        const i = await otherProbe.view();
        const live = await otherProbe.liveProcs();
        return i.status === 'RUNNING' && i.master && i.slaves.length === 2 && live.length === 3 && i.procs.length === 3 ? i : undefined;
      }, 30_000, `${other} to settle`);
      expect(after.master.id).to.not.equal(oldMaster.id, 'switched over');
      expect(before.has(after.master.id)).to.equal(true, 'to one of its replicas');
      expect(after.procs.map((p: Json) => p.id)).to.not.include(oldMaster.id, 'the old master is gone');
      const moved = after.procs.find((p: Json) => !before.has(p.id));
      expect(moved.agent).to.equal('agent4');
      for (const p of after.procs) if (before.has(p.id)) expect(p.pid, p.id).to.equal(before.get(p.id), 'the kept procs kept their pid');
      for (const p of await otherProbe.liveProcs()) expect(await otherProbe.config(p, 'maxmemory')).to.equal(String(64 * MB));
      expect(await otherWriter.missingOn(after.master, created.json.password)).to.deep.equal([], `errors: ${otherWriter.errors.slice(-5).join(' | ')}`);
    } finally {
      await otherWriter.stop();
    }
    expect((await fleet.api('DELETE', `/api/instances/${other}`)).status).to.equal(202);
  });

  it('a scheduler killed mid-resize: the next leader resumes the operation from its checkpoint to the same end', async () => {
    const other = 'rs3';
    const created = await fleet.api('POST', '/api/instances', { name: other, capacityMb: 16, replicas: 2, placement: 'binpack' });
    expect(created.status).to.equal(202, created.text);
    const otherProbe = new InstanceProbe(fleet, other);
    const inst = await fleet.waitFor(async () => {
      const i = await otherProbe.view();
      return i.status === 'RUNNING' && i.slaves.length === 2 ? i : undefined;
    }, 60_000, `${other} to run`);
    expect(inst.procs.find((p: Json) => p.id === inst.master.id).agent).to.equal('agent3');
    const otherWriter = new AckedWriter(fleet.sentinelPort, other, created.json.password);
    otherWriter.start('resume:');
    try {
      await otherWriter.waitForAcks(50);
      const res = await fleet.api('PATCH', `/api/instances/${other}`, { capacityMb: 56 });
      expect(res.status).to.equal(202, res.text);
      await fleet.waitFor(async () => /moving|switching/.test((await otherProbe.view()).operation?.step ?? ''), 30_000, 'the resize to move a proc');
      await fleet.killScheduler('SIGKILL');
      await fleet.startScheduler();
      const end = await fleet.waitFor(async () => {
        const i = await otherProbe.view();
        return i.operation?.id === res.json.operation.id && i.operation.state !== 'running' ? i : undefined;
      }, 120_000, 'the resumed resize to end');
      expect(end.operation.state).to.equal('done', JSON.stringify(end.operation));
      await otherWriter.waitForAcks(50, 30_000);
      await otherWriter.stop();
      const after = await fleet.waitFor(async () => {
        const i = await otherProbe.view();
        const live = await otherProbe.liveProcs();
        return i.status === 'RUNNING' && i.master && i.slaves.length === 2 && live.length === 3 && i.procs.length === 3 ? i : undefined;
      }, 30_000, `${other} to settle`);
      expect(after.procs.map((p: Json) => p.agent)).to.not.include('agent3');
      expect(otherProbe.key('Surge') ?? '').to.equal('', 'no surge request left behind');
      for (const p of await otherProbe.liveProcs()) expect(await otherProbe.config(p, 'maxmemory')).to.equal(String(56 * MB));
      expect(await otherWriter.missingOn(after.master, created.json.password)).to.deep.equal([], `errors: ${otherWriter.errors.slice(-5).join(' | ')}`);
    } finally {
      await otherWriter.stop();
    }
    expect((await fleet.api('DELETE', `/api/instances/${other}`)).status).to.equal(202);
  });

  it('a grow with nowhere to move a cramped proc fails at once, saying why, and gives the reserved memory back', async () => {
    const other = 'rs4';
    const created = await fleet.api('POST', '/api/instances', { name: other, capacityMb: 32, replicas: 2 });
    expect(created.status).to.equal(202, created.text);
    const otherProbe = new InstanceProbe(fleet, other);
    await fleet.waitFor(async () => (await otherProbe.view()).status === 'RUNNING', 60_000, `${other} to run`);
    const before = new Map((await otherProbe.liveProcs()).map((p: Json) => [p.id, p.pid]));
    const freeBefore = await freeMem();
    // 990 MB: more than any agent holding a proc has free, and agent3 (48 MB) is too small.
    const res = await fleet.api('PATCH', `/api/instances/${other}`, { capacityMb: 990 });
    expect(res.status).to.equal(202, res.text);
    const end = await fleet.waitFor(async () => {
      const i = await otherProbe.view();
      return i.operation?.id === res.json.operation.id && i.operation.state !== 'running' ? i : undefined;
    }, 30_000, 'the resize to fail');
    expect(end.operation.state).to.equal('failed');
    expect(end.operation.error).to.match(/no agent can take it: .* with 990 MB and a port free/);
    expect(end.capacityMb).to.equal(32);
    expect(new Map((await otherProbe.liveProcs()).map((p: Json) => [p.id, p.pid]))).to.deep.equal(before, 'nothing moved or restarted');
    for (const p of await otherProbe.liveProcs()) expect(await otherProbe.config(p, 'maxmemory')).to.equal(String(32 * MB));
    expect(await freeMem()).to.deep.equal(freeBefore, 'the reserved memory is free again');
    expect((await fleet.api('DELETE', `/api/instances/${other}`)).status).to.equal(202);
  });

  it('answers bad input with 400 naming capacityMb (or 409 for a size no agent has), writing nothing', async () => {
    await whole();
    const before = probe.stableTree();
    const bad: [unknown, number, string][] = [
      [{ capacityMb: 0 }, 400, 'capacityMb'],
      [{ capacityMb: -5 }, 400, 'capacityMb'],
      [{ capacityMb: '64' }, 400, 'capacityMb'],
      ['{"capacityMb":64.5}', 400, 'capacityMb'],
      [{ capacityMb: 2 * 1024 * 1024 }, 400, 'capacityMb'],
      [{ capacityMb: 4096 }, 409, 'capacityMb'],
      [{ capacityMb: 64, replicas: 3 }, 400, 'replicas'],
      [{ capacity: 64 }, 400, 'capacity'],
      [{}, 400, 'body'],
    ];
    for (const [body, status, field] of bad) {
      const res = await fleet.api('PATCH', `/api/instances/${name}`, body);
      expect(res.status, JSON.stringify(body)).to.equal(status);
      expect(res.json.error.field, JSON.stringify(body)).to.equal(field);
      expect(res.json.error.code).to.be.a('string');
    }
    expect((await fleet.api('PATCH', '/api/instances/nosuch', { capacityMb: 64 })).status).to.equal(404);
    const cli = await fleet.cli(['resize', name]);
    expect(cli.code).to.equal(2);
    expect(cli.stderr).to.match(/--capacity/);
    expect(probe.stableTree()).to.deep.equal(before, 'nothing written');
  });
});
