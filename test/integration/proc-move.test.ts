import { expect } from 'chai';
import type { Etcd3 } from 'etcd3';
import { LocalFleet } from '../harness/local-fleet.js';
import { AckedWriter } from '../harness/acked-writer.js';
import { connectEtcd } from '../../src/store/etcd.js';
import { FleetStore } from '../../src/store/fleet-store.js';
import { dataKey, loadFleetKey } from '../../src/store/secrets.js';
import { createLogger } from '../../src/logger.js';
import { RedisLinks } from '../../src/scheduler/redis-links.js';
import { ProcMove } from '../../src/scheduler/proc-move.js';

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

const LIVE = ['STAGING', 'STARTING', 'RUNNING'];

/**
 * The proc-move primitive (src/scheduler/proc-move.ts) against a real fleet: the mover runs in
 * this process on the fleet's etcd, as an operation handler runs inside the scheduler; the
 * scheduler's creator places the surge replica it asks for.
 */
describe('proc move: add, retire and replace replicas', function () {
  this.timeout(180_000);
  let fleet: LocalFleet;
  let etcd: Etcd3;
  let store: FleetStore;
  let links: RedisLinks;
  let moves: ProcMove;
  let password = '';
  const name = 'move1';

  before(async () => {
    fleet = await LocalFleet.start({ agents: 3 });
    const created = await fleet.api('POST', '/api/instances', { name, capacityMb: 32, replicas: 2 });
    expect(created.status).to.equal(202, created.text);
    password = created.json.password;
    await fleet.waitForStatus(name, 'RUNNING', 60_000);
    await fleet.startAgent('agent4');
    await fleet.waitFor(async () => (await fleet.api('GET', '/healthz')).json.agents === 4, 30_000, 'agent4 to subscribe');
    etcd = connectEtcd(fleet.etcd.url);
    store = new FleetStore(etcd, '/MrRedis');
    await store.start();
    links = new RedisLinks(dataKey(loadFleetKey(fleet.fleetKeyPath, false).key), 1000);
    moves = new ProcMove(store, links, createLogger('test-mover'), () => [], () => undefined);
  });

  after(async () => {
    links?.close();
    await store?.stop();
    etcd?.close();
    await fleet?.stop();
  });

  async function view(): Promise<Json> {
    return (await fleet.api('GET', `/api/instances/${name}`)).json;
  }

  /** Waits until the instance is RUNNING with its master and exactly two live replicas, all counted. */
  async function settled(): Promise<Json> {
    return fleet.waitFor(async () => {
      const i = await view();
      const live = i.procs.filter((p: Json) => LIVE.includes(p.state));
      return i.status === 'RUNNING' && i.master && live.length === 3 && i.procs.length === 3 && i.slaves.length === 2 ? i : undefined;
    }, 30_000, `${name} to settle with 1+2 procs`);
  }

  it('replaces a replica onto a fourth agent with writes running: zero loss, the old proc gone, counts right, the master untouched', async () => {
    const before = await settled();
    const masterPid = before.procs.find((p: Json) => p.id === before.master.id).pid;
    const replica = before.procs.find((p: Json) => p.role === 'replica');
    const writer = new AckedWriter(fleet.sentinelPort, name, password);
    writer.start('move:');
    try {
      await writer.waitForAcks(100);
      const added = await moves.replaceReplica(name, replica.id, { avoidAgents: [replica.agent] }, 60_000);
      await writer.waitForAcks(100);
      const after = await settled();
      const moved = after.procs.find((p: Json) => p.id === added);
      expect(moved, 'the new replica').to.not.equal(undefined);
      expect(moved.agent).to.equal('agent4', 'the only agent without a proc of the instance');
      expect(moved.role).to.equal('replica');
      expect(after.procs.map((p: Json) => p.id)).to.not.include(replica.id, 'the old replica is gone from the tree');
      const master = after.procs.find((p: Json) => p.id === after.master.id);
      expect(master.id).to.equal(before.master.id);
      expect(master.pid).to.equal(masterPid, 'the master was not restarted');
      const tree = fleet.tree(`/MrRedis/Instances/${name}/`);
      expect(tree.get(`/MrRedis/Instances/${name}/ExpSlaves`)).to.equal('2', 'a move leaves ExpSlaves');
      expect(tree.get(`/MrRedis/Instances/${name}/Slaves`)).to.equal('2');
      expect(tree.get(`/MrRedis/Instances/${name}/Surge`) ?? '').to.equal('', 'the surge request is withdrawn');
      expect([...tree.keys()].filter((k) => k.includes('/Snames/'))).to.have.length(2);
      await writer.stop();
      expect(writer.acked.size).to.be.greaterThan(200);
      expect(await writer.missingOn(after.master, password)).to.deep.equal([], `errors: ${writer.errors.slice(-5).join(' | ')}`);
    } finally {
      await writer.stop();
    }
  });

  it('a surge request survives a scheduler restart: the next leader places the same replica', async () => {
    const before = await settled();
    const holders = before.procs.map((p: Json) => p.agent);
    const adding = moves.addReplica(name, { avoidAgents: [] }, 90_000, 'restart-test');
    await fleet.waitFor(() => store.instance(name)?.surges.some((r) => r.id === 'restart-test'), 10_000, 'the surge request in etcd');
    await fleet.killScheduler('SIGKILL');
    await fleet.startScheduler();
    const added = await adding;
    const inst = await fleet.waitFor(async () => {
      const i = await view();
      return i.status === 'RUNNING' && i.slaves.length === 3 ? i : undefined;
    }, 30_000, 'three replicas counted');
    const proc = inst.procs.find((p: Json) => p.id === added);
    expect(holders).to.not.include(proc.agent, 'placed within the distribution (one proc per agent)');
    expect(inst.procs.filter((p: Json) => LIVE.includes(p.state))).to.have.length(4, 'exactly one surge replica');
    expect(inst.replicas).to.equal(2, 'ExpSlaves unchanged');
    // The extra replica stays until someone retires one; retire it again.
    await moves.retireReplica(name, added);
    const after = await settled();
    expect(after.procs.map((p: Json) => p.id)).to.not.include(added);
  });

  it('gives up with the reason when nothing can take the replica, and leaves no request behind', async () => {
    const started = Date.now();
    let error: Error | undefined;
    try {
      await moves.addReplica(name, { avoidAgents: ['agent1', 'agent2', 'agent3', 'agent4'] }, 2000);
    } catch (err) {
      error = err as Error;
    }
    expect(error?.message).to.match(/no replica of 'move1' was placed and linked within 2 s/);
    expect(Date.now() - started).to.be.lessThan(10_000);
    expect(store.instance(name)?.surges).to.deep.equal([]);
    const inst = await settled();
    expect(inst.replicas).to.equal(2);
  });

  it('refuses to retire the master', async () => {
    const inst = await settled();
    let error: Error | undefined;
    try {
      await moves.retireReplica(name, inst.master.id);
    } catch (err) {
      error = err as Error;
    }
    expect(error?.message).to.match(/is the master/);
    const after = await settled();
    expect(after.master.id).to.equal(inst.master.id);
  });
});
