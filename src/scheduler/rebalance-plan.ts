import type { RebalanceMove, RebalancePlan } from '../domain/rebalance.js';

/** Where one instance's master is, and the agents of its replicas that could take over. */
export interface MasterSite {
  instance: string;
  agent: string;
  /** Agents of the instance's running replicas with their link up (empty: it cannot move). */
  replicaAgents: string[];
}

/**
 * The fewest switchovers that leave no agent with more than ceil(masters / agents) + 1 masters:
 * again and again, one master of the agent holding the most moves to the agent, among its own
 * replicas' agents, holding the fewest, as long as that one stays under the limit and ends below
 * the source. An instance moves at most once. Agents whose masters cannot move are passed over,
 * so the plan may leave one above the limit (each move says nothing of those; `after` shows it).
 * Pure.
 */
export function planRebalance(agents: string[], sites: MasterSite[]): RebalancePlan {
  const counts = new Map<string, number>(agents.map((a) => [a, 0]));
  for (const s of sites) counts.set(s.agent, (counts.get(s.agent) ?? 0) + 1);
  const before = Object.fromEntries(counts);
  const limit = Math.ceil(sites.length / Math.max(1, agents.length)) + 1;
  const moves: RebalanceMove[] = [];
  const moved = new Set<string>();
  const stuck = new Set<string>();
  for (let round = 0; round <= sites.length; round++) {
    const source = busiest(counts, stuck);
    if (!source || (counts.get(source) ?? 0) <= limit) break;
    const move = bestMove(source, sites, counts, limit, moved);
    if (!move) {
      stuck.add(source);
      continue;
    }
    moves.push(move);
    moved.add(move.instance);
    counts.set(source, (counts.get(source) ?? 0) - 1);
    counts.set(move.to, (counts.get(move.to) ?? 0) + 1);
  }
  return { agents: agents.length, masters: sites.length, limit, before, after: Object.fromEntries(counts), moves };
}

/** The agent with the most masters (by id on a tie), other than the stuck ones. */
function busiest(counts: Map<string, number>, stuck: Set<string>): string | undefined {
  let best: string | undefined;
  for (const [agent, n] of counts) {
    if (stuck.has(agent)) continue;
    const bestN = best === undefined ? -1 : counts.get(best) ?? 0;
    if (n > bestN || (n === bestN && best !== undefined && agent < best)) best = agent;
  }
  return best;
}

/** One master of `source` to the least loaded agent among its replicas' that stays within the limit. */
function bestMove(source: string, sites: MasterSite[], counts: Map<string, number>, limit: number, moved: Set<string>): RebalanceMove | undefined {
  const from = counts.get(source) ?? 0;
  let best: RebalanceMove | undefined;
  let bestN = Infinity;
  for (const s of [...sites].sort((a, b) => a.instance.localeCompare(b.instance))) {
    if (s.agent !== source || moved.has(s.instance)) continue;
    for (const to of s.replicaAgents) {
      const n = counts.get(to) ?? 0;
      if (to === source || n + 1 > limit || n + 1 >= from || n >= bestN) continue;
      best = { instance: s.instance, from: source, to };
      bestN = n;
    }
  }
  return best;
}
