/**
 * One page of instance names, from the sorted name index: up to `limit` names after `after`
 * (exclusive), with `status` when given; `next` is the last name returned when more may follow.
 * A binary search finds the start, so a page costs its own size, not the fleet's.
 */
export function namesPage(
  names: readonly string[],
  q: { limit?: number; after?: string; status?: string },
  statusOf: (name: string) => string | undefined,
): { names: string[]; next?: string } {
  let at = 0;
  if (q.after !== undefined) {
    let hi = names.length;
    while (at < hi) {
      const mid = (at + hi) >> 1;
      if (names[mid] <= q.after) at = mid + 1;
      else hi = mid;
    }
  }
  const limit = q.limit ?? Infinity;
  const picked: string[] = [];
  for (; at < names.length && picked.length < limit; at++) {
    if (q.status === undefined || statusOf(names[at]) === q.status) picked.push(names[at]);
  }
  return at < names.length && picked.length === limit ? { names: picked, next: picked[picked.length - 1] } : { names: picked };
}
