/** A stretch of time during which the scheduler's event loop ran nothing. */
interface Stall {
  from: number;
  to: number;
}

/**
 * Watches the scheduler's own event loop. A timer is meant to fire every `everyMs`; when it fires
 * late by `minStallMs` or more, the loop was stalled (a GC pause, a CPU-starved host, SIGSTOP, a
 * hostile request), and that stretch is remembered for a while.
 *
 * Why: the failure detector measures a master's silence, and agent liveness an agent's, with the
 * scheduler's clock. Time during which the scheduler could not read a PONG or a heartbeat answer
 * that was already waiting in its socket is not the peer's silence, so both subtract it
 * (`stalledWithin`, `awakeWithin`). A stall still under way (the probe has not run yet because the
 * loop is only now catching up) counts too, so the order in which timers fire after a stall does
 * not matter. One LoopLag serves a whole leader term: each part that relies on it starts it and
 * stops it, and it runs while any of them does.
 */
export class LoopLag {
  private timer?: NodeJS.Timeout;
  private lastBeat: number;
  private readonly stalls: Stall[] = [];
  /** How many parts started it and have not stopped it yet. */
  private users = 0;
  /** Stopped by its last user: nothing is measured any more, so no stall is under way. */
  private stopped = false;
  private readonly listeners: ((stalledMs: number) => void)[] = [];
  /** The largest lateness seen, in ms, for logs. */
  worstMs = 0;

  constructor(
    private readonly everyMs = 50,
    private readonly minStallMs = 50,
    private readonly keepMs = 120_000,
    private readonly now: () => number = Date.now,
  ) {
    this.lastBeat = now();
  }

  start(): void {
    this.users += 1;
    if (this.users > 1) return;
    this.stopped = false;
    this.lastBeat = this.now();
    this.timer = setInterval(() => this.beat(), this.everyMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.users === 0) return;
    this.users -= 1;
    if (this.users > 0) return;
    clearInterval(this.timer);
    this.stopped = true;
  }

  /** Calls `listener` with each stall's length once it is over. */
  onStall(listener: (stalledMs: number) => void): void {
    this.listeners.push(listener);
  }

  offStall(listener: (stalledMs: number) => void): void {
    const i = this.listeners.indexOf(listener);
    if (i >= 0) this.listeners.splice(i, 1);
  }

  /** One tick of the probe; public so tests can drive it with their own clock. */
  beat(at = this.now()): void {
    const late = at - this.lastBeat - this.everyMs;
    this.lastBeat = at;
    while (this.stalls.length > 0 && this.stalls[0].to < at - this.keepMs) this.stalls.shift();
    if (late < this.minStallMs) return;
    this.stalls.push({ from: at - late, to: at });
    this.worstMs = Math.max(this.worstMs, late);
    for (const l of this.listeners) l(late);
  }

  /** Milliseconds of [since, until] during which the loop was stalled, a stall still under way included. */
  stalledWithin(since: number, until = this.now()): number {
    let total = 0;
    // Newest first: the windows asked about are recent, so the scan stops after a few stalls.
    for (let i = this.stalls.length - 1; i >= 0 && this.stalls[i].to > since; i--) total += overlap(this.stalls[i], since, until);
    const ongoing = { from: this.lastBeat + this.everyMs, to: until };
    if (!this.stopped && ongoing.to - ongoing.from >= this.minStallMs) total += overlap(ongoing, since, until);
    return total;
  }

  /** Milliseconds of [since, until] during which the loop ran: the time in which it could hear anyone. */
  awakeWithin(since: number, until = this.now()): number {
    return Math.max(0, until - since - this.stalledWithin(since, until));
  }

  /**
   * Calls `fn` once the loop has been awake for `ms` from now: a stall pushes it back by its
   * length. Returns what cancels it.
   */
  afterAwake(ms: number, fn: () => void): () => void {
    const since = this.now();
    let timer: NodeJS.Timeout;
    const check = (): void => {
      const left = ms - this.awakeWithin(since);
      if (left > 0) timer = setTimeout(check, left);
      else fn();
    };
    timer = setTimeout(check, Math.max(0, ms));
    return () => clearTimeout(timer);
  }
}

function overlap(s: Stall, since: number, until: number): number {
  return Math.max(0, Math.min(s.to, until) - Math.max(s.from, since));
}
