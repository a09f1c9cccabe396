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

  it('runs urgent jobs (failovers) in a pool of their own: never behind a routine job\'s slot, still after their own key\'s jobs', async () => {
    const q = new KeyedQueue(1, 2);
    const ran: string[] = [];
    let release!: () => void;
    q.add('a', () => new Promise<void>((r) => { ran.push('a'); release = r; }));
    for (const key of ['b', 'c']) q.add(key, async () => { ran.push(key); });
    let failoversRunning = 0;
    let mostAtOnce = 0;
    for (const key of ['d', 'e', 'f', 'a']) {
      q.add(key, async () => {
        failoversRunning++;
        mostAtOnce = Math.max(mostAtOnce, failoversRunning);
        ran.push(`${key} (failover)`);
        await new Promise((r) => setTimeout(r, 5));
        failoversRunning--;
      }, true);
    }
    await new Promise((r) => setTimeout(r, 50));
    expect(ran, 'the routine slot is held by a; the failovers of other keys ran anyway').to.deep.equal(['a', 'd (failover)', 'e (failover)', 'f (failover)']);
    expect(mostAtOnce, 'at most the urgent pool\'s width').to.equal(2);
    release();
    await q.onIdle();
    expect(ran.slice(4)).to.have.members(['a (failover)', 'b', 'c']);
    expect(ran.indexOf('a (failover)'), 'a\'s failover after a\'s own job').to.be.above(ran.indexOf('a'));
  });
});
