import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { Redis } from 'ioredis';
import { startFleetOnTestHosts } from '../harness/netns-fleet.js';
import { LocalFleet } from '../harness/local-fleet.js';
import { TestNetwork } from '../harness/netns.js';
import { roles } from '../harness/roles.js';

const ADMIN = 'partition-admin-token-0123456789';
const auth = { Authorization: `Bearer ${ADMIN}` };

describe('network partition (test hosts in network namespaces)', function () {
  this.timeout(120_000);
  let net: TestNetwork;
  let fleet: LocalFleet;

  before(async () => {
    ({ net, fleet } = await startFleetOnTestHosts(4, ADMIN, []));
  });

  after(async () => {
    await fleet?.stop();
    net?.destroy();
  });

  it('cuts the master off: a replica takes over, the old master refuses writes, and after the heal exactly one master remains', async () => {
    const res = await fleet.api('POST', '/api/instances', { name: 'split', capacityMb: 16, replicas: 2 }, auth);
    expect(res.status).to.equal(202);
    const password = res.json.password;
    const before = await fleet.waitForStatus('split', 'RUNNING');
    const old = before.master;
    expect(old.ip).to.match(/^10\.213\./, 'procs run on the test hosts');
    const writer = new Redis({ host: old.ip, port: old.port, password, maxRetriesPerRequest: 0, commandTimeout: 5000 });
    writer.on('error', () => undefined);
    await writer.set('before', '1');
    expect(await writer.wait(2, 5000)).to.equal(2, "both replicas acknowledge the write");

    const hostOf = (agent: string) => net.namespaceOf(agent);
    net.partition(old.agent);
    try {
      const promoted = await fleet.waitFor(async () => {
        const i = (await fleet.api('GET', '/api/instances/split', undefined, auth)).json;
        return i.master && i.master.id !== old.id ? i : undefined;
      }, 20_000, 'a replica promoted while the master is cut off');
      expect(promoted.epoch).to.equal(before.epoch + 1);
      expect(promoted.master.agent).to.not.equal(old.agent);
      // The API names the new master as soon as etcd has the failover; the agent's promotion
      // (MULTI; REPLICAOF NO ONE; CLIENT KILL ...; EXEC) may still be a few ms away and drop a
      // connection made in between, as it drops every tenant client of the old replica. Like a
      // real client, read again on a fresh connection.
      const survived = await fleet.waitFor(async () => {
        const r = new Redis({ host: promoted.master.ip, port: promoted.master.port, password, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
        r.on('error', () => undefined);
        try {
          await r.connect();
          return { value: await r.get('before') };
        } finally {
          r.disconnect();
        }
      }, 5000, 'a read on the promoted master');
      expect(survived.value).to.equal('1', 'an acknowledged write survived');
      // A client on the cut-off side still reaches the old master, which must refuse writes once
      // it has heard from no replica for min-replicas-max-lag (3 s).
      const cutOff = (...cmd: string[]) => spawnSync('ip', ['netns', 'exec', hostOf(old.agent), 'redis-cli', '-h', old.ip, '-p', String(old.port), '--no-auth-warning', '-a', password, ...cmd], { encoding: 'utf8' }).stdout.trim();
      const refused = await fleet.waitFor(() => {
        const reply = cutOff('SET', 'split-brain', 'x');
        return /NOREPLICAS/.test(reply) ? reply : undefined;
      }, 10_000, 'the cut-off master to refuse writes');
      expect(refused).to.match(/NOREPLICAS/);
      expect(cutOff('ROLE').split('\n')[0]).to.equal('master', 'it still believes it is master: only fencing protects the data');
    } finally {
      net.heal(old.agent);
    }
    // Fencing while it was cut off is min-replicas; after the heal its agent sees SHUTDOWN in etcd.
    const after = await fleet.waitFor(async () => {
      const i = (await fleet.api('GET', '/api/instances/split', undefined, auth)).json;
      const running = i.procs.filter((p: { state: string }) => p.state === 'RUNNING');
      return i.status === 'RUNNING' && i.slaves.length === 2 && !running.some((p: { id: string }) => p.id === old.id) ? i : undefined;
    }, 40_000, 'the instance whole again without the old master');
    const seen = await roles(after.procs.filter((p: { state: string }) => p.state === 'RUNNING'), password);
    expect(seen.filter((x) => x === 'master')).to.have.length(1);
    expect(await roles([old], password)).to.deep.equal(['unreachable'], 'the old master was shut down');
    writer.disconnect();
  });
  // The second case (the master's host cut off from the scheduler and etcd only) is in
  // partition-heal.test.ts, with a WAIT 1 writer and the bounds after the heal.
});
