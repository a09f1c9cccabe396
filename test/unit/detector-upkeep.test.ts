import { expect } from 'chai';
import { InstanceStatus, ProcState, ProcType, type Instance, type Proc } from '../../src/domain/model.js';
import { setImmediate as yieldLoop } from 'node:timers/promises';
import { NEW_LINKS_PER_PASS, SLICE, watchFleet, watchFleetInSlices } from '../../src/scheduler/detector-upkeep.js';
import type { BusyScripts } from '../../src/scheduler/busy-script.js';
import type { RedisLinks } from '../../src/scheduler/redis-links.js';

function inst(i: number): Instance {
  const name = `c${i}`;
  const proc = (id: string, type: ProcType, port: number) => ({ id: `${name}::${id}`, instance: name, ip: '127.0.0.1', port, state: ProcState.Running, type, sid: 'a1' }) as Proc;
  const procs = [proc('m', ProcType.Master, 7000 + i), proc('r1', ProcType.Replica, 17000 + i), proc('r2', ProcType.Replica, 27000 + i)];
  return { name, status: InstanceStatus.Running, mname: `${name}::m`, procs, dValue: 1 } as unknown as Instance;
}

describe('the failure detector\'s upkeep (watchFleet)', () => {
  it('watches every live proc, links only the masters, at most NEW_LINKS_PER_PASS new links a pass, a threshold only over a link', () => {
    const fleet = Array.from({ length: 3000 }, (_, i) => inst(i)); // 9,000 procs, 3,000 masters, none linked yet
    const open = new Set<string>();
    const links = { has: (p: Proc) => open.has(p.id), get: (p: Proc) => { open.add(p.id); } } as unknown as RedisLinks;
    const thresholds: string[] = [];
    const busy = { applyThreshold: async (_i: Instance, p: Proc) => { thresholds.push(p.id); } } as unknown as BusyScripts;
    const first = watchFleet(fleet, links, busy);
    expect(first.watched.size, 'every live proc is watched from the first pass').to.equal(9000);
    expect(first.linked, 'the masters keep a link').to.deep.equal(new Set(fleet.map((i) => i.mname)));
    expect(open.size).to.equal(NEW_LINKS_PER_PASS);
    expect(thresholds.length, 'a threshold only for a proc with a link').to.equal(NEW_LINKS_PER_PASS);
    let passes = 1;
    while (open.size < 3000 && passes < 100) {
      watchFleet(fleet, links, busy);
      passes++;
    }
    expect(open, 'every master linked, no replica').to.deep.equal(new Set(fleet.map((i) => i.mname)));
    expect(passes).to.equal(Math.ceil(3000 / NEW_LINKS_PER_PASS));
  });

  it('keeps the links of a master that ended\'s replicas (its failover rests on their word)', () => {
    const x = inst(1);
    const ended = { ...x, procs: x.procs.map((p) => (p.type === ProcType.Master ? { ...p, state: ProcState.Lost } : p)) } as Instance;
    const open = new Set<string>();
    const links = { has: (p: Proc) => open.has(p.id), get: (p: Proc) => { open.add(p.id); } } as unknown as RedisLinks;
    const seen = watchFleet([ended], links, { applyThreshold: async () => undefined } as unknown as BusyScripts);
    expect(seen.linked).to.deep.equal(new Set(['c1::r1', 'c1::r2']));
    expect(open).to.deep.equal(new Set(['c1::r1', 'c1::r2']));
  });

  it('in slices: a proc that appeared after its instance\'s slice was gone through is still watched', async () => {
    const fleet = new Map(Array.from({ length: 3 * SLICE }, (_, i) => inst(i)).map((x) => [x.name, x]));
    const names = [...fleet.keys()].sort();
    const store = { instanceNames: () => names, instance: (n: string) => fleet.get(n) };
    const open = new Set<string>();
    const links = { has: (p: Proc) => open.has(p.id), get: (p: Proc) => { open.add(p.id); } } as unknown as RedisLinks;
    const busy = { applyThreshold: async () => undefined } as unknown as BusyScripts;
    const first = names[0];
    const pass = watchFleetInSlices(store, links, busy, () => [...open], () => false);
    await yieldLoop(); // the first slice is done: the first instance gets a third replica meanwhile
    const before = fleet.get(first)!;
    const added = { ...before.procs[1], id: `${first}::r3`, port: 40000 } as Proc;
    fleet.set(first, { ...before, procs: [...before.procs, added] } as Instance);
    open.add(added.id); // as the tick's PING or a failover would have opened its link
    const seen = await pass;
    expect(seen?.watched.has(added.id), 'watched, so its link and state are kept').to.equal(true);
    expect(seen?.watched.size).to.equal(3 * SLICE * 3 + 1);
    expect(await watchFleetInSlices(store, links, busy, () => [], () => true), 'stopped: no result').to.equal(undefined);
  });
});
