/**
 * bench/scrape: what `/metrics` costs the scheduler (issue 10: "less than 5% CPU at 300 procs
 * scraped every 5 s"). soak.ts alternates its sample periods between scraping and not; this
 * scrapes GET /metrics every `everySeconds` while switched on, as Prometheus would, and times
 * each scrape (the request as the client sees it: the render plus one loopback round trip).
 * At the end, a burst of back-to-back scrapes measures one scrape's CPU more closely.
 */
import { summarize } from './figures.js';

export class MetricsScraper {
  private on = false;
  private busy = false;
  private readonly timer: NodeJS.Timeout;
  /** Wall time of each scrape (ms), its body size (bytes), and the scrapes that failed. */
  readonly renderMs: number[] = [];
  readonly bodyBytes: number[] = [];
  failures = 0;

  constructor(private readonly url: string, everySeconds: number, private readonly headers: Record<string, string> = {}) {
    this.timer = setInterval(() => void this.tick(), everySeconds * 1000);
  }

  /** Switches scraping on or off: the next tick scrapes (or not). */
  set scraping(on: boolean) {
    this.on = on;
  }

  get scraping(): boolean {
    return this.on;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /**
   * `count` scrapes back to back, with the scheduler's CPU time (`cpuSeconds`) read before and
   * after: the CPU they took above the scheduler's `baselinePercent` of a core is the cost of one
   * scrape, with far less noise than the periods' difference. Returns ms of CPU per scrape.
   */
  async burst(count: number, cpuSeconds: () => number, baselinePercent: number): Promise<number> {
    const before = cpuSeconds();
    const start = performance.now();
    for (let i = 0; i < count; i++) await this.scrape(false);
    const wall = (performance.now() - start) / 1000;
    const used = cpuSeconds() - before - (baselinePercent / 100) * wall;
    return (used * 1000) / count;
  }

  private async tick(): Promise<void> {
    // A scrape still running when the next is due is not doubled up (Prometheus does the same).
    if (!this.on || this.busy) return;
    this.busy = true;
    await this.scrape(true);
    this.busy = false;
  }

  /** One GET /metrics; `record`: its time and size go into the figures (not a burst's). */
  private async scrape(record: boolean): Promise<void> {
    const start = performance.now();
    try {
      const res = await fetch(this.url, { headers: this.headers, signal: AbortSignal.timeout(10_000) });
      const body = await res.text();
      if (res.status !== 200) throw new Error(`status ${res.status}`);
      if (!record) return;
      this.renderMs.push(performance.now() - start);
      this.bodyBytes.push(Buffer.byteLength(body));
    } catch {
      this.failures += 1;
    }
  }
}

/** One soak sample as the scrape summary needs it: the scheduler's CPU over the period, and whether it was scraped. */
export interface ScrapedSample {
  cpuPercent: number;
  scraping?: boolean;
}

/** How many scrapes the burst at the end of a run takes (see MetricsScraper.burst). */
export const BURST = 40;

export const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(xs.length, 1);

/** The summary lines: CPU with and without scraping, their difference, and each scrape's time and size. */
export function scrapeSummary(samples: ScrapedSample[], scraper: MetricsScraper, everySeconds: number, burstMs?: number): string[] {
  const withCpu = samples.filter((s) => s.scraping).map((s) => s.cpuPercent);
  const withoutCpu = samples.filter((s) => !s.scraping).map((s) => s.cpuPercent);
  const cost = mean(withCpu) - mean(withoutCpu);
  const burst = burstMs === undefined ? [] : [`  burst              ${BURST} scrapes back to back: ${burstMs.toFixed(1)} ms of CPU each above the baseline: ${((burstMs / (everySeconds * 1000)) * 100).toFixed(2)} % of a core at one scrape every ${everySeconds} s`];
  const ms = summarize(scraper.renderMs);
  const bytes = summarize(scraper.bodyBytes);
  return [
    `  scrape /metrics    every ${everySeconds} s in ${withCpu.length} of ${samples.length} periods (alternating, the first without)`,
    `  sched CPU %        without scraping mean ${mean(withoutCpu).toFixed(2)} (${withoutCpu.map((c) => c.toFixed(1)).join(' ')})`,
    `                     with scraping    mean ${mean(withCpu).toFixed(2)} (${withCpu.map((c) => c.toFixed(1)).join(' ')})`,
    `  scrape cost        ${cost.toFixed(2)} % of a core (with minus without), ${((cost / 100) * everySeconds * 1000).toFixed(0)} ms of CPU per scrape`,
    `  scrape time ms     p50 ${ms.p50.toFixed(1)}, p95 ${ms.p95.toFixed(1)}, max ${ms.max.toFixed(1)} over ${ms.n} scrapes (${scraper.failures} failed)`,
    ...burst,
    `  body bytes         p50 ${bytes.p50.toFixed(0)}, max ${bytes.max.toFixed(0)}`,
  ];
}
