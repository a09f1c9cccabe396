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
 * Why: the failure detector measures a master's silence with the scheduler's clock. Time during
 * which the scheduler could not read a PONG that was already waiting in its socket is not the
 * master's silence, so the detector subtracts it (`stalledWithin`). A stall still under way (the
 * probe has not run yet because the loop is only now catching up) counts too, so the order in
 * which timers fire after a stall does not matter.
 */
export class LoopLag {
  private timer?: NodeJS.Timeout;
  private lastBeat: number;
  private readonly stalls: Stall[] = [];
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
    this.lastBeat = this.now();
    this.timer = setInterval(() => this.beat(), this.everyMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** One tick of the probe; public so tests can drive it with their own clock. */
  beat(at = this.now()): void {
    const late = at - this.lastBeat - this.everyMs;
    if (late >= this.minStallMs) {
      this.stalls.push({ from: this.lastBeat + this.everyMs, to: at });
      this.worstMs = Math.max(this.worstMs, late);
    }
    this.lastBeat = at;
    while (this.stalls.length > 0 && this.stalls[0].to < at - this.keepMs) this.stalls.shift();
  }

  /** Milliseconds of [since, until] during which the loop was stalled, a stall still under way included. */
  stalledWithin(since: number, until = this.now()): number {
    let total = 0;
    for (const s of this.stalls) total += overlap(s, since, until);
    const ongoing = { from: this.lastBeat + this.everyMs, to: until };
    if (ongoing.to - ongoing.from >= this.minStallMs) total += overlap(ongoing, since, until);
    return total;
  }
}

function overlap(s: Stall, since: number, until: number): number {
  return Math.max(0, Math.min(s.to, until) - Math.max(s.from, since));
}
