/**
 * A fleet-wide rebalance of masters (issue 9, part 7): the plan of switchovers that brings every
 * agent to at most ceil(masters / agents) + 1 masters, and its run, recorded as JSON in
 * /MrRedis/Config/Rebalance so a scheduler that takes over goes on with it. Pure.
 */

/** One instance's master moving, by switchover, from one agent to a replica on another. */
export interface RebalanceMove {
  instance: string;
  from: string;
  to: string;
}

export interface RebalancePlan {
  /** Connected agents the masters are spread over. */
  agents: number;
  /** Masters of all serving instances. */
  masters: number;
  /** ceil(masters / agents) + 1: no agent may hold more. */
  limit: number;
  /** Masters per agent now, and after the moves. */
  before: Record<string, number>;
  after: Record<string, number>;
  moves: RebalanceMove[];
}

export interface RebalanceRecord {
  id: string;
  state: 'running' | 'done' | 'failed';
  plan: RebalancePlan;
  /** Moves handled so far (made, or skipped with a note), in plan order. */
  done: number;
  /** What it does now, or did last. */
  step: string;
  /** One line per move that could not be made (the instance changed, its switchover failed). */
  skipped: string[];
  startedAt: string;
  updatedAt: string;
  finishedAt?: string;
  error?: string;
}

/** The record's JSON text; undefined for none or for text that is not one. */
export function parseRebalance(text: string | null | undefined): RebalanceRecord | undefined {
  if (!text) return undefined;
  try {
    const r = JSON.parse(text) as RebalanceRecord;
    return typeof r?.id === 'string' && typeof r.state === 'string' && Array.isArray(r.plan?.moves) ? r : undefined;
  } catch {
    return undefined;
  }
}
