import { setImmediate as yieldLoop } from 'node:timers/promises';

/**
 * A long loop's work cut into slices of time, the event loop let go between them: the loop asks
 * `due()` at each step and, when it says so, awaits `next()`. By time, not by count: on a busy
 * scheduler each let-go costs tens of ms, so a fixed count of steps a slice made a render of
 * 33,334 instances take seconds (BENCHMARKS, scale, sixth round). The clock is read every 64th step.
 */
export class TimeSlices {
  private steps = 0;
  private ends: number;

  constructor(private readonly sliceMs: number) {
    this.ends = performance.now() + sliceMs;
  }

  /** Whether this slice's time is up. */
  due(): boolean {
    return ++this.steps % 64 === 0 && performance.now() >= this.ends;
  }

  /** Lets the event loop go, then starts the next slice. */
  async next(): Promise<void> {
    await yieldLoop();
    this.ends = performance.now() + this.sliceMs;
  }
}
