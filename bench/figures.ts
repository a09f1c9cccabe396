/**
 * bench/figures: how the benchmarks summarise what they measured (nearest-rank percentiles) and
 * lay it out in tables, so that every report reads the same way.
 */

/** Nearest-rank percentile of an ascending array: always one of the measured values. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

export interface Summary {
  n: number;
  p50: number;
  p95: number;
  min: number;
  max: number;
}

/** p50, p95, min and max of some runs; NaN (printed as '-') where there are none. */
export function summarize(values: number[]): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  return { n: sorted.length, p50: percentile(sorted, 50), p95: percentile(sorted, 95), min: sorted[0] ?? NaN, max: sorted[sorted.length - 1] ?? NaN };
}

export const MIB = 1024 * 1024;

/** A figure rounded to `digits` decimals for a JSON line (NaN stays NaN: JSON prints null). */
export function roundTo(v: number, digits = 1): number {
  return Number.isFinite(v) ? Number(v.toFixed(digits)) : NaN;
}

/** A figure with `digits` decimals, or '-' for a cell with no runs (NaN) so that columns stay readable. */
export function formatMs(v: number, digits: number): string {
  return Number.isFinite(v) ? v.toFixed(digits) : '-';
}

/** How wide a p50/p95/min/max/runs table's columns are and how many decimals its figures get. */
export interface SummaryLayout {
  labelWidth: number;
  cellWidth: number;
  digits: number;
}

/** The heading line of a summary table, aligned with summaryRow() under the same layout. */
export function summaryHeader(layout: SummaryLayout): string {
  const { labelWidth: l, cellWidth: w } = layout;
  return `${'ms'.padEnd(l)}${'p50'.padStart(w)}${'p95'.padStart(w)}${'min'.padStart(w)}${'max'.padStart(w)}${'runs'.padStart(6)}`;
}

/** One line of a summary table: label, p50, p95, min, max and the number of runs. */
export function summaryRow(label: string, s: Summary, layout: SummaryLayout): string {
  const { labelWidth: l, cellWidth: w, digits: d } = layout;
  return `${label.padEnd(l)}${formatMs(s.p50, d).padStart(w)}${formatMs(s.p95, d).padStart(w)}${formatMs(s.min, d).padStart(w)}${formatMs(s.max, d).padStart(w)}${String(s.n).padStart(6)}`;
}

/** Every run in whole ms, ascending: the raw figures behind the percentiles, for the report. */
export function sortedRuns(values: number[]): string {
  return [...values].sort((a, b) => a - b).map((v) => v.toFixed(0)).join(' ');
}
