import { subtractPorts, type Resources } from '../proto/messages.js';
import type { redfleet } from '../proto/redfleet.js';
import type { RedisServerBinary } from '../domain/services.js';

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

export interface HeldTask {
  resources: Resources;
}

/** An agent as the broker knows it: its stream, its tasks and what they hold, its offer. */
export interface AgentEntry {
  id: string;
  hostname: string;
  ip: string;
  total: Resources;
  /** The redis-server binaries it offers (SUBSCRIBE), the first its default. */
  redisServers: RedisServerBinary[];
  tasks: Map<string, HeldTask>;
  sink?: EventSink;
  /** The last sign of life on the current stream: SUBSCRIBE, a heartbeat answer or any call (ms epoch). */
  lastSeen: number;
  /** Resolved by the next sign of life (see probe). */
  waiters: (() => void)[];
  offerId?: string;
  refuseUntil: number;
  subscribedAt: string;
  /** Cancels the pending write-off of a disconnected agent (see AgentLiveness.armLost). */
  cancelLost?: () => void;
  /** Ports whose task ended lately, and when. */
  cooling: Map<number, number>;
}

/**
 * A port whose redis-server just ended is offered again only after this long (or when the agent
 * has no other port): clients that still hold the old address must not land on a different
 * instance's proc, or on a new replica where a master used to be.
 */
const PORT_COOLDOWN_MS = 30_000;

/** The task's ports start their cooldown now (its redis-server ended). */
export function coolPorts(a: AgentEntry, task: HeldTask): void {
  for (const r of task.resources.ports) for (let p = r.begin; p <= r.end; p++) a.cooling.set(p, Date.now());
}

/** What the agent has left once its tasks are subtracted, cooling ports held back while others are free. */
export function freeOf(a: AgentEntry): Resources {
  let cpus = a.total.cpus;
  let mem = a.total.mem;
  const taken: number[] = [];
  for (const t of a.tasks.values()) {
    cpus -= t.resources.cpus;
    mem -= t.resources.mem;
    for (const r of t.resources.ports) for (let p = r.begin; p <= r.end; p++) taken.push(p);
  }
  const free = subtractPorts(a.total.ports, taken);
  const now = Date.now();
  for (const [port, at] of a.cooling) if (now - at > PORT_COOLDOWN_MS) a.cooling.delete(port);
  const rested = subtractPorts(free, [...a.cooling.keys()]);
  return { cpus: Math.max(0, Math.round(cpus * 1000) / 1000), mem: Math.max(0, mem), ports: rested.length > 0 ? rested : free };
}

/**
 * Sets the memory a task holds (a resize): growing only where the agent's free memory covers the
 * difference. Returns whether the task now holds `memMb`; undefined for a task the agent does not hold.
 */
export function resizeHeld(a: AgentEntry, taskId: string, memMb: number): boolean | undefined {
  const task = a.tasks.get(taskId);
  if (!task) return undefined;
  const extra = memMb - task.resources.mem;
  if (extra > 0 && freeOf(a).mem < extra) return false;
  task.resources = { ...task.resources, mem: memMb };
  return true;
}
