import { readFileSync } from 'node:fs';

/** How often a proc without a memory cgroup has its memory sampled. */
export const MEMORY_WATCH_INTERVAL_MS = 200;

/**
 * The fallback ceiling for a proc that runs without a memory cgroup: its anonymous memory
 * (RssAnon: the heap, Lua's included; not the binary's file pages) is sampled every 200 ms, and
 * `onOver` is called once when it exceeds `limitBytes()` (asked at every sample: a resize moves it). Sampling can be outrun by a fast enough
 * allocation, so this bounds a slow leak or a hoarding script, not every spike: only the
 * kernel's cgroup limit is a hard ceiling. Returns a function that stops the watch.
 */
export function watchMemory(pid: number, limitBytes: () => number, onOver: (usedBytes: number) => void): () => void {
  const timer = setInterval(() => {
    const used = anonymousBytes(pid);
    if (used <= limitBytes()) return;
    clearInterval(timer);
    onOver(used);
  }, MEMORY_WATCH_INTERVAL_MS);
  timer.unref();
  return () => clearInterval(timer);
}

function anonymousBytes(pid: number): number {
  try {
    const kb = /^RssAnon:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return Number(kb ?? 0) * 1024;
  } catch {
    return 0;
  }
}
