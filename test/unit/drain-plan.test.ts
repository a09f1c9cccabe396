import { expect } from 'chai';
import { InstanceStatus, InstanceType, ProcState, ProcType, type Instance, type Proc } from '../../src/domain/model.js';
import { moveBlocker } from '../../src/scheduler/drain-plan.js';
import type { AgentView } from '../../src/scheduler/offers.js';
import { offeredBinary, runsBinary } from '../../src/scheduler/redis-binaries.js';
import { parseDrain, DrainState } from '../../src/domain/drain.js';

function proc(id: string, agent: string, type: ProcType, linkUp = true): Proc {
  return {
    id: `c1::${id}`, instance: 'c1', nodename: agent, capacity: 64, memUsed: 0, pid: 1, ip: '127.0.0.1', port: 7000, state: ProcState.Running,
    type, slaveOf: '', eid: '', sid: agent, msg: '', redisServer: '', redisVersion: '', surge: '',
    stats: { uptime: 1, usedMemory: 0, clients: 0, role: type === ProcType.Master ? 'master' : 'slave', replOffset: 0, masterLinkStatus: type === ProcType.Master ? null : linkUp ? 'up' : 'down', updatedAt: '' },
  };
}

function instance(procs: Proc[], over: Partial<Instance> = {}): Instance {
  const master = procs.find((p) => p.type === ProcType.Master);
  return {
    name: 'c1', type: InstanceType.MasterReplica, status: InstanceStatus.Running, capacity: 64, masters: 1, slaves: procs.length - 1, expMasters: 1,
    expSlaves: procs.length - 1, dValue: 1, mname: master?.id ?? '', snames: [], reason: '', placement: 'spread', createdAt: '', epoch: 0, dataLost: '',
    downAfterMs: 1000, failoverTimeoutMs: 0, minReplicasMaxLag: 0, expiresAt: '', deletedAt: '', passwordHash: '', accessKeyHash: '', creator: '',
    maxClients: 0, surges: [], procs, ...over,
  } as Instance;
}

function agent(id: string, mem = 1024, connected = true): AgentView {
  return { id, hostname: id, ip: '127.0.0.1', connected, total: { cpus: 2, mem: 1024, ports: [{ begin: 7000, end: 7010 }] }, free: { cpus: 2, mem, ports: [{ begin: 7000, end: 7010 }] }, tasks: [], subscribedAt: '' };
}

describe('drain plan: whether a proc can move off a draining agent now', () => {
  const procs = [proc('m', 'a1', ProcType.Master), proc('r1', 'a2', ProcType.Replica), proc('r2', 'a3', ProcType.Replica)];

  it('lets a move go when another agent has room within the distribution', () => {
    expect(moveBlocker(instance(procs), 'a1', [agent('a1'), agent('a2'), agent('a3'), agent('a4')], new Set(['a1']), 0.1)).to.equal(undefined);
    expect(moveBlocker(instance(procs), 'a2', [agent('a1'), agent('a2'), agent('a3'), agent('a4')], new Set(['a2']), 0.1)).to.equal(undefined);
  });

  it('waits, saying why, when every other agent holds the distribution, lacks memory, drains or is away', () => {
    const spread = moveBlocker(instance(procs), 'a1', [agent('a1'), agent('a2'), agent('a3')], new Set(['a1']), 0.1);
    expect(spread).to.match(/nowhere to move a 64 MB proc off a1: 2 other connected agent\(s\), 2 already holding distribution 1/);
    const full = moveBlocker(instance(procs), 'a1', [agent('a1'), agent('a2'), agent('a3'), agent('a4', 32)], new Set(['a1']), 0.1);
    expect(full).to.match(/1 without 64 MB/);
    const draining = moveBlocker(instance(procs), 'a1', [agent('a1'), agent('a2'), agent('a3'), agent('a4')], new Set(['a1', 'a4']), 0.1);
    expect(draining).to.match(/1 draining/);
    const away = moveBlocker(instance(procs), 'a1', [agent('a1'), agent('a2'), agent('a3'), agent('a4', 1024, false)], new Set(['a1']), 0.1);
    expect(away).to.match(/2 other connected agent/);
  });

  it('moves a master only when a synced replica elsewhere can take over', () => {
    const unsynced = [proc('m', 'a1', ProcType.Master), proc('r1', 'a2', ProcType.Replica, false)];
    const why = moveBlocker(instance(unsynced), 'a1', [agent('a1'), agent('a2'), agent('a3')], new Set(['a1']), 0.1);
    expect(why).to.match(/no replica elsewhere is running and synced/);
  });

  it('never moves a standalone master (it would lose its data) and says what to do', () => {
    const solo = instance([proc('m', 'a1', ProcType.Master)], { type: InstanceType.Standalone, expSlaves: 0 });
    expect(moveBlocker(solo, 'a1', [agent('a1'), agent('a2')], new Set(['a1']), 0.1)).to.match(/standalone .* scale it to 1 replica/);
  });

  it('has nothing to say about an instance with no proc on the agent', () => {
    expect(moveBlocker(instance(procs), 'a4', [agent('a4')], new Set(['a4']), 0.1)).to.equal(undefined);
  });
});

describe('redis-server binaries', () => {
  const offered = [{ path: '/usr/bin/redis-server', version: '7.0.15' }, { path: '/opt/r72/redis-server', version: '7.2.4' }];

  it('finds a binary by path, by version or version prefix, and the default for none', () => {
    expect(offeredBinary(offered)?.path).to.equal('/usr/bin/redis-server');
    expect(offeredBinary(offered, '/opt/r72/redis-server')?.version).to.equal('7.2.4');
    expect(offeredBinary(offered, '7.2')?.path).to.equal('/opt/r72/redis-server');
    expect(offeredBinary(offered, '7.2.4')?.path).to.equal('/opt/r72/redis-server');
    expect(offeredBinary(offered, '7')?.path).to.equal('/usr/bin/redis-server');
    expect(offeredBinary(offered, '7.1')).to.equal(undefined);
    expect(offeredBinary(offered, '/usr/local/bin/redis-server')).to.equal(undefined);
    expect(offeredBinary([], undefined)).to.equal(undefined);
  });

  it('tells whether a proc runs the wanted binary', () => {
    expect(runsBinary({ redisServer: '/opt/r72/redis-server', redisVersion: '7.2.4' }, '7.2')).to.equal(true);
    expect(runsBinary({ redisServer: '/opt/r72/redis-server', redisVersion: '7.2.4' }, '/usr/bin/redis-server')).to.equal(false);
    expect(runsBinary({ redisServer: '', redisVersion: '' }, '7.0.15')).to.equal(false);
  });
});

describe('drain record', () => {
  it('parses what the store wrote and refuses anything else', () => {
    const text = JSON.stringify({ agent: 'a1', state: 'drained', startedAt: '', updatedAt: '', left: 0, waitingReason: '', moving: '' });
    expect(parseDrain(text)?.state).to.equal(DrainState.Drained);
    for (const bad of ['', 'x', '{}', JSON.stringify({ agent: 'a1', state: 'paused' })]) expect(parseDrain(bad)).to.equal(undefined);
  });
});
