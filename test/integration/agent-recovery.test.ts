import { expect } from 'chai';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { LocalFleet, pidAlive } from '../harness/local-fleet.js';
import { AckedWriter } from '../harness/acked-writer.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
type Json = any;

/**
 * Issue 9 part 8 (Mesos-style agent recovery): an agent killed with `kill -9` and restarted with
 * the same id below --agent-timeout takes its redis-servers back instead of killing them as
 * orphans. No failover, no restart, no acknowledged write lost; and a master failed over while
 * the agent was away is killed, never adopted.
 *
 * Layout: two agents and ten 1+1 instances; rec0..rec4 have their master on agent1, rec5..rec9
 * their replica, so agent1 holds 5 masters and 5 replicas whatever placement chose (an instance
 * whose master landed elsewhere is flipped by killing that master before the test starts).
 */
const AGENT_TIMEOUT_S = 15;
const NAMES = Array.from({ length: 10 }, (_, i) => `rec${i}`);
const AGENT_SPEC = { mem: 2048, ports: 30, args: ['--keep-procs-on-stop'] };
const home = (name: string) => (Number(name.slice(3)) < 5 ? 'agent1' : 'agent2');
const other = (agent: string) => (agent === 'agent1' ? 'agent2' : 'agent1');

describe('agent recovery: an agent restart keeps its redis-servers (issue 9 part 8)', function () {
  this.timeout(300_000);
  let fleet: LocalFleet;
  const passwords = new Map<string, string>();
  const switches: string[] = [];
  let events: Redis | undefined;
  const writers: AckedWriter[] = [];

  const inst = async (name: string): Promise<Json> => (await fleet.api('GET', `/api/instances/${name}`)).json;
  const live = (i: Json) => i.procs.filter((p: Json) => ['STAGING', 'STARTING', 'RUNNING'].includes(p.state));

  /** The instance, once RUNNING with its master on `masterOn` and its one replica on the other agent. */
  function whole(name: string, masterOn = home(name)): Promise<Json> {
    return fleet.waitFor(async () => {
      const i = await inst(name);
      const ok = i.status === 'RUNNING' && i.master?.agent === masterOn && i.slaves.length === 1 && i.slaves[0].agent === other(masterOn) && live(i).length === 2;
      return ok ? i : undefined;
    }, 60_000, `${name} to be whole with its master on ${masterOn}`);
  }

  /** Every proc's pid by proc id, over all instances. */
  const pidsOf = (insts: Json[]) => new Map<string, number>(insts.flatMap((i) => i.procs.map((p: Json) => [p.id, p.pid])));

  async function killAgent1(): Promise<number> {
    await fleet.stopAgent('agent1', 'SIGKILL');
    return Date.now();
  }

  /** Restarts agent1 with the same flags (and ports); resolves with where its new log lines start. */
  async function restartAgent1(): Promise<number> {
    const logFrom = fleet.log('agent1').length;
    await fleet.startAgent('agent1', { ...AGENT_SPEC, firstPort: fleet.agentFirstPort.get('agent1') });
    await fleet.waitFor(async () => (await fleet.api('GET', '/api/agents')).json.some((a: Json) => a.id === 'agent1' && a.connected), 30_000, 'agent1 to subscribe again');
    return logFrom;
  }

  /** The agent's log lines (JSON) written since `from` (its log file is appended to across restarts). */
  const agentLog = (from: number): Json[] => fleet.log('agent1').slice(from).split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));

  const checkpointPath = () => join(fleet.dir, 'agents', 'agent1', 'checkpoint.json');
  const checkpointed = (): Json[] => JSON.parse(readFileSync(checkpointPath(), 'utf8')).procs;

  before(async () => {
    fleet = await LocalFleet.start({ agents: 2, agent: AGENT_SPEC, schedulerArgs: ['--agent-timeout', String(AGENT_TIMEOUT_S)] });
    for (const name of NAMES) {
      const res = await fleet.api('POST', '/api/instances', { name, capacityMb: 32, replicas: 1, downAfterMs: 1000 });
      expect(res.status, res.text).to.equal(202);
      passwords.set(name, res.json.password);
      await fleet.waitForStatus(name, 'RUNNING', 60_000);
    }
    // Flip each instance whose master is not where the layout wants it: kill that master.
    for (const name of NAMES) {
      const i = await inst(name);
      if (i.master.agent !== home(name)) process.kill(i.master.pid, 'SIGKILL');
    }
    await Promise.all(NAMES.map((n) => whole(n)));
    events = new Redis({ port: fleet.sentinelPort });
    events.on('message', (_channel: string, message: string) => switches.push(message));
    await events.subscribe('+switch-master');
  });

  afterEach(async () => {
    await Promise.all(writers.splice(0).map((w) => w.stop()));
  });

  after(async () => {
    events?.disconnect();
    await fleet?.stop();
  });

  it('kill -9 of an agent holding 5 masters and 5 replicas, restarted within 5 s: no failover, every pid unchanged, no acknowledged write lost, stats keep coming, SHUTDOWN still stops an adopted proc', async () => {
    for (const name of ['rec0', 'rec1', 'rec5']) {
      const w = new AckedWriter(fleet.sentinelPort, name, passwords.get(name)!);
      writers.push(w);
      w.start(`${name}:`);
    }
    await Promise.all(writers.map((w) => w.waitForAcks(50)));
    const before = await Promise.all(NAMES.map((n) => whole(n)));
    const onAgent1 = before.flatMap((i) => i.procs.filter((p: Json) => p.agent === 'agent1'));
    expect(onAgent1.filter((p: Json) => p.role === 'master')).to.have.length(5);
    expect(onAgent1.filter((p: Json) => p.role === 'replica')).to.have.length(5);
    expect(checkpointed().map((c: Json) => c.procId).sort()).to.deep.equal(onAgent1.map((p: Json) => p.id).sort());

    const killedAt = await killAgent1();
    // The redis-servers outlive their agent and keep taking acknowledged writes.
    for (const p of onAgent1) expect(pidAlive(p.pid), `${p.id} survives its agent`).to.equal(true);
    await Promise.all(writers.map((w) => w.waitForAcks(20)));
    await sleep(Math.max(0, 1500 - (Date.now() - killedAt)));
    const logFrom = await restartAgent1();
    const restartedAt = Date.now();
    // The scenario (not a speed goal): the agent came back well within --agent-timeout.
    expect(restartedAt - killedAt, 'agent1 restarted within the agent timeout').to.be.lessThan(AGENT_TIMEOUT_S * 1000);

    // Past the agent timeout since the kill: nothing was written off or replaced meanwhile.
    await sleep(Math.max(0, (AGENT_TIMEOUT_S + 2) * 1000 - (Date.now() - killedAt)));
    const after = await Promise.all(NAMES.map((n) => whole(n)));
    after.forEach((i, k) => {
      expect(i.epoch, `${i.name}: no failover`).to.equal(before[k].epoch);
      expect(i.procs.map((p: Json) => `${p.id} ${p.state}`).sort(), `${i.name}: the same procs, all RUNNING`).to.deep.equal(before[k].procs.map((p: Json) => `${p.id} RUNNING`).sort());
    });
    expect(pidsOf(after), 'every pid unchanged').to.deep.equal(pidsOf(before));
    for (const p of onAgent1) expect(pidAlive(p.pid), `${p.id} still runs`).to.equal(true);
    expect(switches, 'no +switch-master').to.deep.equal([]);
    const lines = agentLog(logFrom);
    expect(lines.filter((l) => l.message === 'redis-server adopted').map((l) => l.proc).sort()).to.deep.equal(onAgent1.map((p: Json) => p.id).sort());
    expect(lines.filter((l) => /orphan|killing a redis-server/.test(l.message))).to.deep.equal([]);
    const at = (message: string) => Date.parse(lines.find((l) => l.message === message)?.timestamp);
    console.log(`      recovery of 10 procs: ${at('recovery done') - at('recovering the procs of an earlier life of this agent')} ms; kill -9 to re-subscribed: ${restartedAt - killedAt} ms; longest write gap: ${writers.map((w) => `${w.name} ${w.maxGapMs} ms`).join(', ')}`);

    // Supervised again: Stats written by the new agent for every adopted proc.
    await fleet.waitFor(async () => {
      const now = await Promise.all(NAMES.map(inst));
      const procs = now.flatMap((i) => i.procs.filter((p: Json) => p.agent === 'agent1'));
      return procs.length === 10 && procs.every((p: Json) => p.stats && Date.parse(p.stats.updatedAt) > restartedAt);
    }, 30_000, 'stats of every adopted proc written after the restart');

    // The checkpoint is rewritten by the new agent: owner-only, the same ten procs and pids.
    expect(statSync(checkpointPath()).mode & 0o777).to.equal(0o600);
    expect(new Map(checkpointed().map((c: Json) => [c.procId, c.pid]))).to.deep.equal(new Map(onAgent1.map((p: Json) => [p.id, p.pid])));

    await Promise.all(writers.map((w) => w.waitForAcks(20)));
    for (const w of writers.splice(0)) {
      await w.stop();
      const master = (await inst(w.name)).master;
      expect(await w.missingOn(master, passwords.get(w.name)!), `${w.name}: acknowledged writes lost (${w.acked.size} acknowledged)`).to.deep.equal([]);
    }

    // The Msg watch of an adopted proc works: deleting the instance stops its adopted master.
    const doomed = after.find((i) => i.name === 'rec2');
    const res = await fleet.api('DELETE', '/api/instances/rec2');
    expect(res.status, res.text).to.be.oneOf([200, 202]);
    await fleet.waitFor(() => doomed.procs.every((p: Json) => !pidAlive(p.pid)), 20_000, 'rec2\'s redis-servers, the adopted master too, to stop');
    await fleet.waitFor(() => checkpointed().every((c: Json) => c.instance !== 'rec2'), 10_000, 'rec2 to leave the checkpoint');
  });

  it('a master failed over while its agent was away is killed when the agent comes back; the other procs are adopted', async () => {
    const target = 'rec3';
    const writer = new AckedWriter(fleet.sentinelPort, target, passwords.get(target)!);
    writers.push(writer);
    writer.start(`${target}:`);
    await writer.waitForAcks(50);
    const names = NAMES.filter((n) => n !== 'rec2');
    const before = await Promise.all(names.map((n) => whole(n)));
    const oldMaster = before.find((i) => i.name === target).master;
    expect(oldMaster.agent).to.equal('agent1');
    const switchesBefore = switches.length;

    await killAgent1();
    // Frozen, so that it is failed over while still alive; woken before the agent returns.
    process.kill(oldMaster.pid, 'SIGSTOP');
    const failedOver = await fleet.waitFor(async () => {
      const i = await inst(target);
      return i.epoch > before.find((b) => b.name === target).epoch && i.master?.agent === 'agent2' ? i : undefined;
    }, 9000, `${target} to fail over to agent2 while agent1 is away`);
    process.kill(oldMaster.pid, 'SIGCONT');
    expect(pidAlive(oldMaster.pid), 'the old master is alive when its agent returns').to.equal(true);
    const logFrom = await restartAgent1();

    await fleet.waitFor(() => !pidAlive(oldMaster.pid), 15_000, 'the failed-over master to be killed');
    const killed = agentLog(logFrom).filter((l) => l.message === 'killing a redis-server this agent no longer owns');
    expect(killed.map((l) => l.proc)).to.deep.equal([oldMaster.id]);
    expect(killed[0].reason).to.match(/failed over|shut down/);

    const adoptedIds = before.filter((i) => i.name !== target).flatMap((i) => i.procs.filter((p: Json) => p.agent === 'agent1').map((p: Json) => p.id));
    expect(agentLog(logFrom).filter((l) => l.message === 'redis-server adopted').map((l) => l.proc).sort()).to.include.members(adoptedIds);
    // The others: no failover, the same pids; the failed-over instance is whole again (a new replica on agent1).
    const after = await Promise.all(names.map((n) => whole(n, n === target ? 'agent2' : home(n))));
    after.forEach((i, k) => {
      if (i.name === target) {
        expect(i.epoch).to.equal(failedOver.epoch);
        return;
      }
      expect(i.epoch, `${i.name}: no failover`).to.equal(before[k].epoch);
      expect(new Map(i.procs.map((p: Json) => [p.id, p.pid])), `${i.name}: pids unchanged`).to.deep.equal(new Map(before[k].procs.map((p: Json) => [p.id, p.pid])));
    });
    expect(switches.slice(switchesBefore).map((s) => s.split(' ')[0])).to.deep.equal([target]);

    await writer.waitForAcks(20, 30_000);
    writers.splice(0);
    await writer.stop();
    const master = (await inst(target)).master;
    expect(await writer.missingOn(master, passwords.get(target)!), `${target}: acknowledged writes lost (${writer.acked.size} acknowledged)`).to.deep.equal([]);
  });

  it('an agent upgrade: SIGTERM with --keep-procs-on-stop and a restart keep every redis-server, with no failover', async () => {
    const names = NAMES.filter((n) => n !== 'rec2');
    const writer = new AckedWriter(fleet.sentinelPort, 'rec4', passwords.get('rec4')!);
    writers.push(writer);
    writer.start('rec4-upgrade:');
    await writer.waitForAcks(50);
    const before = await Promise.all(names.map((n) => whole(n, n === 'rec3' ? 'agent2' : home(n))));
    const onAgent1 = before.flatMap((i) => i.procs.filter((p: Json) => p.agent === 'agent1'));
    const switchesBefore = switches.length;
    await fleet.stopAgent('agent1', 'SIGTERM');
    for (const p of onAgent1) expect(pidAlive(p.pid), `${p.id} left running by the stopping agent`).to.equal(true);
    expect(checkpointed().map((c: Json) => c.procId).sort()).to.deep.equal(onAgent1.map((p: Json) => p.id).sort());
    const logFrom = await restartAgent1();
    expect(agentLog(logFrom).filter((l) => l.message === 'redis-server adopted')).to.have.length(onAgent1.length);
    await writer.waitForAcks(20);
    const after = await Promise.all(names.map((n) => whole(n, n === 'rec3' ? 'agent2' : home(n))));
    expect(after.map((i) => i.epoch), 'no failover').to.deep.equal(before.map((i) => i.epoch));
    expect(pidsOf(after), 'every pid unchanged').to.deep.equal(pidsOf(before));
    expect(switches.length, 'no +switch-master').to.equal(switchesBefore);
    writers.splice(0);
    await writer.stop();
    expect(await writer.missingOn((await inst('rec4')).master, passwords.get('rec4')!)).to.deep.equal([]);
  });

  it('an adopted redis-server that dies is seen by the agent (no child exit event: the pid is polled), reported FAILED and replaced', async () => {
    const before = await whole('rec6');
    const replica = before.slaves[0];
    expect(replica.agent).to.equal('agent1');
    const logFrom = fleet.log('agent1').length;
    process.kill(replica.pid, 'SIGKILL');
    await fleet.waitFor(() => agentLog(logFrom).some((l) => l.message === 'task status' && l.proc === replica.id && l.state === 'TASK_FAILED'), 10_000, 'the agent to report the adopted replica FAILED');
    const after = await fleet.waitFor(async () => {
      const i = await whole('rec6');
      return i.slaves[0].id !== replica.id ? i : undefined;
    }, 60_000, 'a replacement replica');
    expect(after.master.pid).to.equal(before.master.pid);
    expect(after.epoch).to.equal(before.epoch);
    await fleet.waitFor(() => !checkpointed().some((c: Json) => c.procId === replica.id) && checkpointed().some((c: Json) => c.procId === after.slaves[0].id), 10_000, 'the checkpoint to follow');
  });
});
