import { expect } from 'chai';
import { setTimeout as sleep } from 'node:timers/promises';
import { InstanceStatus, InstanceType, ProcState, ProcType, type Instance, type Proc, type ProcStats } from '../../src/domain/model.js';
import { PingPlan, replicaStatsSayDown, sweepSlot, targetedTurns, SWEEP_EVERY_MS, SWEEP_PINGS_PER_SECOND, TARGETED_PINGS_PER_SECOND, PING_EVERY_MS } from '../../src/scheduler/ping-plan.js';
import { agentSaysAnswering, agentSaysSilent, longestSilentFirst, newHealth, pingSent, Rotation, validReply } from '../../src/scheduler/master-health.js';
import { ReportingAgents, reportLapseMs } from '../../src/scheduler/reporting-agents.js';
import { FailureDetector } from '../../src/scheduler/failure-detector.js';
import type { FleetStore } from '../../src/store/fleet-store.js';
import type { RedisLinks } from '../../src/scheduler/redis-links.js';
import { createLogger } from '../../src/logger.js';

function stats(over: Partial<ProcStats>): ProcStats {
  return { uptime: 1, usedMemory: 0, clients: 0, role: 'slave', replOffset: 0, masterLinkStatus: 'up', lastIoSecondsAgo: 0, updatedAt: '', ...over };
}

function proc(id: string, agent: string, type: ProcType, port: number, over: Partial<ProcStats> = {}): Proc {
  return {
    id: `c1::${id}`, instance: 'c1', nodename: agent, capacity: 64, memUsed: 0, pid: 1, ip: '127.0.0.1', port, state: ProcState.Running,
    type, slaveOf: '', eid: '', sid: agent, msg: '', redisServer: '', redisVersion: '', surge: '',
    stats: type === ProcType.Master ? stats({ role: 'master', masterLinkStatus: null, lastIoSecondsAgo: null }) : stats(over),
  } as Proc;
}

function instance(procs: Proc[]): Instance {
  const master = procs.find((p) => p.type === ProcType.Master);
  return {
    name: 'c1', type: InstanceType.MasterReplica, status: InstanceStatus.Running, capacity: 64, masters: 1, slaves: procs.length - 1, expMasters: 1,
    expSlaves: procs.length - 1, dValue: 1, mname: master?.id ?? '', snames: [], reason: '', placement: 'spread', createdAt: '', epoch: 0, dataLost: '',
    downAfterMs: 1000, failoverTimeoutMs: 0, minReplicasMaxLag: 0, expiresAt: '', deletedAt: '', passwordHash: '', accessKeyHash: '', creator: '',
    maxClients: 0, surges: [], procs,
  } as unknown as Instance;
}

const healthy = (replicaStats: Partial<ProcStats> = {}) => instance([proc('m', 'a1', ProcType.Master, 7000), proc('r1', 'a2', ProcType.Replica, 7001, replicaStats), proc('r2', 'a3', ProcType.Replica, 7002)]);

/** How many of `ticks` ticks PING the master. */
function pingsIn(plan: PingPlan, inst: Instance, h: ReturnType<typeof newHealth>, ticks: number, masters = 1): number {
  let n = 0;
  for (let i = 0; i < ticks; i++) {
    plan.nextTick(masters);
    if (plan.due(inst, inst.procs[0], h)) n++;
  }
  return n;
}

describe('ping plan: who the scheduler PINGs, and how often', () => {
  it('PINGs every master every 200 ms while no agent reports (today\'s behaviour)', () => {
    const inst = healthy();
    const h = newHealth(inst.mname, 'c1', 0);
    pingSent(h, 1);
    validReply(h, 2);
    const plan = new PingPlan(() => false);
    expect(pingsIn(plan, inst, h, 50)).to.equal(50);
    expect(plan.targetedBecause(inst, inst.procs[0], h)).to.equal('agent-not-reporting');
  });

  it('sweeps a master whose agent reports it answering once a second, in a slot fixed by its id', () => {
    const inst = healthy();
    const h = newHealth(inst.mname, 'c1', 0);
    const plan = new PingPlan((agent) => agent === 'a1');
    expect(plan.targetedBecause(inst, inst.procs[0], h), 'a master not PINGed yet').to.equal('first');
    pingSent(h, 1);
    validReply(h, 2);
    expect(plan.targetedBecause(inst, inst.procs[0], h)).to.equal(undefined);
    expect(pingsIn(plan, inst, h, 50)).to.equal(50 / (SWEEP_EVERY_MS / PING_EVERY_MS));
  });

  it('sweeps more slowly past SWEEP_PINGS_PER_SECOND masters, so its PINGs a second stay bounded; targeted PINGs stay at 200 ms', () => {
    const inst = healthy();
    const h = newHealth(inst.mname, 'c1', 0);
    const plan = new PingPlan(() => true);
    pingSent(h, 1);
    validReply(h, 2);
    expect(pingsIn(plan, inst, h, 75, SWEEP_PINGS_PER_SECOND)).to.equal(15, 'up to the budget: once a second');
    expect(pingsIn(plan, inst, h, 75, 2.5 * SWEEP_PINGS_PER_SECOND)).to.equal(5, 'two and a half times the budget: every 3 s');
    expect(plan.sweepMs).to.equal(3000);
    // Over many masters, the PINGs a second of the sweep stay at about the budget.
    const masters = 4000;
    const ids = Array.from({ length: masters }, (_, i) => `inst${i}::${i * 7919}-uuid`);
    const fresh = new PingPlan(() => true);
    const perTick: number[] = [];
    for (let tickNo = 1; tickNo <= 20; tickNo++) {
      fresh.nextTick(masters);
      const ticks = fresh.sweepMs / PING_EVERY_MS;
      perTick.push(ids.filter((id) => sweepSlot(id, ticks) === tickNo % ticks).length);
    }
    expect(fresh.sweepMs).to.equal(4000);
    expect(perTick.reduce((a, b) => a + b, 0), 'each master once in a sweep').to.equal(masters);
    for (const n of perTick) expect(n, 'a tick\'s share of the sweep').to.be.within(0.5 * SWEEP_PINGS_PER_SECOND / 5, 1.5 * SWEEP_PINGS_PER_SECOND / 5);
    agentSaysSilent(h, { silentMs: 300, busy: false }, 10);
    expect(pingsIn(plan, inst, h, 10, 10 * SWEEP_PINGS_PER_SECOND)).to.equal(10, 'a master in trouble: every tick, however many');
  });

  it('past TARGETED_PINGS_PER_SECOND, targeted masters take turns: the silent first, the others on what is left', () => {
    const perTick = (TARGETED_PINGS_PER_SECOND * PING_EVERY_MS) / 1000;
    expect(targetedTurns(0, 0)).to.deep.equal({ silent: 1, other: 1 });
    expect(targetedTurns(10, perTick - 10), 'up to the budget: every tick').to.deep.equal({ silent: 1, other: 1 });
    expect(targetedTurns(0, 33_334), '33,334 agents not reporting').to.deep.equal({ silent: 1, other: Math.ceil(33_334 / perTick) });
    expect(targetedTurns(perTick / 2, 20_000), 'the silent take half: the others share the rest').to.deep.equal({ silent: 1, other: Math.ceil(20_000 / (perTick / 2)) });
    expect(targetedTurns(5 * perTick, 5_000), 'never less than a fifth for the others').to.deep.equal({ silent: 5, other: Math.ceil(5_000 / (perTick / 5)) });
    // 20,000 masters whose agents do not report, one of them silent.
    const inst = healthy();
    const plan = new PingPlan(() => false);
    const masters = Array.from({ length: 20_000 }, (_, i) => {
      const h = newHealth(`c${i}::m-uuid-${i * 7919}`, 'c1', 0);
      pingSent(h, 1);
      validReply(h, 2);
      return { master: { ...inst.procs[0], id: h.procId }, h };
    });
    pingSent(masters[7].h, 3);
    const turn = Math.ceil((20_000 - 1) / (perTick - 1));
    const pinged = new Map<string, number>();
    const sent: number[] = [];
    for (let tick = 0; tick <= 2 * turn; tick++) {
      plan.nextTick(masters.length);
      let n = 0;
      for (const { master, h } of masters) {
        if (!plan.due(inst, master, h)) continue;
        n++;
        if (tick > 0) pinged.set(master.id, (pinged.get(master.id) ?? 0) + 1);
      }
      sent.push(n);
    }
    expect(sent[0], 'the first tick, with no count yet: twice the tick\'s budget (and the silent one), not 20,000 at once').to.equal(2 * perTick + 1);
    expect(plan.targetedMs).to.deep.equal({ silent: PING_EVERY_MS, other: turn * PING_EVERY_MS });
    for (const n of sent.slice(1)) expect(n, 'PINGs a tick').to.be.within(0.5 * perTick, 1.5 * perTick);
    expect(pinged.get(masters[7].master.id), 'the silent master: every tick').to.equal(2 * turn);
    const others = masters.filter((_, i) => i !== 7).map(({ master }) => pinged.get(master.id) ?? 0);
    expect(Math.min(...others), 'each of the others once a turn').to.equal(Math.max(...others));
    expect(others[0]).to.equal(2);
  });

  it('spreads sweeps evenly over the ticks of a second', () => {
    const counts = [0, 0, 0, 0, 0];
    for (let i = 0; i < 5000; i++) counts[sweepSlot(`inst${i}::${i * 7919}-uuid`)]++;
    for (const c of counts) expect(c).to.be.within(800, 1200);
  });

  it('targets (200 ms) a master with a PING unanswered, its agent\'s or its own, or reported busy', () => {
    const inst = healthy();
    const plan = new PingPlan(() => true);
    const h = newHealth(inst.mname, 'c1', 0);
    pingSent(h, 1000);
    expect(plan.targetedBecause(inst, inst.procs[0], h), 'own PING pending').to.equal('silent');
    validReply(h, 1001);
    agentSaysSilent(h, { silentMs: 400, busy: false }, 5000);
    expect(h.pendingSince).to.equal(4600);
    expect(plan.targetedBecause(inst, inst.procs[0], h), 'agent says silent').to.equal('silent');
    expect(agentSaysAnswering(h)).to.equal(true);
    agentSaysSilent(h, { silentMs: 0, busy: true }, 6000);
    expect(plan.targetedBecause(inst, inst.procs[0], h), 'agent says busy').to.equal('silent');
    expect(pingsIn(plan, inst, h, 10)).to.equal(10);
  });

  it('targets a master whose replicas\' stats say they lost it, until they say up again', () => {
    const plan = new PingPlan(() => true);
    const down = healthy({ masterLinkStatus: 'down' });
    const h = newHealth(down.mname, 'c1', 0);
    pingSent(h, 1);
    validReply(h, 2);
    expect(plan.targetedBecause(down, down.procs[0], h)).to.equal('replicas-lost-it');
    expect(plan.targetedBecause(healthy({ lastIoSecondsAgo: 3 }), down.procs[0], h), 'no I/O for 3 s, down-after 1 s').to.equal('replicas-lost-it');
    expect(plan.targetedBecause(healthy({ lastIoSecondsAgo: 2 }), down.procs[0], h), 'a healthy idle link reads up to 2').to.equal(undefined);
  });

  it('counts stats as a replica\'s view only when they are a replica\'s', () => {
    expect(replicaStatsSayDown(undefined, 1000)).to.equal(false);
    expect(replicaStatsSayDown(stats({ role: 'master', masterLinkStatus: null }), 1000)).to.equal(false);
    expect(replicaStatsSayDown(stats({ masterLinkStatus: 'down' }), 1000)).to.equal(true);
    expect(replicaStatsSayDown(stats({ lastIoSecondsAgo: 7 }), 5000)).to.equal(true);
    expect(replicaStatsSayDown(stats({ lastIoSecondsAgo: 6 }), 5000)).to.equal(false);
  });
});

describe('master health: the agent\'s report and the scheduler\'s own PING', () => {
  it('backdates the silence by the duration the agent measured, never later than the scheduler\'s own PING', () => {
    const h = newHealth('m', 'c1', 0);
    pingSent(h, 10_000);
    agentSaysSilent(h, { silentMs: 30, busy: false }, 10_050);
    expect(h.pendingSince, 'own PING is older').to.equal(10_000);
    agentSaysSilent(h, { silentMs: 600, busy: false }, 10_300);
    expect(h.pendingSince).to.equal(9700);
  });

  it('an agent saying "answers" clears its own word, not the scheduler\'s unanswered PING (a partition it cannot see)', () => {
    const h = newHealth('m', 'c1', 0);
    pingSent(h, 10_000);
    agentSaysSilent(h, { silentMs: 900, busy: false }, 10_100);
    expect(agentSaysAnswering(h)).to.equal(false);
    expect(h.pendingSince).to.equal(10_000);
    validReply(h, 10_500);
    expect(h.pendingSince).to.equal(0);
  });
});

describe('reporting agents', () => {
  it('counts an agent as reporting until its last REPORT is older than the lapse', () => {
    let t = 0;
    const agents = new ReportingAgents(3000, () => t);
    expect(agents.reporting('a1')).to.equal(false);
    agents.heard('a1');
    t = 3000;
    expect(agents.reporting('a1')).to.equal(true);
    t = 3001;
    expect(agents.reporting('a1')).to.equal(false);
    agents.heard('a1');
    agents.forget('a1');
    expect(agents.reporting('a1')).to.equal(false);
    expect(reportLapseMs(1000)).to.equal(3000, 'three intervals of the agents\' heartbeat');
    expect(reportLapseMs(3000)).to.equal(9000);
  });
});

/** What every fake RedisLinks here has: links open at once, nothing to drop. */
function linksWith(calls: Pick<RedisLinks, 'call' | 'probe'> & Partial<RedisLinks>): RedisLinks {
  return {
    get: () => undefined,
    has: () => true,
    retain: () => undefined,
    ids: () => [][Symbol.iterator](),
    secretOf: () => 's',
    settled: () => true,
    firstConnect: async () => undefined,
    ...calls,
  } as unknown as RedisLinks;
}

/** Links whose master answers while `answering` and whose replicas say their link is down. */
function fakeLinks(masterPort: number, state: { answering: boolean; pings: number }): RedisLinks {
  const infoDown = 'role:slave\r\nmaster_host:127.0.0.1\r\nmaster_port:7000\r\nmaster_link_status:down\r\nmaster_last_io_seconds_ago:-1\r\nslave_read_repl_offset:100\r\n';
  return linksWith({
    call: async (p: Proc, ...args: string[]) => (args[0] === 'INFO' && p.port !== masterPort ? infoDown : undefined),
    probe: async (p: Proc, ...args: string[]) => {
      if (args[0] !== 'PING') return { reply: 'OK' };
      state.pings++;
      if (state.answering) return { reply: 'PONG' };
      await sleep(300);
      return {};
    },
  });
}

describe('failure detector with agent reports (fake store and links)', function () {
  this.timeout(20_000);
  const log = createLogger('test');
  log.level = 'error';

  function detector(inst: Instance, reporting: boolean, state: { answering: boolean; pings: number }) {
    const store = { instances: () => [inst], instanceNames: () => [inst.name], instance: (n: string) => (n === inst.name ? inst : undefined) } as unknown as FleetStore;
    const requests: string[] = [];
    const events: string[] = [];
    const links = fakeLinks(7000, state);
    const d = new FailureDetector(store, links, log, (_n, id, cause) => requests.push(`${id} ${cause}`), (ch) => events.push(ch), undefined, () => true, () => reporting);
    return { d, requests, events, links };
  }

  it('sends a fifth of the PINGs to a master its agent reports answering', async () => {
    const inst = healthy();
    for (const reporting of [false, true]) {
      const state = { answering: true, pings: 0 };
      const { d } = detector(inst, reporting, state);
      d.start();
      await sleep(2100);
      d.stop();
      if (reporting) expect(state.pings, 'swept: the first PING, then about one a second').to.be.within(1, 5);
      else expect(state.pings, 'targeted: every 200 ms').to.be.within(7, 12);
    }
  });

  type Started = ReturnType<typeof detector> & { inst: Instance; state: { answering: boolean; pings: number } };

  /** A started detector of one healthy instance whose agents report, past its first PING. */
  async function running(body: (s: Started) => Promise<void>): Promise<void> {
    const inst = healthy();
    const state = { answering: true, pings: 0 };
    const started = { ...detector(inst, true, state), inst, state };
    started.d.start();
    try {
      await sleep(300);
      await body(started);
    } finally {
      started.d.stop();
    }
  }

  it('a master whose open link closes is PINGed at once, its silence counted from then', () => running(async ({ d, inst, state, links }) => {
    state.answering = false;
    const before = state.pings;
    links.dropped('c1::r1');
    expect(state.pings, 'a replica\'s link: nothing').to.equal(before);
    const t = Date.now();
    links.dropped(inst.mname);
    expect(state.pings, 'PINGed at once, not at the next tick').to.equal(before + 1);
    expect(d.healthOf(inst.mname)?.ownPendingSince).to.be.within(t, Date.now());
  }));

  it('a report of silence: targeted PINGs at once, subjectively down once confirmed, then the replicas\' check and a failover request', () => running(async ({ d, inst, state, requests, events }) => {
    expect(d.healthOf(inst.mname)?.lastPingSent).to.be.above(0);
    state.answering = false;
    const before = state.pings;
    d.agentReport(inst.mname, { silentMs: 1500, busy: false }, 'a2');
    expect(state.pings, 'a report from another agent is ignored').to.equal(before);
    d.agentReport(inst.mname, { silentMs: 1500, busy: false }, 'a1');
    expect(state.pings, 'the scheduler PINGs it at once').to.equal(before + 1);
    expect(d.healthOf(inst.mname)?.sdown, 'not on the agent\'s word alone').to.equal(false);
    const until = Date.now() + 5000;
    while (requests.length === 0 && Date.now() < until) await sleep(20);
    expect(requests[0]).to.equal(`${inst.mname} master objectively down`);
    expect(events).to.include.members(['+sdown', '+odown']);
  }));

  it('keeps one PING in flight per master: a slow one is not joined by another each tick', async () => {
    const inst = healthy();
    let inFlight = 0;
    let most = 0;
    let pings = 0;
    const slow = linksWith({
      call: async () => undefined,
      probe: async (_p: Proc, ...args: string[]) => {
        if (args[0] !== 'PING') return { reply: 'OK' };
        pings++;
        inFlight++;
        most = Math.max(most, inFlight);
        await sleep(450);
        inFlight--;
        return { reply: 'PONG' };
      },
    });
    const store = { instances: () => [inst], instanceNames: () => [inst.name], instance: (n: string) => (n === inst.name ? inst : undefined) } as unknown as FleetStore;
    const d = new FailureDetector(store, slow, log, () => undefined, () => undefined, undefined, () => true, () => false);
    d.start();
    await sleep(1500);
    d.stop();
    expect(most, 'PINGs in flight at once').to.equal(1);
    expect(pings, 'one after another, each once the last came back').to.be.within(2, 4);
  });

  it('counts no silence while a link makes its first connect: a slow connect is not a silent master', async () => {
    // A restarted scheduler opens a link to every master at once; on a loaded host some connects
    // take longer than down-after. Here the first connect takes 1.5 s; the master answers after.
    const inst = healthy();
    const t0 = Date.now();
    const connected = () => Date.now() - t0 >= 1500;
    const slowConnect = linksWith({
      settled: connected,
      firstConnect: async () => { await sleep(Math.max(0, 1500 - (Date.now() - t0))); },
      call: async () => undefined,
      probe: async (_p: Proc, ...args: string[]) => {
        if (connected()) return { reply: args[0] === 'PING' ? 'PONG' : 'OK' };
        await sleep(400); // a command on a link not ready waits that long for it, then fails
        return connected() ? { reply: 'PONG' } : {};
      },
    });
    const store = { instances: () => [inst], instanceNames: () => [inst.name], instance: (n: string) => (n === inst.name ? inst : undefined) } as unknown as FleetStore;
    const events: string[] = [];
    const requests: string[] = [];
    const d = new FailureDetector(store, slowConnect, log, (name) => requests.push(name), (channel) => events.push(channel), undefined, () => true, () => false);
    d.start();
    try {
      await sleep(2200);
    } finally {
      d.stop();
    }
    expect(events, 'no +sdown for a master whose link was still connecting').to.deep.equal([]);
    expect(requests).to.deep.equal([]);
    expect(d.hasHeard(inst.mname), 'heard once connected').to.equal(true);
  });

  it('a report of 0 clears the agent\'s silence before down-after: no sdown', () => running(async ({ d, inst, requests, events }) => {
    d.agentReport(inst.mname, { silentMs: 300, busy: false });
    expect(d.healthOf(inst.mname)?.agentSilentSince).to.be.above(0);
    d.agentReport(inst.mname, { silentMs: 0, busy: false });
    expect(d.healthOf(inst.mname)?.agentSilentSince).to.equal(0);
    await sleep(1500);
    expect(events).to.deep.equal([]);
    expect(requests).to.deep.equal([]);
  }));
});

describe('replica sampling budget (failure detector)', () => {
  it('samples the masters silent longest first, at most the budget a round', () => {
    const pending = [50, 10, 40, 20, 30].map((since) => ({ since, id: `m${since}` }));
    expect(longestSilentFirst(pending, 2).map((e) => e.id)).to.deep.equal(['m10', 'm20']);
    expect(longestSilentFirst(pending, 5)).to.equal(pending, 'within the budget: all, as they came');
    expect(pending.map((e) => e.since)).to.deep.equal([50, 10, 40, 20, 30], 'the input is left as it was');
  });

  it('asks again for the votes of at most the budget of subjectively down masters a round, taking turns', () => {
    const turns = new Rotation();
    const down = ['a', 'b', 'c', 'd', 'e'];
    expect([1, 2, 3, 4].map(() => turns.next(down, 2).join(''))).to.deep.equal(['ab', 'cd', 'ea', 'bc']);
    expect(new Rotation().next(down, 5)).to.equal(down, 'within the budget: all');
    expect(turns.next(['x'], 2)).to.deep.equal(['x']);
  });
});
