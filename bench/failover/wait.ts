/** bench/failover/wait: the one bounded wait of the failover benchmark. */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { POLL_MS } from './parameters.js';

/** Polls `probe` every POLL_MS until it returns a value; throws after `timeoutMs`. Bounded in iterations too. */
export async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  const maxPolls = Math.ceil(timeoutMs / POLL_MS) + 1;
  let lastError = '';
  for (let i = 0; i < maxPolls; i++) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      lastError = (err as Error).message;
    }
    if (performance.now() > deadline) break;
    await sleep(POLL_MS);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${lastError})` : ''}`);
}
