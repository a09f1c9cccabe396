import { expect } from 'chai';
import { setTimeout as sleep } from 'node:timers/promises';
import { LoopLag } from '../../src/scheduler/loop-lag.js';
import { AgentLiveness } from '../../src/scheduler/agent-liveness.js';
import type { AgentEntry, EventSink } from '../../src/scheduler/agent-entry.js';
import { AgentResources } from '../../src/scheduler/agent-resources.js';
import { createLogger } from '../../src/logger.js';
import { OfferBroker } from '../../src/scheduler/broker.js';
import { toResourceList } from '../../src/proto/messages.js';

/** A LoopLag on a clock the test moves: `run` keeps time (a beat every 50 ms), `stall(ms)` makes the next beat `ms` late. */
function fakeLoop(start = 1_000_000): { lag: LoopLag; now: () => number; run: (ms: number) => void; stall: (ms: number) => void } {
  let t = start;
  const lag = new LoopLag(50, 50, 120_000, () => t);
  return {
    lag,
    now: () => t,
    run(ms) {
      for (let left = ms; left > 0; left -= 50) {
        t += Math.min(50, left);
        lag.beat();
      }
    },
    stall(ms) {
      t += 50 + ms;
      lag.beat();
    },
  };
}

const openSink = (): EventSink => ({ send: () => undefined, close: () => undefined, backedUpSince: () => 0 });

function entry(id: string, lastSeen: number, sink?: EventSink): AgentEntry {
  return { id, hostname: id, ip: '127.0.0.1', redisServers: [], held: new AgentResources({ cpus: 1, mem: 100, ports: [] }), sink, lastSeen, answeredAt: lastSeen, waiters: [], refuseUntil: 0, subscribedAt: '' };
}

describe('agent liveness: silence is counted in the scheduler\'s awake time (issue 11)', () => {
  const log = createLogger('test');
  log.silent = true;
  const started: AgentLiveness[] = [];
  const dropped: string[] = [];

  function start(lag: LoopLag, agents: Map<string, AgentEntry>, agentTimeoutMs = 10_000): AgentLiveness {
    dropped.length = 0;
    const liveness = new AgentLiveness(agents, { heartbeatSeconds: 1, agentTimeoutMs }, log, { dropStream: (id) => dropped.push(id), lost: () => undefined }, lag);
    started.push(liveness);
    return liveness;
  }

  afterEach(() => {
    for (const l of started.splice(0)) l.close();
  });

  it('subtracts the scheduler\'s stalls, several small ones as much as one large one, from an agent\'s silence', () => {
    const loop = fakeLoop();
    const a = entry('a', loop.now(), openSink());
    const l = start(loop.lag, new Map([['a', a]]));
    loop.run(1000);
    // Seven stalls of 600 ms: each too short for the old "check ran 750 ms late" rule.
    for (let i = 0; i < 7; i++) {
      loop.stall(600);
      loop.run(100);
    }
    expect(loop.now() - a.lastSeen).to.equal(6250);
    expect(l.silentMs(a, loop.now())).to.equal(2050);
    expect(l.alive(a, loop.now()), 'alive for offers: 2 intervals + 0.5 s of awake time').to.equal(true);
    l.dropSilent(loop.now());
    expect(dropped).to.deep.equal([]);
  });

  it('still drops a stream that was silent for 3 intervals of awake time, and stops offering it after 2.5 s', () => {
    const loop = fakeLoop();
    const a = entry('a', loop.now(), openSink());
    const l = start(loop.lag, new Map([['a', a]]));
    loop.stall(2000);
    loop.run(2400);
    expect(l.alive(a, loop.now())).to.equal(true);
    loop.run(200);
    expect(l.alive(a, loop.now()), 'no launch over a stream silent for 2.6 s awake').to.equal(false);
    l.dropSilent(loop.now());
    expect(dropped).to.deep.equal([]);
    loop.run(450);
    l.dropSilent(loop.now());
    expect(dropped).to.deep.equal(['a']);
  });

  it('counts events left unread by an agent in awake time too', () => {
    const loop = fakeLoop();
    const since = loop.now();
    const a = entry('a', since, { ...openSink(), backedUpSince: () => since });
    const l = start(loop.lag, new Map([['a', a]]));
    loop.stall(2500);
    loop.run(400);
    a.lastSeen = loop.now();
    l.dropSilent(loop.now());
    expect(dropped, 'backed up for 2.95 s, 0.45 s of it awake').to.deep.equal([]);
    loop.run(2700);
    a.lastSeen = loop.now();
    l.dropSilent(loop.now());
    expect(dropped).to.deep.equal(['a']);
  });

  it('writes an agent off after the agent timeout of awake time, and only while the scheduler was mostly awake lately', () => {
    const loop = fakeLoop();
    const gone = entry('gone', loop.now());
    const l = start(loop.lag, new Map([['gone', gone]]), 10_000);
    loop.run(6000);
    loop.stall(3000);
    loop.run(3900);
    expect(l.lostDue(gone, loop.now()), '9.95 s awake').to.equal(false);
    loop.run(200);
    expect(l.lostDue(gone, loop.now()), '10.15 s awake, 3 s of the last 10 s stalled').to.equal(true);

    // A scheduler stalled for most of the last timeout: the agent had no fair chance to return.
    const back = fakeLoop();
    const away = entry('away', back.now());
    const l2 = start(back.lag, new Map([['away', away]]), 10_000);
    back.run(10_500);
    back.stall(6000);
    back.run(500);
    expect(l2.silentMs(away, back.now())).to.equal(11_050);
    expect(l2.lostDue(away, back.now()), '6 of the last 10 s stalled: wait').to.equal(false);
    back.run(3000);
    expect(l2.lostDue(away, back.now()), 'still 6 of the last 10 s').to.equal(false);
    back.run(2000);
    expect(l2.lostDue(away, back.now()), 'awake for over half the timeout again').to.equal(true);
  });

  it('does not wait for a healthy scheduler beyond 3 agent timeouts of silence', () => {
    const loop = fakeLoop();
    const gone = entry('gone', loop.now());
    const l = start(loop.lag, new Map([['gone', gone]]), 4000);
    // A scheduler stalled 80% of the time, for good.
    for (let i = 0; i < 11; i++) {
      loop.stall(800);
      loop.run(200);
    }
    expect(l.silentMs(gone, loop.now())).to.equal(2750);
    expect(l.lostDue(gone, loop.now()), 'silent for 11.55 s, under 3 timeouts').to.equal(false);
    for (let i = 0; i < 13; i++) {
      loop.stall(800);
      loop.run(200);
    }
    expect(loop.now() - gone.lastSeen).to.equal(25_200);
    expect(l.lostDue(gone, loop.now()), 'silent for 25.2 s, 6 s of it awake').to.equal(true);
  });

  it('writes a dead agent off after 3 agent timeouts of wall time, even on a loop stalled nearly all the time', () => {
    const loop = fakeLoop();
    const gone = entry('gone', loop.now());
    const l = start(loop.lag, new Map([['gone', gone]]), 4000);
    // Stalled 95% of the time: in 12.4 s the loop is awake for only ~0.6 s.
    for (let i = 0; i < 12; i++) {
      loop.stall(950);
      loop.run(50);
    }
    expect(l.silentMs(gone, loop.now())).to.be.below(4000);
    expect(l.lostDue(gone, loop.now()), 'silent for 12.6 s of wall time, under a second of it awake').to.equal(true);
  });
});

describe('heartbeats: each agent its own every interval, spread over the interval (issue 11)', () => {
  it('sends every agent one heartbeat a second, a tenth of the agents in each 100 ms', async () => {
    const log = createLogger('test');
    log.silent = true;
    const agents = new Map<string, AgentEntry>();
    const sentAt = new Map<string, number[]>();
    const t0 = Date.now();
    for (let i = 0; i < 200; i++) {
      const id = `agent${i}`;
      sentAt.set(id, []);
      agents.set(id, entry(id, t0, { ...openSink(), send: () => { sentAt.get(id)!.push(Date.now() - t0); } }));
    }
    const liveness = new AgentLiveness(agents, { heartbeatSeconds: 1, agentTimeoutMs: 60_000 }, log, { dropStream: () => undefined, lost: () => undefined }, new LoopLag());
    try {
      await sleep(1050);
    } finally {
      liveness.close();
    }
    const counts = [...sentAt.values()].map((times) => times.length);
    expect(Math.min(...counts), 'every agent got its heartbeat within the interval').to.be.at.least(1);
    expect(Math.max(...counts), 'and one only').to.be.at.most(2);
    // Agents heartbeated in the same 100 ms: about 20 of 200 each time, never all at once.
    const bySlot = new Map<number, number>();
    for (const times of sentAt.values()) for (const t of times.slice(0, 1)) bySlot.set(Math.floor(t / 100), (bySlot.get(Math.floor(t / 100)) ?? 0) + 1);
    expect(Math.max(...bySlot.values()), `per 100 ms: ${[...bySlot.values()].join(' ')}`).to.be.below(60);
  });
});

describe('agent write-off: counted from the agent\'s last call, not from a SUBSCRIBE alone (issue 11)', () => {
  it('a stale SUBSCRIBE whose stream dies unread does not put off the write-off', async () => {
    const log = createLogger('test');
    log.silent = true;
    const broker = new OfferBroker({ heartbeatSeconds: 1, agentTimeoutMs: 1000, frameworkId: 'fw' }, log);
    let lostAt = 0;
    broker.attach({ resourceOffers: () => undefined, statusUpdate: async () => undefined, agentSubscribed: () => undefined, agentLost: () => { lostAt = Date.now(); }, procAgent: () => undefined, holdsProcs: () => false });
    const grant = { session: 's', proof: new Uint8Array() };
    const info = { id: { value: 'a1' }, hostname: 'node1', ip: '127.0.0.1', resources: toResourceList({ cpus: 1, mem: 100, ports: [{ begin: 7000, end: 7001 }] }) };
    try {
      const first = openSink();
      broker.subscribe(info, '127.0.0.1', [], first, grant);
      broker.heardFrom('a1', first);
      const t0 = Date.now();
      broker.disconnected('a1', first);
      await sleep(900);
      // A SUBSCRIBE that waited in a full accept queue: its agent gave up on it; nobody reads the stream.
      const stale = openSink();
      broker.subscribe(info, '127.0.0.1', [], stale, grant);
      broker.disconnected('a1', stale);
      while (lostAt === 0 && Date.now() - t0 < 4000) await sleep(20);
      expect(lostAt, 'written off').to.be.above(0);
      expect(lostAt - t0, 'one agent timeout after its last call (1,900 ms if the SUBSCRIBE restarted the clock)').to.be.below(1600);
    } finally {
      broker.close();
    }
  });
});

describe('event-loop stall probe (LoopLag): sharing and awake time', () => {
  it('sums only what falls in the window, however many stalls it remembers', () => {
    const loop = fakeLoop(0);
    for (let i = 0; i < 400; i++) {
      loop.stall(100);
      loop.run(100);
    }
    const now = loop.now();
    expect(now).to.equal(100_000);
    expect(loop.lag.stalledWithin(now - 1000, now)).to.equal(400);
    expect(loop.lag.awakeWithin(now - 1000, now)).to.equal(600);
    expect(loop.lag.stalledWithin(0, now)).to.equal(40_000);
  });

  it('runs while any of its users runs, and a stopped one counts no stall under way', () => {
    const lag = new LoopLag(20, 40);
    lag.start();
    lag.start();
    lag.stop();
    const from = Date.now();
    const until = from + 200;
    while (Date.now() < until) { /* block the loop */ }
    expect(lag.stalledWithin(from), 'still running for its other user').to.be.within(120, 220);
    lag.stop();
    const stoppedAt = Date.now();
    const later = stoppedAt + 150;
    while (Date.now() < later) { /* no one measures now */ }
    expect(lag.stalledWithin(stoppedAt)).to.equal(0);
  });

  it('afterAwake fires after its time of awake loop: a stall pushes it back', async () => {
    const lag = new LoopLag(20, 40);
    lag.start();
    try {
      const started = Date.now();
      let firedAt = 0;
      lag.afterAwake(300, () => { firedAt = Date.now(); });
      await sleep(100);
      const until = Date.now() + 400;
      while (Date.now() < until) { /* block the loop */ }
      await sleep(500);
      expect(firedAt - started, 'about 300 ms awake + 400 ms stalled').to.be.within(650, 900);
      let cancelled = true;
      const cancel = lag.afterAwake(50, () => { cancelled = false; });
      cancel();
      await sleep(120);
      expect(cancelled).to.equal(true);
    } finally {
      lag.stop();
    }
  });
});
