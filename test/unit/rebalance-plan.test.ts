import { expect } from 'chai';
import { planRebalance, type MasterSite } from '../../src/scheduler/rebalance-plan.js';

function site(instance: string, agent: string, replicaAgents: string[]): MasterSite {
  return { instance, agent, replicaAgents };
}

describe('rebalance plan', () => {
  it('does nothing when no agent is over ceil(masters / agents) + 1', () => {
    const sites = ['a', 'b', 'c'].flatMap((agent, i) => [0, 1, 2].map((j) => site(`i${i}${j}`, agent, ['a', 'b', 'c'].filter((x) => x !== agent))));
    const plan = planRebalance(['a', 'b', 'c', 'd', 'e', 'f'], sites);
    expect(plan.limit).to.equal(3);
    expect(plan.moves).to.deep.equal([]);
  });

  it('moves masters off an agent holding all of them, to their replicas\' agents, at most once per instance', () => {
    const sites = Array.from({ length: 9 }, (_, i) => site(`i${i}`, 'a', ['b', 'c']));
    const plan = planRebalance(['a', 'b', 'c'], sites);
    expect(plan.limit).to.equal(4);
    expect(plan.after.a).to.be.at.most(4);
    expect(Math.max(...Object.values(plan.after))).to.be.at.most(4);
    expect(new Set(plan.moves.map((m) => m.instance)).size).to.equal(plan.moves.length);
    for (const m of plan.moves) expect(['b', 'c']).to.include(m.to);
    expect(plan.moves).to.have.length(5);
  });

  it('never moves a master to an agent without a replica of its instance, and says what is left', () => {
    const sites = Array.from({ length: 6 }, (_, i) => site(`i${i}`, 'a', i < 2 ? ['b'] : []));
    const plan = planRebalance(['a', 'b', 'c'], sites);
    expect(plan.limit).to.equal(3);
    expect(plan.moves.map((m) => m.to)).to.deep.equal(['b', 'b']);
    expect(plan.after).to.deep.equal({ a: 4, b: 2, c: 0 });
  });
});
