import { expect } from 'chai';
import { LocalFleet } from '../harness/local-fleet.js';
import { SchedulerProcess } from '../../src/cli/scheduler-process.js';
import { loadFleetKey } from '../../src/store/secrets.js';

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

/*
 * A scheduler that loses its term while a job of that term is stuck (waiting on etcd, or on an
 * offer that will never come) must still campaign again. Seen at 1,000 simulated agents (issue
 * 11): the lease lapsed on a starved host, and the scheduler stayed a standby for good, with no
 * log line, because it waited for the lost term's jobs before it campaigned again.
 */
describe('leadership: a lost term\'s stuck job does not keep the scheduler out of the next election', function () {
  this.timeout(60_000);
  let fleet: LocalFleet;

  before(async () => {
    fleet = await LocalFleet.start({ agents: 0 });
    await fleet.killScheduler('SIGTERM');
  });

  after(async () => {
    await fleet?.stop();
  });

  it('leads again within a few seconds of losing its lease, though the old term\'s jobs never finish', async () => {
    const previous = process.env.REDFLEET_LOG_LEVEL;
    process.env.REDFLEET_LOG_LEVEL = 'error';
    const sp = new SchedulerProcess({
      etcd: fleet.etcd.url, prefix: '/MrRedis', apiHost: '127.0.0.1', apiPort: fleet.apiPort, sentinelHost: '127.0.0.1',
      sentinelPort: fleet.sentinelPort, id: 'in-test', fleetKey: loadFleetKey(fleet.fleetKeyPath, false).key, leaderTtlSeconds: 2,
      // The lost term's jobs are waited for 1 s here (5 s by default): the wait is bounded either way.
      lastTermWaitMs: 1000,
    });
    const inner = sp.scheduler as unknown as { leading: boolean; term?: object; framework?: { stop(): Promise<void> } };
    try {
      await sp.start();
      await fleet.waitFor(() => inner.leading, 20_000, 'the in-test scheduler to lead');
      const firstTerm = inner.term;
      // A job of this term that never ends.
      inner.framework!.stop = () => new Promise<void>(() => undefined);
      // The term's lease is gone (as when keep-alives miss it on a starved host).
      const leases = fleet.etcdctl('lease', 'list').split('\n').map((l) => l.trim()).filter((l) => /^[0-9a-f]+$/.test(l));
      expect(leases.length).to.be.greaterThan(0);
      for (const id of leases) fleet.etcdctl('lease', 'revoke', id);
      await fleet.waitFor(() => !inner.leading, 10_000, 'the term to be lost');
      const lostAt = Date.now();
      await fleet.waitFor(() => inner.leading && inner.term !== firstTerm, 20_000, 'a new term');
      expect(Date.now() - lostAt, 'the stuck job held the campaign up only for the bounded wait').to.be.below(10_000);
      const health = (await fleet.api('GET', '/healthz')).json as Json;
      expect(health.leader).to.equal(true);
      expect((await fleet.api('POST', '/api/instances', { name: 'after-regain', capacityMb: 16, replicas: 0 })).status, 'writes are taken again').to.equal(202);
    } finally {
      await sp.stop();
      if (previous === undefined) delete process.env.REDFLEET_LOG_LEVEL;
      else process.env.REDFLEET_LOG_LEVEL = previous;
    }
  });
});
