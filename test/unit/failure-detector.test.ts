import { expect } from 'chai';
import { replicaSaysMasterDown, LAST_IO_MARGIN_MS } from '../../src/scheduler/failover.js';
import { LoopLag } from '../../src/scheduler/loop-lag.js';
import { setTimeout as sleep } from 'node:timers/promises';

const master = { ip: '10.0.0.1', port: 6380 };

/** A replica's INFO replication as redis-server 7 prints it, with fields overridden. */
function replicaInfo(over: Record<string, string> = {}): Map<string, string> {
  return new Map(Object.entries({
    role: 'slave',
    master_host: master.ip,
    master_port: String(master.port),
    master_link_status: 'up',
    master_last_io_seconds_ago: '1',
    ...over,
  }));
}

describe('replica vote on its master (replicaSaysMasterDown)', () => {
  it('a healthy idle link never votes down, whatever down-after: last_io is whole seconds rounded down, and 0..2 is normal', () => {
    // The old rule (last_io * 1000 >= down-after) voted down here for every down-after <= 2000.
    for (const downAfter of [200, 500, 1000, 2000, 5000]) {
      for (const lastIo of ['0', '1', '2']) {
        expect(replicaSaysMasterDown(replicaInfo({ master_last_io_seconds_ago: lastIo }), master, downAfter), `down-after ${downAfter}, last_io ${lastIo}`).to.equal(false);
      }
    }
  });

  it('votes down only when last_io proves silence clearly beyond down-after', () => {
    expect(replicaSaysMasterDown(replicaInfo({ master_last_io_seconds_ago: '3' }), master, 1000)).to.equal(true);
    expect(replicaSaysMasterDown(replicaInfo({ master_last_io_seconds_ago: '2' }), master, 1000)).to.equal(false);
    expect(replicaSaysMasterDown(replicaInfo({ master_last_io_seconds_ago: '6' }), master, 5000)).to.equal(false);
    expect(replicaSaysMasterDown(replicaInfo({ master_last_io_seconds_ago: '7' }), master, 5000)).to.equal(true);
    expect(LAST_IO_MARGIN_MS).to.be.at.least(2000, 'a reading of N proves only N-1 s, and pings come once a second');
  });

  it('votes down when the link is down, whatever last_io says', () => {
    expect(replicaSaysMasterDown(replicaInfo({ master_link_status: 'down', master_last_io_seconds_ago: '0' }), master, 1000)).to.equal(true);
  });

  it('cannot vouch for a master it does not follow', () => {
    expect(replicaSaysMasterDown(replicaInfo({ role: 'master' }), master, 1000)).to.equal(true);
    expect(replicaSaysMasterDown(replicaInfo({ master_port: '6381', master_last_io_seconds_ago: '0' }), master, 1000)).to.equal(true);
    expect(replicaSaysMasterDown(replicaInfo({ master_host: '10.0.0.2', master_last_io_seconds_ago: '0' }), master, 1000)).to.equal(true);
  });

  it('over 10,000 samples of a healthy link with 1 s pings and up to 150 ms cron jitter, no vote is down', () => {
    // Model: the master pings every 1000-1150 ms; a sample at a random time reads
    // floor(now) - floor(last ping) in whole seconds, as INFO does.
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
    let downVotes = 0;
    for (let i = 0; i < 10_000; i++) {
      const lastPing = rand() * 1e6;
      const now = lastPing + rand() * (1000 + rand() * 150);
      const lastIo = Math.floor(now / 1000) - Math.floor(lastPing / 1000);
      if (replicaSaysMasterDown(replicaInfo({ master_last_io_seconds_ago: String(lastIo) }), master, 1000)) downVotes++;
    }
    expect(downVotes).to.equal(0);
  });
});

describe('event-loop stall probe (LoopLag)', () => {
  it('counts no stall while the loop keeps time, and small jitter is not a stall', () => {
    let t = 0;
    const lag = new LoopLag(50, 50, 120_000, () => t);
    for (let i = 0; i < 100; i++) {
      t += 50 + (i % 3) * 10;
      lag.beat();
    }
    expect(lag.stalledWithin(0, t)).to.equal(0);
  });

  it('subtracts a finished stall from a silence that spans it', () => {
    let t = 1000;
    const lag = new LoopLag(50, 50, 120_000, () => t);
    t = 1050; lag.beat();
    t = 3100; lag.beat(); // the loop ran nothing from 1100 to 3100
    t = 3150; lag.beat();
    expect(lag.stalledWithin(900, 3150)).to.equal(2000);
    expect(lag.stalledWithin(2100, 3150)).to.equal(1000, 'only the part inside the window counts');
    expect(lag.stalledWithin(3100, 3150)).to.equal(0);
  });

  it('counts a stall still under way, before the probe has had a chance to run', () => {
    let t = 0;
    const lag = new LoopLag(50, 50, 120_000, () => t);
    t = 50; lag.beat();
    t = 2050; // resumed after 2 s; a PING timeout fires before the probe does
    expect(lag.stalledWithin(0)).to.equal(1950);
  });

  it('forgets stalls older than it keeps', () => {
    let t = 0;
    const lag = new LoopLag(50, 50, 1000, () => t);
    t = 50; lag.beat();
    t = 550; lag.beat();
    for (let i = 0; i < 100; i++) { t += 50; lag.beat(); }
    expect(lag.stalledWithin(0, t)).to.equal(0);
  });

  it('measures a real blocked loop', async () => {
    const lag = new LoopLag(20, 40);
    lag.start();
    try {
      await sleep(60);
      const from = Date.now();
      const until = from + 300;
      while (Date.now() < until) { /* block the loop */ }
      expect(lag.stalledWithin(from)).to.be.within(200, 320);
      await sleep(60);
      expect(lag.stalledWithin(from)).to.be.within(200, 320);
      expect(lag.worstMs).to.be.at.least(200);
    } finally {
      lag.stop();
    }
  });
});
