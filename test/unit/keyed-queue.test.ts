import { expect } from 'chai';
import { KeyedQueue } from '../../src/scheduler/keyed-queue.js';

describe('KeyedQueue (the maintainer\'s queue)', () => {
  it('runs one job at a time per key, keys in parallel up to its concurrency', async () => {
    const q = new KeyedQueue(2);
    const log: string[] = [];
    const job = (name: string, ms: number) => async () => {
      log.push(`start ${name}`);
      await new Promise((r) => setTimeout(r, ms));
      log.push(`end ${name}`);
    };
    q.add('a', job('a1', 30));
    q.add('a', job('a2', 1));
    q.add('b', job('b1', 10));
    await q.onIdle();
    expect(log.indexOf('end a1')).to.be.below(log.indexOf('start a2'));
    expect(log.indexOf('start b1')).to.be.below(log.indexOf('end a1'));
  });

  it('settles once cleared, though jobs were waiting for a slot (a lost term\'s stop must not hang)', async () => {
    const q = new KeyedQueue(1);
    const ran: string[] = [];
    let release!: () => void;
    q.add('a', () => new Promise<void>((r) => { ran.push('a'); release = r; }));
    for (const key of ['b', 'c', 'd']) q.add(key, async () => { ran.push(key); });
    q.add('a', async () => { ran.push('a2'); });
    await new Promise((r) => setTimeout(r, 10));
    q.clear();
    const idle = q.onIdle().then(() => 'idle');
    setTimeout(() => release(), 20);
    const winner = await Promise.race([idle, new Promise((r) => setTimeout(() => r('hung'), 1000))]);
    expect(winner).to.equal('idle');
    expect(ran, 'the running job finished; the waiting ones never started').to.deep.equal(['a']);
  });

  it('gives an urgent job (a failover) the next free slot ahead of other keys\' waiting jobs', async () => {
    const q = new KeyedQueue(1);
    const ran: string[] = [];
    let release!: () => void;
    q.add('a', () => new Promise<void>((r) => { ran.push('a'); release = r; }));
    for (const key of ['b', 'c']) q.add(key, async () => { ran.push(key); });
    q.add('d', async () => { ran.push('d (failover)'); }, true);
    await new Promise((r) => setTimeout(r, 10));
    release();
    await q.onIdle();
    expect(ran).to.deep.equal(['a', 'd (failover)', 'b', 'c']);
  });
});
