import { offsetSaysMasterDown } from './replica-silence.js';

/**
 * How much older than down-after a replica's `master_last_io_seconds_ago` must be before the
 * replica counts as having lost its master. The field is whole seconds rounded down, and a
 * healthy master pings its replicas only once a second (repl-ping-replica-period 1), so a healthy
 * idle link reads 1 and, with cron jitter, now and then 2: a reading of N proves only N-1 seconds
 * of silence. Two seconds on top of down-after keeps every healthy link from voting down.
 */
export const LAST_IO_MARGIN_MS = 2000;

/**
 * A replica's vote on its master, from its INFO replication: true when it has lost the master
 * too (link down, or no traffic for clearly longer than down-after), or when it does not follow
 * that master at all and so cannot vouch for it. A replica that still hears the master votes
 * false: then only the scheduler lost the master (a partition between it and the master's host),
 * and there must be no failover. Pure.
 */
export function replicaSaysMasterDown(info: Map<string, string>, master: { ip: string; port: number }, downAfterMs: number): boolean {
  if (info.get('role') !== 'slave') return true;
  if (info.get('master_host') !== master.ip || Number(info.get('master_port')) !== master.port) return true;
  if (info.get('master_link_status') !== 'up') return true;
  const lastIoMs = Number(info.get('master_last_io_seconds_ago') ?? 0) * 1000;
  return lastIoMs >= downAfterMs + LAST_IO_MARGIN_MS;
}

/**
 * A replica's whole vote: `replicaSaysMasterDown`, or else the replica's own timing, the silence
 * its still replication offset proves (see replica-silence.ts), clearly beyond the master's ping
 * period and down-after. Pure.
 */
export function replicaVote(info: Map<string, string>, master: { ip: string; port: number }, downAfterMs: number, provenSilenceMs: number): boolean {
  return replicaSaysMasterDown(info, master, downAfterMs) || offsetSaysMasterDown(provenSilenceMs, downAfterMs);
}

/** One replica's vote on its master and the readings behind it. */
export interface Ballot {
  proc: string;
  down: boolean;
  link: string;
  lastIoSeconds: number;
  provenSilenceMs: number;
}
