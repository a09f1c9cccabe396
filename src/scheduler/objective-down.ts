import type { Instance, Proc } from '../domain/model.js';
import { downAfterOf, runningReplicas } from '../domain/rules.js';
import type { Logger } from '../logger.js';
import type { MasterHealth } from './master-health.js';
import type { RedisLinks } from './redis-links.js';
import { ReplicaSampler } from './replica-sampler.js';
import { replicaSaysMasterDown, replicaVote, type Ballot } from './replica-vote.js';

/** Asks for a failover of the instance's master (the framework serializes it per instance). */
export type FailoverRequest = (name: string, masterId: string, cause: string) => void;
/** Sends one event in Sentinel's words (channel, message) to the Sentinel-compatible endpoint. */
export type SentinelEmit = (channel: string, message: string) => void;

/**
 * The replicas' view of a subjectively down master (o_down): it is objectively down when every
 * replica the scheduler can reach has lost it too (`replicaVote`: link down, no I/O clearly beyond
 * down-after, or a replication offset proven still for down-after). When no replica can be
 * reached either, the scheduler is the one cut off, and it does nothing. The replicas' offsets
 * are sampled from early in a silence (`sample`), so their proof is tight by down-after.
 */
/** How often the "all unreachable" line is logged for one master while it lasts. */
const UNREACHABLE_LOG_EVERY_MS = 10_000;

export class ObjectiveDown {
  private readonly checking = new Set<string>();
  /** Masters whose replicas are being sampled right now, so samples do not pile up. */
  private readonly sampling = new Set<string>();
  /** When "all unreachable" was last logged per master: once per UNREACHABLE_LOG_EVERY_MS, not per check. */
  private readonly unreachableLogged = new Map<string, number>();
  /** Reads the replicas and keeps each one's offset track: the replica's own timing, for its vote. */
  private readonly replicas: ReplicaSampler;

  constructor(
    links: RedisLinks,
    private readonly log: Logger,
    private readonly request: FailoverRequest,
    private readonly emitEvent: SentinelEmit,
    /**
     * Whether the agent answered its heartbeats lately. Only the master's agent moves the
     * replicas' offsets ten times a second (its replication heartbeat), so their still offsets
     * prove the master silent only while that agent is known alive; otherwise the vote rests on
     * `master_last_io_seconds_ago` alone.
     */
    private readonly agentAlive: (agentId: string) => boolean,
    /** Whether the master is still subjectively down, asked again after the replicas answered. */
    private readonly stillDown: (h: MasterHealth, downAfterMs: number) => boolean,
  ) {
    this.replicas = new ReplicaSampler(links);
  }

  /** Samples the master's replicas' offsets, unless a sample is already under way. */
  sample(inst: Instance, master: Proc): void {
    if (this.sampling.has(master.id)) return;
    this.sampling.add(master.id);
    void this.replicas.sample(inst, master).finally(() => this.sampling.delete(master.id));
  }

  /** Asks the replicas about a subjectively down master, unless a check is already under way. */
  async check(inst: Instance, master: Proc, h: MasterHealth, downAfter: number): Promise<void> {
    if (this.checking.has(master.id)) return;
    this.checking.add(master.id);
    try {
      await this.checkObjectivelyDown(inst, master, h, downAfter);
    } finally {
      this.checking.delete(master.id);
    }
  }

  /** Forgets the offset tracks of procs no longer watched. */
  retain(watched: Set<string>): void {
    this.replicas.silence.retain(watched);
    for (const id of this.unreachableLogged.keys()) if (!watched.has(id)) this.unreachableLogged.delete(id);
  }

  /** Each reachable replica's vote with what it rests on, for the log line that acts on it. */
  private async ballots(inst: Instance, master: Proc, downAfter: number): Promise<Ballot[]> {
    const views = await this.replicas.sample(inst, master);
    const address = `${master.ip}:${master.port}`;
    const heartbeating = this.agentAlive(master.sid);
    return views.map(({ replica, info }) => {
      const silentMs = heartbeating ? this.replicas.silence.silenceMs(replica.id, address) : 0;
      return {
        proc: replica.id,
        down: replicaVote(info, master, downAfter, silentMs),
        link: info.get('master_link_status') ?? '',
        lastIoSeconds: Number(info.get('master_last_io_seconds_ago') ?? -1),
        provenSilenceMs: silentMs,
      };
    });
  }

  private async checkObjectivelyDown(inst: Instance, master: Proc, h: MasterHealth, downAfter: number): Promise<void> {
    if (runningReplicas(inst, master).length === 0) return;
    const ballots = await this.ballots(inst, master, downAfter);
    const votes = ballots.map((b) => b.down);
    if (votes.length === 0) {
      // Checked every 100 ms while it lasts: a starved host (bench:scale) logged 58,000 of these
      // lines in five minutes, which cost the scheduler CPU it was short of.
      const now = Date.now();
      if (now - (this.unreachableLogged.get(master.id) ?? 0) >= UNREACHABLE_LOG_EVERY_MS) {
        this.unreachableLogged.set(master.id, now);
        this.log.warn('master and its replicas are all unreachable from the scheduler; not acting', { instance: inst.name, proc: master.id });
      }
      return;
    }
    this.unreachableLogged.delete(master.id);
    if (!votes.every(Boolean)) return;
    // The replicas were asked after an await: a stall meanwhile, or a PONG, may have cleared it.
    if (!this.stillDown(h, downAfter)) return;
    if (!h.odown) {
      h.odown = true;
      this.log.warn('master objectively down', { instance: inst.name, proc: master.id, replicasAgreeing: votes.length, ballots });
      this.emitEvent('+odown', `master ${inst.name} ${master.ip} ${master.port} #quorum ${votes.length}/${votes.length}`);
    }
    this.request(inst.name, master.id, 'master objectively down');
  }

  /**
   * For a master whose agent was lost (the proc is LOST, not seen to die): true when a replica
   * the scheduler reaches still hears it. Then only the scheduler's side lost the master's host,
   * and promoting would make two masters for nothing.
   */
  async replicasStillHear(inst: Instance, master: Proc): Promise<boolean> {
    const downAfter = downAfterOf(inst);
    // The master's agent is gone, and with it the heartbeat that moves the replicas' offsets:
    // only `master_last_io_seconds_ago` (Redis's own pings) can say whether they still hear it.
    const votes = (await this.replicas.sample(inst, master)).map(({ info }) => replicaSaysMasterDown(info, master, downAfter));
    // No replica answered in time (a loaded host, or the scheduler cut off from all of them):
    // nobody has said the master is gone, so do not fail it over now; the caller looks again.
    if (votes.length === 0) return true;
    return votes.some((down) => !down);
  }
}
