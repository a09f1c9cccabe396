import type { redfleet } from '../proto/redfleet.js';
import type { RedisServerBinary } from '../domain/services.js';
import type { AgentResources } from './agent-resources.js';

export type { HeldTask } from './agent-resources.js';

/** Where the broker writes an agent's events: the open SUBSCRIBE response. */
export interface EventSink {
  send(event: redfleet.v1.IEvent): void;
  /** Ends the stream; `abort` drops the connection at once (a silent peer never reads a FIN). */
  close(abort?: boolean): void;
  /** Since when (ms epoch) written events have been waiting for the peer to read them; 0 when none wait. */
  backedUpSince(): number;
}

/** What the endpoint adds to SUBSCRIBED: the session token and the scheduler's proof. */
export interface SessionGrant {
  session: string;
  proof: Uint8Array;
}

/** An agent as the broker knows it: its stream, its tasks and what they hold, its offer. */
export interface AgentEntry {
  id: string;
  hostname: string;
  ip: string;
  /** The redis-server binaries it offers (SUBSCRIBE), the first its default. */
  redisServers: RedisServerBinary[];
  /** Its tasks, what they hold, and its free resources kept up to date (its total among them). */
  held: AgentResources;
  sink?: EventSink;
  /** The last sign of life on the current stream: SUBSCRIBE, a heartbeat answer or any call (ms epoch). */
  lastSeen: number;
  /**
   * The agent's last call within a session (a heartbeat answer or any call; ms epoch), or when it
   * was first seen. A SUBSCRIBE alone does not move it: the write-off clock runs from here. At
   * 1,000 agents a SUBSCRIBE that had waited in the scheduler's full accept queue, its agent long
   * gone from it, opened a stream nobody read, and restarted that clock each time (issue 11).
   */
  answeredAt: number;
  /** Resolved by the next sign of life (see probe). */
  waiters: (() => void)[];
  offerId?: string;
  refuseUntil: number;
  subscribedAt: string;
  /** Cancels the pending write-off of a disconnected agent (see AgentLiveness.armLost). */
  cancelLost?: () => void;
}
