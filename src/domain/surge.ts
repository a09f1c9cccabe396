/**
 * A surge replica: one replica asked for beyond the instance's ExpSlaves, placed under
 * constraints, while a proc is moved (drain, upgrade, a resize that needs room). The instance's
 * `Surge` key holds the pending requests as a JSON array; the proc placed for one carries the
 * request's id in its own `Surge` key. A request ends when the mover has its replica (or gives
 * up); the replica then is an ordinary one. Kept in etcd so a scheduler that takes over
 * mid-move places the same replica, not a second one. Pure.
 */

export interface SurgeRequest {
  /** Unique per request; a caller that resumes a move passes the same id again. */
  id: string;
  /** Agents the replica must not go to (the one being drained, one without room ...). */
  avoidAgents: string[];
  /** The redis-server binary (path or version) the replica must run, when it matters. */
  redisServer?: string;
  /** Its capacity, when it differs from the instance's (a resize moving a proc to a larger home). */
  capacityMb?: number;
  /** The proc this replica will replace: it does not count against the instance's distribution. */
  replacing?: string;
  requestedAt: string;
}

/** The Surge key's text as requests; none for empty or unreadable text. */
export function parseSurge(text: string | undefined): SurgeRequest[] {
  if (!text) return [];
  try {
    const list = JSON.parse(text) as SurgeRequest[];
    return Array.isArray(list) ? list.filter((r) => typeof r?.id === 'string' && Array.isArray(r.avoidAgents)) : [];
  } catch {
    return [];
  }
}

/** The Surge key's text for these requests ('' for none). */
export function encodeSurge(list: SurgeRequest[]): string {
  return list.length === 0 ? '' : JSON.stringify(list);
}
