import { parseInfo } from '../domain/redis-info.js';
import type { Instance, Proc } from '../domain/model.js';
import { runningReplicas } from '../domain/rules.js';
import type { RedisLinks } from './redis-links.js';
import { ReplicaSilence, replicaReadOffset } from './replica-silence.js';

/** One replica's INFO replication, as read by the scheduler. */
export interface ReplicaView {
  replica: Proc;
  info: Map<string, string>;
}

/**
 * Reads replicas' INFO replication over the scheduler's links and keeps each replica's offset
 * track (its own timing, for its vote on its master; see replica-silence.ts).
 */
export class ReplicaSampler {
  readonly silence = new ReplicaSilence();

  constructor(private readonly links: RedisLinks) {}

  /** Feeds one INFO of a replica into its offset track; `sentAt`/`receivedAt` are the scheduler's clock around the call. */
  private observe(procId: string, info: Map<string, string>, sentAt: number, receivedAt: number): void {
    if (info.get('role') !== 'slave') return;
    const offset = replicaReadOffset(info);
    if (offset === undefined) return;
    this.silence.observe(procId, { master: `${info.get('master_host')}:${info.get('master_port')}`, offset, sentAt, receivedAt });
  }

  /** Reads the master's replicas' INFO replication, feeding their offset tracks; unreachable ones are left out. */
  async sample(inst: Instance, master: Proc): Promise<ReplicaView[]> {
    const replicas = runningReplicas(inst, master);
    const views = await Promise.all(replicas.map(async (replica) => {
      const sentAt = Date.now();
      const text = await this.links.call(replica, 'INFO', 'replication');
      if (typeof text !== 'string') return undefined;
      const info = parseInfo(text);
      this.observe(replica.id, info, sentAt, Date.now());
      return { replica, info };
    }));
    return views.filter((v): v is ReplicaView => v !== undefined);
  }
}
