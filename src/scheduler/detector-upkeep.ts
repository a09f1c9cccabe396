import { setImmediate as yieldLoop } from 'node:timers/promises';
import type { Instance, Proc } from '../domain/model.js';
import { isLive, isServing, runningMaster, runningReplicas } from '../domain/rules.js';
import type { FleetStore } from '../store/fleet-store.js';
import { instanceOfProc } from '../store/keys.js';
import type { BusyScripts } from './busy-script.js';
import type { RedisLinks } from './redis-links.js';

/** Instances gone through between two turns of the event loop (the detector's tick, its upkeep). */
export const SLICE = 400;

/** The procs the failure detector watches, and the ones it still remembers (see FailureDetector.upkeep). */
export interface WatchedProcs {
  /** Live procs of serving instances (and the replicas of a master that ended): their state is kept. */
  watched: Set<string>;
  /**
   * The procs whose link is kept open: every running master, and the replicas of a master that
   * ended. A replica's link is opened when it is needed (its master silent, a failover, a
   * switchover, its agent not reporting) and lingers a while (RedisLinks.retain): at 100,000
   * procs, a link to every replica would be two thirds of 2 GiB of links (BENCHMARKS, scale).
   */
  linked: Set<string>;
  /** Live procs, and each instance's named master even once ended (announced until its promotion). */
  remembered: Set<string>;
}

/**
 * Links a pass opens at most. Opening 10,000 at once (a scheduler restarted on a 10,000-proc fleet)
 * held its event loop for 1-2 s while the connects completed (10,000 ioredis links here: 0.24 s
 * to create, then a 1.1 s gap in the loop), long enough to lose its election lease (BENCHMARKS,
 * scale, fifth round). A master's own link is opened by its first PING anyway (the tick, in
 * slices); the others follow at this pace, and a replica's is opened when it is asked something.
 */
export const NEW_LINKS_PER_PASS = 500;

/**
 * The failure detector's once-a-second pass over the fleet: which procs it watches, which keep a
 * link open (each master, so its PINGs never wait for a connection) and each master's busy-script
 * threshold, set once it has a link (a promoted replica's at its promotion, or on the next pass). A new
 * master gets its link within a second (within NEW_LINKS_PER_PASS new links a pass), and its
 * first PING at once all the same (the PING opens the link).
 */
export function watchFleet(
  instances: readonly Instance[], links: RedisLinks, busy: BusyScripts,
  into: WatchedProcs = { watched: new Set(), linked: new Set(), remembered: new Set() }, budget = { left: NEW_LINKS_PER_PASS },
): WatchedProcs {
  const { watched, remembered } = into;
  const linked = (p: Proc): boolean => {
    into.linked.add(p.id);
    if (links.has(p)) return true;
    if (budget.left <= 0) return false;
    budget.left--;
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
    if (linked(master)) void busy.applyThreshold(inst, master);
    for (const p of inst.procs) if (isLive(p)) watched.add(p.id);
  }
  return into;
}

/**
 * watchFleet over the whole fleet in slices of SLICE instances, the event loop let go between
 * them (at 3,334 instances one pass held it ~40 ms: the API's tail). Each instance is read as its
 * slice comes up; an instance that changed after its slice was gone through (a proc started, a
 * failover) is gone through again at the end, for every proc `known` here that the pass did not
 * see, so nothing that is watched now is forgotten. Undefined when `stopped` meanwhile.
 */
export async function watchFleetInSlices(
  store: Pick<FleetStore, 'instanceNames' | 'instance'>, links: RedisLinks, busy: BusyScripts,
  known: () => Iterable<string>, stopped: () => boolean,
): Promise<WatchedProcs | undefined> {
  const names = store.instanceNames();
  const into: WatchedProcs = { watched: new Set(), linked: new Set(), remembered: new Set() };
  const budget = { left: NEW_LINKS_PER_PASS };
  const read = (some: Iterable<string>): Instance[] => [...some].map((n) => store.instance(n)).filter((i): i is Instance => i !== undefined);
  for (let i = 0; i < names.length; i += SLICE) {
    if (i > 0) await yieldLoop();
    if (stopped()) return undefined;
    watchFleet(read(names.slice(i, i + SLICE)), links, busy, into, budget);
  }
  const again = new Set<string>();
  for (const id of known()) if (!into.watched.has(id) || !into.remembered.has(id)) again.add(instanceOfProc(id));
  return watchFleet(read(again), links, busy, into, budget);
}
