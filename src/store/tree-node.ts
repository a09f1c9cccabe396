/**
 * The cache's raw tree: one instance's keys as etcd holds them (plain strings), and how they are
 * kept small. At 100,000 procs the tree is over two million keys, nearly all of them a handful of
 * field names (`State`, `Port`, ...) and short values repeated across procs (`RUNNING`, `S`, `16`).
 */
export interface InstanceNode {
  fields: Map<string, string>;
  procs: Map<string, Map<string, string>>;
  snames: Set<string>;
}

export function emptyNode(): InstanceNode {
  return { fields: new Map(), procs: new Map(), snames: new Set() };
}

export function setOrDelete(map: Map<string, string>, key: string, value: string | undefined): void {
  if (value === undefined) map.delete(key);
  else map.set(key, value);
}

/** Strings longer than this are kept as read (Stats, ids, hashes): they rarely repeat. */
const SHARED_MAX_LENGTH = 24;
/** At most this many distinct strings are shared; later ones are kept as read, so the table stays bounded. */
const SHARED_MAX_COUNT = 50_000;
const sharedStrings = new Map<string, string>();

/**
 * One copy of a short string for the whole cache. Each key read from etcd is a fresh string, so
 * without this every proc would hold its own copy of every field name and common value: millions
 * of small objects that cost memory and, above all, garbage collector time while the tree loads.
 */
export function shared(text: string): string {
  if (text.length > SHARED_MAX_LENGTH) return text;
  const known = sharedStrings.get(text);
  if (known !== undefined) return known;
  if (sharedStrings.size < SHARED_MAX_COUNT) sharedStrings.set(text, text);
  return text;
}
