import type { Instance } from '../domain/model.js';
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
 * The failure detector's once-a-second pass over the fleet: which procs it watches, with a link
 * kept open to each (so a failover never waits for a connection) and each one's busy-script
 * threshold set. A new proc gets its link within a second; a new master its first PING at once
 * all the same (the PING opens the link).
 */
export function watchFleet(instances: readonly Instance[], links: RedisLinks, busy: BusyScripts): WatchedProcs {
  const watched = new Set<string>();
  const remembered = new Set<string>();
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
        links.get(p);
      }
      continue;
    }
    watched.add(master.id);
    for (const p of inst.procs) {
      if (!isLive(p)) continue;
      watched.add(p.id);
      links.get(p);
      void busy.applyThreshold(inst, p);
    }
  }
  return { watched, remembered };
}
