import type { Resources } from '../proto/messages.js';
import type { RedisServerBinary } from '../domain/services.js';
import type { redfleet } from '../proto/redfleet.js';

/**
 * The boundary between the resource side (the offer broker, which knows agents and their free
 * resources) and the Redis framework (which knows instances). Another resource manager, a real
 * Mesos master for instance, could stand behind `ResourceBroker` without the framework changing.
 */

export interface Offer {
  id: string;
  agentId: string;
  hostname: string;
  ip: string;
  resources: Resources;
  /** The redis-server binaries the agent offers, the first its default. */
  redisServers: RedisServerBinary[];
}

export interface TaskLaunch {
  taskId: string;
  name: string;
  resources: Resources;
  data: Uint8Array;
}

export interface AgentView {
  id: string;
  hostname: string;
  ip: string;
  connected: boolean;
  total: Resources;
  free: Resources;
  tasks: string[];
  subscribedAt: string;
  redisServers?: RedisServerBinary[];
}

/** See ResourceBroker.agentStatus. */
export interface AgentStatus {
  /** Its stream is open. */
  connected: boolean;
  /** It holds the task (launched, or listed in its SUBSCRIBE). */
  runs(taskId: string): boolean;
}

/** What the framework may ask of the broker. */
export interface ResourceBroker {
  /** Launches tasks on the offer's agent; the rest of the offer goes back to the pool. */
  accept(offerId: string, launches: TaskLaunch[]): void;
  /** Returns the offer; the agent is not offered again for `refuseSeconds` (or until revive). */
  decline(offerId: string, refuseSeconds: number): void;
  /** Stop sending offers: the framework has nothing to place. */
  suppress(): void;
  /** Resume offers and clear every refuse filter: the framework has work. */
  revive(): void;
  /** Asks the agent to kill a task. */
  kill(agentId: string, taskId: string): void;
  /**
   * Sets the memory (MB) a running task holds on its agent (a resize in place): false, with
   * nothing changed, when the agent lacks the free memory to grow it; undefined when the broker
   * does not know the agent to hold the task (not yet resubscribed after a scheduler start).
   */
  resizeTask(agentId: string, taskId: string, memMb: number): boolean | undefined;
  agents(): AgentView[];
  /**
   * One agent as the broker knows it, without building every agent's view as agents() does
   * (per-proc checks must not cost a pass over thousands of agents): undefined when unknown.
   */
  agentStatus(agentId: string): AgentStatus | undefined;
  /** Whether the agent's stream is open and it answered a heartbeat lately. */
  agentAlive(agentId: string): boolean;
}

/** What the broker tells the framework. */
export interface Framework {
  resourceOffers(offers: Offer[]): void;
  /** Resolves once the update is durable; only then is it acknowledged to the agent. */
  statusUpdate(agentId: string, status: redfleet.v1.ITaskStatus): Promise<void>;
  /** An agent (re)subscribed, running these tasks. */
  agentSubscribed(agentId: string, taskIds: string[]): void;
  /** An agent was gone for longer than the agent timeout; its tasks are lost. */
  agentLost(agentId: string, taskIds: string[]): void;
  /** The agent a proc is placed on (its SID), or undefined for a proc the framework does not know. */
  procAgent(procId: string): string | undefined;
  /** Whether the store places any live proc on this agent. */
  holdsProcs(agentId: string): boolean;
}
