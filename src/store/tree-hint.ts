import type { Etcd3 } from 'etcd3';

/**
 * How often a scheduler brings the window hint up to date with its cache (see TreeHint). A
 * scheduler that ran 5 minutes on a fleet grown from nothing to 20,001 procs had not noted any
 * windows at 10 minutes, and its successor read 448,903 keys in one window, in 63 s.
 */
const HINT_EVERY_MS = 2 * 60_000;

/**
 * Window bounds from the instances' key counts: the first key of the instance at which each
 * `windowKeys`-th key of the tree falls (`<instancesDir><name>/`), in etcd's key order, which is
 * the order of `<name>/` byte by byte ('-' and '.' sort before '/'). A hint, like the bounds a
 * tree read notes (see readTree): any bounds read right. Pure.
 */
export function boundsFromCounts(instancesDir: string, counts: Iterable<[string, number]>, windowKeys: number): string[] {
  // Each name's bytes once, not at every comparison: a stopping scheduler sorts every instance.
  const ordered = [...counts].map(([name, n]): [string, number, Buffer] => [`${name}/`, n, Buffer.from(`${name}/`)]).sort((a, b) => Buffer.compare(a[2], b[2]));
  const bounds: string[] = [];
  let total = 0;
  let next = windowKeys;
  for (const [dir, n] of ordered) {
    if (total >= next) {
      bounds.push(`${instancesDir}${dir}`);
      while (next <= total) next += windowKeys;
    }
    total += n;
  }
  return bounds;
}

/**
 * Keeps `Config/TreeWindows`, the next start's window bounds (see readTree), up to date: after
 * each tree read with the keys that read noted, every HINT_EVERY_MS and when the scheduler stops
 * from the cache's key counts, so a fleet that grew large under one scheduler still restarts in
 * windows. Written only when it changed, and only for a tree large enough to have a window.
 */
export class TreeHint {
  private last?: string;
  private timer?: NodeJS.Timeout;

  constructor(private readonly etcd: Etcd3, private readonly key: string, private readonly fromCache: () => string[]) {}

  start(): void {
    this.timer = setInterval(() => this.keep(this.fromCache()), HINT_EVERY_MS);
    this.timer.unref();
  }

  /** Stops the timer and notes the cache's windows one last time, for the next scheduler's start. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    if (this.timer) await this.keep(this.fromCache());
    this.timer = undefined;
  }

  /** The hint as read at start (what is stored now). */
  seen(text: string | null): void {
    this.last = text ?? undefined;
  }

  /** Writes `bounds` unless they are what is stored; a failed write is let go (it is a hint). */
  keep(bounds: string[]): Promise<void> {
    if (bounds.length === 0) return Promise.resolve();
    const text = JSON.stringify({ bounds });
    if (text === this.last) return Promise.resolve();
    this.last = text;
    return this.etcd.put(this.key).value(text).exec().then(() => undefined, () => undefined);
  }
}
