/** bench/fleet-log: reading the JSON logs of a RedFleet fleet's components (scheduler, agents). */

/** One line of a RedFleet component's JSON log; `t` is its timestamp in ms since the epoch. */
export interface LogEvent {
  t: number;
  message: string;
  [field: string]: unknown;
}

/** The JSON log lines of a RedFleet component (scheduler, agent), skipping anything else in the file. */
export function parseJsonLog(text: string): LogEvent[] {
  const out: LogEvent[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const obj = JSON.parse(line) as Record<string, unknown>;
      const t = Date.parse(String(obj.timestamp ?? ''));
      if (Number.isFinite(t) && typeof obj.message === 'string') out.push({ ...obj, t, message: obj.message });
    } catch {
      // not a log line
    }
  }
  return out;
}
