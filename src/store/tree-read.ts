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
}

export const TREE_PAGING: TreePaging = { firstKeys: 10_000, maxKeys: 200_000, pageBytes: 16 * 1024 * 1024 };
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
export async function readTree(etcd: Etcd3, prefix: string, sink: TreeSink, paging: TreePaging = TREE_PAGING, via: 'grpc' | 'etcd3' = 'grpc'): Promise<{ revision: string; keys: number; pages: number; via: string }> {
  // Each of the client's plain-http URLs in turn with the lean reader, then the etcd3 client
  // (which has its own failover between members) if none of them answered.
  const urls = via === 'grpc' ? etcdUrls(etcd).filter((u) => u.startsWith('http://')) : [];
  for (const url of urls) {
    const reader = new RangeReader(url, ETCD_MAX_ANSWER_BYTES);
    try {
      await reader.ready(CONNECT_MS);
      return { ...(await readAttempts((req) => reader.range(req), prefix, sink, paging)), via: url };
    } catch (err) {
      if (/compacted/i.test((err as Error).message)) throw err;
    } finally {
      reader.close();
    }
  }
  return { ...(await readAttempts(etcd3Range(etcd), prefix, sink, paging)), via: 'etcd3' };
}

async function readAttempts(range: RangeFn, prefix: string, sink: TreeSink, paging: TreePaging): Promise<{ revision: string; keys: number; pages: number }> {
  for (let attempt = 1; ; attempt++) {
    try {
      sink.begin();
      return await readPages(range, prefix, sink, paging);
    } catch (err) {
      if (attempt >= 3 || !/compacted/i.test((err as Error).message)) throw err;
    }
  }
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
 * The pages, one request ahead: as soon as a page arrives the next one is asked for (it starts
 * just after this page's last key), and this page is handed to the sink while etcd prepares the
 * next. The reads still go one after another, each from where the last ended.
 */
async function readPages(range: RangeFn, prefix: string, sink: TreeSink, paging: TreePaging): Promise<{ revision: string; keys: number; pages: number }> {
  const end = Range.prefix(prefix).end;
  let pending = pageFrom(range, Buffer.from(prefix), end, paging.firstKeys, undefined);
  let revision: string | undefined;
  let keys = 0;
  let bytes = 0;
  for (let pages = 1; ; pages++) {
    const res = await pending;
    revision ??= res.revision;
    for (const kv of res.kvs) bytes += kv.key.length + kv.value.length;
    keys += res.kvs.length;
    const more = res.more && res.kvs.length > 0;
    if (more) {
      // The next page starts just after the last key read: that key with a zero byte appended.
      pending = pageFrom(range, Buffer.concat([Buffer.from(res.kvs[res.kvs.length - 1].key), Buffer.from([0])]), end, nextPageKeys(paging, keys, bytes), revision);
      // Awaited on the next turn; this keeps a failure while the sink works from going unhandled.
      pending.catch(() => undefined);
    }
    sink.page(res.kvs);
    if (!more) return { revision, keys, pages };
  }
}
