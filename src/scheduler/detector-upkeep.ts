import type { Instance, Proc } from '../domain/model.js';
import { isLive, isServing, runningMaster, runningReplicas } from '../domain/rules.js';
import type { BusyScripts } from './busy-script.js';
import type { RedisLinks } from './redis-links.js';

/** The procs the failure detector watches, and the ones it still remembers (see FailureDetector.upkeep). */
export interface WatchedProcs {
  /** Live procs of serving instances (and the replicas of a master that ended): links kept open. */
  watched: Set<string>;
  /** Live procs, and each instance's named master even once ended (announced until its promotion). */
  remembered: Set<string>;
}

/**
 * Links a pass opens at most. Opening 10,000 at once (a scheduler restarted on a 10,000-proc fleet)
 * held its event loop for 1-2 s while the connects completed (10,000 ioredis links here: 0.24 s
 * to create, then a 1.1 s gap in the loop), long enough to lose its election lease (BENCHMARKS,
 * scale, fifth round). A master's own link is opened by its first PING anyway (the tick, in
 * slices); the replicas' links follow at this pace, and a failover opens any it still lacks.
 */
export const NEW_LINKS_PER_PASS = 500;

/**
 * The failure detector's once-a-second pass over the fleet: which procs it watches, with a link
 * kept open to each (so a failover never waits for a connection) and each one's busy-script
 * threshold set once it has a link. A new proc gets its link within a second (within
 * NEW_LINKS_PER_PASS new links a pass); a new master its first PING at once all the same (the
 * PING opens the link).
 */
export function watchFleet(instances: readonly Instance[], links: RedisLinks, busy: BusyScripts): WatchedProcs {
  const watched = new Set<string>();
  const remembered = new Set<string>();
  let budget = NEW_LINKS_PER_PASS;
  const linked = (p: Proc): boolean => {
    if (links.has(p)) return true;
    if (budget <= 0) return false;
    budget--;
    links.get(p);
    return true;
  };
  for (const inst of instances) {
    for (const p of inst.procs) if (isLive(p) || p.id === inst.mname) remembered.add(p.id);
    if (!isServing(inst)) continue;
    const master = runningMaster(inst);
    if (!master) {
      // A master that ended (LOST with its agent, say) is failed over on its replicas' word
      // (replicasStillHear): keep their links too, or each look would wait on a fresh connect
      // that the next upkeep drops again, and an unanswered look counts as "still hears".
      for (const p of runningReplicas(inst, undefined)) {
        watched.add(p.id);
        linked(p);
      }
      continue;
    }
    watched.add(master.id);
    for (const p of inst.procs) {
      if (!isLive(p)) continue;
      watched.add(p.id);
      if (linked(p)) void busy.applyThreshold(inst, p);
    }
  }
  return { watched, remembered };
}
