import { InstanceType, ProcType, type Instance, type Proc } from '../domain/model.js';
import { isLive, isRunning } from '../domain/rules.js';
import { portCount } from '../proto/messages.js';
import type { AgentView } from './offers.js';

/**
 * Whether a drain can move an instance's procs off an agent right now, and if not why: the drain
 * waits with that reason (its waitingReason) rather than start a move that could only time out.
 * Pure: decided from the instance and the agents' free resources.
 */

/** The instance's live procs placed on the agent. */
export function procsOn(inst: Instance, agent: string): Proc[] {
  return inst.procs.filter((p) => p.sid === agent && isLive(p));
}

/** A replica of the instance elsewhere (on no draining agent) that runs and hears its master: one a switchover may go to. */
export function syncedReplicaElsewhere(inst: Instance, draining: ReadonlySet<string>): Proc | undefined {
  return inst.procs.find((p) => p.type === ProcType.Replica && p.id !== inst.mname && isRunning(p) && !draining.has(p.sid) && p.stats?.masterLinkStatus === 'up');
}

/**
 * Why the next proc of `inst` on `agent` cannot move now; undefined when it can. A replica needs
 * an agent to take its replacement; a master needs that too (for itself once it is a replica) and
 * a synced replica elsewhere to switch over to. A standalone master cannot move without losing
 * its data: the drain waits on it, saying so.
 */
export function moveBlocker(inst: Instance, agent: string, agents: AgentView[], draining: ReadonlySet<string>, procCpus: number): string | undefined {
  const mine = procsOn(inst, agent);
  if (mine.length === 0) return undefined;
  const replicaHere = mine.some((p) => p.type === ProcType.Replica && p.id !== inst.mname);
  if (!replicaHere && inst.type === InstanceType.Standalone) return standaloneReason(inst.name, agent);
  const room = roomFor(inst, agent, agents, draining, procCpus);
  if (room) return room;
  if (replicaHere || syncedReplicaElsewhere(inst, draining)) return undefined;
  return `${inst.name}: its master is on ${agent} and no replica elsewhere is running and synced to switch over to; waiting for one`;
}

/** Why no agent can take a new proc of the instance (undefined when one can). */
function roomFor(inst: Instance, agent: string, agents: AgentView[], draining: ReadonlySet<string>, procCpus: number): string | undefined {
  const held = new Map<string, number>();
  for (const p of inst.procs.filter(isLive)) held.set(p.sid, (held.get(p.sid) ?? 0) + 1);
  const others = agents.filter((a) => a.id !== agent && a.connected);
  let drainingCount = 0;
  let full = 0;
  let spread = 0;
  for (const a of others) {
    if (draining.has(a.id)) drainingCount++;
    else if (a.free.mem < inst.capacity || a.free.cpus < procCpus - 1e-9 || portCount(a.free.ports) === 0) full++;
    else if ((held.get(a.id) ?? 0) >= inst.dValue) spread++;
    else return undefined;
  }
  const parts = [
    `${others.length} other connected agent(s)`,
    ...(drainingCount > 0 ? [`${drainingCount} draining`] : []),
    ...(full > 0 ? [`${full} without ${inst.capacity} MB, a cpu share and a port free`] : []),
    ...(spread > 0 ? [`${spread} already holding distribution ${inst.dValue} of its procs`] : []),
  ];
  return `${inst.name}: nowhere to move a ${inst.capacity} MB proc off ${agent}: ${parts.join(', ')}; waiting for room (add an agent, free memory, or raise the distribution)`;
}

/** Why a standalone master cannot move: it has no replica to hand over to, and a restart elsewhere would lose its data. */
export function standaloneReason(name: string, agent: string): string {
  return `${name} is standalone (no replica) and its master is on ${agent}: it cannot move without losing its data; scale it to 1 replica (it then moves with zero loss) or delete it`;
}
