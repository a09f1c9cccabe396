import { expect } from 'chai';
import { ProcState, ProcType, type Instance, type Proc } from '../../src/domain/model.js';
import { registeredAgents } from '../../src/scheduler/standby.js';
import type { FleetStore } from '../../src/store/fleet-store.js';

function proc(instance: string, n: number, agent: string, port: number, state = ProcState.Running): Proc {
  return { id: `${instance}::p${n}`, instance, sid: agent, port, state, capacity: 64, type: n === 0 ? ProcType.Master : ProcType.Replica } as Proc;
}

describe('agents as a standby sees them (registeredAgents)', () => {
  it('subtracts each agent\'s live procs, found through the index by agent, never by a scan of the fleet', () => {
    const instances: Instance[] = [
      { name: 'c1', procs: [proc('c1', 0, 'a1', 7000), proc('c1', 1, 'a2', 7000), proc('c1', 2, 'a1', 7001, ProcState.Lost)] },
      { name: 'c2', procs: [proc('c2', 0, 'a2', 7001), proc('c2', 1, 'a1', 7002)] },
    ] as Instance[];
    const records: Record<string, Record<string, unknown>> = {
      a1: { ip: '10.0.0.1', hostname: 'h1', startedAt: 't1', resources: { cpus: 4, mem: 1024, ports: '7000-7009' } },
      a2: { ip: '10.0.0.2', hostname: 'h2', startedAt: 't2', resources: { cpus: 2, mem: 512, ports: '7000-7009' } },
    };
    const looked: string[] = [];
    const store = {
      agentIds: () => Object.keys(records),
      agentRecord: (id: string) => records[id],
      instancesOnAgent: (id: string) => {
        looked.push(id);
        return instances.filter((i) => i.procs.some((p) => p.sid === id));
      },
      instances: () => { throw new Error('a scan of every instance'); },
    } as unknown as FleetStore;
    const views = registeredAgents(store, 0.5);
    expect(looked).to.deep.equal(['a1', 'a2']);
    const a1 = views.find((v) => v.id === 'a1')!;
    expect(a1.tasks, 'live procs only, from both instances').to.deep.equal(['c1::p0', 'c2::p1']);
    expect(a1.free.mem).to.equal(1024 - 128);
    expect(a1.free.cpus).to.equal(3);
    expect(a1.connected).to.equal(false);
    const a2 = views.find((v) => v.id === 'a2')!;
    expect(a2.tasks).to.deep.equal(['c1::p1', 'c2::p0']);
    expect(a2.free.ports.map((r) => `${r.begin}-${r.end}`)).to.deep.equal(['7002-7009']);
  });
});
