import { REPLICATION_HEARTBEAT_MS } from '../domain/model.js';

/**
 * The replica's own timing: how long, at least, a replica has received nothing from its master,
 * proven from the scheduler's samples of the replica's replication offset.
 *
 * Every agent publishes a heartbeat through its redis-servers every REPLICATION_HEARTBEAT_MS
 * (100 ms; see executor/replication-heartbeat.ts), and a master copies each one into its
 * replication stream, so a replica whose link is alive sees its read offset move about ten times
 * a second. The offset never goes back while the replica follows one master. So if two samples,
 * one received at `firstSeenAt` and one sent at `lastSentAt`, show the same offset, the replica
 * read nothing in between: `lastSentAt - firstSeenAt` is a lower bound on its silence. Receive
 * time for the first and send time for the last make the bound hold whatever the round trip, the
 * order in which replies are handled, or a stall of the scheduler's own loop (a stall only delays
 * timestamps that count against the bound).
 *
 * This is much tighter than `master_last_io_seconds_ago`, a difference of two whole-second clocks
 * that needs a 2 s margin (see LAST_IO_MARGIN_MS), so a frozen master is failed over sooner.
 * Redis's cron rate (hz) plays no part: replication output and input are written and read as
 * they come, not on the cron.
 */

/**
 * The least proven silence that counts, whatever down-after: six and a half heartbeat periods, so
 * a healthy link needs six heartbeats in a row to go missing (a stall of the master's agent)
 * before it could look silent, with room for timer jitter under CPU contention.
 */
export const OFFSET_SILENCE_FLOOR_MS = 6.5 * REPLICATION_HEARTBEAT_MS;

/**
 * Proven silence at or beyond which a replica votes its master down: down-after, as the
 * scheduler requires of its own silence (and Sentinel of each sentinel's), but never less than
 * the floor.
 */
export function offsetSilenceThresholdMs(downAfterMs: number): number {
  return Math.max(downAfterMs, OFFSET_SILENCE_FLOOR_MS);
}

/** Whether a replica with this proven silence has lost its master. Pure. */
export function offsetSaysMasterDown(provenSilenceMs: number, downAfterMs: number): boolean {
  return provenSilenceMs >= offsetSilenceThresholdMs(downAfterMs);
}

/**
 * The offset a replica has read from its master: `slave_read_repl_offset` (redis 7; moves as
 * soon as bytes arrive), else `slave_repl_offset` (processed bytes). Undefined when the INFO is
 * not a replica's.
 */
export function replicaReadOffset(info: Map<string, string>): number | undefined {
  const text = info.get('slave_read_repl_offset') ?? info.get('slave_repl_offset');
  if (text === undefined || text === '') return undefined;
  const offset = Number(text);
  return Number.isFinite(offset) ? offset : undefined;
}

/** One sample of a replica's offset: which master it followed, and when it was asked and answered. */
export interface OffsetSample {
  /** The master the replica followed, as `ip:port`. */
  master: string;
  offset: number;
  /** Scheduler clock just before the INFO went out. */
  sentAt: number;
  /** Scheduler clock when its reply was handled. */
  receivedAt: number;
}

/** What is known of one replica's current offset. */
export interface OffsetTrack {
  master: string;
  offset: number;
  /** Receive time of the first sample that showed this offset. */
  firstSeenAt: number;
  /** Send time of the latest sample that showed this offset. */
  lastSentAt: number;
}

/** The track after one more sample. Any other master or offset starts a new track. Pure. */
export function nextTrack(track: OffsetTrack | undefined, s: OffsetSample): OffsetTrack {
  if (!track || track.master !== s.master || track.offset !== s.offset) {
    return { master: s.master, offset: s.offset, firstSeenAt: s.receivedAt, lastSentAt: s.sentAt };
  }
  return { ...track, lastSentAt: Math.max(track.lastSentAt, s.sentAt) };
}

/** The silence a track proves, in ms (0 when it proves none). Pure. */
export function provenSilenceMs(track: OffsetTrack | undefined): number {
  return track ? Math.max(0, track.lastSentAt - track.firstSeenAt) : 0;
}

/** Per replica proc, its offset track, fed from every INFO the scheduler reads. */
export class ReplicaSilence {
  private readonly tracks = new Map<string, OffsetTrack>();

  observe(procId: string, sample: OffsetSample): void {
    this.tracks.set(procId, nextTrack(this.tracks.get(procId), sample));
  }

  /** Proven silence of the replica towards `master` (`ip:port`); 0 when it follows another. */
  silenceMs(procId: string, master: string): number {
    const track = this.tracks.get(procId);
    return track && track.master === master ? provenSilenceMs(track) : 0;
  }

  /** Forgets replicas no longer watched. */
  retain(procIds: Set<string>): void {
    for (const id of this.tracks.keys()) if (!procIds.has(id)) this.tracks.delete(id);
  }
}
