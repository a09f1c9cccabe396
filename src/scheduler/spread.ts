/**
 * Which of `slots` slots an id falls in: FNV-1a of the id, so the same slot every time and ids
 * spread evenly. Periodic work over thousands of agents or masters is spread over the slots of
 * its period (heartbeats, the failure detector's sweep) rather than done all in one instant.
 */
export function slotOf(id: string, slots: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    hash ^= id.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % slots;
}
