import { expect } from 'chai';
import { place, type Slot } from '../../src/scheduler/placement.js';

function slot(agentId: string, mem: number, ports: [number, number] = [7000, 7009], cpus = 2): Slot {
  return { agentId, offerId: `offer-${agentId}`, ip: '10.0.0.1', hostname: agentId, cpus, mem, ports: [{ begin: ports[0], end: ports[1] }] };
}

const base = { memMb: 64, cpus: 0.1, dValue: 1, strategy: 'spread' as const, existing: new Map<string, number>() };

describe('placement', () => {
  it('spreads one master and two replicas over three agents', () => {
    const slots = [slot('a', 1024), slot('b', 1024), slot('c', 1024)];
    const res = place({ ...base, count: 3 }, slots);
    expect(res.ok).to.equal(true);
    if (!res.ok) return;
    expect(new Set(res.assignments.map((a) => a.agentId)).size).to.equal(3);
    expect(res.assignments.every((a) => a.port === 7000)).to.equal(true);
    expect(slots.map((s) => s.mem)).to.deep.equal([960, 960, 960]);
    expect(slots[0].ports).to.deep.equal([{ begin: 7001, end: 7009 }]);
  });

  it('never puts more than DValue procs of an instance on one agent, and says what is missing', () => {
    const slots = [slot('a', 4096), slot('b', 4096)];
    const res = place({ ...base, count: 3 }, slots);
    expect(res.ok).to.equal(false);
    if (res.ok) return;
    expect(res.reason).to.equal('needs 3 agents with 64 MB free, 2 have room');
    expect(res.placed).to.have.length(2);
    expect(slots.map((s) => s.mem)).to.deep.equal([4096, 4096], 'a failed placement consumes nothing');
  });

  it('allows several procs per agent when DValue allows it', () => {
    const res = place({ ...base, count: 3, dValue: 2 }, [slot('a', 4096), slot('b', 4096)]);
    expect(res.ok).to.equal(true);
  });

  it('counts procs the instance already has on an agent against DValue', () => {
    const res = place({ ...base, count: 1, existing: new Map([['a', 1], ['b', 1]]) }, [slot('a', 4096), slot('b', 4096), slot('c', 100)]);
    expect(res.ok && res.assignments[0].agentId).to.equal('c');
  });

  it('skips agents without enough memory, cpus or ports', () => {
    const res = place({ ...base, count: 1 }, [slot('a', 63), slot('b', 1024, [7000, 7000], 0.05), { ...slot('c', 1024), ports: [] }, slot('d', 64)]);
    expect(res.ok && res.assignments[0].agentId).to.equal('d');
  });

  it('spread prefers the agent with the most free memory; binpack the least that fits', () => {
    const spread = place({ ...base, count: 1 }, [slot('a', 200), slot('b', 900), slot('c', 500)]);
    const binpack = place({ ...base, count: 1, strategy: 'binpack' }, [slot('a', 200), slot('b', 900), slot('c', 500)]);
    expect(spread.ok && spread.assignments[0].agentId).to.equal('b');
    expect(binpack.ok && binpack.assignments[0].agentId).to.equal('a');
  });

  it('takes ports from later ranges when the first is used up', () => {
    const s = slot('a', 4096);
    s.ports = [{ begin: 7000, end: 7000 }, { begin: 8000, end: 8001 }];
    const res = place({ ...base, count: 3, dValue: 3 }, [s]);
    expect(res.ok && res.assignments.map((a) => a.port)).to.deep.equal([7000, 8000, 8001]);
  });

  it('places several instances from one round of offers without double-booking', () => {
    const slots = [slot('a', 128), slot('b', 128), slot('c', 128)];
    expect(place({ ...base, count: 3 }, slots).ok).to.equal(true);
    expect(place({ ...base, count: 3 }, slots).ok).to.equal(true);
    const third = place({ ...base, count: 3 }, slots);
    expect(third.ok).to.equal(false);
    if (!third.ok) expect(third.reason).to.equal('needs 3 agents with 64 MB free, 0 have room');
  });

  it('puts a fresh master on the agent with the fewest masters, then the most free memory', () => {
    const masters = new Map([['a', 2], ['b', 0], ['c', 1]]);
    const res = place({ ...base, count: 3, masters }, [slot('a', 4096), slot('b', 512), slot('c', 2048)]);
    expect(res.ok && res.assignments[0].agentId).to.equal('b');
    const tie = place({ ...base, count: 3, masters: new Map([['a', 1], ['b', 1], ['c', 1]]) }, [slot('a', 1024), slot('b', 512), slot('c', 2048)]);
    expect(tie.ok && tie.assignments[0].agentId).to.equal('c');
  });

  it('9 instances of 1+2 placed one after another on 3 agents: 3 masters on each', () => {
    const slots = [slot('a', 4096, [7000, 7099]), slot('b', 4096, [7000, 7099]), slot('c', 4096, [7000, 7099])];
    const masters = new Map<string, number>();
    for (let i = 0; i < 9; i++) {
      const res = place({ ...base, count: 3, masters }, slots);
      expect(res.ok).to.equal(true);
      if (!res.ok) return;
      const m = res.assignments[0].agentId;
      masters.set(m, (masters.get(m) ?? 0) + 1);
    }
    expect([...masters.values()]).to.deep.equal([3, 3, 3]);
  });
});
