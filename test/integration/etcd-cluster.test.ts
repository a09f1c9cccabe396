import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { ProtocolAgent } from '../harness/protocol-agent.js';
import { spawnSync } from 'node:child_process';
import { LocalFleet } from '../harness/local-fleet.js';

interface EndpointStatus {
  Endpoint: string;
  Status: { header: { member_id: number | string }; leader: number | string };
}

/** The member etcd elected leader, read with etcdctl from every endpoint. */
function leaderIndex(fleet: LocalFleet): number {
  const out = spawnSync('etcdctl', ['--endpoints', fleet.etcd.url, 'endpoint', 'status', '-w', 'json'], { encoding: 'utf8', env: { ...process.env, ETCDCTL_API: '3' } });
  const statuses = JSON.parse(out.stdout) as EndpointStatus[];
  const leader = statuses.find((s) => String(s.Status.header.member_id) === String(s.Status.leader));
  if (!leader) throw new Error(`no etcd leader among ${out.stdout}`);
  return fleet.etcd.members.findIndex((m) => m.url === leader.Endpoint);
}

/** The RUNNING instance once its master is announced too (named only once heard). */
async function settled(fleet: LocalFleet, name: string, replicas: number): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  return fleet.waitFor(async () => {
    const i = (await fleet.api('GET', `/api/instances/${name}`)).json;
    return i?.status === 'RUNNING' && i.master && i.slaves.length === replicas ? i : undefined;
  }, 30_000, `${name} RUNNING with a master and ${replicas} replicas`);
}

describe('a 3-member etcd cluster (several --etcd URLs): the fleet survives the loss of one member', function () {
  this.timeout(120_000);
  let fleet: LocalFleet;

  before(async () => {
    // Stats every 2 s (20 s by default): the last check waits for a Stats write through the
    // members left, and at the default heartbeat that wait alone took up to 20 s of the suite.
    // Heartbeats every 2 s, as a large fleet would run: the agents follow the interval SUBSCRIBED
    // names, so no stream is dropped though they answer half as often.
    fleet = await LocalFleet.start({ agents: 3, etcdMembers: 3, agent: { args: ['--stats-heartbeat', '2'] }, schedulerArgs: ['--agent-heartbeat', '2'] });
  });
  after(async () => {
    await fleet?.stop();
  });

  it('keeps creating, failing over and writing stats after etcd\'s leader is killed', async () => {
    expect(fleet.etcd.members).to.have.length(3);
    const before = (await fleet.api('POST', '/api/instances', { name: 'c1', capacityMb: 16, replicas: 2 }));
    expect(before.status, before.text).to.equal(202);
    const c1 = await settled(fleet, 'c1', 2);

    const lost = fleet.etcd.members[leaderIndex(fleet)];
    lost.child.kill('SIGKILL');
    await fleet.waitFor(() => lost.child.exitCode !== null || lost.child.signalCode !== null, 5000, 'the etcd leader to die');

    // A create is answered only once etcd has it: the two members left elect a leader and take it.
    const created = await fleet.api('POST', '/api/instances', { name: 'c2', capacityMb: 16, replicas: 1 });
    expect(created.status, created.text).to.equal(202);
    await settled(fleet, 'c2', 1);

    // A failover writes its transaction through the members left.
    process.kill(c1.master.pid, 'SIGKILL');
    const after = await fleet.waitFor(async () => {
      const i = (await fleet.api('GET', '/api/instances/c1')).json;
      return i?.master && i.master.id !== c1.master.id && i.status === 'RUNNING' && i.slaves.length === 2 ? i : undefined;
    }, 30_000, 'c1 failed over and whole again');
    expect(c1.slaves.map((s: { id: string }) => s.id)).to.include(after.master.id);
    expect(after.failovers[0]).to.include({ from: c1.master.id, to: after.master.id, planned: false });

    // The agents still write stats (through the members left), the scheduler still leads.
    const statsKey = `/MrRedis/Instances/c2/Procs/${(await settled(fleet, 'c2', 1)).master.id}/Stats`;
    const written = (): string => fleet.etcdctl('get', '--print-value-only', statsKey).trim();
    const seen = written();
    await fleet.waitFor(() => (written() !== seen ? true : undefined), 40_000, `a newer Stats write than ${seen}`);
    const health = (await fleet.api('GET', '/healthz')).json;
    expect(health).to.include({ leader: true, agents: 3 });
    expect(fleet.log('scheduler')).to.not.include('dropping agent stream');
    const key = readFileSync(fleet.fleetKeyPath, 'utf8').trim();
    const probe = new ProtocolAgent(fleet.apiUrl, 'heartbeat-probe', key);
    try {
      expect(await probe.subscribe(await ProtocolAgent.sign(fleet.apiUrl, 'heartbeat-probe', key, { hostname: '127.0.0.1' }))).to.equal(200);
      await fleet.waitFor(() => probe.events.length > 0 || undefined, 5000, 'SUBSCRIBED');
      expect(probe.events[0].subscribed?.heartbeat_interval_seconds).to.equal(2);
    } finally {
      probe.close();
    }
  });
});
