import { expect } from 'chai';
import type { Instance } from '../../src/domain/model.js';
import { maxLinkDownSeconds } from '../../src/scheduler/promotion.js';

describe('failover: how stale a replica may be (Sentinel\'s rule, with a 60 s floor)', () => {
  const inst = (downAfterMs: number) => ({ downAfterMs }) as Instance;
  const now = 1_000_000;

  it('allows 60 s when the master is not known silent, or only just', () => {
    expect(maxLinkDownSeconds(inst(1000), undefined, now)).to.equal(60);
    expect(maxLinkDownSeconds(inst(1000), { sdown: false, odown: false, pendingSince: now - 500_000 }, now), 'silent but not judged down').to.equal(60);
    expect(maxLinkDownSeconds(inst(1000), { sdown: true, odown: true, pendingSince: now - 2_000 }, now)).to.equal(60);
  });

  it('grows with the master\'s silence, 10 x down-after beyond it: a late failover can still promote', () => {
    // A failover held up 98 s (replicas unreachable meanwhile): replicas that lost the master
    // when it went silent are still eligible.
    expect(maxLinkDownSeconds(inst(1000), { sdown: true, odown: true, pendingSince: now - 98_000 }, now)).to.equal(108);
    expect(maxLinkDownSeconds(inst(5000), { sdown: true, odown: false, pendingSince: now - 30_000 }, now)).to.equal(80);
  });
});
