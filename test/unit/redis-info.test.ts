import { expect } from 'chai';
import { statsChanged } from '../../src/domain/redis-info.js';
import type { ProcStats } from '../../src/domain/model.js';

const replica: ProcStats = {
  uptime: 100, usedMemory: 2_000_000, clients: 2, role: 'slave', replOffset: 1000,
  masterLinkStatus: 'up', lastIoSecondsAgo: 0, connectedReplicas: null, updatedAt: '2026-01-01T00:00:00.000Z',
};

describe('statsChanged: when an agent writes Stats before the heartbeat', () => {
  it('is news the first time', () => {
    expect(statsChanged(undefined, replica)).to.equal(true);
  });

  it('ignores what always moves: offsets, uptime, the time, and a healthy link ticking 0/1 s', () => {
    expect(statsChanged(replica, { ...replica, replOffset: 5000, uptime: 105, lastIoSecondsAgo: 1, updatedAt: '2026-01-01T00:00:05.000Z' })).to.equal(false);
  });

  it('ignores memory drift below 1 MiB or 5 %', () => {
    expect(statsChanged(replica, { ...replica, usedMemory: replica.usedMemory + 900_000 })).to.equal(false);
    const big = { ...replica, usedMemory: 100 * 1024 * 1024 };
    expect(statsChanged(big, { ...big, usedMemory: big.usedMemory + 2 * 1024 * 1024 })).to.equal(false);
  });

  it('reports a new role, link status, link class, replica count, client count or a real memory move', () => {
    expect(statsChanged(replica, { ...replica, role: 'master', masterLinkStatus: null, lastIoSecondsAgo: null, connectedReplicas: 1 })).to.equal(true);
    expect(statsChanged(replica, { ...replica, masterLinkStatus: 'down' })).to.equal(true);
    expect(statsChanged(replica, { ...replica, lastIoSecondsAgo: 3 })).to.equal(true);
    expect(statsChanged(replica, { ...replica, clients: 3 })).to.equal(true);
    expect(statsChanged(replica, { ...replica, usedMemory: replica.usedMemory + 2 * 1024 * 1024 })).to.equal(true);
    const master = { ...replica, role: 'master', masterLinkStatus: null, lastIoSecondsAgo: null, connectedReplicas: 2 };
    expect(statsChanged(master, { ...master, connectedReplicas: 1 })).to.equal(true);
  });
});
