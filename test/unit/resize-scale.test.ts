import { expect } from 'chai';
import { leastCaughtUpFirst } from '../../src/scheduler/scale.js';
import { placeSurge } from '../../src/scheduler/surge-placement.js';
import type { Slot } from '../../src/scheduler/placement.js';
import { capacityMessage, parseMessage } from '../../src/domain/message.js';
import { encodeSurge, parseSurge } from '../../src/domain/surge.js';
import { validatePatchBody } from '../../src/api/validate.js';
import { InstanceStatus, InstanceType, ProcState, ProcType, type Instance, type Proc } from '../../src/domain/model.js';
import { RedFleetError } from '../../src/errors.js';

function slot(agentId: string, mem: number): Slot {
  return { agentId, offerId: `offer-${agentId}`, ip: '10.0.0.1', hostname: agentId, cpus: 2, mem, ports: [{ begin: 7000, end: 7009 }] };
}

function proc(id: string, sid: string, type = ProcType.Replica): Proc {
  return { id, instance: 'c1', nodename: sid, capacity: 64, memUsed: 0, pid: 1, ip: '10.0.0.1', port: 7000, state: ProcState.Running, type, slaveOf: '', eid: '', sid, msg: '', surge: '', redisServer: '', redisVersion: '' };
}

function instance(procs: Proc[]): Instance {
  return {
    name: 'c1', type: InstanceType.MasterReplica, status: InstanceStatus.Running, capacity: 64, masters: 1, slaves: 2, expMasters: 1, expSlaves: 2,
    dValue: 1, mname: procs[0].id, snames: [], reason: '', placement: 'spread', createdAt: '', epoch: 0, dataLost: '', downAfterMs: 0,
    failoverTimeoutMs: 0, minReplicasMaxLag: 0, expiresAt: '', deletedAt: '', passwordHash: '', accessKeyHash: '', creator: '', maxClients: 0,
    surges: [], failovers: [], redisServer: '', persistence: 'none', restoreFrom: '', restoreSha256: '', procs,
  };
}

function fieldOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as RedFleetError).field;
  }
  return undefined;
}

describe('scale: which replicas go first', () => {
  it('removes the least caught-up replica first, an unreachable one (-1) before all, ties by id', () => {
    expect(leastCaughtUpFirst([{ id: 'b', offset: 500 }, { id: 'a', offset: 900 }, { id: 'c', offset: -1 }, { id: 'd', offset: 500 }])).to.deep.equal(['c', 'b', 'd', 'a']);
  });
});

describe('surge placement', () => {
  const inst = instance([proc('m', 'a1', ProcType.Master), proc('r1', 'a2'), proc('r2', 'a3')]);
  const request = { id: 's1', avoidAgents: ['a3'], requestedAt: '' };

  it('never places on an avoided agent, and keeps the distribution', () => {
    expect(placeSurge(inst, request, [slot('a1', 1024), slot('a2', 1024), slot('a3', 1024)], 0.1)).to.equal(undefined);
    expect(placeSurge(inst, request, [slot('a1', 1024), slot('a3', 1024), slot('a4', 100)], 0.1)?.agentId).to.equal('a4');
  });

  it('leaves the proc it replaces out of the distribution, and places the size it asks for', () => {
    expect(placeSurge(inst, { ...request, avoidAgents: [], replacing: 'r2' }, [slot('a3', 1024)], 0.1)?.agentId).to.equal('a3');
    const slots = [slot('a4', 100), slot('a5', 300)];
    expect(placeSurge(inst, { ...request, capacityMb: 200 }, slots, 0.1)?.agentId).to.equal('a5');
    expect(slots[1].mem).to.equal(100, 'the slot is reduced by what was placed');
  });

  it('reads and writes the Surge key, ignoring what is not a request', () => {
    expect(parseSurge(encodeSurge([request]))).to.deep.equal([request]);
    expect(parseSurge('')).to.deep.equal([]);
    expect(parseSurge('{"x":1}')).to.deep.equal([]);
    expect(encodeSurge([])).to.equal('');
  });
});

describe('CAPACITY message and the PATCH body', () => {
  it('speaks CAPACITY <mb>', () => {
    expect(parseMessage(capacityMessage(128))).to.deep.equal({ verb: 'CAPACITY', capacityMb: 128 });
    for (const bad of ['CAPACITY', 'CAPACITY 0', 'CAPACITY -1', 'CAPACITY 1.5', 'CAPACITY 12 13']) expect(() => parseMessage(bad), bad).to.throw(/CAPACITY needs/);
  });

  it('takes ttlSeconds with a resize or a scale, never a resize and a scale together, and names the bad field', () => {
    expect(validatePatchBody({ capacityMb: 128, ttlSeconds: 60 })).to.deep.equal({ capacityMb: 128, ttlSeconds: 60, replicas: undefined });
    expect(validatePatchBody({ replicas: 0 })).to.include({ replicas: 0 });
    expect(fieldOf(() => validatePatchBody({ capacityMb: 128, replicas: 2 }))).to.equal('replicas');
    expect(fieldOf(() => validatePatchBody({ capacityMb: 0 }))).to.equal('capacityMb');
    expect(fieldOf(() => validatePatchBody({ replicas: 17 }))).to.equal('replicas');
    expect(fieldOf(() => validatePatchBody({ replicas: -1 }))).to.equal('replicas');
    expect(fieldOf(() => validatePatchBody({}))).to.equal('body');
    expect(fieldOf(() => validatePatchBody({ size: 1 }))).to.equal('size');
  });
});
