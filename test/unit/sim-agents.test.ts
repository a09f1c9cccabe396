import { expect } from 'chai';
import { CommandReader, encodeReply } from '../../bench/sim/resp.js';
import { SimProc, type ProcWorld } from '../../bench/sim/sim-proc.js';
import { infoText, replyTo } from '../../bench/sim/commands.js';
import { SimFleet, simAgentIp } from '../../bench/sim/sim-fleet.js';
import type { WorldEvent } from '../../bench/sim/shard-world.js';
import { parseInfo, statsFromInfo } from '../../src/domain/redis-info.js';
import { replicaSaysMasterDown } from '../../src/scheduler/replica-vote.js';

/** Two procs and their addresses, without sockets. */
function world(): ProcWorld & { add(p: SimProc): void } {
  const byAddress = new Map<string, SimProc>();
  return {
    add: (p) => byAddress.set(p.address, p),
    procAt: (a) => byAddress.get(a),
    followersOf: (a) => [...byAddress.values()].filter((p) => p.target === a),
    retargeted: () => undefined,
  };
}

describe('agent simulator (bench/sim)', () => {
  it('reads RESP commands split across chunks and encodes every reply type', () => {
    const reader = new CommandReader();
    const bytes = Buffer.from('*1\r\n$4\r\nPING\r\n*3\r\n$4\r\nAUTH\r\n$8\r\nredfleet\r\n$6\r\nsecret\r\n');
    expect(reader.push(bytes.subarray(0, 20))).to.deep.equal([['PING']]);
    expect(reader.push(bytes.subarray(20))).to.deep.equal([['AUTH', 'redfleet', 'secret']]);
    expect(encodeReply(['master', 5, [['127.1.0.1', '7000', '5']], null, { status: 'OK' }, { error: 'ERR x' }]))
      .to.equal('*6\r\n$6\r\nmaster\r\n:5\r\n*1\r\n*3\r\n$9\r\n127.1.0.1\r\n$4\r\n7000\r\n$1\r\n5\r\n$-1\r\n+OK\r\n-ERR x\r\n');
    expect(() => new CommandReader().push(Buffer.from('PING\r\n'))).to.throw(/RESP array/);
  });

  it('gives each agent its own loopback address', () => {
    expect(simAgentIp(0)).to.equal('127.1.0.1');
    expect(simAgentIp(249)).to.equal('127.1.0.250');
    expect(simAgentIp(250)).to.equal('127.1.1.1');
    expect(() => simAgentIp(64_000)).to.throw();
  });

  it('answers INFO as the Stats and the failure detector read it: linked, frozen, gone', () => {
    const w = world();
    const master = new SimProc('a::1', 'a', '127.1.0.1', 7000, 16, w);
    const replica = new SimProc('a::2', 'a', '127.1.0.2', 7000, 16, w);
    w.add(master);
    w.add(replica);
    replica.follow(master.address);
    master.baseAt -= 100; // one replication heartbeat later
    const linked = parseInfo(infoText(replica, 'replication'));
    expect(linked.get('master_link_status')).to.equal('up');
    expect(linked.get('slave_read_repl_offset')).to.equal(String(master.offset));
    expect(replicaSaysMasterDown(linked, master, 1000)).to.equal(false);
    const stats = statsFromInfo(parseInfo(infoText(master, 'all')));
    expect(stats).to.include({ role: 'master', connectedReplicas: 1, redisVersion: '7.0.15' });
    expect(stats.usedMemory).to.be.greaterThan(0);

    const before = master.offset;
    master.freeze();
    master.baseAt -= 100;
    expect(master.offset, 'a frozen master sends nothing').to.equal(before);
    expect(parseInfo(infoText(replica, 'replication')).get('master_link_status')).to.equal('up');
    master.crash();
    const gone = parseInfo(infoText(replica, 'replication'));
    expect(gone.get('master_link_status')).to.equal('down');
    expect(replicaSaysMasterDown(gone, master, 1000)).to.equal(true);
  });

  it('shows a replica its master in another shard: live, frozen, gone; and the master its remote replicas', () => {
    const fleets: SimFleet[] = [];
    const shard = (k: number) => new SimFleet({
      agents: 1, schedulerUrl: 'http://127.0.0.1:1', etcd: 'http://127.0.0.1:1', prefix: '/MrRedis', fleetKey: 'k', cpus: 1, mem: 64,
      ports: { begin: 7000, end: 7001 },
      // What the parent's relay does: every other shard applies the event.
      publish: (ev: WorldEvent) => fleets.forEach((f, j) => j !== k && f.applyRemote(ev)),
    });
    fleets.push(shard(0), shard(1));
    const [a, b] = fleets;
    const master = new SimProc('a::1', 'a', '127.1.0.1', 7000, 16, a);
    master.baseAt -= 1000; // a master for a second
    a.retargeted(master, null); // listening
    const replica = new SimProc('a::2', 'a', '127.1.0.2', 7000, 16, b);
    b.retargeted(replica, null);
    replica.follow(master.address);

    const linked = parseInfo(infoText(replica, 'replication'));
    expect(linked.get('master_link_status')).to.equal('up');
    expect(Number(linked.get('slave_repl_offset'))).to.be.at.least(540).and.to.be.at.most(master.offset);
    const seen = statsFromInfo(parseInfo(infoText(master, 'all')));
    expect(seen.connectedReplicas, 'the master lists its replica in the other shard').to.equal(1);

    master.freeze();
    const frozenAt = master.offset;
    master.baseAt -= 500;
    const stalled = parseInfo(infoText(replica, 'replication'));
    expect(stalled.get('master_link_status'), 'a frozen master keeps the link up until repl-timeout').to.equal('up');
    expect(Number(stalled.get('slave_repl_offset'))).to.be.at.most(frozenAt);
    expect(b.procAt(master.address)?.offset).to.equal(frozenAt);

    master.crash();
    const gone = parseInfo(infoText(replica, 'replication'));
    expect(gone.get('master_link_status')).to.equal('down');
    expect(b.procAt(master.address), 'a gone proc is forgotten').to.equal(undefined);
    replica.follow(null);
    expect(a.procAt(replica.address)?.target, 'the promotion is seen by the other shard').to.equal(null);
  });

  it('changes role on REPLICAOF and answers ROLE', () => {
    const w = world();
    const p = new SimProc('a::1', 'a', '127.1.0.1', 7000, 16, w);
    expect(replyTo(p, ['REPLICAOF', '127.1.0.2', '7000'])).to.deep.equal({ status: 'OK' });
    expect((replyTo(p, ['ROLE']) as unknown[])[0]).to.equal('slave');
    replyTo(p, ['REPLICAOF', 'NO', 'ONE']);
    expect((replyTo(p, ['ROLE']) as unknown[])[0]).to.equal('master');
    expect(replyTo(p, ['PING'])).to.deep.equal({ status: 'PONG' });
  });
});
