import type { Etcd3 } from 'etcd3';

/** How often a scheduler brings the window hint up to date with its cache (see TreeHint). */
const HINT_EVERY_MS = 10 * 60_000;

/**
 * Window bounds from the instances' key counts: the first key of the instance at which each
 * `windowKeys`-th key of the tree falls (`<instancesDir><name>/`), in etcd's key order, which is
 * the order of `<name>/` byte by byte ('-' and '.' sort before '/'). A hint, like the bounds a
 * tree read notes (see readTree): any bounds read right. Pure.
 */
export function boundsFromCounts(instancesDir: string, counts: Iterable<[string, number]>, windowKeys: number): string[] {
  const ordered = [...counts].map(([name, n]): [string, number] => [`${name}/`, n]).sort(([a], [b]) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
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
 * each tree read with the keys that read noted, and every HINT_EVERY_MS from the cache's key
 * counts, so a fleet that grew large under one long-running scheduler still restarts in windows.
 * Written only when it changed, and only for a tree large enough to have a window.
 */
export class TreeHint {
  private last?: string;
  private timer?: NodeJS.Timeout;

  constructor(private readonly etcd: Etcd3, private readonly key: string, private readonly fromCache: () => string[]) {}

  start(): void {
    this.timer = setInterval(() => this.keep(this.fromCache()), HINT_EVERY_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** The hint as read at start (what is stored now). */
  seen(text: string | null): void {
    this.last = text ?? undefined;
  }

  keep(bounds: string[]): void {
    if (bounds.length === 0) return;
    const text = JSON.stringify({ bounds });
    if (text === this.last) return;
    this.last = text;
    void this.etcd.put(this.key).value(text).exec().catch(() => undefined);
  }
}
