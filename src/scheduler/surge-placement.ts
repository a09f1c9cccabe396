import { isLive } from '../domain/rules.js';
import type { Instance } from '../domain/model.js';
import type { SurgeRequest } from '../domain/surge.js';
import { place, type Assignment, type Slot } from './placement.js';
import { offeredBinary } from './redis-binaries.js';

/**
 * Whether the slot's agent can run `redisServer` (a path or a version; undefined: any binary): it
 * offers that binary (agents list theirs in SUBSCRIBE, see redis-binaries.ts).
 */
export function slotOffers(slot: Slot, redisServer: string | undefined): boolean {
  return redisServer === undefined || offeredBinary(slot.redisServers ?? [], redisServer) !== undefined;
}

/**
 * Where one surge replica goes on these slots (see domain/surge.ts): never on an agent it must
 * avoid, only where its binary is offered, within the instance's distribution with the proc it
 * replaces left out of the count. Undefined when nothing fits; the slots are reduced by what was
 * placed. Pure.
 */
export function placeSurge(inst: Instance, req: SurgeRequest, slots: Slot[], cpus: number): Assignment | undefined {
  const avoid = new Set(req.avoidAgents);
  const eligible = slots.filter((s) => !avoid.has(s.agentId) && slotOffers(s, req.redisServer));
  const existing = new Map<string, number>();
  for (const p of inst.procs.filter((p) => isLive(p) && p.id !== req.replacing)) existing.set(p.sid, (existing.get(p.sid) ?? 0) + 1);
  const result = place({
    count: 1,
    memMb: req.capacityMb ?? inst.capacity,
    cpus,
    dValue: inst.dValue,
    strategy: inst.placement,
    existing,
  }, eligible);
  return result.ok ? result.assignments[0] : undefined;
}
