import { Redis } from 'ioredis';
import { FRAMEWORK_USER } from '../store/secrets.js';
import type { Logger } from '../logger.js';
import type { RunningProc } from './running-proc.js';

/** What the agent's own PINGs say of one proc. */
export interface ProcHealth {
  /**
   * Milliseconds since the oldest local PING without a valid reply was sent, once that is at
   * least the probe's threshold (200 ms) or the proc is busy; 0 while it answers.
   */
  silentMs: number;
  /** It answers -BUSY: alive, but held by a tenant's script or function. */
  busy: boolean;
}

/** Told at once when a proc turns silent or busy, every PING period while it stays so, and once when it answers again. */
export type ProcHealthChange = (procId: string, health: ProcHealth) => void;

/** One proc to PING: where it listens and the framework user's secret on it. */
export interface ProbeTarget {
  procId: string;
  ip: string;
  port: number;
  secret: string;
}

export interface LocalProbeOptions {
  /** Default: a debug log line. */
  onChange?: ProcHealthChange;
  /** How often each proc is PINGed (one PING in flight at most). */
  pingEveryMs?: number;
  /** Silence that is worth telling. */
  silentAfterMs?: number;
  /** How often the probe looks at its procs; a silence is told within this of crossing the threshold. */
  checkEveryMs?: number;
}

/** Replies to PING that prove the proc alive, as Sentinel counts them. */
const ALIVE_ERRORS = /^(LOADING|MASTERDOWN)/;
/** A check this late means the agent's own loop was stalled (see forgiveStall). */
const AGENT_STALL_MS = 100;
/** silent_ms travels as a uint32. */
const MAX_SILENT_MS = 2 ** 32 - 1;

interface Probed {
  target: ProbeTarget;
  redis: Redis;
  inFlight: boolean;
  lastSentAt: number;
  /** When the oldest PING without a valid reply was sent (0: none). */
  pendingSince: number;
  busy: boolean;
  /** When onChange last told it silent or busy; 0 once told that it answers (or never told). */
  toldAt: number;
}

/** The procs the probe watches: those of the agent that run and have not exited. */
export function probeTargets(procs: Pick<RunningProc, 'task' | 'running' | 'redis'>[]): ProbeTarget[] {
  return procs
    .filter((p) => p.running && !p.redis.exited)
    .map((p) => ({ procId: p.task.task_id.value, ip: p.redis.opts.ip, port: p.redis.opts.port, secret: p.redis.opts.frameworkSecret }));
}

/**
 * First-line failure detection, on the node: the agent PINGs each of its running procs every
 * 200 ms over a connection of its own (not the one INFO and the agent's commands use, so a slow
 * INFO or a big reply never looks like silence), and tells at once of a proc that has given no
 * valid reply for 200 ms, or answers -BUSY. A PING on loopback costs the scheduler nothing, so
 * the scheduler need not PING every master itself (see scheduler/ping-plan.ts); a dead proc is
 * still told by its exit (TASK_FAILED), this is for a hung or frozen one.
 *
 * As Sentinel counts it, -BUSY is not a valid reply: a busy proc's silence keeps growing, so the
 * scheduler fails it over only if its script cannot be killed before down-after.
 */
export class LocalProbe {
  private readonly procs = new Map<string, Probed>();
  private readonly onChange: ProcHealthChange;
  private readonly pingEveryMs: number;
  private readonly silentAfterMs: number;
  private readonly checkEveryMs: number;
  private timer?: NodeJS.Timeout;
  private lastCheck = 0;

  constructor(private readonly targets: () => ProbeTarget[], private readonly log: Logger, opts: LocalProbeOptions = {}) {
    this.onChange = opts.onChange ?? ((procId, health) => log.debug('proc health from the local PING', { proc: procId, ...health }));
    this.pingEveryMs = opts.pingEveryMs ?? 200;
    this.silentAfterMs = opts.silentAfterMs ?? 200;
    this.checkEveryMs = opts.checkEveryMs ?? 50;
  }

  start(): void {
    if (this.timer) return;
    this.lastCheck = Date.now();
    this.timer = setInterval(() => this.check(), this.checkEveryMs);
  }

  /** Stops the timer and closes every probe connection. */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    for (const p of this.procs.values()) p.redis.disconnect();
    this.procs.clear();
  }

  /** Every watched proc's health now, for the agent's periodic report. */
  snapshot(): Map<string, ProcHealth> {
    const now = Date.now();
    return new Map([...this.procs.values()].map((p) => [p.target.procId, this.healthOf(p, now)]));
  }

  /** One pass: follows the agent's procs, PINGs those due, and tells what changed. */
  check(now = Date.now()): void {
    this.forgiveStall(now);
    this.follow();
    for (const p of this.procs.values()) {
      // Half a check of slack, so timer jitter does not push a PING to the next check.
      if (!p.inFlight && now - p.lastSentAt >= this.pingEveryMs - this.checkEveryMs / 2) this.ping(p, now);
      this.judge(p, now, false);
    }
  }

  /**
   * A check that ran late means the agent's own loop was stalled: replies that arrived meanwhile
   * wait unread behind the timers, so that stretch is not the proc's silence.
   */
  private forgiveStall(now: number): void {
    const late = now - this.lastCheck - this.checkEveryMs;
    this.lastCheck = now;
    if (late < AGENT_STALL_MS) return;
    for (const p of this.procs.values()) {
      if (p.pendingSince !== 0) p.pendingSince = Math.min(now, p.pendingSince + late);
    }
  }

  /** Opens a connection to each new proc and closes those of procs that stopped or moved. */
  private follow(): void {
    const wanted = new Map(this.targets().map((t) => [t.procId, t]));
    for (const [id, p] of this.procs) {
      const t = wanted.get(id);
      if (t && t.ip === p.target.ip && t.port === p.target.port) continue;
      p.redis.disconnect();
      this.procs.delete(id);
    }
    for (const t of wanted.values()) {
      if (!this.procs.has(t.procId)) this.procs.set(t.procId, this.open(t));
    }
  }

  private open(target: ProbeTarget): Probed {
    const redis = new Redis({
      host: target.ip,
      port: target.port,
      username: FRAMEWORK_USER,
      password: target.secret,
      connectionName: 'redfleet-agent-probe',
      enableReadyCheck: false,
      // The one PING in flight waits through a reconnect (and is sent again after it) rather than
      // fail: it stays the oldest unanswered one, and no second PING is queued behind it.
      maxRetriesPerRequest: null,
      connectTimeout: 1000,
      retryStrategy: () => this.pingEveryMs,
    });
    redis.on('error', () => undefined);
    return { target, redis, inFlight: false, lastSentAt: 0, pendingSince: 0, busy: false, toldAt: 0 };
  }

  private ping(p: Probed, now: number): void {
    p.inFlight = true;
    p.lastSentAt = now;
    if (p.pendingSince === 0) p.pendingSince = now;
    p.redis.ping().then(() => this.answered(p), (err: Error) => this.failed(p, err.message));
  }

  private answered(p: Probed): void {
    if (this.procs.get(p.target.procId) !== p) return;
    p.inFlight = false;
    p.pendingSince = 0;
    p.busy = false;
    if (p.toldAt === 0) return;
    p.toldAt = 0;
    this.tell(p.target.procId, { silentMs: 0, busy: false });
  }

  private failed(p: Probed, message: string): void {
    if (this.procs.get(p.target.procId) !== p) return;
    p.inFlight = false;
    if (ALIVE_ERRORS.test(message)) {
      this.answered(p);
      return;
    }
    const busy = message.startsWith('BUSY');
    const turnedBusy = busy && !p.busy;
    p.busy = busy;
    this.judge(p, Date.now(), turnedBusy);
  }

  /** Tells a silent or busy proc's health when it turns so (`atOnce` for -BUSY), then every PING period. */
  private judge(p: Probed, now: number, atOnce: boolean): void {
    const health = this.healthOf(p, now);
    if (health.silentMs === 0 && !health.busy) return;
    const sinceTold = now - p.toldAt;
    if (!atOnce && p.toldAt !== 0 && sinceTold < this.pingEveryMs - this.checkEveryMs / 2) return;
    p.toldAt = now;
    this.tell(p.target.procId, health);
  }

  private tell(procId: string, health: ProcHealth): void {
    try {
      this.onChange(procId, health);
    } catch (err) {
      this.log.warn('proc health callback failed', { proc: procId, error: (err as Error).message });
    }
  }

  /** Silence under the threshold is not told (0), unless the proc is busy. */
  private healthOf(p: Probed, now: number): ProcHealth {
    const silentMs = p.pendingSince === 0 ? 0 : Math.min(MAX_SILENT_MS, Math.max(0, now - p.pendingSince));
    if (silentMs < this.silentAfterMs && !p.busy) return { silentMs: 0, busy: false };
    return { silentMs, busy: p.busy };
  }
}
