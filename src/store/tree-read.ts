import { Range, type Etcd3 } from 'etcd3';
import { RangeReader, type RangePage, type RangeRequest, type TreeKV } from './etcd-range.js';
import { ETCD_MAX_ANSWER_BYTES, etcdUrls } from './etcd.js';

export type { TreeKV } from './etcd-range.js';

/**
 * How the tree is paged: the first page's keys, then as many keys as fit in about `pageBytes`
 * (by the size of the keys and values read so far), at most `maxKeys`. Big pages matter on
 * etcd 3.4: there a range with a limit still walks its index over every key left in the range
 * (etcd-io/etcd#11057, fixed in 3.5 by #11990), so reading N keys in pages of P costs about
 * N^2 / 2P key visits; at 100,000 procs (over 2 million keys) pages of 10,000 made etcd the
 * slowest part of a scheduler's start. 16 MiB pages stay well under the 64 MiB a RedFleet etcd
 * client accepts per answer (connectEtcd), with room for a page of unusually large values.
 */
export interface TreePaging {
  firstKeys: number;
  maxKeys: number;
  pageBytes: number;
  /** A read notes every this many keys: the bounds of the windows the next read can use (see TreeRead.bounds). */
  windowKeys: number;
}

export const TREE_PAGING: TreePaging = { firstKeys: 10_000, maxKeys: 200_000, pageBytes: 16 * 1024 * 1024, windowKeys: 150_000 };
/** Windows read side by side (each still one page request ahead). */
const WINDOWS_AT_ONCE = 2;

/** What a tree read returns. */
export interface TreeRead {
  revision: string;
  keys: number;
  pages: number;
  /** How it was read: an etcd URL (the lean reader) or 'etcd3'. */
  via: string;
  /** How many windows were read (1: the whole range, one page after another). */
  windows: number;
  /** Every windowKeys-th key read, in key order: the next read's window bounds. */
  bounds: string[];
}
/** How long the lean reader waits to connect to one etcd URL before it tries the next (connectEtcd's dial timeout). */
const CONNECT_MS = 3000;
/** The etcd per-key overhead in an answer (revisions, version, lease), roughly, for sizing pages. */
const KV_OVERHEAD_BYTES = 24;

/**
 * Where a tree read delivers its keys, page by page in key order. `begin` comes before the first
 * page of every attempt: a read that starts over (see readTree) delivers everything again, so the
 * sink drops what it took from the failed attempt.
 */
export interface TreeSink {
  begin(): void;
  page(kvs: TreeKV[]): void;
}

/** One ranged read of etcd: RangeReader's, or the etcd3 client's (etcd3Range). */
export type RangeFn = (req: RangeRequest) => Promise<RangePage>;

/** A range read through the etcd3 client: for a client whose URLs are unknown or not plain http. */
export function etcd3Range(etcd: Etcd3): RangeFn {
  return async (req) => {
    const query = etcd.getAll().inRange(new Range(req.key, req.rangeEnd));
    if (req.limit > 0) query.limit(req.limit);
    if (req.revision > 0) query.revision(String(req.revision));
    const res = await query.exec();
    return { revision: res.header.revision, more: res.more, kvs: res.kvs.map((kv) => ({ key: kv.key.toString(), value: kv.value.toString() })) };
  };
}

/**
 * Every key under `prefix` at one revision, read in pages and handed to `sink` one page at a
 * time. One range read of a large fleet (100,000 procs are over two million keys) would be one
 * answer of hundreds of MB; pages of a pinned revision give the same consistent snapshot. Each
 * page is handed over and then dropped, so the whole tree is never held twice (once as etcd's
 * answers, once in the cache). A compaction past that revision between two pages fails the read
 * ("required revision has been compacted"): it starts over at the newest revision, a few times.
 * The pages are read with the lean RangeReader (etcd-range.ts) over the client's first etcd URL
 * that connects, else through the etcd3 client (`via: 'etcd3'` forces that). Returns the
 * revision, the number of keys and of pages, and which way they were read.
 */
export async function readTree(etcd: Etcd3, prefix: string, sink: TreeSink, paging: TreePaging = TREE_PAGING, via: 'grpc' | 'etcd3' = 'grpc', bounds: string[] = []): Promise<TreeRead> {
  // Each of the client's plain-http URLs in turn with the lean reader, then the etcd3 client
  // (which has its own failover between members) if none of them answered.
  const windows = windowsOf(prefix, bounds);
  const urls = via === 'grpc' ? etcdUrls(etcd).filter((u) => u.startsWith('http://')) : [];
  for (const url of urls) {
    const reader = new RangeReader(url, ETCD_MAX_ANSWER_BYTES);
    try {
      await reader.ready(CONNECT_MS);
      return { ...(await readAttempts((req) => reader.range(req), windows, sink, paging)), via: url, windows: windows.length };
    } catch (err) {
      if (/compacted/i.test((err as Error).message)) throw err;
    } finally {
      reader.close();
    }
  }
  return { ...(await readAttempts(etcd3Range(etcd), windows, sink, paging)), via: 'etcd3', windows: windows.length };
}

/** One window of the key space: [start, end). */
interface Window {
  start: Buffer;
  end: Buffer;
}

/**
 * The windows that `bounds` (a hint from an earlier read) split the prefix's range into. Bounds
 * that are not strictly increasing keys inside the range are ignored: the windows always cover
 * the whole range exactly, however stale the hint, so a bad hint only costs speed.
 */
function windowsOf(prefix: string, bounds: string[]): Window[] {
  const start = Buffer.from(prefix);
  const end = Range.prefix(prefix).end;
  const cuts: Buffer[] = [];
  for (const b of bounds) {
    const key = Buffer.from(b);
    const last = cuts[cuts.length - 1] ?? start;
    if (Buffer.compare(key, last) > 0 && Buffer.compare(key, end) < 0) cuts.push(key);
  }
  const edges = [start, ...cuts, end];
  return cuts.length === 0 ? [{ start, end }] : edges.slice(1).map((e, i) => ({ start: edges[i], end: e }));
}

async function readAttempts(range: RangeFn, windows: Window[], sink: TreeSink, paging: TreePaging): Promise<Omit<TreeRead, 'via' | 'windows'>> {
  for (let attempt = 1; ; attempt++) {
    try {
      sink.begin();
      return await readWindows(range, windows, sink, paging);
    } catch (err) {
      if (attempt >= 3 || !/compacted/i.test((err as Error).message)) throw err;
    }
  }
}

/**
 * The windows, WINDOWS_AT_ONCE at a time, every one at the same revision: one window is read at
 * its first page's revision (the one-after-another read); several at the revision of a point
 * lookup made first. On etcd 3.4 a window's pages cost only its own keys (a limited range walks
 * the index to the range's end), and two windows keep etcd and the scheduler busy together
 * (BENCHMARKS, scale, fourth round).
 */
async function readWindows(range: RangeFn, windows: Window[], sink: TreeSink, paging: TreePaging): Promise<Omit<TreeRead, 'via' | 'windows'>> {
  if (windows.length === 1) return readPages(range, windows[0], undefined, sink, paging);
  // The revision: a range of exactly one key, [start, start + \0) (an empty range_end sent as
  // such reads everything from the key on, not the key alone: 240 MB at 100,000 procs).
  const { start } = windows[0];
  const { revision } = await range({ key: start, rangeEnd: Buffer.concat([start, Buffer.from([0])]), limit: 1, revision: 0 });
  const results: { keys: number; pages: number; bounds: string[] }[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < windows.length) {
      const i = next++;
      results[i] = await readPages(range, windows[i], revision, sink, paging);
    }
  };
  await Promise.all(Array.from({ length: WINDOWS_AT_ONCE }, () => worker()));
  return {
    revision,
    keys: results.reduce((n, r) => n + r.keys, 0),
    pages: results.reduce((n, r) => n + r.pages, 0),
    bounds: results.flatMap((r) => r.bounds),
  };
}

function pageFrom(range: RangeFn, start: Buffer, end: Buffer, keys: number, revision: string | undefined): Promise<RangePage> {
  return range({ key: start, rangeEnd: end, limit: keys, revision: revision === undefined ? 0 : Number(revision) });
}

/** Keys for the next page: as many as fit in `pageBytes` at the size per key seen so far. */
function nextPageKeys(paging: TreePaging, keys: number, bytes: number): number {
  const perKey = bytes / Math.max(1, keys) + KV_OVERHEAD_BYTES;
  return Math.max(paging.firstKeys, Math.min(paging.maxKeys, Math.floor(paging.pageBytes / perKey)));
}

/**
 * One window's pages, one request ahead: as soon as a page arrives the next one is asked for (it
 * starts just after this page's last key), and this page is handed to the sink while etcd
 * prepares the next. At `revision`, or at the first page's when undefined.
 */
async function readPages(range: RangeFn, window: Window, atRevision: string | undefined, sink: TreeSink, paging: TreePaging): Promise<{ revision: string; keys: number; pages: number; bounds: string[] }> {
  let pending = pageFrom(range, window.start, window.end, paging.firstKeys, atRevision);
  let revision = atRevision;
  let keys = 0;
  let bytes = 0;
  const bounds: string[] = [];
  for (let pages = 1; ; pages++) {
    const res = await pending;
    revision ??= res.revision;
    for (const kv of res.kvs) bytes += kv.key.length + kv.value.length;
    // Every windowKeys-th key of this window, for the next read's windows.
    for (let k = paging.windowKeys - (keys % paging.windowKeys); k <= res.kvs.length; k += paging.windowKeys) bounds.push(res.kvs[k - 1].key);
    keys += res.kvs.length;
    const more = res.more && res.kvs.length > 0;
    if (more) {
      // The next page starts just after the last key read: that key with a zero byte appended.
      pending = pageFrom(range, Buffer.concat([Buffer.from(res.kvs[res.kvs.length - 1].key), Buffer.from([0])]), window.end, nextPageKeys(paging, keys, bytes), revision);
      // Awaited on the next turn; this keeps a failure while the sink works from going unhandled.
      pending.catch(() => undefined);
    }
    sink.page(res.kvs);
    if (!more) return { revision, keys, pages, bounds };
  }
}

/** The window bounds kept under Config/TreeWindows (`{"bounds": [key, ...]}`); none if absent or not that. */
export function parseTreeBounds(text: string | null): string[] {
  if (!text) return [];
  try {
    const bounds = (JSON.parse(text) as { bounds?: unknown }).bounds;
    return Array.isArray(bounds) ? bounds.filter((b): b is string => typeof b === 'string') : [];
  } catch {
    return [];
  }
}
