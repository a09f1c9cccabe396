import { setTimeout as sleep } from 'node:timers/promises';

/**
 * A live view (`status --watch`, `top`): renders every `intervalMs` until Ctrl-C (SIGINT) or
 * SIGTERM. On a terminal the screen is cleared and redrawn; otherwise a frame is printed only when
 * it differs from the last, so a pipe gets a log of the changes. A failed call shows as a line
 * in the frame rather than ending the view: a scheduler that restarts comes back on screen.
 */
export async function liveView(render: () => Promise<string>, intervalMs = 1000, out: NodeJS.WriteStream = process.stdout): Promise<void> {
  const tty = out.isTTY === true;
  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  if (tty) out.write('\x1b[?25l'); // hide the cursor while redrawing
  let last = '';
  try {
    while (!stop.signal.aborted) {
      let frame: string;
      try {
        frame = await render();
      } catch (err) {
        frame = `error: ${(err as Error).message}`;
      }
      if (tty) out.write(`\x1b[H\x1b[2J${frame}\n\n(${new Date().toISOString().slice(11, 19)}, every ${intervalMs / 1000} s; Ctrl-C to quit)\n`);
      else if (frame !== last) out.write(`${frame}\n\n`);
      last = frame;
      await sleep(intervalMs, undefined, { signal: stop.signal }).catch(() => undefined);
    }
  } finally {
    if (tty) out.write('\x1b[?25h');
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** Columns padded to their widest cell, two spaces apart. */
export function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length))) ?? [];
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]))).join('  ')).join('\n');
}
