import { expect } from 'chai';
import { EtcdLeaseInvalidError, GRPCCancelledError, GRPCUnavailableError } from 'etcd3';
import { retryingConnection } from '../../src/store/etcd.js';

describe('retryingConnection: a start step retried while etcd drops its connection', () => {
  it('tries again after a dropped connection (UNAVAILABLE, CANCELLED) and returns what the step returns', async () => {
    const failures = [new GRPCUnavailableError('14 UNAVAILABLE: Connection dropped'), new GRPCCancelledError('1 CANCELLED: Call cancelled')];
    const retried: number[] = [];
    let calls = 0;
    const out = await retryingConnection(async () => {
      calls++;
      const next = failures.shift();
      if (next) throw next;
      return 'watching';
    }, (_err, attempt) => retried.push(attempt), 5, 1);
    expect(out).to.equal('watching');
    expect(calls).to.equal(3);
    expect(retried).to.deep.equal([1, 2]);
  });

  it('throws an error of the request itself at once', async () => {
    let calls = 0;
    const err = await retryingConnection(async () => {
      calls++;
      throw new EtcdLeaseInvalidError('42');
    }, () => undefined, 5, 1).catch((e: Error) => e);
    expect(err).to.be.instanceOf(EtcdLeaseInvalidError);
    expect(calls).to.equal(1);
  });

  it('gives up after its attempts, with the last error', async () => {
    let calls = 0;
    const err = await retryingConnection(async () => {
      calls++;
      throw new GRPCUnavailableError(`drop ${calls}`);
    }, () => undefined, 3, 1).catch((e: Error) => e);
    expect(err).to.be.instanceOf(GRPCUnavailableError);
    expect((err as Error).message).to.equal('drop 3');
    expect(calls).to.equal(3);
  });
});
