import { expect } from 'chai';
import { AgentResources, PORT_COOLDOWN_MS, type HeldTask } from '../../src/scheduler/agent-resources.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { pb, subtractPorts, toResourceList, type Resources } from '../../src/proto/messages.js';
import { OfferBroker, type EventSink } from '../../src/scheduler/broker.js';
import type { Offer } from '../../src/scheduler/offers.js';
import { createLogger } from '../../src/logger.js';

const task = (port: number, mem = 100, cpus = 0.1): HeldTask => ({ resources: { cpus, mem, ports: [{ begin: port, end: port }] } });
const total = (): Resources => ({ cpus: 2, mem: 1000, ports: [{ begin: 7000, end: 7009 }] });

/** What the broker computed before the index: every task's holdings subtracted from the total, each time. */
function recomputed(t: Resources, tasks: Map<string, HeldTask>, cooling: Map<number, number>, now: number): Resources {
  let cpus = t.cpus;
  let mem = t.mem;
  const taken: number[] = [];
  for (const x of tasks.values()) {
    cpus -= x.resources.cpus;
    mem -= x.resources.mem;
    for (const r of x.resources.ports) for (let p = r.begin; p <= r.end; p++) taken.push(p);
  }
  const free = subtractPorts(t.ports, taken);
  const rested = subtractPorts(free, [...cooling].filter(([, at]) => now - at <= PORT_COOLDOWN_MS).map(([p]) => p));
  return { cpus: Math.max(0, Math.round(cpus * 1000) / 1000), mem: Math.max(0, mem), ports: rested.length > 0 ? rested : free };
}

describe('agent resources: free resources kept per agent, updated with each launch and end', () => {
  it('a launch takes its cpus, memory and port', () => {
    const a = new AgentResources(total());
    expect(a.free()).to.deep.equal(total());
    a.hold('p1', task(7003));
    expect(a.free()).to.deep.equal({ cpus: 1.9, mem: 900, ports: [{ begin: 7000, end: 7002 }, { begin: 7004, end: 7009 }] });
    expect(a.ids()).to.deep.equal(['p1']);
  });

  it('a finished (or lost) task gives them back, its port only after the cooldown while others are free', () => {
    const a = new AgentResources(total());
    a.hold('p1', task(7000));
    a.hold('p2', task(7001));
    const t0 = 1_000_000;
    expect(a.release('p1', true, t0)?.resources.mem).to.equal(100);
    expect(a.free(t0 + 1)).to.deep.equal({ cpus: 1.9, mem: 900, ports: [{ begin: 7002, end: 7009 }] });
    expect(a.free(t0 + PORT_COOLDOWN_MS + 1).ports).to.deep.equal([{ begin: 7000, end: 7000 }, { begin: 7002, end: 7009 }]);
    expect(a.release('p1')).to.equal(undefined, 'an unknown task changes nothing');
    expect(a.size).to.equal(1);
  });

  it('offers a cooling port when the agent has no other', () => {
    const a = new AgentResources({ cpus: 1, mem: 100, ports: [{ begin: 7000, end: 7000 }] });
    a.hold('p1', task(7000));
    expect(a.free().ports).to.deep.equal([]);
    a.release('p1');
    expect(a.free().ports).to.deep.equal([{ begin: 7000, end: 7000 }]);
  });

  it('an agent that resubscribes with its tasks holds them again, and its cooling ports stay cooling', () => {
    const before = new AgentResources(total());
    before.hold('gone', task(7005));
    before.release('gone');
    const again = new AgentResources(total(), [['p1', task(7000, 300)], ['p2', task(7001, 200, 0.5)]], before.cooling);
    expect(again.free()).to.deep.equal({ cpus: 1.4, mem: 500, ports: [{ begin: 7002, end: 7004 }, { begin: 7006, end: 7009 }] });
    expect(again.has('p2')).to.equal(true);
  });

  it('resizes a task only where the agent has the memory', () => {
    const a = new AgentResources(total());
    a.hold('p1', task(7000, 600));
    expect(a.resize('p1', 900)).to.equal(true);
    expect(a.free().mem).to.equal(100);
    expect(a.resize('p1', 1100)).to.equal(false);
    expect(a.resize('p1', 50)).to.equal(true);
    expect(a.free().mem).to.equal(950);
    expect(a.resize('unknown', 50)).to.equal(undefined);
  });

  it('hands out copies: a caller that takes ports from an offer does not change the index', () => {
    const a = new AgentResources(total());
    const f = a.free();
    f.ports[0].begin += 5;
    f.mem = 0;
    expect(a.free()).to.deep.equal(total());
  });

  it('agrees with recomputing from every task after any sequence of launches, ends, resizes and cooldowns', () => {
    let seed = 7;
    const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
    const a = new AgentResources(total());
    const tasks = new Map<string, HeldTask>();
    const cooling = new Map<number, number>();
    let now = 1_000_000;
    for (let step = 0; step < 2000; step++) {
      now += rnd(3000);
      const id = `p${rnd(12)}`;
      const op = rnd(3);
      if (op === 0 && !tasks.has(id)) {
        const t = task(7000 + rnd(10), 10 + rnd(100), rnd(3) / 10);
        a.hold(id, t);
        tasks.set(id, t);
      } else if (op === 1 && tasks.has(id)) {
        for (const r of tasks.get(id)!.resources.ports) cooling.set(r.begin, now);
        tasks.delete(id);
        a.release(id, true, now);
      } else if (op === 2 && tasks.has(id)) {
        const memMb = 10 + rnd(200);
        if (a.resize(id, memMb)) tasks.get(id)!.resources = { ...tasks.get(id)!.resources, mem: memMb };
      }
      expect(a.free(now), `step ${step}`).to.deep.equal(recomputed(total(), tasks, cooling, now));
    }
  });
});

describe('offer broker: agents\' free resources follow launches, ends and resubscriptions', () => {
  it('launch, finish, lost, and a resubscription with tasks', async () => {
    const log = createLogger('test');
    log.silent = true;
    const broker = new OfferBroker({ heartbeatSeconds: 1, agentTimeoutMs: 5000, frameworkId: 'fw' }, log);
    const offers: Offer[] = [];
    broker.attach({ resourceOffers: (o) => offers.push(...o), statusUpdate: async () => undefined, agentSubscribed: () => undefined, agentLost: () => undefined, procAgent: () => undefined, holdsProcs: () => false });
    const sink = (): EventSink => ({ send: () => undefined, close: () => undefined, backedUpSince: () => 0 });
    const grant = { session: 's', proof: new Uint8Array() };
    const info = { id: { value: 'a1' }, hostname: 'node1', ip: '127.0.0.1', resources: toResourceList({ cpus: 2, mem: 1000, ports: [{ begin: 7000, end: 7003 }] }) };
    const one = (port: number): Resources => ({ cpus: 0.1, mem: 100, ports: [{ begin: port, end: port }] });
    const view = () => broker.agents()[0];
    const nextOffer = async (): Promise<Offer> => {
      while (offers.length === 0) await sleep(5);
      return offers.shift()!;
    };
    try {
      broker.subscribe(info, '127.0.0.1', [], sink(), grant);
      const first = await nextOffer();
      expect(first.resources).to.deep.equal({ cpus: 2, mem: 1000, ports: [{ begin: 7000, end: 7003 }] });
      broker.accept(first.id, [{ taskId: 'i::1', name: 'i', resources: one(7000), data: new Uint8Array() }]);
      expect(view().free).to.deep.equal({ cpus: 1.9, mem: 900, ports: [{ begin: 7001, end: 7003 }] });
      expect(view().tasks).to.deep.equal(['i::1']);

      await broker.update('a1', { task_id: { value: 'i::1' }, state: pb.TaskState.TASK_FINISHED });
      expect(view().free, 'finished: its port cools').to.deep.equal({ cpus: 2, mem: 1000, ports: [{ begin: 7001, end: 7003 }] });
      const second = await nextOffer();
      broker.accept(second.id, [{ taskId: 'i::2', name: 'i', resources: one(7001), data: new Uint8Array() }]);
      await broker.update('a1', { task_id: { value: 'i::2' }, state: pb.TaskState.TASK_LOST });
      expect(view().free, 'lost: freed too').to.deep.equal({ cpus: 2, mem: 1000, ports: [{ begin: 7002, end: 7003 }] });
      expect(view().tasks).to.deep.equal([]);

      const task = { name: 'i', task_id: { value: 'i::3' }, agent_id: { value: 'a1' }, resources: toResourceList(one(7003)) };
      broker.subscribe(info, '127.0.0.1', [task], sink(), grant);
      expect(view().free, 'back with a task; 7000 and 7001 still cooling').to.deep.equal({ cpus: 1.9, mem: 900, ports: [{ begin: 7002, end: 7002 }] });
      expect(view().tasks).to.deep.equal(['i::3']);
    } finally {
      broker.close();
    }
  });
});
