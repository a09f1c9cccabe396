import { expect } from 'chai';
import { Redis } from 'ioredis';
import { LocalFleet, pidAlive } from '../harness/local-fleet.js';

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

const INSTANCES = 5;
const DOWN_AFTER_MS = 1000;

/**
 * Failovers of different instances run side by side (issue 8): the maintainer keeps one queue per
 * instance, so one instance's promotion, which may wait for a replica to take the role, never
 * holds up another's.
 */
describe('parallel failovers', function () {
  this.timeout(120_000);
  let fleet: LocalFleet;
  let events: Redis | undefined;

  before(async () => {
    // agent1 has by far the most memory, so the spread placement puts every master there; the
    // replicas go to agent2 and agent3 (distribution 1 keeps them off the master's agent).
    fleet = await LocalFleet.start({ agents: 1, agent: { ports: 20, mem: 2048 } });
    await fleet.startAgent('agent2', { ports: 20, mem: 256 });
    await fleet.startAgent('agent3', { ports: 20, mem: 256 });
    await fleet.waitFor(async () => (await fleet.api('GET', '/healthz')).json.agents === 3, 10_000, 'agents 2 and 3 to subscribe');
  });

  after(async () => {
    events?.disconnect();
    await fleet?.stop();
  });

  it(`a node that held the masters of ${INSTANCES} instances dies: each is promoted within down-after + 1 s, even while another's promotion hangs`, async () => {
    const names = Array.from({ length: INSTANCES }, (_, i) => `par${i}`);
    for (const name of names) {
      const res = await fleet.api('POST', '/api/instances', { name, capacityMb: 16, replicas: 1, downAfterMs: DOWN_AFTER_MS });
      expect(res.status, res.text).to.equal(202);
    }
    const before: Json[] = await Promise.all(names.map((name) => fleet.waitFor(async () => {
      const i = (await fleet.api('GET', `/api/instances/${name}`)).json;
      return i.status === 'RUNNING' && i.master && i.slaves.length === 1 ? i : undefined;
    }, 60_000, `${name} to run`)));
    for (const inst of before) expect(inst.master.agent, `${inst.name}'s master`).to.equal('agent1');
    const replicaAgent = (inst: Json): string => inst.procs.find((p: Json) => p.id !== inst.master.id && p.state === 'RUNNING').agent;
    // The agent of the first instance's replica is frozen: that promotion waits (up to 3 s) for
    // a MASTER message nobody carries out. With one queue for all instances, every promotion
    // behind it waited too.
    const frozen = replicaAgent(before[0]);
    const healthy = before.filter((inst) => replicaAgent(inst) !== frozen).map((inst) => inst.name);
    expect(healthy.length, 'instances whose replica is on the other agent').to.be.at.least(1);

    const switchedAt = new Map<string, number>();
    events = new Redis({ port: fleet.sentinelPort });
    events.on('message', (_channel: string, message: string) => switchedAt.set(message.split(' ')[0], Date.now()));
    await events.subscribe('+switch-master');

    const frozenPid = fleet.agentPid(frozen);
    process.kill(frozenPid, 'SIGSTOP');
    // The node dies: its agent and every redis-server on it at once.
    const killedAt = Date.now();
    await fleet.stopAgent('agent1', 'SIGKILL');
    for (const inst of before) if (pidAlive(inst.master.pid)) process.kill(inst.master.pid, 'SIGKILL');

    try {
      await fleet.waitFor(() => healthy.every((n) => switchedAt.has(n)), 15_000, 'every instance with a live replica agent to fail over');
    } finally {
      process.kill(frozenPid, 'SIGCONT');
    }
    const after = healthy.map((n) => switchedAt.get(n)! - killedAt).sort((a, b) => a - b);
    console.log(`      promotions of ${healthy.length} instances ${after.join(', ')} ms after the node died`);
    expect(after[after.length - 1], 'the last promotion, ms after the node died').to.be.at.most(DOWN_AFTER_MS + 1000);
    for (const name of healthy) {
      const inst = (await fleet.api('GET', `/api/instances/${name}`)).json;
      expect(inst.master?.agent, `${name}'s new master`).to.not.equal('agent1');
    }
  });
});
