import { expect } from 'chai';
import { setTimeout as sleep } from 'node:timers/promises';
import { LocalFleet } from '../harness/local-fleet.js';
import { SchedulerProcess } from '../../src/cli/scheduler-process.js';
import { loadFleetKey } from '../../src/store/secrets.js';

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Holds this process's event loop: nothing else runs meanwhile (timers, sockets, etcd). */
function busy(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) { /* the scheduler's loop is stuck here */ }
}

/**
 * Issue 11: a scheduler whose own event loop stalls (a create burst on a starved host held it
 * 1-2 s at a time) must not take its agents for dead: their silence during the stalls is not
 * theirs. The stalls must be the scheduler's own, so the scheduler runs inside this test process,
 * on the fleet's etcd and ports, and the test blocks its loop; the agents are real child processes.
 */
describe('agent liveness: the scheduler\'s own stalls cost no agent its stream or its procs', function () {
  this.timeout(120_000);
  let fleet: LocalFleet;

  before(async () => {
    fleet = await LocalFleet.start({ agents: 3, schedulerArgs: ['--agent-timeout', '3'] });
  });

  after(async () => {
    await fleet?.stop();
  });

  it('a stall of 3.5 s, 12 stalls of 600 ms (7.6 s, 3 s agent timeout), and stalls just as slow agents answer: no stream dropped, no agent lost, no proc written off', async () => {
    expect((await fleet.api('POST', '/api/instances', { name: 'steady', capacityMb: 16, replicas: 2 })).status).to.equal(202);
    const before = await fleet.waitForStatus('steady', 'RUNNING');
    await fleet.killScheduler('SIGTERM');
    const previous = process.env.REDFLEET_LOG_LEVEL;
    process.env.REDFLEET_LOG_LEVEL = 'error';
    const scheduler = new SchedulerProcess({
      etcd: fleet.etcd.url, prefix: '/MrRedis', apiHost: '127.0.0.1', apiPort: fleet.apiPort, sentinelHost: '127.0.0.1',
      sentinelPort: fleet.sentinelPort, id: 'in-test', fleetKey: loadFleetKey(fleet.fleetKeyPath, false).key, agentTimeoutMs: 3000,
      // The leader's lease is renewed from this same loop: a longer one than the default 5 s, so
      // that the test's 3.5 s stall does not cost the leadership (another test's subject).
      leaderTtlSeconds: 20,
    });
    try {
      await scheduler.start();
      await fleet.waitFor(async () => (await fleet.api('GET', '/healthz')).json.agents === 3, 20_000, 'the agents to follow the in-test scheduler');
      await fleet.waitFor(async () => (await fleet.api('GET', '/api/instances/steady')).json.status === 'RUNNING', 20_000, 'steady to run under the in-test scheduler');
      await sleep(1500);
      const agentsBefore = (await fleet.api('GET', '/api/agents')).json as Json[];
      const inner = scheduler.scheduler as unknown as { broker: Json; framework: Json };
      const drops: string[] = [];
      const lost: string[] = [];
      const dropStream = inner.broker.dropStream.bind(inner.broker);
      inner.broker.dropStream = (agentId: string, why: string) => { drops.push(`${agentId}: ${why}`); dropStream(agentId, why); };
      const agentLost = inner.framework.agentLost.bind(inner.framework);
      inner.framework.agentLost = (agentId: string, tasks: string[]) => { lost.push(agentId); agentLost(agentId, tasks); };

      // One stall longer than the agents' old 3-interval watchdog and the scheduler's 3 s silence
      // limit (but within the agents' 5 intervals, counted from the heartbeat before it).
      busy(3500);
      await sleep(300);
      // Then many stalls, each too short for the old "the silence check ran 750 ms late" rule,
      // with just enough room between them to read what waits in the sockets: 7.6 s in all, more
      // than the 3 s silence limit and the 3 s agent timeout together.
      for (let i = 0; i < 12; i++) {
        busy(600);
        await sleep(15);
      }
      await sleep(2000);

      // Agents that are slow themselves (stopped for 1.8 s, as a starved host does), whose answers
      // then wait 0.7 s in the scheduler's sockets behind a stall: their own silence, at most 1 s
      // since their last heartbeat answer (one a second, each agent in its own slot) + 1.8 s, is
      // within the 3 s limit, and the stall is not theirs (the old rule, which forgave only a
      // silence check 0.75 s late, counted it and dropped them).
      const entries = (): Json[] => [...inner.broker.agentsById.values()];
      for (let round = 0; round < 2; round++) {
        // Every agent's last answer at least 0.3 s old: the slots are a second apart at most.
        await fleet.waitFor(() => entries().every((e) => Date.now() - e.lastSeen >= 300), 10_000, 'the agents\' last answer to be 0.3 s old');
        for (const child of fleet.agents.values()) child.kill('SIGSTOP');
        await sleep(1800);
        for (const child of fleet.agents.values()) child.kill('SIGCONT');
        busy(700);
        await sleep(2000);
      }

      expect(drops, 'agent streams dropped').to.deep.equal([]);
      expect(lost, 'agents written off').to.deep.equal([]);
      const agentsAfter = (await fleet.api('GET', '/api/agents')).json as Json[];
      const sessions = (list: Json[]) => list.map((a) => `${a.id} ${a.connected} ${a.subscribedAt}`).sort();
      expect(sessions(agentsAfter), 'every agent still on the stream it had (none resubscribed)').to.deep.equal(sessions(agentsBefore));
      const after = (await fleet.api('GET', '/api/instances/steady')).json;
      expect(after.status).to.equal('RUNNING');
      expect(after.epoch, 'no failover').to.equal(before.epoch);
      expect(after.procs.map((p: Json) => `${p.id} ${p.state}`).sort()).to.deep.equal(before.procs.map((p: Json) => `${p.id} ${p.state}`).sort());
    } finally {
      for (const child of fleet.agents.values()) child.kill('SIGCONT');
      await scheduler.stop();
      if (previous === undefined) delete process.env.REDFLEET_LOG_LEVEL;
      else process.env.REDFLEET_LOG_LEVEL = previous;
    }
  });
});
