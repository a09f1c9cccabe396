import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { LocalFleet, pidAlive } from '../harness/local-fleet.js';
import { TestNetwork } from '../harness/netns.js';
import { setTimeout as sleep } from 'node:timers/promises';

const ADMIN = 'executor-partition-admin-token-0123';

describe('executor: a cut-off agent and its SHUTDOWN (test host in a network namespace)', function () {
  this.timeout(90_000);
  let net: TestNetwork | undefined;
  let fleet: LocalFleet | undefined;

  before(async () => {
    net = TestNetwork.create();
    fleet = await LocalFleet.start({ agents: 0, adminToken: ADMIN, network: net, schedulerArgs: ['--api-token', ADMIN, '--agent-timeout', '60'] });
    await fleet.startAgent('h1', { host: net.addHost('h1') });
    await fleet.waitFor(async () => (await fleet!.api('GET', '/healthz')).json.agents === 1, 15_000, 'the agent on its test host');
  });

  after(async () => {
    await fleet?.stop();
    net?.destroy();
  });

  it('carries out a SHUTDOWN written during a 15 s cut within 1 s of the heal', async () => {
    const f = fleet!;
    expect((await f.api('POST', '/v1/CREATE/cut1/64/1/0', undefined, { Authorization: `Bearer ${ADMIN}` })).status).to.equal(201);
    const inst = await f.waitForStatus('cut1', 'RUNNING');
    const proc = inst.procs[0] as { id: string; port: number };
    const pid = f.redisPids().find((p) => readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(`:${proc.port}`));
    expect(pid, 'the master\'s redis-server').to.be.a('number');

    const cutAt = Date.now();
    net!.partition('h1');
    // The scheduler's side of a failover decision, written while the agent cannot hear it. Early
    // in the cut, so that TCP's retransmission back-off has grown long by the heal. (The agent
    // timeout is raised so that only the agent's own etcd link is under test.)
    await sleep(2000);
    f.etcdctl('put', `/MrRedis/Instances/cut1/Procs/${proc.id}/Msg`, 'SHUTDOWN');
    await sleep(Math.max(0, cutAt + 15_000 - Date.now()));
    expect(pidAlive(pid!), 'still running while cut off').to.equal(true);

    const healAt = Date.now();
    net!.heal('h1');
    await f.waitFor(() => !pidAlive(pid!), 10_000, 'the SHUTDOWN to be carried out');
    const goneMs = Date.now() - healAt;
    // When the agent saw the message: its own log line's timestamp (same clock, same machine).
    const seen = f.log('h1').split('\n').filter((l) => l.includes('"message received"') && l.includes('SHUTDOWN') && l.includes(proc.id));
    expect(seen, 'the agent logged the SHUTDOWN it received').to.have.length.greaterThan(0);
    const seenMs = Date.parse(JSON.parse(seen[0]).timestamp as string) - healAt;
    console.log(`      SHUTDOWN seen by the agent ${seenMs} ms after the heal, the old master gone after ${goneMs} ms`);
    expect(seenMs, 'ms from the heal until the agent saw its SHUTDOWN').to.be.below(1000);
    expect(goneMs, 'ms from the heal until the old master was gone').to.be.below(2000);
  });
});
