import { readFileSync } from 'node:fs';

/*
 * How a proc's redis-server ended, as the agent tells it: its exit status, the reason when one is
 * known better, the last lines of its log, and where its data was kept.
 */

/** How a redis-server ended: `requested` when the agent stopped it on purpose. */
export interface ProcExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  requested: boolean;
  /** Why it ended when that is known better than by its exit status (never started, OOM-killed). */
  reason?: string;
  /** The last lines of its redis.log, read before its directory was removed. */
  logTail: string[];
  /**
   * The directory kept with the proc's data: a persistent proc that ended unrequested (crashed,
   * killed) keeps its data for a restart in place (see proc-data.ts). Unset when it was removed.
   */
  keptDir?: string;
}

/** Lines of redis.log kept (in the agent's log and the exit) when a proc's directory goes. */
export const LOG_TAIL_LINES = 20;

/** The reason an exit gives: the known reason, else the log's last line, else the exit status. */
export function describeExit(exit: ProcExit): string {
  const how = exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`;
  if (exit.reason) return exit.reason;
  const last = exit.logTail[exit.logTail.length - 1]?.replace(/^\d+:[A-Z] [^*#.-]*[*#.-] /, '').trim();
  return last ? `${how}: ${last.slice(0, 300)}` : how;
}

/** The last non-empty line of a process's output. */
export function lastLine(text: string): string | undefined {
  const lines = text.trim().split('\n');
  return lines[lines.length - 1]?.trim() || undefined;
}

/** The last `lines` lines of a file; none when it cannot be read. */
export function readTail(path: string, lines: number): string[] {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines);
  } catch {
    return [];
  }
}
