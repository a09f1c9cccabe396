/**
 * Progress of a long client command. On a terminal: one line redrawn in place, a spinner, the
 * current step and the seconds so far. Otherwise (a pipe, a file, CI): one plain line per change
 * of step, as before, so that logs and scripts read the same.
 */
const FRAMES = ['|', '/', '-', '\\'];
const FRAME_MS = 100;

export interface ProgressSink {
  /** The current step; printed (or redrawn) when it changes. */
  step(text: string): void;
  /** Ends the spinner line (a terminal) so that what follows starts on a line of its own. */
  done(): void;
}

/** `plainSeconds`: whether a plain line ends with the seconds so far, as the operations' lines do. */
export function progress(stream: NodeJS.WriteStream = process.stdout, plainSeconds = true, tty = stream.isTTY === true): ProgressSink {
  const started = Date.now();
  const elapsed = (): string => `${Math.round((Date.now() - started) / 1000)} s`;
  let current = '';
  if (!tty) {
    return {
      step(text) {
        if (text !== current) stream.write(plainSeconds ? `${text} (${elapsed()})\n` : `${text}\n`);
        current = text;
      },
      done() {},
    };
  }
  let frame = 0;
  const draw = (): void => void stream.write(`\r\x1b[K${FRAMES[frame++ % FRAMES.length]} ${current} (${elapsed()})`);
  const timer = setInterval(draw, FRAME_MS);
  timer.unref();
  return {
    step(text) {
      // A finished step stays on the screen as a line of its own; the spinner moves on below it.
      if (current !== '' && text !== current) stream.write(`\r\x1b[K  ${current}\n`);
      current = text;
      draw();
    },
    done() {
      clearInterval(timer);
      if (current !== '') stream.write(`\r\x1b[K  ${current} (${elapsed()})\n`);
      current = '';
    },
  };
}
