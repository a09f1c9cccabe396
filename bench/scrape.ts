/**
 * bench/scrape: what `/metrics` costs the scheduler (issue 10: "less than 5% CPU at 300 procs
 * scraped every 5 s"). soak.ts alternates its sample periods between scraping and not; this
 * scrapes GET /metrics every `everySeconds` while switched on, as Prometheus would, and times
 * each scrape (the request as the client sees it: the render plus one loopback round trip).
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

  private async tick(): Promise<void> {
    // A scrape still running when the next is due is not doubled up (Prometheus does the same).
    if (!this.on || this.busy) return;
    this.busy = true;
    const start = performance.now();
    try {
      const res = await fetch(this.url, { headers: this.headers, signal: AbortSignal.timeout(10_000) });
      const body = await res.text();
      if (res.status !== 200) throw new Error(`status ${res.status}`);
      this.renderMs.push(performance.now() - start);
      this.bodyBytes.push(Buffer.byteLength(body));
    } catch {
      this.failures += 1;
    } finally {
      this.busy = false;
    }
  }
}

/** One soak sample as the scrape summary needs it: the scheduler's CPU over the period, and whether it was scraped. */
export interface ScrapedSample {
  cpuPercent: number;
  scraping?: boolean;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(xs.length, 1);

/** The summary lines: CPU with and without scraping, their difference, and each scrape's time and size. */
export function scrapeSummary(samples: ScrapedSample[], scraper: MetricsScraper, everySeconds: number): string[] {
  const withCpu = samples.filter((s) => s.scraping).map((s) => s.cpuPercent);
  const withoutCpu = samples.filter((s) => !s.scraping).map((s) => s.cpuPercent);
  const cost = mean(withCpu) - mean(withoutCpu);
  const ms = summarize(scraper.renderMs);
  const bytes = summarize(scraper.bodyBytes);
  return [
    `  scrape /metrics    every ${everySeconds} s in ${withCpu.length} of ${samples.length} periods (alternating, the first without)`,
    `  sched CPU %        without scraping mean ${mean(withoutCpu).toFixed(2)} (${withoutCpu.map((c) => c.toFixed(1)).join(' ')})`,
    `                     with scraping    mean ${mean(withCpu).toFixed(2)} (${withCpu.map((c) => c.toFixed(1)).join(' ')})`,
    `  scrape cost        ${cost.toFixed(2)} % of a core (with minus without), ${((cost / 100) * everySeconds * 1000).toFixed(0)} ms of CPU per scrape`,
    `  scrape time ms     p50 ${ms.p50.toFixed(1)}, p95 ${ms.p95.toFixed(1)}, max ${ms.max.toFixed(1)} over ${ms.n} scrapes (${scraper.failures} failed)`,
    `  body bytes         p50 ${bytes.p50.toFixed(0)}, max ${bytes.max.toFixed(0)}`,
  ];
}
