import { expect } from 'chai';
import { Redis } from 'ioredis';
import { setTimeout as sleep } from 'node:timers/promises';
import { AckedWriter } from '../harness/acked-writer.js';
import { InstanceProbe } from '../harness/instance-probe.js';
import { LocalFleet, pidAlive } from '../harness/local-fleet.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
type View = any;

/** ROLE as the redis-server at `proc` answers it to the tenant. */
async function roleOf(proc: { ip: string; port: number }, password: string): Promise<unknown[]> {
  const r = new Redis({ host: proc.ip, port: proc.port, password, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return (await r.role()) as unknown[];
  } finally {
    r.disconnect();
  }
}

/** INFO stats `sync_full` of the redis-server at `proc`: full resyncs it has served as a master. */
async function fullSyncs(proc: { ip: string; port: number }, password: string): Promise<number> {
  const r = new Redis({ host: proc.ip, port: proc.port, password, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return Number(/^sync_full:(\d+)/m.exec(await r.info('stats'))?.[1] ?? -1);
  } finally {
    r.disconnect();
  }
}

/** Every +switch-master message the Sentinel endpoint publishes while the test runs. */
async function switchMasters(fleet: LocalFleet): Promise<{ seen: string[]; close: () => void }> {
  const sub = new Redis({ port: fleet.sentinelPort });
  const seen: string[] = [];
  sub.on('message', (_channel: string, message: string) => seen.push(message));
  await sub.subscribe('+switch-master');
  return { seen, close: () => sub.disconnect() };
}

describe('planned switchover', function () {
  this.timeout(180_000);
  let fleet: LocalFleet;

  before(async () => {
    fleet = await LocalFleet.start({ agents: 3 });
  });

  after(async () => {
    await fleet?.stop();
  });

  async function create(name: string, replicas: number): Promise<{ password: string; inst: View }> {
    const res = await fleet.api('POST', '/api/instances', { name, capacityMb: 32, replicas });
    expect(res.status).to.equal(202);
    const inst = await fleet.waitForStatus(name, 'RUNNING');
    return { password: res.json.password, inst };
  }

  async function awaitOperation(name: string, id: string): Promise<View> {
    return fleet.waitFor(async () => {
      const i = (await fleet.api('GET', `/api/instances/${name}`)).json;
      return i.operation?.id === id && i.operation.state !== 'running' ? i : undefined;
    }, 30_000, `operation ${id} on ${name} to end`);
  }

  /** Runs a switchover with a writer on, checks zero loss and the end state; returns the new view. */
  async function switchOver(name: string, password: string, before: View, body?: unknown): Promise<View> {
    const events = await switchMasters(fleet);
    const writer = new AckedWriter(fleet.sentinelPort, name, password);
    const syncsBefore = new Map<string, number>();
    for (const p of before.procs) syncsBefore.set(p.id, await fullSyncs(p, password));
    writer.start(`${name}:`);
    try {
      await writer.waitForAcks(100);
      const res = await fleet.api('POST', `/api/instances/${name}/failover`, body);
      expect(res.status, res.text).to.equal(202);
      expect(res.json.operation.kind).to.equal('switchover');
      const ended = await awaitOperation(name, res.json.operation.id);
      expect(ended.operation.state, JSON.stringify(ended.operation)).to.equal('done');
      await writer.waitForAcks(100, 15_000);
      await writer.stop();
      const after = (await fleet.api('GET', `/api/instances/${name}`)).json;
      expect(after.master.id).to.not.equal(before.master.id);
      expect(after.epoch).to.equal(before.epoch + 1);
      expect(await writer.missingOn(after.master, password)).to.deep.equal([]);
      // The old master was kept: same pid, now a replica of the new master.
      expect(pidAlive(before.master.pid)).to.equal(true);
      const old = after.procs.find((p: View) => p.id === before.master.id);
      expect(old.pid).to.equal(before.master.pid);
      expect(old.state).to.equal('RUNNING');
      const role = await roleOf(before.master, password);
      expect(role[0]).to.equal('slave');
      expect(`${role[1]}:${role[2]}`).to.equal(`${after.master.ip}:${after.master.port}`);
      // The old master and the other replica followed the new master with a partial resync.
      await fleet.waitFor(async () => (await roleOf(after.master, password))[2] !== undefined && ((await roleOf(after.master, password))[2] as unknown[]).length === 2, 10_000, 'both replicas on the new master');
      expect(await fullSyncs(after.master, password), 'full resyncs served by the new master').to.equal(syncsBefore.get(after.master.id));
      // The old master's PINGs, held while it was paused, are on again (every proc pings each second).
      const probe = new InstanceProbe(fleet, name);
      for (const p of after.procs) expect(await probe.config(p, 'repl-ping-replica-period'), `${p.id} ping period`).to.equal('1');
      // Nothing restarted.
      for (const p of before.procs) expect(after.procs.find((q: View) => q.id === p.id)?.pid, p.id).to.equal(p.pid);
      await fleet.waitFor(() => events.seen.some((m) => m === `${name} ${before.master.ip} ${before.master.port} ${after.master.ip} ${after.master.port}`), 5000, '+switch-master');
      console.log(`      ${name}: ${writer.acked.size} writes acknowledged, longest client gap ${writer.maxGapMs} ms`);
      return after;
    } finally {
      await writer.stop();
      events.close();
    }
  }

  it('to a named replica, then to the best one: zero loss, the old master kept as a replica, epoch raised, +switch-master', async () => {
    const { password, inst } = await create('sw1', 2);
    const target = inst.slaves[1];
    const first = await switchOver('sw1', password, inst, { to: target.id });
    expect(first.master.id).to.equal(target.id);
    expect(fleet.tree('/MrRedis/Instances/sw1/Mname').get('/MrRedis/Instances/sw1/Mname')).to.equal(target.id);
    await fleet.waitFor(async () => (await fleet.api('GET', '/api/instances/sw1')).json.slaves.length === 2, 10_000, 'two replicas');
    const second = await switchOver('sw1', password, first);
    expect(second.master.id).to.not.equal(target.id);
    // Both switchovers are in the history, newest first, marked planned.
    const history = (await fleet.api('GET', '/api/instances/sw1')).json.failovers;
    expect(history.map((f: { from: string; to: string; planned: boolean }) => [f.from, f.to, f.planned])).to.deep.equal([[first.master.id, second.master.id, true], [inst.master.id, target.id, true]]);
    const roles = await Promise.all(second.procs.map((p: View) => roleOf(p, password)));
    expect(roles.map((r) => r[0]).sort()).to.deep.equal(['master', 'slave', 'slave']);
    for (const r of roles.filter((x) => x[0] === 'slave')) expect(r[2]).to.equal(second.master.port);
  });

  // The old master pings its replicas once a second, paused or not: a PING that left it after the
  // new master's last look would put it and the other replica ahead of the new master, and both
  // would need a full resync. Eight switchovers make that window likely to be hit if it is open.
  it('eight switchovers back and forth: every replica follows with a partial resync', async () => {
    const { password, inst } = await create('sw7', 2);
    const all = async (): Promise<number> => (await Promise.all(inst.procs.map((p: View) => fullSyncs(p, password)))).reduce((a: number, b: number) => a + b, 0);
    const before = await all();
    for (let i = 0; i < 8; i++) {
      const res = await fleet.api('POST', '/api/instances/sw7/failover');
      expect(res.status, res.text).to.equal(202);
      const view = await awaitOperation('sw7', res.json.operation.id);
      expect(view.operation.state, JSON.stringify(view.operation)).to.equal('done');
      const master = (await fleet.api('GET', '/api/instances/sw7')).json.master;
      await fleet.waitFor(async () => ((await roleOf(master, password))[2] as unknown[] | undefined)?.length === 2 || undefined, 10_000, 'both replicas on the new master');
      await fleet.waitFor(async () => (await fleet.api('GET', '/api/instances/sw7')).json.slaves.length === 2 || undefined, 10_000, 'two replicas listed');
    }
    expect(await all(), 'full resyncs served over eight switchovers').to.equal(before);
    expect((await fleet.api('GET', '/api/instances/sw7')).json.epoch).to.equal(inst.epoch + 8);
  });

  it('bad input: 400 naming the field, 404, 409 for a standalone instance, nothing written', async () => {
    const { inst } = await create('sw2', 1);
    const { inst: solo } = await create('sw3', 0);
    const bad = await fleet.api('POST', '/api/instances/sw2/failover', { to: 'nope' });
    expect(bad.status).to.equal(400);
    expect(bad.json.error.field).to.equal('to');
    const other = await fleet.api('POST', '/api/instances/sw2/failover', { to: solo.master.id });
    expect(other.status).to.equal(400);
    expect(other.json.error.field).to.equal('to');
    const unknown = await fleet.api('POST', '/api/instances/sw2/failover', { to: 'sw2::0b6f8a2e-5d0c-4c4e-9a57-2f1e3b4c5d6e' });
    expect(unknown.status).to.equal(400);
    expect(unknown.json.error.field).to.equal('to');
    const self = await fleet.api('POST', '/api/instances/sw2/failover', { to: inst.master.id });
    expect(self.status).to.equal(409);
    expect(self.json.error.field).to.equal('to');
    const extra = await fleet.api('POST', '/api/instances/sw2/failover', { to: inst.slaves[0].id, force: true });
    expect(extra.status).to.equal(400);
    expect(extra.json.error.field).to.equal('force');
    expect((await fleet.api('POST', '/api/instances/nosuch/failover')).status).to.equal(404);
    const standalone = await fleet.api('POST', '/api/instances/sw3/failover');
    expect(standalone.status).to.equal(409);
    const tree = fleet.tree('/MrRedis/Instances/sw2/Operation');
    expect(tree.size, 'no operation written').to.equal(0);
    expect(fleet.tree('/MrRedis/Instances/sw3/Operation').size).to.equal(0);
    expect((await fleet.api('GET', '/api/instances/sw2')).json.epoch).to.equal(inst.epoch);
  });

  it('SENTINEL FAILOVER on the endpoint switches over; -NOGOODSLAVE without a replica', async () => {
    const { password, inst } = await create('sw4', 1);
    const sentinel = new Redis({ port: fleet.sentinelPort });
    try {
      const [first, second] = await Promise.all([
        sentinel.call('SENTINEL', 'FAILOVER', 'sw4'),
        sentinel.call('SENTINEL', 'FAILOVER', 'sw4').catch((e: Error) => e.message),
      ]);
      expect(first).to.equal('OK');
      expect(second).to.match(/^INPROG/);
      const after = await fleet.waitFor(async () => {
        const i = (await fleet.api('GET', '/api/instances/sw4')).json;
        return i.operation && i.operation.state !== 'running' && i.master ? i : undefined;
      }, 20_000, 'the switchover to end');
      expect(after.operation.state, JSON.stringify(after.operation)).to.equal('done');
      expect(after.master.id).to.equal(inst.slaves[0].id);
      expect((await roleOf(inst.master, password))[0]).to.equal('slave');
      // And back with the command: a progress line per step, the new master at the end.
      await fleet.waitFor(async () => (await fleet.api('GET', '/api/instances/sw4')).json.slaves.length === 1, 10_000, 'the old master listed as a replica');
      const cli = await fleet.cli(['failover', 'sw4', '--to', inst.master.id, '--wait']);
      expect(cli.code, cli.stderr).to.equal(0);
      expect(cli.stdout).to.match(/switchover: done/);
      expect(cli.stdout).to.include(`master is now ${inst.master.id}`);
      const bad = await fleet.cli(['failover', 'sw4', '--to', 'nope']);
      expect(bad.code).to.equal(1);
      expect(bad.stderr).to.match(/INVALID_PROC/);
      const { inst: solo } = await create('sw5', 0);
      expect(solo.type).to.equal('S');
      const err = await sentinel.call('SENTINEL', 'FAILOVER', 'sw5').catch((e: Error) => e.message);
      expect(err).to.match(/^NOGOODSLAVE/);
      const unknown = await sentinel.call('SENTINEL', 'FAILOVER', 'nosuch').catch((e: Error) => e.message);
      expect(unknown).to.match(/No such master/i);
    } finally {
      sentinel.disconnect();
    }
  });

  it('a switchover cut short by a scheduler SIGKILL ends consistent after the restart', async () => {
    const { password, inst } = await create('sw6', 2);
    const writer = new AckedWriter(fleet.sentinelPort, 'sw6', password);
    writer.start('sw6:');
    try {
      await writer.waitForAcks(100);
      const res = await fleet.api('POST', '/api/instances/sw6/failover');
      expect(res.status).to.equal(202);
      // Kill the scheduler while the switchover runs (or just after: both must end consistent).
      await fleet.waitFor(() => /"message":"switchover"/.test(fleet.log('scheduler')) || undefined, 10_000, 'the switchover to start');
      await fleet.killScheduler('SIGKILL');
      await sleep(200);
      await fleet.startScheduler();
      const after = await fleet.waitFor(async () => {
        const i = (await fleet.api('GET', '/api/instances/sw6')).json;
        return i.operation?.state !== 'running' && i.status === 'RUNNING' && i.master && i.slaves.length === 2 ? i : undefined;
      }, 60_000, 'the switchover to be settled');
      await writer.waitForAcks(100, 20_000);
      await writer.stop();
      expect(await writer.missingOn(after.master, password)).to.deep.equal([]);
      const roles = await Promise.all(after.procs.filter((p: View) => p.state === 'RUNNING').map((p: View) => roleOf(p, password)));
      expect(roles.filter((r) => r[0] === 'master')).to.have.length(1);
      expect((await roleOf(after.master, password))[0], 'the named master is the one that says master').to.equal('master');
      for (const p of inst.procs.filter((x: View) => x.state === 'RUNNING')) expect(pidAlive(p.pid), `${p.id} kept`).to.equal(true);
      expect(after.epoch - inst.epoch).to.be.within(0, 1);
      const probe = new InstanceProbe(fleet, 'sw6');
      for (const p of after.procs.filter((x: View) => x.state === 'RUNNING')) expect(await probe.config(p, 'repl-ping-replica-period'), `${p.id} ping period`).to.equal('1');
    } finally {
      await writer.stop();
    }
  });
});
