/**
 * Which instances have procs placed on each agent, from each proc's SID key, kept as the keys
 * change. An agent's subscription or loss looks at the instances it holds procs of, not at every
 * instance of the fleet: with 10,000 agents resubscribing to a new leader, a scan each would be
 * hundreds of millions of procs looked at.
 */
export class AgentIndex {
  /** agent id -> instance name -> how many of its procs name that agent. */
  private readonly byAgent = new Map<string, Map<string, number>>();

  clear(): void {
    this.byAgent.clear();
  }

  /** A proc of `instance` had its SID `before` and has `after` now (undefined or '': none). */
  moved(instance: string, before: string | undefined, after: string | undefined): void {
    if (before === after) return;
    if (before) this.count(before, instance, -1);
    if (after) this.count(after, instance, 1);
  }

  /** The instances with a proc whose SID is this agent (live or not: callers filter). */
  instancesOn(agentId: string): string[] {
    return [...(this.byAgent.get(agentId)?.keys() ?? [])];
  }

  private count(agentId: string, instance: string, delta: number): void {
    let held = this.byAgent.get(agentId);
    if (!held) {
      held = new Map();
      this.byAgent.set(agentId, held);
    }
    const n = (held.get(instance) ?? 0) + delta;
    if (n > 0) held.set(instance, n);
    else held.delete(instance);
    if (held.size === 0) this.byAgent.delete(agentId);
  }
}
