import { expect } from 'chai';
import { instanceFromFields } from '../../src/store/records.js';
import { deriveStatus } from '../../src/domain/rules.js';
import { isShuttingDown, shutdownFields } from '../../src/domain/message.js';

/**
 * A failover fences the old master with SHUTDOWN; its agent resets Msg to "" as it acts, and the
 * proc's KILLED reaches etcd only later. In between, the old master must not count as a replica:
 * it did, the instance read RUNNING with 2 replicas, and no replacement was placed (the
 * client-survival flake: "timed out waiting for survN to be whole").
 */
function proc(fields: Record<string, string>): Map<string, string> {
  return new Map(Object.entries({ Instance: 'i', IP: '10.0.0.1', Capacity: '16', State: 'RUNNING', Msg: '', ...fields }));
}

function afterFailover(oldMaster: Record<string, string>) {
  const procs = new Map([
    ['i::new', proc({ Type: 'M', SID: 'a2', Port: '7001' })],
    ['i::old', proc({ Type: 'M', SID: 'a3', Port: '7002', ...oldMaster })],
    ['i::rep', proc({ Type: 'S', SID: 'a1', Port: '7003', SlaveOf: '10.0.0.1:7001' })],
  ]);
  const fields = new Map(Object.entries({ Type: 'MS', Status: 'DEGRADED', ExpMasters: '1', ExpSlaves: '2', Masters: '1', Slaves: '1', Mname: 'i::new', DValue: '1' }));
  return instanceFromFields('i', fields, procs, new Set(['i::rep']));
}

describe('a fenced old master', () => {
  it('is not counted while its SHUTDOWN is pending', () => {
    const d = deriveStatus(afterFailover(shutdownFields()));
    expect(d.status).to.equal('DEGRADED');
    expect(d.replicas).to.equal(1);
  });

  it('is still not counted once its agent reset Msg to "" and before its KILLED is recorded', () => {
    const inst = afterFailover({ ...shutdownFields(), Msg: '' });
    const old = inst.procs.find((p) => p.id === 'i::old')!;
    expect(old.shutdownAt).to.be.a('string');
    expect(isShuttingDown(old)).to.equal(true);
    const d = deriveStatus(inst);
    expect(d.status).to.equal('DEGRADED');
    expect(d.replicas).to.equal(1);
  });

  it('a proc never told to shut down has no mark', () => {
    const inst = afterFailover({});
    expect(inst.procs.find((p) => p.id === 'i::rep')).to.not.have.property('shutdownAt');
    expect(isShuttingDown(inst.procs.find((p) => p.id === 'i::old')!)).to.equal(false);
  });
});
