import { createHash } from 'node:crypto';
import type { FleetStore } from '../store/fleet-store.js';
import { InstanceType, type Instance, type Proc } from '../domain/model.js';
import { isOperationRunning } from '../domain/operation.js';
import type { SentinelFailoverReply, SentinelMaster, SentinelReplica, SentinelSource } from '../domain/services.js';
import type { Failover } from './failover.js';
import { downAfterOf, failoverTimeoutOf, isServing, runningReplicas } from '../domain/rules.js';

/** What the view needs of failure detection: its events and per-master health (none on a standby). */
export type HealthSource = Pick<Failover, 'events' | 'healthOf' | 'announced'>;

/** A stable 40-hex-digit run id for a proc, as Sentinel replies carry. */
function runId(procId: string): string {
  return createHash('sha1').update(procId).digest('hex');
}

/**
 * The fleet as the Sentinel protocol sees it: every instance with a running master is a
 * Sentinel master of the same name; its address is exactly what GET /v1/STATUS reports.
 */
export class SentinelView implements SentinelSource {
  readonly myid: string;
  /** Instances whose SENTINEL FAILOVER was answered and whose operation is being recorded. */
  private readonly starting = new Set<string>();

  constructor(
    private readonly store: FleetStore,
    private readonly health: HealthSource,
    schedulerId: string,
    /** Starts a switchover operation; undefined on a scheduler that does not lead. */
    private readonly startSwitchover: (name: string) => Promise<unknown> | undefined = () => undefined,
  ) {
    this.myid = runId(`sentinel:${schedulerId}`);
  }

  get events() {
    return this.health.events;
  }

  masters(): SentinelMaster[] {
    return this.store.instances().map((i) => this.describe(i)).filter((m): m is SentinelMaster => Boolean(m));
  }

  master(name: string): SentinelMaster | undefined {
    const inst = this.store.instance(name);
    return inst ? this.describe(inst) : undefined;
  }

  replicas(name: string): SentinelReplica[] {
    const inst = this.store.instance(name);
    const master = inst && this.health.announced(inst);
    if (!inst || !master) return [];
    return runningReplicas(inst, master).map((p) => replicaOf(p, master));
  }

  /**
   * SENTINEL FAILOVER, answered at once from the watched tree as Sentinel answers from its own
   * view; the switchover then runs as the instance's operation (its record says how it ended).
   */
  failover(name: string): SentinelFailoverReply {
    const inst = this.store.instance(name);
    const master = inst && this.describe(inst) ? this.health.announced(inst) : undefined;
    if (!inst || !master) return 'no-such-master';
    if (this.starting.has(name) || isOperationRunning(inst.operation) || this.health.healthOf(master.id)?.failingOver) return 'in-progress';
    const linked = runningReplicas(inst, master).filter((p) => (p.stats?.masterLinkStatus ?? 'up') === 'up');
    if (inst.type !== InstanceType.MasterReplica || linked.length === 0) return 'no-good-slave';
    const started = this.startSwitchover(name);
    if (!started) return 'not-leader';
    // Until its record is written, a second SENTINEL FAILOVER must see this one as in progress.
    // A refusal after the reply (a race with another operation) shows in the instance's record.
    this.starting.add(name);
    started.catch(() => undefined).finally(() => this.starting.delete(name));
    return 'started';
  }

  private describe(inst: Instance): SentinelMaster | undefined {
    if (!isServing(inst)) return undefined;
    const master = this.health.announced(inst);
    if (!master) return undefined;
    const health = this.health.healthOf(master.id);
    const flags = ['master'];
    if (health?.sdown) flags.push('s_down');
    if (health?.odown) flags.push('o_down');
    if (health?.failingOver) flags.push('failover_in_progress');
    return {
      name: inst.name,
      ip: master.ip,
      port: master.port,
      runid: runId(master.id),
      flags,
      lastPingSentMs: health?.lastPingSent ?? 0,
      lastOkPingReplyMs: health?.lastOk ?? Date.now(),
      downAfterMs: downAfterOf(inst),
      failoverTimeoutMs: failoverTimeoutOf(inst),
      configEpoch: inst.epoch,
      numSlaves: this.replicas(inst.name).length,
    };
  }
}

function replicaOf(p: Proc, master: Proc): SentinelReplica {
  const link = p.stats?.masterLinkStatus ?? 'up';
  return {
    ip: p.ip,
    port: p.port,
    runid: runId(p.id),
    flags: ['slave'],
    masterLinkStatus: link,
    masterLinkDownMs: link === 'up' ? 0 : (p.stats?.lastIoSecondsAgo ?? 0) * 1000,
    masterHost: master.ip,
    masterPort: master.port,
    priority: 100,
    offset: p.stats?.replOffset ?? 0,
  };
}
