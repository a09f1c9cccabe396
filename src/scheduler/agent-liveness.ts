import { pb } from '../proto/messages.js';
import type { Logger } from '../logger.js';
import type { AgentEntry, EventSink } from './agent-entry.js';

/** An agent silent for this many heartbeat intervals is disconnected (its stream may be a dead TCP connection). */
const SILENT_INTERVALS = 3;
/** An agent offers and takes launches only while its last answer is at most this many intervals old. */
const ALIVE_INTERVALS = 2;
const SILENCE_CHECK_MS = 250;
/**
 * A silence check this late means the scheduler's own event loop stalled (GC, CPU starvation, a
 * SIGSTOP): it could not have heard anyone, so silence up to now is not the agents' fault.
 */
const STALL_MS = 750;
/** Slack on ALIVE_INTERVALS for an answer's round trip and timer jitter. */
const ALIVE_SLACK_MS = 500;

export interface LivenessOptions {
  /** The agents must answer each heartbeat; this often they get one. */
  heartbeatSeconds: number;
  /** How long an agent may stay disconnected before its tasks are declared lost. */
  agentTimeoutMs: number;
}

/** What liveness asks of the broker. */
export interface LivenessActions {
  /** Drops the agent's current stream (silent, or not reading its events). */
  dropStream(agentId: string, why: string): void;
  /** The agent stayed away for the agent timeout; it is already forgotten. */
  lost(entry: AgentEntry): void;
}

/**
 * Agent liveness: heartbeats every interval that each agent must answer, silence checks that drop
 * a dead stream, the agent timeout after a disconnect, and forgiveness for the scheduler's own
 * stalls (silence the scheduler could not have heard through is not the agents' fault).
 */
export class AgentLiveness {
  private readonly heartbeat: NodeJS.Timeout;
  private readonly silence: NodeJS.Timeout;
  private lastSilenceCheck = Date.now();

  constructor(
    private readonly agents: Map<string, AgentEntry>,
    private readonly opts: LivenessOptions,
    private readonly log: Logger,
    private readonly actions: LivenessActions,
  ) {
    this.heartbeat = setInterval(() => this.sendHeartbeats(), opts.heartbeatSeconds * 1000);
    // Checked more often than heartbeats go out, so that silence is found close to its limit.
    this.silence = setInterval(() => this.dropSilent(), SILENCE_CHECK_MS);
  }

  close(): void {
    clearInterval(this.heartbeat);
    clearInterval(this.silence);
  }

  /** Declares the agent lost at its last sign of life + the agent timeout, unless it returns first. */
  armLost(entry: AgentEntry): void {
    clearTimeout(entry.lostTimer);
    entry.lostTimer = setTimeout(() => {
      if (entry.sink || this.agents.get(entry.id) !== entry) return;
      if (this.stalled(Date.now())) {
        this.forgiveStall(Date.now());
        return;
      }
      this.agents.delete(entry.id);
      this.log.warn('agent lost: no resubscription within the agent timeout', { agent: entry.id, timeoutMs: this.opts.agentTimeoutMs, silentMs: Date.now() - entry.lastSeen });
      this.actions.lost(entry);
    }, Math.max(0, entry.lastSeen + this.opts.agentTimeoutMs - Date.now()));
  }

  /** Whether this scheduler's event loop is (or just was) stalled: the silence check is overdue. */
  stalled(now: number): boolean {
    return now - this.lastSilenceCheck > SILENCE_CHECK_MS + STALL_MS;
  }

  /** A sign of life from the agent on its current stream `sink` (a heartbeat answer or any call). */
  heardFrom(agentId: string, sink: EventSink): void {
    const entry = this.agents.get(agentId);
    if (!entry || entry.sink !== sink) return;
    entry.lastSeen = Date.now();
    const waiters = entry.waiters.splice(0);
    for (const w of waiters) w();
  }

  /**
   * Asks the agent's current stream for a heartbeat answer; resolves true if one comes within
   * `timeoutMs`. Used before a second SUBSCRIBE may replace a stream: only a stream that is
   * proven gone gives up its agent's procs.
   */
  probe(agentId: string, timeoutMs: number): Promise<boolean> {
    const entry = this.agents.get(agentId);
    if (!entry?.sink) return Promise.resolve(false);
    return new Promise((resolve) => {
      const answered = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        entry.waiters = entry.waiters.filter((w) => w !== answered);
        resolve(false);
      }, timeoutMs);
      entry.waiters.push(answered);
      entry.sink?.send({ type: pb.Event.Type.HEARTBEAT });
    });
  }

  /** The agent answered a heartbeat lately enough to be trusted with offers and launches. */
  alive(entry: AgentEntry, now = Date.now()): boolean {
    return Boolean(entry.sink) && now - entry.lastSeen <= ALIVE_INTERVALS * this.opts.heartbeatSeconds * 1000 + ALIVE_SLACK_MS;
  }

  /** After a stall of our own, every agent gets a fresh window, connected or waiting to return. */
  private forgiveStall(now: number): void {
    this.log.warn('scheduler event loop stalled; agents\' silence during the stall is not held against them', { stalledMs: now - this.lastSilenceCheck });
    this.lastSilenceCheck = now;
    for (const a of this.agents.values()) {
      a.lastSeen = Math.max(a.lastSeen, now);
      if (!a.sink) this.armLost(a);
    }
  }

  /** Every interval, a heartbeat that each agent must answer with a HEARTBEAT call. */
  private sendHeartbeats(): void {
    for (const a of this.agents.values()) a.sink?.send({ type: pb.Event.Type.HEARTBEAT });
  }

  /**
   * Drops the streams of agents that went silent or stopped reading their events. A write into a
   * dead TCP connection (a partition: no RST) succeeds, so silence is the only sign of one.
   */
  private dropSilent(): void {
    const now = Date.now();
    if (this.stalled(now)) {
      this.forgiveStall(now);
      return;
    }
    this.lastSilenceCheck = now;
    const silentMs = SILENT_INTERVALS * this.opts.heartbeatSeconds * 1000;
    for (const a of this.agents.values()) {
      const backedUp = a.sink?.backedUpSince() ?? 0;
      if (!a.sink) continue;
      if (now - a.lastSeen > silentMs) this.actions.dropStream(a.id, `no heartbeat answer for ${now - a.lastSeen} ms`);
      else if (backedUp > 0 && now - backedUp > silentMs) this.actions.dropStream(a.id, `events unread for ${now - backedUp} ms`);
    }
  }
}
