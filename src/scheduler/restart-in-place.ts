import { ProcState, type Instance, type Proc } from '../domain/model.js';
import { namedMaster } from '../domain/rules.js';

/**
 * A persistent instance whose master's redis-server died while its agent lives (issue 9 part
 * 6): the agent kept the master's data directory, so the master is restarted in place, on the
 * same agent and from that directory, rather than as a fresh empty master elsewhere (which would
 * lose the data). Returns the dead master to restart from, or undefined when this does not apply:
 * no persistence, a master that was stopped on request or lost with its agent, or an agent that
 * is gone. A restart in place that fails in turn (Mname was cleared for it) falls back to an empty
 * restart, with `dataLost` set. Pure.
 */
export function inPlaceRestartOf(inst: Instance, agentConnected: (agentId: string) => boolean): Proc | undefined {
  if (inst.persistence === 'none') return undefined;
  const dead = namedMaster(inst);
  if (!dead || dead.state !== ProcState.Failed || !dead.sid) return undefined;
  return agentConnected(dead.sid) ? dead : undefined;
}
