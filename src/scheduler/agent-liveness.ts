import { pb } from '../proto/messages.js';
import type { Logger } from '../logger.js';
import type { AgentEntry, EventSink } from './agent-entry.js';
import type { LoopLag } from './loop-lag.js';
import { slotOf } from './spread.js';

/** An agent silent for this many heartbeat intervals is disconnected (its stream may be a dead TCP connection). */
const SILENT_INTERVALS = 3;
/** An agent offers and takes launches only while its last answer is at most this many intervals old. */
const ALIVE_INTERVALS = 2;
const SILENCE_CHECK_MS = 250;
/**
 * Heartbeats go out in slots of this length: each agent gets its own every interval, in its own
 * slot (by its id), so their answers, which carry the agents' figures, arrive spread over the
 * interval. All at once, 1,000 agents' answers with 10,000 procs' figures stalled the scheduler
 * for about a second every interval (issue 11).
 */
const HEARTBEAT_SLOT_MS = 100;
/** A stall of the scheduler's own loop this long is logged (bench:scale counts these lines). */
const STALL_LOG_MS = 750;
/** Slack on ALIVE_INTERVALS for an answer's round trip and timer jitter. */
const ALIVE_SLACK_MS = 500;
/**
 * An agent's procs are written off only while the scheduler was awake for at least this share of
 * the last agent timeout: a scheduler that was mostly stalled lately gave the agent no fair chance
 * to come back (its challenges and SUBSCRIBEs went unanswered), and its view is not to be trusted.
 */
const HEALTHY_SHARE = 0.5;
/** ... but a write-off waits for that at most this many agent timeouts of silence, so a lasting overload still replaces a dead agent's procs. */
const MAX_DEFER_TIMEOUTS = 3;

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
 * a dead stream, and the agent timeout after a disconnect. Every silence is measured in the
 * scheduler's awake time (see LoopLag): time during which its own event loop was stalled (GC, a
 * starved CPU, SIGSTOP, a burst of work) is time in which it could not have heard an answer that
 * was already waiting in its socket, so it is not held against the agents. Issue 11: stalls of
 * 1-2 s during a create burst dropped 88 agents' streams and wrote 738 healthy procs off.
 */
export class AgentLiveness {
  private readonly heartbeat: NodeJS.Timeout;
  /** Slots of HEARTBEAT_SLOT_MS in one heartbeat interval. */
  private readonly heartbeatSlots: number;
  /** The last slot heartbeats went out for, counted in slots since the epoch. */
  private lastSlot = Math.floor(Date.now() / HEARTBEAT_SLOT_MS);
  private readonly silence: NodeJS.Timeout;
  /** Agents whose write-off waits for the scheduler to be healthy again (logged once each). */
  private readonly deferred = new Set<string>();
  private readonly logStall = (stalledMs: number): void => {
    if (stalledMs < STALL_LOG_MS) return;
    this.log.warn('scheduler event loop stalled; agents\' silence during the stall is not held against them', { stalledMs });
  };

  constructor(
    private readonly agents: Map<string, AgentEntry>,
    private readonly opts: LivenessOptions,
    private readonly log: Logger,
    private readonly actions: LivenessActions,
    private readonly lag: LoopLag,
  ) {
    lag.start();
    lag.onStall(this.logStall);
    this.heartbeatSlots = Math.max(1, Math.round((opts.heartbeatSeconds * 1000) / HEARTBEAT_SLOT_MS));
    this.heartbeat = setInterval(() => this.sendHeartbeats(), HEARTBEAT_SLOT_MS);
    // Checked more often than heartbeats go out, so that silence is found close to its limit.
    this.silence = setInterval(() => this.dropSilent(), SILENCE_CHECK_MS);
  }

  close(): void {
    clearInterval(this.heartbeat);
    clearInterval(this.silence);
    this.lag.offStall(this.logStall);
    this.lag.stop();
  }

  /** Milliseconds of silence since the agent's last sign of life that the scheduler was awake to hear. */
  silentMs(entry: AgentEntry, now = Date.now()): number {
    return this.lag.awakeWithin(entry.lastSeen, now);
  }

  /** Milliseconds since the agent's last call within a session (see AgentEntry.answeredAt) that the scheduler was awake to hear. */
  unheardMs(entry: AgentEntry, now = Date.now()): number {
    return this.lag.awakeWithin(entry.answeredAt, now);
  }

  /**
   * Declares the agent lost once it has made no call for the agent timeout of awake time, unless
   * it returns first. Counted from its last call, not from a SUBSCRIBE that was never followed by
   * one (see AgentEntry.answeredAt).
   */
  armLost(entry: AgentEntry): void {
    this.recheckLost(entry, this.opts.agentTimeoutMs - this.unheardMs(entry));
  }

  /**
   * Looks at the agent again after `awakeMs` of awake time, or at MAX_DEFER_TIMEOUTS of wall-clock
   * silence, whichever comes first: a saturated loop counts almost all of its time as stalled, and
   * an awake-time timer alone left 260 dead agents unwritten-off for minutes (issue 11).
   */
  private recheckLost(entry: AgentEntry, awakeMs: number): void {
    entry.cancelLost?.();
    const cancelAwake = this.lag.afterAwake(awakeMs, () => this.checkLost(entry));
    const wall = setTimeout(() => this.checkLost(entry), Math.max(0, entry.answeredAt + MAX_DEFER_TIMEOUTS * this.opts.agentTimeoutMs - Date.now()));
    entry.cancelLost = () => {
      cancelAwake();
      clearTimeout(wall);
    };
  }

  /**
   * Whether the agent's procs may be written off now: the agent stayed away for the agent timeout
   * of awake time, and the scheduler was itself mostly awake over the last agent timeout (or the
   * agent has been away for MAX_DEFER_TIMEOUTS of wall time).
   */
  lostDue(entry: AgentEntry, now = Date.now()): boolean {
    const timeout = this.opts.agentTimeoutMs;
    if (now - entry.answeredAt >= MAX_DEFER_TIMEOUTS * timeout) return true;
    if (this.unheardMs(entry, now) < timeout) return false;
    return this.lag.awakeWithin(now - timeout, now) >= HEALTHY_SHARE * timeout;
  }

  private checkLost(entry: AgentEntry): void {
    if (entry.sink || this.agents.get(entry.id) !== entry) {
      this.deferred.delete(entry.id);
      return;
    }
    const now = Date.now();
    if (!this.lostDue(entry, now) && this.unheardMs(entry, now) < this.opts.agentTimeoutMs) {
      this.armLost(entry);
      return;
    }
    if (!this.lostDue(entry, now)) {
      if (!this.deferred.has(entry.id)) this.log.warn('agent write-off deferred: this scheduler\'s loop was stalled for most of the agent timeout', { agent: entry.id, stalledMs: this.lag.stalledWithin(now - this.opts.agentTimeoutMs, now) });
      this.deferred.add(entry.id);
      this.recheckLost(entry, this.opts.heartbeatSeconds * 1000);
      return;
    }
    this.deferred.delete(entry.id);
    this.agents.delete(entry.id);
    this.log.warn('agent lost: no resubscription within the agent timeout', { agent: entry.id, timeoutMs: this.opts.agentTimeoutMs, silentMs: now - entry.answeredAt, awakeMs: this.unheardMs(entry, now) });
    this.actions.lost(entry);
  }

  /** A sign of life from the agent on its current stream `sink` (a heartbeat answer or any call). */
  heardFrom(agentId: string, sink: EventSink): void {
    const entry = this.agents.get(agentId);
    if (!entry || entry.sink !== sink) return;
    entry.lastSeen = Date.now();
    entry.answeredAt = entry.lastSeen;
    this.deferred.delete(agentId);
    const waiters = entry.waiters.splice(0);
    for (const w of waiters) w();
  }

  /**
   * Asks the agent's current stream for a heartbeat answer; resolves true if one comes within
   * `timeoutMs` of the scheduler's awake time (a stall of its own does not make a live stream
   * look gone). Used before a second SUBSCRIBE may replace a stream: only a stream that is proven
   * gone gives up its agent's procs.
   */
  probe(agentId: string, timeoutMs: number): Promise<boolean> {
    const entry = this.agents.get(agentId);
    if (!entry?.sink) return Promise.resolve(false);
    return new Promise((resolve) => {
      const answered = (): void => {
        cancel();
        resolve(true);
      };
      const cancel = this.lag.afterAwake(timeoutMs, () => {
        entry.waiters = entry.waiters.filter((w) => w !== answered);
        resolve(false);
      });
      entry.waiters.push(answered);
      entry.sink?.send({ type: pb.Event.Type.HEARTBEAT });
    });
  }

  /** The agent answered a heartbeat lately enough (in awake time) to be trusted with offers and launches. */
  alive(entry: AgentEntry, now = Date.now()): boolean {
    return Boolean(entry.sink) && this.silentMs(entry, now) <= ALIVE_INTERVALS * this.opts.heartbeatSeconds * 1000 + ALIVE_SLACK_MS;
  }

  /**
   * Every interval, a heartbeat that each agent must answer with a HEARTBEAT call, each in its own
   * slot. The slots follow the clock, not the timer's ticks: a loop stalled past some slots sends
   * theirs at its next tick (all of them after a whole interval), so each agent still gets one
   * every interval of wall time, as its stream watchdog expects.
   */
  private sendHeartbeats(now = Date.now()): void {
    const slot = Math.floor(now / HEARTBEAT_SLOT_MS);
    const missed = slot - this.lastSlot;
    if (missed <= 0) return;
    this.lastSlot = slot;
    for (const a of this.agents.values()) {
      if (!a.sink) continue;
      // How many slots ago this agent's slot last came round; due if within the ones just passed.
      const ago = (((slot - slotOf(a.id, this.heartbeatSlots)) % this.heartbeatSlots) + this.heartbeatSlots) % this.heartbeatSlots;
      if (missed >= this.heartbeatSlots || ago < missed) a.sink.send({ type: pb.Event.Type.HEARTBEAT });
    }
  }

  /**
   * Drops the streams of agents that went silent or stopped reading their events. A write into a
   * dead TCP connection (a partition: no RST) succeeds, so silence is the only sign of one. Events
   * backed up count in awake time too: a stalled scheduler does not move its buffers to the kernel.
   * Public so tests can drive it with their own clock.
   */
  dropSilent(now = Date.now()): void {
    const limitMs = SILENT_INTERVALS * this.opts.heartbeatSeconds * 1000;
    for (const a of this.agents.values()) {
      if (!a.sink) continue;
      const silentMs = this.silentMs(a, now);
      const backedUp = a.sink.backedUpSince();
      const unreadMs = backedUp > 0 ? this.lag.awakeWithin(backedUp, now) : 0;
      if (silentMs > limitMs) this.actions.dropStream(a.id, `no heartbeat answer for ${silentMs} ms of awake time (${now - a.lastSeen} ms in all)`);
      else if (unreadMs > limitMs) this.actions.dropStream(a.id, `events unread for ${unreadMs} ms of awake time`);
    }
  }
}
