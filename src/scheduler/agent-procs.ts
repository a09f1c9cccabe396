import { instanceOfProc } from '../store/keys.js';
import type { FleetStore } from '../store/fleet-store.js';
import { ProcState, ProcType, type Instance, type Proc } from '../domain/model.js';
import { isLive } from '../domain/rules.js';
import type { Logger } from '../logger.js';
import type { ResourceBroker } from './offers.js';

/** The procs the store places on each agent, as the broker sees those agents; and writing procs off. */
export class AgentProcs {
  constructor(private readonly store: FleetStore, private readonly broker: ResourceBroker, private readonly log: Logger) {}

  /** The live procs placed on the agent, of every instance or of one. */
  on(agentId: string, instance?: string): Proc[] {
    const instances = instance === undefined ? this.store.instancesOnAgent(agentId) : [this.store.instance(instance)].filter((i): i is Instance => i !== undefined);
    return instances.flatMap((i) => i.procs.filter((p) => p.sid === agentId && isLive(p)));
  }

  find(procId: string): Proc | undefined {
    return this.store.instance(instanceOfProc(procId))?.procs.find((p) => p.id === procId);
  }

  /** How the store knows a task, for logs: its state, "on <agent>" when placed elsewhere, or "absent". */
  knownState(procId: string): string {
    const proc = this.find(procId);
    return proc ? `${proc.state} on ${proc.sid}` : 'absent';
  }

  async markLost(proc: Proc, why: string): Promise<void> {
    this.log.warn('proc lost', { instance: proc.instance, proc: proc.id, agent: proc.sid, why });
    await this.store.updateProc(proc.instance, proc.id, { State: ProcState.Lost }, {}, proc.type === ProcType.Replica);
  }

  /** The proc's agent is connected to this scheduler and says it runs the proc. */
  agentHolds(proc: Proc): boolean {
    const agent = this.broker.agentStatus(proc.sid);
    return agent !== undefined && agent.connected && agent.runs(proc.id);
  }

  /** The agent is connected to this scheduler now. */
  agentConnected(agentId: string): boolean {
    return this.broker.agentStatus(agentId)?.connected === true;
  }

  brokerHas(agentId: string): boolean {
    return this.broker.agentStatus(agentId) !== undefined;
  }
}
