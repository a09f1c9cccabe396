/**
 * bench/failover/report: what the failover benchmark prints on stdout once every run is done:
 * the setup, the p50/p95/min/max table, the ratios against the goal, every run, the event
 * timeline, the client's errors, notes and failures, and the machine.
 */
import { formatMs, sortedRuns, summarize, summaryHeader, summaryRow, type SummaryLayout } from '../figures.js';
import { machineLines, type OtherLoad } from '../machine.js';
import {
  AGENTS, CAPACITY_MB, DOWN_AFTER_MS, EVENTS, FAULT_LABEL, FAULTS, GOAL, MAX_IN_FLIGHT, REPLICAS, REPRODUCE, SENTINEL_FAILOVER_TIMEOUT_MS,
  SENTINEL_QUORUM, SENTINELS, SYSTEMS, WRITE_EVERY_MS, type Fault, type Outcome, type Run, type System,
} from './parameters.js';

const TABLE: SummaryLayout = { labelWidth: 20, cellWidth: 8, digits: 0 };

/** What the report says besides the runs: when, with which client, on which machine. */
export interface ReportContext {
  runs: number;
  startedAt: Date;
  ioredisVersion: string;
  /** --disconnect-timeout, when given. */
  disconnectTimeout?: number;
  host: Record<string, string>;
  otherLoad: OtherLoad;
  /** The 1-min load average at the start. */
  loadBefore: number;
}

/** The report's lines, in order. */
export function report(out: Outcome, ctx: ReportContext): string[] {
  const cell = (system: System, fault: Fault): Run[] => out.runs.filter((r) => r.system === system && r.fault === fault);
  return [
    ...setupLines(ctx),
    ...summaryLines(cell),
    ...timelineLines(cell),
    ...clientLines(cell),
    ...noteLines(out),
    '',
    ctx.otherLoad.line(ctx.loadBefore),
    '',
    ...machineLines(ctx.host),
    '',
    `reproduce: ${REPRODUCE}   (fewer runs: add --runs 2)`,
  ];
}

type Cell = (system: System, fault: Fault) => Run[];

function setupLines(ctx: ReportContext): string[] {
  const { disconnectTimeout } = ctx;
  return [
    '',
    `failover: 1 master + ${REPLICAS} replicas; ms from the fault to the first SET acknowledged by the new master,`,
    'as seen by one ioredis client that finds the master through the Sentinel protocol (failoverDetector on)',
    `date: ${ctx.startedAt.toISOString()}   runs per cell: ${ctx.runs} (+1 untimed kill -9 warm-up per system)`,
    `client: ioredis ${ctx.ioredisVersion}, a SET every ${WRITE_EVERY_MS} ms, pipelined (<= ${MAX_IN_FLIGHT} outstanding), commandTimeout 300 ms, retry/sentinelRetry 20 ms,`,
    `        disconnectTimeout ${disconnectTimeout === undefined ? "ioredis's default (2000 ms)" : `${disconnectTimeout} ms (--disconnect-timeout; NOT the default client)`}`,
    `RedFleet: ${AGENTS} agents, instance ${CAPACITY_MB} MB, down-after ${DOWN_AFTER_MS} ms (checked on its Sentinel endpoint each run)`,
    `Sentinel: ${SENTINELS} redis-sentinel, quorum ${SENTINEL_QUORUM}, down-after-milliseconds ${DOWN_AFTER_MS}, failover-timeout ${SENTINEL_FAILOVER_TIMEOUT_MS}, parallel-syncs 1`,
    '',
  ];
}

/** The table, the ratios against the goal, and every run sorted. */
function summaryLines(cell: Cell): string[] {
  const lines = [summaryHeader(TABLE)];
  for (const fault of FAULTS) {
    for (const system of SYSTEMS) lines.push(summaryRow(`${FAULT_LABEL[fault]}  ${system}`, summarize(cell(system, fault).map((r) => r.ms)), TABLE));
  }
  lines.push('');
  for (const fault of FAULTS) {
    const ratio = summarize(cell('RedFleet', fault).map((r) => r.ms)).p50 / summarize(cell('Sentinel', fault).map((r) => r.ms)).p50;
    const met = Number.isFinite(ratio) && ratio <= GOAL[fault];
    lines.push(`${FAULT_LABEL[fault].padEnd(8)} p50 RedFleet / p50 Sentinel = ${Number.isFinite(ratio) ? ratio.toFixed(2) : '-'}x   goal <= ${GOAL[fault]}x: ${met ? 'MET' : 'NOT MET'}`);
  }
  lines.push('(p95 is nearest-rank: with 10 runs it is the slowest run)');
  lines.push('');
  lines.push('all runs, sorted (ms):');
  for (const fault of FAULTS) {
    for (const system of SYSTEMS) {
      lines.push(`  ${`${FAULT_LABEL[fault]}  ${system}`.padEnd(20)}${sortedRuns(cell(system, fault).map((r) => r.ms))}`);
    }
  }
  return lines;
}

/** When each event was logged, p50 per cell, and the client's write against +switch-master. */
function timelineLines(cell: Cell): string[] {
  const lines = [
    '',
    'timeline, ms after the fault (p50 over the runs where the event was logged, n = such runs;',
    'RedFleet: its scheduler\'s "sentinel event" log lines; Sentinel: earliest line of the three sentinel logs; 1 ms log',
    'resolution; write-switch: client write minus +switch-master in the same run, p50):',
    `  ${''.padEnd(20)}${EVENTS.map((e) => e.padStart(16)).join('')}${'client write'.padStart(14)}${'write-switch'.padStart(14)}`,
  ];
  for (const fault of FAULTS) {
    for (const system of SYSTEMS) {
      const rs = cell(system, fault);
      const cols = EVENTS.map((ev) => {
        const vs = rs.map((r) => r.events[ev]).filter((v): v is number => v !== undefined);
        return `${formatMs(summarize(vs).p50, 0)} (n=${vs.length})`.padStart(16);
      });
      const gaps = rs.filter((r) => r.events['+switch-master'] !== undefined).map((r) => r.ms - r.events['+switch-master']!);
      lines.push(`  ${`${FAULT_LABEL[fault]}  ${system}`.padEnd(20)}${cols.join('')}${`${formatMs(summarize(rs.map((r) => r.ms)).p50, 0)} (n=${rs.length})`.padStart(14)}`
        + `${`${formatMs(summarize(gaps).p50, 0)} (n=${gaps.length})`.padStart(14)}`);
    }
  }
  return lines;
}

/** Per cell: whether the old master still lived, the client's errors by kind, RedFleet's failover causes. */
function clientLines(cell: Cell): string[] {
  const lines = [
    '',
    'per cell: old master process still alive at the first write; SET errors the client got between the fault',
    'and that write (kind: runs where seen); RedFleet: cause in its "failover" log line (runs):',
  ];
  for (const fault of FAULTS) {
    for (const system of SYSTEMS) {
      const rs = cell(system, fault);
      if (rs.length === 0) continue;
      const kinds = new Map<string, number>();
      for (const r of rs) for (const k of r.errors.keys()) kinds.set(k, (kinds.get(k) ?? 0) + 1);
      const causes = new Map<string, number>();
      for (const r of rs) if (r.cause) causes.set(r.cause, (causes.get(r.cause) ?? 0) + 1);
      lines.push(`  ${FAULT_LABEL[fault]}  ${system}: old master alive in ${rs.filter((r) => r.oldAlive).length}/${rs.length} runs`
        + `${causes.size ? `; cause: ${[...causes].map(([k, n]) => `${k} (${n})`).join(', ')}` : ''}`);
      for (const [k, n] of [...kinds].sort((a, b) => b[1] - a[1])) lines.push(`      ${k}: ${n}`);
    }
  }
  return lines;
}

/** Notes on runs and from the logs, then the failed runs (left out of the figures). */
function noteLines(out: Outcome): string[] {
  const lines: string[] = [];
  const runNotes = out.runs.filter((r) => r.notes.length > 0);
  if (runNotes.length > 0 || out.notes.length > 0) {
    lines.push('');
    lines.push('notes:');
    for (const r of runNotes) lines.push(`  ${r.system} ${FAULT_LABEL[r.fault]} ${r.label}: ${r.notes.join('; ')}`);
    for (const n of out.notes) lines.push(`  ${n}`);
  }
  if (out.failures.length > 0) {
    lines.push('');
    lines.push(`failed runs (${out.failures.length}), left out of the figures:`);
    for (const f of out.failures) lines.push(`  ${f}`);
  }
  return lines;
}
