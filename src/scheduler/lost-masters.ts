import type { FleetStore } from '../store/fleet-store.js';
import { ProcState, type Instance, type Proc } from '../domain/model.js';
import { namedMaster } from '../domain/rules.js';
import type { ResourceBroker } from './offers.js';

/** A master written off with its agent (LOST, not seen to die) whose agent may still return. */
export interface LostMaster {
  proc: Proc;
  agentId: string;
}

/**
 * Lost masters that wait for their agent. An instance whose master was written off with its
 * agent, and of which no proc lives, is not restarted empty while that agent may come back with
 * the master and its data, unless the operator asks (`approveRestart`).
 */
export class LostMasters {
  /** When this scheduler first saw each lost master, to give its agent the agent timeout to return. */
  private readonly lostSince = new Map<string, number>();
  /** Instances whose operator chose to restart empty rather than wait for a lost master. */
  private readonly restartApproved = new Set<string>();

  constructor(private readonly store: FleetStore, private readonly broker: ResourceBroker, private readonly agentGraceMs: number) {}

  /**
   * The instance's master was written off with its agent (LOST: nobody saw it die) and no proc
   * of the instance lives. Its data may still be on that node: while the agent may come back (its
   * registration is still in etcd, or the agent timeout has not passed since this scheduler saw
   * the loss), nothing is restarted empty unless the operator asks (`restartEmpty`). A master
   * that FAILED or was KILLED on a live agent is gone for sure and is not waited for.
   */
  waitingFor(inst: Instance): LostMaster | undefined {
    if (this.restartApproved.has(inst.name)) return undefined;
    const named = namedMaster(inst);
    if (!named || named.state !== ProcState.Lost || !named.sid) return undefined;
    // The agent is back: the master waits no longer if the agent did not bring it.
    const agent = this.broker.agentStatus(named.sid);
    if (agent?.connected) return agent.runs(named.id) ? { proc: named, agentId: named.sid } : undefined;
    const firstSeen = this.lostSince.get(named.id) ?? Date.now();
    this.lostSince.set(named.id, firstSeen);
    const withinTimeout = Date.now() - firstSeen < this.agentGraceMs;
    if (!this.store.agentRecord(named.sid) && !withinTimeout) return undefined;
    return { proc: named, agentId: named.sid };
  }

  /** The operator chose to give the data up and start an empty master now. */
  approveRestart(name: string): void {
    this.restartApproved.add(name);
  }

  /** The instance restarted empty: its approval is spent and its lost procs are history. */
  restarted(inst: Instance): void {
    this.restartApproved.delete(inst.name);
    for (const p of inst.procs) this.lostSince.delete(p.id);
  }

  /** The lost master came back with its agent. */
  returned(procId: string): void {
    this.lostSince.delete(procId);
  }
}

/** What the status says while a lost master waits for its agent. */
export function waitingReason(inst: Instance, w: LostMaster): string {
  return `master lost with its agent ${w.agentId}: waiting for the agent to come back with master ${w.proc.id} and its data; ` +
    `POST /api/instances/${inst.name}/restart-empty starts an empty master instead`;
}
