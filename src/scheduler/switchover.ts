import { setTimeout as sleep } from 'node:timers/promises';
import { parseInfo, pingPeriodCommand, PINGS_HELD_PERIOD_S, REPLICA_PING_PERIOD_S } from '../domain/redis-info.js';
import { InstanceType, type Instance, type Proc } from '../domain/model.js';
import { isLive, isRunning, isServing, runningMaster } from '../domain/rules.js';
import { NoEligibleReplicaError, NotFoundError, OperationInProgressError, OperationRefusedError } from '../errors.js';
import type { FleetStore } from '../store/fleet-store.js';
import { writeSwitchover } from '../store/switchover-store.js';
import type { Logger } from '../logger.js';
import type { RedisLinks } from './redis-links.js';
import type { FailureDetector, SentinelEmit } from './failure-detector.js';
import type { Promotion } from './promotion.js';

export interface SwitchoverResult {
  from: string;
  to: string;
  epoch: number;
  /** How long the old master held its writes paused (the write gap as the server sees it). */
  gapMs: number;
}

export interface SwitchoverPlan {
  from: string;
  to: string;
  epoch: number;
}

export interface SwitchoverOptions {
  /** A running replica's proc id; else the best replica in Promotion.rank's order. */
  to?: string;
  /** Never promote a replica on these agents. */
  avoidAgents?: string[];
  /** Why, for the log. */
  cause: string;
  /**
   * Called once the replica is chosen, before anything is paused: a caller checkpoints the plan
   * here (Progress) so a scheduler that takes over can `settle` it.
   */
  beforeSwitch?: (plan: SwitchoverPlan) => Promise<void>;
}

/**
 * Bound of the old master's CLIENT PAUSE. The switchover unpauses as soon as the old master is a
 * replica; the bound only matters when this scheduler dies mid-way: it covers the agents carrying
 * out the written MASTER and SLAVEOF messages on their own (a SLAVEOF waits up to 2 s for the new
 * master's role), so the old master never takes writes again as a master once the switch is
 * written.
 */
const PAUSE_MS = 3000;
/** How long the chosen replica has to reach the paused master's offset before the switch is off. */
const CATCH_UP_MS = 1000;
/** How long the replica has, before the master is paused, to reach the master's offset of that moment. */
const PREFLIGHT_MS = 3000;
/** Attempts (50 ms apart) at turning the old master into a replica over the scheduler's link. */
const DEMOTE_ATTEMPTS = 40;

/**
 * A planned switchover (issue 9, part 3): no kill. Pauses the master's writes, waits until the
 * chosen replica has every byte, writes the switch to etcd in one transaction (the agents then
 * carry it out, as for a failover), makes the same changes at once over the scheduler's own
 * links, unpauses the old master (now a replica of the new one: its held writes get -READONLY,
 * never an acknowledgement) and drops its tenants' clients, so they ask the Sentinel endpoint
 * again. Redis 7's own FAILOVER command would do the core, but it waits for the replica's next
 * REPLCONF ACK, which a replica sends once a second: about a second of paused writes against a
 * few milliseconds here, where the replica's own offset is read directly.
 */
export class Switchover {
  private readonly busy = new Set<string>();

  constructor(
    private readonly store: FleetStore,
    private readonly links: RedisLinks,
    private readonly log: Logger,
    private readonly promotion: Pick<Promotion, 'rank'>,
    private readonly detector: Pick<FailureDetector, 'vouch' | 'healthOf' | 'busy'>,
    private readonly emitEvent: SentinelEmit,
  ) {}

  /** Whether a switchover of the instance runs in this scheduler now. */
  running(name: string): boolean {
    return this.busy.has(name);
  }

  /**
   * Planned switchover of a serving MS instance to `opts.to` or the best replica, never to a proc
   * on `opts.avoidAgents`. Throws NoEligibleReplicaError (409) when no replica qualifies,
   * OperationRefusedError when the instance is not serving or its master is failing, and leaves
   * everything as it was when the replica does not catch up in time.
   */
  async run(name: string, opts: SwitchoverOptions): Promise<SwitchoverResult> {
    if (this.busy.has(name)) throw new OperationInProgressError(name, 'switchover', 'switching over');
    this.busy.add(name);
    try {
      return await this.switchOver(name, opts);
    } finally {
      this.busy.delete(name);
    }
  }

  /** The checks of `run` that need no Redis: 404/409 before anything is written. */
  refusal(name: string): Error | undefined {
    const inst = this.store.instance(name);
    if (!inst) return new NotFoundError('instance', name);
    if (inst.type !== InstanceType.MasterReplica) return new OperationRefusedError(`instance '${name}' is standalone (Type S): it has no replica to switch over to`);
    if (!isServing(inst)) return new OperationRefusedError(`instance '${name}' is ${inst.status}; a switchover needs it RUNNING or DEGRADED`);
    const master = runningMaster(inst);
    if (!master) return new OperationRefusedError(`instance '${name}' has no running master to switch over from`);
    const health = this.detector.healthOf(master.id);
    if (health?.sdown || health?.failingOver) return new OperationRefusedError(`instance '${name}' is failing over its master; try again once it is done`);
    return undefined;
  }

  /**
   * After a scheduler restart, a switchover planned as `plan` (from its checkpoint): 'done' when
   * etcd names the new master (its changes are made again, all idempotent), 'not-started' when it
   * still names the old one (whose pause is lifted: nothing changed).
   */
  async settle(name: string, plan: SwitchoverPlan): Promise<'done' | 'not-started'> {
    const inst = this.store.instance(name);
    const from = inst?.procs.find((p) => p.id === plan.from);
    const to = inst?.procs.find((p) => p.id === plan.to);
    if (inst && to && inst.mname === plan.to) {
      const others = inst.procs.filter((p) => isLive(p) && p.id !== plan.to && p.id !== plan.from);
      await this.apply(to, from && isLive(from) ? from : undefined);
      await this.repoint(to, others);
      if (from) this.announce(name, `${from.ip} ${from.port}`, to, [from, ...others]);
      this.log.warn('switchover settled after a restart: done', { instance: name, from: plan.from, to: plan.to });
      return 'done';
    }
    if (from) await this.resume(from);
    this.log.warn('switchover settled after a restart: not written, nothing changed', { instance: name, from: plan.from, to: plan.to });
    return 'not-started';
  }

  private async switchOver(name: string, opts: SwitchoverOptions): Promise<SwitchoverResult> {
    const refused = this.refusal(name);
    if (refused) throw refused;
    const inst = this.store.instance(name) as Instance;
    const old = runningMaster(inst) as Proc;
    const chosen = await this.choose(inst, old, opts);
    // Before any pause: the replica must be streaming (a replica just synced gets the stream only
    // after its first ACK), so the paused wait below is a matter of milliseconds.
    await this.awaitCatchUp(old, chosen, PREFLIGHT_MS, false);
    const plan: SwitchoverPlan = { from: old.id, to: chosen.id, epoch: inst.epoch + 1 };
    await opts.beforeSwitch?.(plan);
    const oldAddr = `${old.ip} ${old.port}`;
    this.emitEvent('+try-failover', `master ${name} ${oldAddr}`);
    this.emitEvent('+selected-slave', `slave ${chosen.ip}:${chosen.port} ${chosen.ip} ${chosen.port} @ ${name} ${oldAddr}`);
    const log = this.log.child({ instance: name, proc: old.id, agent: old.sid });
    log.info('switchover', { from: old.id, to: chosen.id, toAgent: chosen.sid, epoch: plan.epoch, cause: opts.cause });
    const pausedAt = Date.now();
    await this.pause(old);
    const others = inst.procs.filter((p) => isLive(p) && p.id !== old.id && p.id !== chosen.id);
    try {
      await this.awaitCatchUp(old, chosen);
      const record = { at: new Date().toISOString(), epoch: plan.epoch, cause: opts.cause, planned: true, from: old.id, fromAddress: `${old.ip}:${old.port}`, to: chosen.id, toAddress: `${chosen.ip}:${chosen.port}` };
      const written = await writeSwitchover(this.store, name, { oldMaster: old, newMaster: chosen, repoint: others, expectStatus: inst.status, epoch: plan.epoch, record });
      if (!written) throw new OperationRefusedError(`instance '${name}' changed during the switchover (a failover or a delete); nothing was switched`);
    } catch (err) {
      // An etcd error may hide a transaction that did commit: then the switch stands, go on.
      if (!(err instanceof OperationRefusedError) && (await this.committed(name, chosen))) return this.finish(name, oldAddr, old, chosen, others, pausedAt, plan);
      await this.resume(old);
      this.emitEvent('-failover-abort-not-elected', `master ${name} ${oldAddr}`);
      log.warn('switchover abandoned; the master is unpaused and unchanged', { to: chosen.id, error: (err as Error).message });
      throw err;
    }
    return this.finish(name, oldAddr, old, chosen, others, pausedAt, plan);
  }

  /** The switch is written: make it true at once, announce it, re-point the others. */
  private async finish(name: string, oldAddr: string, old: Proc, chosen: Proc, others: Proc[], pausedAt: number, plan: SwitchoverPlan): Promise<SwitchoverResult> {
    await this.apply(chosen, old);
    const gapMs = Date.now() - pausedAt;
    this.announce(name, oldAddr, chosen, [old, ...others]);
    await this.repoint(chosen, others);
    this.log.info('switchover done', { instance: name, proc: old.id, agent: old.sid, from: old.id, to: chosen.id, epoch: plan.epoch, gapMs });
    return { from: old.id, to: chosen.id, epoch: plan.epoch, gapMs };
  }

  /** Whether etcd itself (not the cache) names `chosen` as the master. */
  private async committed(name: string, chosen: Proc): Promise<boolean> {
    const mname = await this.store.etcd.get(this.store.keys.instanceField(name, 'Mname')).string().catch(() => null);
    return mname === chosen.id;
  }

  /** The replica to promote: `opts.to`, or the best ranked one with its link up and off `avoidAgents`. */
  private async choose(inst: Instance, old: Proc, opts: SwitchoverOptions): Promise<Proc> {
    const avoid = new Set(opts.avoidAgents ?? []);
    if (opts.to && !inst.procs.some((p) => p.id === opts.to && isLive(p) && p.id !== old.id)) {
      throw new NoEligibleReplicaError(`'${opts.to}' is not a live replica of '${inst.name}'`, 'to');
    }
    const { candidates, why } = await this.promotion.rank(inst, old.id);
    const eligible = candidates.filter((c) => c.linkDownSeconds === 0 && !avoid.has(c.proc.sid) && (!opts.to || c.proc.id === opts.to));
    for (const c of candidates) {
      if (c.linkDownSeconds > 0) why.push(`${c.proc.id} has its master link down`);
      else if (avoid.has(c.proc.sid)) why.push(`${c.proc.id} is on agent ${c.proc.sid}, to be avoided`);
    }
    if (eligible.length > 0) return eligible[0].proc;
    const target = opts.to ? `replica '${opts.to}' of '${inst.name}' cannot` : `no replica of '${inst.name}' can`;
    throw new NoEligibleReplicaError(`${target} take over now${why.length ? `: ${why.join('; ')}` : ` (${candidates.length} running replica(s) answered)`}`, opts.to ? 'to' : undefined);
  }

  /** Holds the master's writes and its PINGs to its replicas (PINGS_HELD_PERIOD_S says why). */
  private async pause(old: Proc): Promise<void> {
    const held = await this.links.call(old, ...pingPeriodCommand(PINGS_HELD_PERIOD_S));
    const reply = held === 'OK' ? await this.links.probe(old, 'CLIENT', 'PAUSE', String(PAUSE_MS), 'WRITE') : { error: 'CONFIG SET failed' };
    if (reply.reply !== 'OK') {
      await this.resume(old);
      throw new OperationRefusedError(`the master ${old.ip}:${old.port} did not pause its writes (${reply.error ?? 'no reply'}); nothing was switched`);
    }
  }

  /** Undoes `pause`: the master stays the master. */
  private async resume(old: Proc): Promise<void> {
    await this.links.call(old, ...pingPeriodCommand(REPLICA_PING_PERIOD_S));
    await this.links.call(old, 'CLIENT', 'UNPAUSE');
  }

  /**
   * Resolves once the replica has processed the master's stream up to the master's offset: the
   * offset as it is now at each look (`follow`), or as it was when the wait began. Throws after
   * `withinMs`.
   */
  private async awaitCatchUp(old: Proc, chosen: Proc, withinMs = CATCH_UP_MS, follow = true): Promise<void> {
    const deadline = Date.now() + withinMs;
    let target = NaN;
    let seen = '';
    while (Date.now() < deadline) {
      const [m, r] = await Promise.all([this.links.call(old, 'INFO', 'replication'), this.links.call(chosen, 'INFO', 'replication')]);
      const master = typeof m === 'string' ? Number(parseInfo(m).get('master_repl_offset')) : NaN;
      if (follow || !Number.isFinite(target)) target = master;
      const replica = typeof r === 'string' ? parseInfo(r) : undefined;
      const offset = Number(replica?.get('slave_repl_offset'));
      seen = `master ${master}, replica ${offset}`;
      if (replica?.get('master_link_status') === 'up' && Number.isFinite(target) && offset >= target) return;
      await sleep(2);
    }
    throw new OperationRefusedError(`replica ${chosen.id} did not reach the master's offset within ${withinMs} ms (${seen}); nothing was switched`);
  }

  /**
   * Makes the written switch true at once over the scheduler's links (the agents do the same on
   * their messages; every step is idempotent): the new master first, then the old master follows
   * it, is unpaused and drops its tenants' clients in one MULTI, so no held write runs on it as a
   * master and every client asks the endpoint again.
   */
  private async apply(chosen: Proc, old: Proc | undefined): Promise<void> {
    const promoted = await this.links.call(chosen, 'REPLICAOF', 'NO', 'ONE');
    if (promoted === 'OK') {
      this.detector.vouch(chosen.id);
      // Its busy-script threshold at once, not at the upkeep's next pass (replicas are not linked).
      const inst = this.store.instance(chosen.instance);
      if (inst) void this.detector.busy.applyThreshold(inst, chosen);
    } else {
      this.log.warn('switchover: the new master did not answer REPLICAOF NO ONE; its agent carries it out', { instance: chosen.instance, proc: chosen.id, agent: chosen.sid });
    }
    if (old) await this.demote(old, chosen);
  }

  /** Points the other running replicas at the new master at once (their agents do it too). */
  private async repoint(chosen: Proc, others: Proc[]): Promise<void> {
    await Promise.all(others.filter(isRunning).map((p) => this.links.call(p, 'REPLICAOF', chosen.ip, String(chosen.port))));
  }

  /**
   * The old master follows the new one, is unpaused and drops its tenants' clients, in one MULTI.
   * Tried again for a while (a link a restarted scheduler has only just opened): until its
   * tenants' clients are dropped they keep writing to a replica and only get -READONLY back.
   */
  private async demote(old: Proc, chosen: Proc): Promise<void> {
    let error = '';
    for (let attempt = 0; attempt < DEMOTE_ATTEMPTS; attempt++) {
      if (attempt > 0) await sleep(50);
      await this.links.call(old, 'PING');
      try {
        const results = await this.links.get(old).multi()
          .call('REPLICAOF', chosen.ip, String(chosen.port))
          .call(...pingPeriodCommand(REPLICA_PING_PERIOD_S))
          .call('CLIENT', 'UNPAUSE')
          .call('CLIENT', 'KILL', 'TYPE', 'normal', 'USER', 'default', 'SKIPME', 'yes')
          .call('CLIENT', 'KILL', 'TYPE', 'pubsub', 'USER', 'default', 'SKIPME', 'yes')
          .exec();
        const failed = results?.find(([err]) => err);
        if (results && !failed) return;
        error = (failed?.[0] as Error | undefined)?.message ?? 'MULTI aborted';
      } catch (err) {
        error = (err as Error).message;
      }
    }
    // Its agent follows the SLAVEOF message, and the pause ends by itself at its bound.
    this.log.error('switchover: the old master did not take REPLICAOF; its agent carries it out, but its clients stay until they reconnect', { instance: old.instance, proc: old.id, agent: old.sid, error });
  }

  /** Sentinel's closing events of a failover, then each re-pointed replica (the old master too). */
  private announce(name: string, oldAddr: string, chosen: Proc, replicas: Proc[]): void {
    this.emitEvent('+promoted-slave', `slave ${chosen.ip}:${chosen.port} ${chosen.ip} ${chosen.port} @ ${name} ${oldAddr}`);
    this.emitEvent('+failover-end', `master ${name} ${oldAddr}`);
    this.emitEvent('+switch-master', `${name} ${oldAddr} ${chosen.ip} ${chosen.port}`);
    for (const o of replicas) this.emitEvent('+slave', `slave ${o.ip}:${o.port} ${o.ip} ${o.port} @ ${name} ${chosen.ip} ${chosen.port}`);
  }
}
