import { NeverPlaceableError } from '../errors.js';
import type { AgentCapacity } from '../domain/services.js';

/** What a create asks of the fleet: replicas + 1 procs of capacityMb, at most `distribution` per agent. */
export interface Ask {
  capacityMb: number;
  replicas: number;
  distribution: number;
}

/** What the request calls the two fields: the JSON API's names, or v1's path segments. */
export interface FieldNames {
  capacity: string;
  replicas: string;
}

const JSON_FIELDS: FieldNames = { capacity: 'capacityMb', replicas: 'replicas' };

/** How many of the ask's procs one agent can hold with `mem` MB. */
function procsOn(mem: number, ask: Ask): number {
  return Math.min(ask.distribution, Math.floor(mem / ask.capacityMb));
}

/**
 * Decides at the API whether a create can ever be placed on the fleet's agents (connected, or not
 * yet declared lost).
 *
 * - Throws NeverPlaceableError (409) when it cannot: more procs than connected agents times the
 *   distribution, or a capacity above every agent's total memory.
 * - Returns a Reason for the instance when it can be placed in principle but not now (or when no
 *   agent is connected yet: the fleet may still be starting, so the create is accepted and
 *   says what it waits for), and undefined when the free resources hold it today.
 *
 * Totals, not free resources, decide a refusal: memory held by other instances comes back when
 * they are deleted, so a create that only lacks free room waits instead.
 */
export function admit(ask: Ask, agents: AgentCapacity[], names: FieldNames = JSON_FIELDS): string | undefined {
  // The fleet is every agent the broker still holds: connected, or away for less than the agent
  // timeout (a restart, a silent stream being probed). Only an agent declared lost leaves it, so a
  // moment's disconnection never turns a placeable create into a 409. A draining agent takes no
  // new procs until it is undrained, so it does not count.
  const connected = agents.filter((a) => !a.draining);
  const procs = ask.replicas + 1;
  if (connected.length === 0) {
    return `no agent is connected yet; waiting for agents to join (needs ${procs} proc(s) of ${ask.capacityMb} MB, at most ${ask.distribution} per agent)`;
  }
  let largest = 0;
  for (const a of connected) largest = Math.max(largest, a.total.mem);
  if (ask.capacityMb > largest) {
    throw new NeverPlaceableError(names.capacity, `${names.capacity} ${ask.capacityMb} is more than any connected agent has in total (the largest of ${connected.length} has ${largest} MB); this instance could never be placed`);
  }
  if (procs > connected.length * ask.distribution) {
    throw new NeverPlaceableError(names.replicas, `${names.replicas} ${ask.replicas} + 1 = ${procs} procs need more than ${connected.length} connected agent(s) x distribution ${ask.distribution} = ${connected.length * ask.distribution}; add agents, lower ${names.replicas} or raise distribution`);
  }
  const room = connected.reduce((n, a) => n + procsOn(a.total.mem, ask), 0);
  if (procs > room) {
    // Mixed agent sizes: enough agents, and one large enough, but not enough large ones. More may
    // join, so this waits (the two refusals above are the whole contract), saying so plainly.
    return `waiting for larger agents: ${procs} proc(s) of ${ask.capacityMb} MB at most ${ask.distribution} per agent, the connected agents could hold ${room} even if empty`;
  }
  const free = connected.reduce((n, a) => n + procsOn(a.free.mem, ask), 0);
  if (procs > free) {
    return `waiting for room: needs ${procs} proc(s) of ${ask.capacityMb} MB at most ${ask.distribution} per agent, the connected agents have free memory for ${free} now`;
  }
  return undefined;
}
