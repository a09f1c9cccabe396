import { expect } from 'chai';
import {
  nextTrack,
  offsetSaysMasterDown,
  offsetSilenceThresholdMs,
  OFFSET_SILENCE_FLOOR_MS,
  provenSilenceMs,
  replicaReadOffset,
  type OffsetSample,
  type OffsetTrack,
} from '../../src/scheduler/replica-silence.js';
import { replicaVote } from '../../src/scheduler/failover.js';

const MASTER = '10.0.0.1:6380';

/** A small deterministic PRNG, so a failure can be replayed. */
function prng(seed: number): () => number {
  let x = seed;
  return () => (x = (x * 1103515245 + 12345) % 2147483648) / 2147483648;
}

/**
 * A simulated replication link: the times (ms) at which the replica read a ping from its master.
 * The replica's offset at time t is the number of pings read by t (each ping moves it).
 */
function offsetAt(arrivals: readonly number[], t: number): number {
  let lo = 0;
  let hi = arrivals.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (arrivals[mid] <= t) lo = mid + 1;
    else hi = mid;
  }
  return 1000 + lo * 45; // the heartbeat's PUBLISH is about 45 bytes in the replication stream
}

/** One INFO sent at `sentAt`, seen by the replica somewhere in the round trip, handled at `receivedAt`. */
function sample(arrivals: readonly number[], sentAt: number, rttMs: number, rand: () => number): OffsetSample {
  const receivedAt = sentAt + rttMs;
  const observedAt = sentAt + rand() * rttMs;
  return { master: MASTER, offset: offsetAt(arrivals, observedAt), sentAt, receivedAt };
}

/**
 * The scheduler's samples of one replica: the stats poller once a second, and the failure
 * detector every 100 ms from `fastFrom` on; replies are handled in the order they come back.
 */
function schedulerSamples(arrivals: readonly number[], from: number, to: number, fastFrom: number, rand: () => number, maxRttMs: number): OffsetSample[] {
  const out: OffsetSample[] = [];
  for (let t = from + rand() * 1000; t < to; t += 1000) out.push(sample(arrivals, t, rand() * maxRttMs, rand));
  for (let t = fastFrom + rand() * 100; t < to; t += 100) out.push(sample(arrivals, t, rand() * maxRttMs, rand));
  return out.sort((a, b) => a.receivedAt - b.receivedAt);
}

/** The vote from a run of samples, in the order their replies were handled. */
function samplesSayMasterDown(samples: readonly OffsetSample[], downAfterMs: number): boolean {
  let track: OffsetTrack | undefined;
  for (const s of samples) track = nextTrack(track, s);
  return offsetSaysMasterDown(provenSilenceMs(track), downAfterMs);
}

describe('the replica\'s own timing (replica-silence)', () => {
  it('threshold: down-after, but never less than six and a half heartbeat periods', () => {
    expect(OFFSET_SILENCE_FLOOR_MS).to.equal(650);
    expect(offsetSilenceThresholdMs(1000)).to.equal(1000);
    expect(offsetSilenceThresholdMs(200)).to.equal(650, 'never below the floor, whatever down-after');
    expect(offsetSilenceThresholdMs(5000)).to.equal(5000);
    expect(offsetSaysMasterDown(999, 1000)).to.equal(false);
    expect(offsetSaysMasterDown(1000, 1000)).to.equal(true);
  });

  it('proves silence from the first sample\'s reply to the last sample\'s request, never more', () => {
    let track: OffsetTrack | undefined;
    track = nextTrack(track, { master: MASTER, offset: 50, sentAt: 0, receivedAt: 30 });
    track = nextTrack(track, { master: MASTER, offset: 50, sentAt: 1000, receivedAt: 1040 });
    expect(provenSilenceMs(track)).to.equal(970);
    // A slow reply handled late, of a request sent earlier, proves nothing more.
    track = nextTrack(track, { master: MASTER, offset: 50, sentAt: 500, receivedAt: 1100 });
    expect(provenSilenceMs(track)).to.equal(970);
  });

  it('any other offset or master starts over', () => {
    const still = (offset: number, master: string, at: number): OffsetSample => ({ master, offset, sentAt: at, receivedAt: at + 1 });
    expect(samplesSayMasterDown([still(50, MASTER, 0), still(50, MASTER, 2000)], 1000)).to.equal(true);
    expect(samplesSayMasterDown([still(50, MASTER, 0), still(64, MASTER, 1000), still(64, MASTER, 2000)], 1000)).to.equal(false);
    expect(samplesSayMasterDown([still(50, MASTER, 0), still(50, '10.0.0.2:6380', 2000)], 1000)).to.equal(false);
    expect(samplesSayMasterDown([still(50, MASTER, 0), still(40, MASTER, 1000), still(40, MASTER, 2000)], 1000)).to.equal(false, 'a resync to a lower offset is a change');
  });

  it('reads the offset a replica has read, falling back to the processed one', () => {
    expect(replicaReadOffset(new Map([['slave_read_repl_offset', '700'], ['slave_repl_offset', '690']]))).to.equal(700);
    expect(replicaReadOffset(new Map([['slave_repl_offset', '690']]))).to.equal(690);
    expect(replicaReadOffset(new Map([['role', 'master']]))).to.equal(undefined);
  });

  it('a healthy link sampled at random phases never votes down, even with its agent stalling 500 ms (200 simulated minutes)', () => {
    // The master's agent publishes every 100 ms; its timer fires 100-180 ms apart under CPU
    // contention, and now and then its event loop stalls for up to 500 ms. 0-5 ms on the wire.
    // The scheduler samples as it does while a PING is pending (every 100 ms, at a random phase,
    // with round trips up to 50 ms), and loses samples to stalls of its own.
    let worst = 0;
    for (let seed = 1; seed <= 20; seed++) {
      const rand = prng(seed);
      const arrivals: number[] = [];
      for (let t = rand() * 100; t < 600_000; t += 100 + rand() * 80 + (rand() < 0.002 ? rand() * 500 : 0)) arrivals.push(t + rand() * 5);
      const samples = schedulerSamples(arrivals, 0, 600_000, 0, rand, 50).filter(() => rand() > 0.05);
      let track: OffsetTrack | undefined;
      for (const s of samples) {
        track = nextTrack(track, s);
        worst = Math.max(worst, provenSilenceMs(track));
        if (offsetSaysMasterDown(provenSilenceMs(track), 500)) expect.fail(`seed ${seed}: voted down at ${s.sentAt}`);
      }
    }
    expect(worst).to.be.below(700, 'no more silence is proven than the longest gap between heartbeats');
  });

  it('a frozen master is voted down by the threshold after its last heartbeat, and at most 450 ms later than that after the freeze (the first unanswered PING, then one sampling period)', () => {
    for (const downAfter of [500, 1000]) {
      for (let seed = 1; seed <= 200; seed++) {
        const rand = prng(seed);
        const arrivals: number[] = [];
        for (let t = rand() * 100; t < 60_000; t += 100 + rand() * 20) arrivals.push(t + rand() * 2);
        // Frozen (SIGSTOP) right after some heartbeat; the detector's first PING goes unanswered
        // up to 200 ms later, and from 20 ms after it the replicas are sampled every 100 ms.
        const lastBeat = arrivals[arrivals.length - 1];
        const freezeAt = lastBeat + rand() * 100;
        const fastFrom = freezeAt + rand() * 200 + 20;
        const samples = schedulerSamples(arrivals, 0, freezeAt + 5000, fastFrom, rand, 5);
        let track: OffsetTrack | undefined;
        let votedAt: number | undefined;
        for (const s of samples) {
          track = nextTrack(track, s);
          if (s.receivedAt > freezeAt && offsetSaysMasterDown(provenSilenceMs(track), downAfter)) {
            votedAt = s.receivedAt;
            break;
          }
        }
        const threshold = offsetSilenceThresholdMs(downAfter);
        expect(votedAt, `seed ${seed}`).to.not.equal(undefined);
        expect(votedAt! - lastBeat, `seed ${seed}: never before the threshold after the last heartbeat`).to.be.at.least(threshold);
        expect(votedAt! - freezeAt, `seed ${seed}`).to.be.at.most(threshold + 450);
      }
    }
  });

  it('the whole vote: a replica that still hears the master votes up until its offset proves the silence', () => {
    const master = { ip: '10.0.0.1', port: 6380 };
    const info = new Map(Object.entries({ role: 'slave', master_host: master.ip, master_port: '6380', master_link_status: 'up', master_last_io_seconds_ago: '1' }));
    expect(replicaVote(info, master, 1000, 999)).to.equal(false);
    expect(replicaVote(info, master, 1000, 1000)).to.equal(true, 'the offset rule, long before last_io could say it');
    info.set('master_last_io_seconds_ago', '3');
    expect(replicaVote(info, master, 1000, 0)).to.equal(true, 'the last_io rule still stands alone');
  });
});
