import { Range, type Etcd3, type IKeyValue } from 'etcd3';

/** Keys per read while loading the tree: a few MB per answer, well under gRPC's message limit. */
export const TREE_PAGE_KEYS = 10_000;

/**
 * Every key under `prefix` at one revision, read in pages of `pageSize` keys. One range read of
 * a large fleet (100,000 procs are well over a million keys) would be one answer of hundreds of
 * MB, over gRPC's message limit and etcd's request size; pages of a pinned revision give the same
 * consistent snapshot. A compaction past that revision between two pages fails the read
 * ("required revision has been compacted"): it starts over at the newest revision, a few times.
 */
export async function readTree(etcd: Etcd3, prefix: string, pageSize = TREE_PAGE_KEYS): Promise<{ kvs: IKeyValue[]; revision: string }> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await readPages(etcd, prefix, pageSize);
    } catch (err) {
      if (attempt >= 3 || !/compacted/i.test((err as Error).message)) throw err;
    }
  }
}

async function readPages(etcd: Etcd3, prefix: string, pageSize: number): Promise<{ kvs: IKeyValue[]; revision: string }> {
  const end = Range.prefix(prefix).end;
  const kvs: IKeyValue[] = [];
  let start: Buffer = Buffer.from(prefix);
  let revision: string | undefined;
  for (;;) {
    const query = etcd.getAll().inRange(new Range(start, end)).limit(pageSize);
    if (revision !== undefined) query.revision(revision);
    const res = await query.exec();
    revision ??= res.header.revision;
    kvs.push(...res.kvs);
    if (!res.more || res.kvs.length === 0) return { kvs, revision };
    // The next page starts just after the last key read: that key with a zero byte appended.
    start = Buffer.concat([res.kvs[res.kvs.length - 1].key, Buffer.from([0])]);
  }
}
