import { ProcType, type Instance, type Proc } from '../domain/model.js';
import { countedMaster, countedReplicas, isLive, isRunning, namedMaster } from '../domain/rules.js';
import type { SurgeRequest } from '../domain/surge.js';
import type { AgentProcs } from './agent-procs.js';
import type { FrameworkJobs } from './framework-jobs.js';
import type { LostMaster, LostMasters } from './lost-masters.js';

/** How many procs an instance lacks, and whether they must be placed together. */
export interface Need {
  /** Every proc to place, the surge replicas included. */
  count: number;
  /** Surge replicas to place, each under its own constraints (see domain/surge.ts); part of `count`. */
  surges: SurgeRequest[];
  /** A fresh instance is placed whole or not at all; replacements go one by one. */
  gang: boolean;
  master: Proc | undefined;
  /** Nothing is placed: the lost master may still come back with its agent. */
  waitingFor?: LostMaster;
}

/** A master this scheduler has not seen alive yet is looked at again this soon. */
const UNHEARD_MASTER_RECHECK_MS = 250;

/** What each instance lacks, for the maintainer (to ask for offers) and the creator (to place). */
export class Needs {
  constructor(
    private readonly lostMasters: LostMasters,
    private readonly heard: { hasHeard(procId: string): boolean },
    private readonly procs: AgentProcs,
    private readonly jobs: FrameworkJobs,
  ) {}

  /** How many procs the instance lacks, and whether they must be placed together. */
  of(inst: Instance): Need {
    const live = inst.procs.filter(isLive);
    const named = namedMaster(inst);
    const master = countedMaster(inst) ?? (named && isLive(named) ? named : undefined) ?? live.find((p) => p.type === ProcType.Master && !inst.mname);
    if (!master) {
      // Nothing survives: start afresh (the data is gone), unless the master was only written off
      // with its agent, which may still bring it back. Live replicas without a master are the
      // failover's business, not the creator's.
      if (live.length > 0) return { count: 0, surges: [], gang: true, master: undefined };
      const waitingFor = this.lostMasters.waitingFor(inst);
      if (waitingFor) return { count: 0, surges: [], gang: true, master: undefined, waitingFor };
      return { count: 1 + inst.expSlaves, surges: [], gang: true, master: undefined };
    }
    const replicas = countedReplicas(inst, master).length;
    const surges = unplacedSurges(inst);
    const count = Math.max(0, inst.expSlaves - replicas) + surges.length;
    // A master read from etcd that this scheduler has not yet seen alive (after a restart, its
    // agent may come back without it) gets no new replica yet: one placed now could follow a
    // dead address, or a port that meanwhile went to another instance. The detector's first
    // PING settles it within a moment.
    if (count > 0 && isRunning(master) && !this.heard.hasHeard(master.id) && !this.procs.agentHolds(master)) {
      this.jobs.recheckLater(inst.name, UNHEARD_MASTER_RECHECK_MS);
      return { count: 0, surges: [], gang: false, master };
    }
    return { count, surges, gang: false, master };
  }
}

/** Surge requests no live proc of the instance was placed for yet (or whose proc ended). */
function unplacedSurges(inst: Instance): SurgeRequest[] {
  const placed = new Set(inst.procs.filter((p) => isLive(p) && p.surge).map((p) => p.surge));
  return inst.surges.filter((r) => !placed.has(r.id));
}
