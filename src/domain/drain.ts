/**
 * An agent under maintenance: while its Drain record exists it gets no new procs, and the
 * scheduler moves each of its procs elsewhere (replicas replaced, masters switched over first)
 * until it runs nothing. Stored as JSON at /MrRedis/Drains/<agentId>, outside the agent's own
 * lease-bound key, so it survives the agent going away and a scheduler restart. Pure.
 */

export enum DrainState {
  /** Procs are still being moved off the agent. */
  Draining = 'draining',
  /** The agent runs nothing; it stays out of placement until undrained. */
  Drained = 'drained',
}

export interface Drain {
  agent: string;
  state: DrainState;
  startedAt: string;
  updatedAt: string;
  /** Live procs still placed on the agent. */
  left: number;
  /** Why the drain cannot move anything right now ('' while it moves). */
  waitingReason: string;
  /** What it moves now, e.g. "cache1: replacing replica cache1::… on agent1" ('' when idle). */
  moving: string;
  finishedAt?: string;
}

/** The Drain key's text as a Drain; undefined for none or for text that is not one. */
export function parseDrain(text: string | undefined): Drain | undefined {
  if (!text) return undefined;
  try {
    const d = JSON.parse(text) as Drain;
    return typeof d?.agent === 'string' && (d.state === DrainState.Draining || d.state === DrainState.Drained) ? d : undefined;
  } catch {
    return undefined;
  }
}

/** A fresh drain of `agent`, as POST /api/agents/:id/drain writes it. */
export function newDrain(agent: string, left: number): Drain {
  const at = new Date().toISOString();
  return { agent, state: DrainState.Draining, startedAt: at, updatedAt: at, left, waitingReason: '', moving: '' };
}
