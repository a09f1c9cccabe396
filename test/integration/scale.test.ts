import { expect } from 'chai';
import { LocalFleet } from '../harness/local-fleet.js';
import { AckedWriter } from '../harness/acked-writer.js';
import { InstanceProbe } from '../harness/instance-probe.js';

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

/**
 * Scale replicas (issue 9 part 2) on a real fleet of four agents: 2 -> 3 -> 1 -> 0 -> 1, each
 * with an AckedWriter running through the Sentinel endpoint (WAIT 1 100 while the instance has a
 * replica, the SET reply alone while it is standalone), checking Type, ExpSlaves,
 * min-replicas-to-write on every proc, which replicas go, and that the master never restarts.
 */
describe('scale: PATCH replicas and redfleet scale', function () {
  this.timeout(300_000);
  const name = 'sc1';
  let fleet: LocalFleet;
  let probe: InstanceProbe;
  let password = '';
  let masterPid = 0;
  let masterId = '';
  let writer: AckedWriter | undefined;

  before(async () => {
    fleet = await LocalFleet.start({ agents: 4 });
    const created = await fleet.api('POST', '/api/instances', { name, capacityMb: 32, replicas: 2 });
    expect(created.status).to.equal(202, created.text);
    password = created.json.password;
    probe = new InstanceProbe(fleet, name);
    const inst = await settled(2);
    masterId = inst.master.id;
    masterPid = inst.procs.find((p: Json) => p.id === masterId).pid;
  });

  after(async () => {
    await writer?.stop();
    await fleet?.stop();
  });

  /** RUNNING with exactly `replicas` running replicas and nothing else live, no operation running. */
  async function settled(replicas: number): Promise<Json> {
    return fleet.waitFor(async () => {
      const i = await probe.view();
      const live = await probe.liveProcs();
      return i.status === 'RUNNING' && i.master && i.slaves.length === replicas && live.length === replicas + 1 && i.procs.length === replicas + 1 && i.operation?.state !== 'running' ? i : undefined;
    }, 60_000, `${name} to settle with ${replicas} replica(s)`);
  }

  /** Runs `change` with a writer going, then checks that no acknowledged write was lost. */
  async function withWriter(prefix: string, needReplica: boolean, change: () => Promise<void>, replicasAfter: number): Promise<void> {
    writer = new AckedWriter(fleet.sentinelPort, name, password, needReplica);
    writer.start(prefix);
    try {
      await writer.waitForAcks(50);
      await change();
      const inst = await settled(replicasAfter);
      await writer.waitForAcks(20);
      await writer.stop();
      expect(writer.acked.size).to.be.greaterThan(50);
      expect(await writer.missingOn(inst.master, password)).to.deep.equal([], `lost acknowledged writes; errors: ${writer.errors.slice(-5).join(' | ')}`);
    } finally {
      await writer.stop();
      writer = undefined;
    }
  }

  async function patch(replicas: number): Promise<Json> {
    const res = await fleet.api('PATCH', `/api/instances/${name}`, { replicas });
    expect(res.status).to.equal(202, res.text);
    expect(res.json.operation).to.include({ kind: 'scale', state: 'running' });
    const end = await fleet.waitFor(async () => {
      const i = await probe.view();
      return i.operation?.id === res.json.operation.id && i.operation.state !== 'running' ? i : undefined;
    }, 150_000, `the scale to ${replicas} to end`);
    expect(end.operation.state).to.equal('done', JSON.stringify(end.operation));
    return end;
  }

  /** Type, ExpSlaves, min-replicas-to-write on every live proc, replicas linked, the master untouched. */
  async function expectShape(replicas: number): Promise<void> {
    const inst = await settled(replicas);
    expect(probe.key('Type')).to.equal(replicas === 0 ? 'S' : 'MS');
    expect(probe.key('ExpSlaves')).to.equal(String(replicas));
    expect(probe.key('Slaves')).to.equal(String(replicas));
    expect(inst.master.id).to.equal(masterId, 'the master never moves');
    expect(inst.procs.find((p: Json) => p.id === masterId).pid).to.equal(masterPid, 'the master never restarts');
    for (const p of await probe.liveProcs()) {
      expect(await probe.config(p, 'min-replicas-to-write'), `min-replicas-to-write of ${p.id}`).to.equal(replicas === 0 ? '0' : '1');
      if (p.id !== masterId) expect(await probe.info(p, 'master_link_status'), `link of ${p.id}`).to.equal('up');
    }
    expect(await probe.info(inst.master, 'connected_slaves')).to.equal(String(replicas));
  }

  it('2 -> 3 with redfleet scale --wait: a new replica, linked and counted, the others untouched', async () => {
    const before = new Map((await probe.liveProcs()).map((p: Json) => [p.id, p.pid]));
    await withWriter('up3:', true, async () => {
      const out = await fleet.cli(['scale', name, '--replicas', '3', '--wait']);
      expect(out.code).to.equal(0, out.stderr + out.stdout);
      expect(out.stdout).to.match(/^scale: (?!done).* \(\d+ s\)$/m, 'a progress line for a step');
      expect(out.stdout).to.match(/scale: done/);
    }, 3);
    await expectShape(3);
    const after = new Map((await probe.liveProcs()).map((p: Json) => [p.id, p.pid]));
    for (const [id, pid] of before) expect(after.get(id), id).to.equal(pid);
  });

  it('3 -> 1 removes the least caught-up replicas (a stalled one first), never the master', async () => {
    const inst = await settled(3);
    const stalled = inst.procs.find((p: Json) => p.id !== masterId);
    const kept = new Map((await probe.liveProcs()).map((p: Json) => [p.id, p.pid]));
    // A SIGSTOPped replica reads nothing from its master: it falls behind and does not answer.
    process.kill(stalled.pid, 'SIGSTOP');
    try {
      await withWriter('down1:', true, async () => {
        const end = await patch(1);
        expect(end.operation.data.removing).to.have.length(2);
        expect(end.operation.data.removing[0]).to.equal(stalled.id, 'the stalled replica goes first');
        expect(end.operation.data.removing).to.not.include(masterId);
      }, 1);
    } finally {
      try { process.kill(stalled.pid, 'SIGCONT'); } catch { /* gone */ }
    }
    await expectShape(1);
    const after = await probe.liveProcs();
    expect(after.map((p: Json) => p.id)).to.not.include(stalled.id);
    for (const p of after) expect(p.pid).to.equal(kept.get(p.id), `${p.id} kept its pid`);
  });

  it('1 -> 0 makes the instance standalone (Type S, min-replicas-to-write 0), still taking writes', async () => {
    await withWriter('down0:', false, async () => {
      await patch(0);
    }, 0);
    await expectShape(0);
  });

  it('0 -> 1 makes it master/replica again, fencing back on once the replica is linked', async () => {
    await withWriter('up1:', false, async () => {
      await patch(1);
    }, 1);
    await expectShape(1);
    // With a replica again, WAIT 1 acknowledges once more.
    await withWriter('again:', true, async () => undefined, 1);
  });

  it('answers bad input with 400 naming replicas (409 for more than the agents can hold), writing nothing', async () => {
    await settled(1);
    const before = probe.stableTree();
    const bad: [unknown, number, string][] = [
      [{ replicas: -1 }, 400, 'replicas'],
      [{ replicas: 17 }, 400, 'replicas'],
      [{ replicas: '2' }, 400, 'replicas'],
      ['{"replicas":2.5}', 400, 'replicas'],
      [{ replicas: 4 }, 409, 'replicas'],
      [{ replicas: 2, capacityMb: 64 }, 400, 'replicas'],
    ];
    for (const [body, status, field] of bad) {
      const res = await fleet.api('PATCH', `/api/instances/${name}`, body);
      expect(res.status, JSON.stringify(body)).to.equal(status);
      expect(res.json.error.field, JSON.stringify(body)).to.equal(field);
    }
    const cli = await fleet.cli(['scale', name, '--replicas', 'x']);
    expect(cli.code).to.equal(2);
    expect(probe.stableTree()).to.deep.equal(before, 'nothing written');
  });

  it('a second change while one runs is 409 OPERATION_IN_PROGRESS; a ttlSeconds rides along with a scale', async () => {
    const first = await fleet.api('PATCH', `/api/instances/${name}`, { replicas: 2, ttlSeconds: 7200 });
    expect(first.status).to.equal(202, first.text);
    expect(first.json.ttlRemainingSeconds).to.be.within(7000, 7200);
    const second = await fleet.api('PATCH', `/api/instances/${name}`, { capacityMb: 40 });
    expect(second.status).to.equal(409, second.text);
    expect(second.json.error.code).to.equal('OPERATION_IN_PROGRESS');
    await settled(2);
    await expectShape(2);
  });

  it('a scheduler killed mid-scale: the next leader finishes it, placing no replica twice', async () => {
    await settled(2);
    const res = await fleet.api('PATCH', `/api/instances/${name}`, { replicas: 3 });
    expect(res.status).to.equal(202, res.text);
    await fleet.waitFor(async () => /placing/.test((await probe.view()).operation?.step ?? ''), 30_000, 'the scale to place');
    await fleet.killScheduler('SIGKILL');
    await fleet.startScheduler();
    const end = await fleet.waitFor(async () => {
      const i = await probe.view();
      return i.operation?.id === res.json.operation.id && i.operation.state !== 'running' ? i : undefined;
    }, 120_000, 'the resumed scale to end');
    expect(end.operation.state).to.equal('done', JSON.stringify(end.operation));
    await expectShape(3);
    expect(probe.key('Surge') ?? '').to.equal('');
  });
});
