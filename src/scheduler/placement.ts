import { portCount, type PortRange } from '../proto/messages.js';
import type { RedisServerBinary } from '../domain/services.js';

/** What one agent can give right now (from its offer). */
export interface Slot {
  agentId: string;
  offerId: string;
  ip: string;
  hostname: string;
  cpus: number;
  mem: number;
  ports: PortRange[];
  /** The redis-server binaries the agent offers, the first its default (absent: only its default). */
  redisServers?: RedisServerBinary[];
}

export interface PlacementRequest {
  count: number;
  memMb: number;
  cpus: number;
  /** At most this many procs of the instance on one agent (MrRedis's Distribution / DValue). */
  dValue: number;
  strategy: 'spread' | 'binpack';
  /** Procs of this instance each agent already holds (live ones). */
  existing: ReadonlyMap<string, number>;
  /**
   * Masters of all instances each agent holds, when the first proc placed is a fresh instance's
   * master: it goes to the eligible agent with the fewest, then by the strategy's own order (for
   * spread, the most free memory), so no agent ends up carrying every instance's writes.
   */
  masters?: ReadonlyMap<string, number>;
}

export interface Assignment {
  agentId: string;
  offerId: string;
  ip: string;
  hostname: string;
  port: number;
}

export type PlacementResult =
  | { ok: true; assignments: Assignment[] }
  | { ok: false; placed: Assignment[]; reason: string };

/**
 * Chooses an agent and a port for each of `count` procs. On success the slots are reduced by
 * what was placed, so the caller can place several instances from one round of offers; on
 * failure they are left as they were and `placed` holds what did fit. Pure: no I/O.
 *
 * Spread (default) puts the next proc where the instance has the fewest procs, then where most
 * memory is free; binpack puts it where the least memory that still fits is free. A fresh
 * instance's master (with `masters`) goes first to the agent with the fewest masters.
 */
export function place(req: PlacementRequest, slots: Slot[]): PlacementResult {
  const work = slots.map((s) => ({ ...s, ports: s.ports.map((r) => ({ ...r })) }));
  const held = new Map(req.existing);
  const assignments: Assignment[] = [];
  for (let i = 0; i < req.count; i++) {
    const masters = i === 0 ? req.masters : undefined;
    const mastersOn = (s: Slot) => masters?.get(s.agentId) ?? 0;
    // The best slot in one pass rather than a sort: with thousands of agents offering, sorting
    // every slot for every proc placed was most of a placement's cost.
    let slot: Slot | undefined;
    for (const s of work) {
      if (!fitsOne(s, req) || (held.get(s.agentId) ?? 0) >= req.dValue) continue;
      if (!slot || (mastersOn(s) - mastersOn(slot) || compare(s, slot, req, held)) < 0) slot = s;
    }
    if (!slot) return { ok: false, placed: assignments, reason: shortfall(req, slots) };
    const port = takePort(slot);
    slot.mem -= req.memMb;
    slot.cpus -= req.cpus;
    held.set(slot.agentId, (held.get(slot.agentId) ?? 0) + 1);
    assignments.push({ agentId: slot.agentId, offerId: slot.offerId, ip: slot.ip, hostname: slot.hostname, port });
  }
  work.forEach((w, i) => Object.assign(slots[i], w));
  return { ok: true, assignments };
}

function fitsOne(s: Slot, req: PlacementRequest): boolean {
  return s.mem >= req.memMb && s.cpus >= req.cpus - 1e-9 && portCount(s.ports) > 0;
}

function compare(a: Slot, b: Slot, req: PlacementRequest, held: Map<string, number>): number {
  if (req.strategy === 'binpack') {
    return a.mem - b.mem || a.agentId.localeCompare(b.agentId);
  }
  const byHeld = (held.get(a.agentId) ?? 0) - (held.get(b.agentId) ?? 0);
  return byHeld || b.mem - a.mem || a.agentId.localeCompare(b.agentId);
}

function takePort(slot: Slot): number {
  const first = slot.ports[0];
  const port = first.begin;
  if (first.begin === first.end) slot.ports.shift();
  else first.begin += 1;
  return port;
}

/** Says what the fleet lacks, e.g. "needs 3 agents with 64 MB free, 2 have room". */
export function shortfall(req: PlacementRequest, slots: Slot[]): string {
  const agentsNeeded = Math.ceil((req.count + sum(req.existing)) / req.dValue);
  const roomy = slots.filter((s) => fitsOne(s, req)).length + [...req.existing.keys()].filter((id) => !slots.some((s) => s.agentId === id)).length;
  const noun = agentsNeeded === 1 ? 'agent' : 'agents';
  return `needs ${agentsNeeded} ${noun} with ${req.memMb} MB free, ${roomy} ${roomy === 1 ? 'has' : 'have'} room`;
}

function sum(m: ReadonlyMap<string, number>): number {
  let n = 0;
  for (const v of m.values()) n += v;
  return n;
}
