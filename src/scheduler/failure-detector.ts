import type { FleetStore } from '../store/fleet-store.js';
import type { Instance, Proc } from '../domain/model.js';
import { setImmediate as yieldLoop } from 'node:timers/promises';
import { downAfterOf, isLive, isRunning, isServing, namedMaster, runningMaster } from '../domain/rules.js';
import type { Logger } from '../logger.js';
import type { RedisLinks } from './redis-links.js';
import { LoopLag } from './loop-lag.js';
import { BusyScripts } from './busy-script.js';
import { SLICE, watchFleetInSlices } from './detector-upkeep.js';
import { ObjectiveDown, type FailoverRequest, type SentinelEmit } from './objective-down.js';
import { PING_EVERY_MS, PingPlan } from './ping-plan.js';
import { agentSaysAnswering, agentSaysSilent, isSilentFor, longestSilentFirst, MAX_JUDGED_PER_ROUND, MAX_SAMPLED_PER_ROUND, newHealth, pingSent, Rotation, validReply, type AgentProcReport, type MasterHealth } from './master-health.js';

export type { MasterHealth, AgentProcReport } from './master-health.js';
export type { FailoverRequest, SentinelEmit } from './objective-down.js';

/**
 * While a PING to a master has gone unanswered this long, its replicas' offsets are sampled every
 * SAMPLE_EVERY_MS, so the proof of their silence is tight by the time down-after has passed. A
 * healthy master's PONG is back within a few ms, so this costs nothing while all is well.
 */
const SAMPLE_AFTER_MS = 20;
const SAMPLE_EVERY_MS = 100;
/** The upkeep over every proc (links, thresholds, forgetting) runs every this many ticks: once a second. */
const UPKEEP_EVERY_TICKS = 5;
/** Replies to PING that prove the master alive, as Sentinel counts them. */
const ALIVE_ERRORS = /^(LOADING|MASTERDOWN)/;

/**
 * Failure detection, the scheduler's part. First-line detection is on the agents: each PINGs its
 * own procs every 200 ms and reports a silent or busy one at once (`agentReport`), as it reports a
 * dead one (TASK_FAILED, on which the framework calls `promote` at once). The scheduler PINGs a
 * master over its own link every 200 ms when that is needed (a targeted check: its agent is not
 * reporting, someone's PING is unanswered, its replicas lost it), else in a sweep (once a second,
 * longer past 1,000 masters), for a partition between the scheduler and the master; see PingPlan.
 *
 * No valid reply for the instance's down-after (DownAfter, default 1000 ms), counted from the
 * oldest PING unanswered (the scheduler's own, or its agent's as reported), with the scheduler's
 * own PING unanswered too, makes the master subjectively down; time during which the scheduler's
 * own event loop was stalled does not count (see LoopLag). It is objectively down when every
 * replica the scheduler can reach has lost it too (ObjectiveDown).
 * A master that answers -BUSY (a tenant's script) is alive: it gets SCRIPT KILL and FUNCTION
 * KILL, as Sentinel does, and is failed over only if it still gives no valid reply by down-after.
 */
export class FailureDetector {
  private readonly health = new Map<string, MasterHealth>();
  private timer?: NodeJS.Timeout;
  private sampleTimer?: NodeJS.Timeout;
  /**
   * Procs this scheduler has itself seen alive: one of its links got a reply, or the proc's
   * agent reported it RUNNING (or answering) to this scheduler. Only such a proc is announced as
   * a master; after a restart, procs loaded from etcd are not, until they answer.
   */
  private readonly heard = new Set<string>();
  /** Sets each master's busy-script threshold (the upkeep, and a promotion at once) and kills a busy master's script. */
  readonly busy: BusyScripts;
  private readonly objective: ObjectiveDown;
  private readonly plan: PingPlan;
  private readonly judging = new Rotation();
  /** PINGs this scheduler sent to masters, for figures. */
  pingsSent = 0;
  private ticks = 0;
  private ticking = false;
  private upkeeping = false;
  private stopped = false;
  /** Serving masters the last tick saw: they set the sweep's period (PingPlan.nextTick). */
  private masters = 0;

  constructor(
    private readonly store: FleetStore,
    private readonly links: RedisLinks,
    private readonly log: Logger,
    request: FailoverRequest,
    private readonly emitEvent: SentinelEmit,
    readonly lag: LoopLag = new LoopLag(),
    /** Whether the agent answered its heartbeats lately (see ObjectiveDown). */
    agentAlive: (agentId: string) => boolean = () => false,
    /** Whether the agent's REPORTs arrive (see ReportingAgents); never: every master is PINGed every 200 ms. */
    reporting: (agentId: string) => boolean = () => false,
  ) {
    this.busy = new BusyScripts(links, log);
    this.objective = new ObjectiveDown(links, log, request, emitEvent, agentAlive, (h, downAfter) => this.silentFor(h, downAfter));
    this.plan = new PingPlan(reporting);
    links.dropped = (procId) => this.linkDropped(procId);
  }

  start(): void {
    this.lag.start();
    this.timer = setInterval(() => this.tick(), PING_EVERY_MS);
    this.sampleTimer = setInterval(() => this.sampleSilentMasters(), SAMPLE_EVERY_MS);
  }

  stop(): void {
    this.stopped = true;
    this.lag.stop();
    clearInterval(this.timer);
    clearInterval(this.sampleTimer);
  }

  healthOf(procId: string): MasterHealth | undefined {
    return this.health.get(procId);
  }

  /** Whether this scheduler has itself seen the proc alive (see `heard`). */
  hasHeard(procId: string): boolean {
    return this.heard.has(procId);
  }

  /** The proc's agent reported it RUNNING to this scheduler, or one of its links got a reply. */
  vouch(procId: string): void {
    this.heard.add(procId);
  }

  /**
   * The master clients are told about (Sentinel endpoint and GET /v1/STATUS alike): the Mname
   * proc while it runs and this scheduler has seen it alive; and, as Redis Sentinel does, still
   * that proc between its death and the promotion that replaces it, so a client asking in that
   * window is not told "no such master". A proc this scheduler never saw alive (one loaded from
   * etcd after a restart, say, that is LOST or whose agent has not come back) is never announced.
   */
  announced(inst: Instance): Proc | undefined {
    if (!isServing(inst)) return undefined;
    const named = namedMaster(inst);
    if (!named || !this.heard.has(named.id)) return undefined;
    if (isRunning(named) || !isLive(named)) return named;
    return undefined;
  }

  /**
   * What the proc's agent says of it from its own PINGs (one entry of a REPORT, or one sent at
   * once on a change). Only a master watched here counts, and only from its own agent when
   * `agentId` is given. Silent or busy: the silence is backdated by what the agent measured, the
   * scheduler's own PINGs of it start at once (targeted), a busy script is killed, and once the
   * silence reaches down-after it is judged as any silence is. Answering: the agent's part of
   * the silence is cleared.
   */
  agentReport(procId: string, report: AgentProcReport, agentId?: string): void {
    const h = this.health.get(procId);
    const inst = h && this.store.instance(h.instance);
    const master = inst && runningMaster(inst);
    if (!h || !inst || !master || master.id !== procId || h.failingOver) return;
    if (agentId !== undefined && agentId !== master.sid) return;
    if (report.silentMs <= 0 && !report.busy) {
      if (agentSaysAnswering(h)) this.answered(inst, master, h);
      return;
    }
    agentSaysSilent(h, report, Date.now());
    if (report.busy) void this.busy.kill(inst, master, h);
    if (h.ownPendingSince === 0) void this.ping(inst, master, h);
    this.objective.sample(inst, master);
    void this.judge(inst, master, h, report.busy);
  }

  /**
   * Every 200 ms the PINGs due (PingPlan) over the serving masters; once a second, the upkeep.
   * Both go through the fleet in slices with the loop let go between them, so an API request or
   * an agent's call waits for one slice, not for a pass over the whole fleet (25-90 ms at 3,334
   * instances; issue 11). A tick (or upkeep) still under way when the next is due lets that one
   * go rather than run two at once.
   */
  private tick(): void {
    if (this.ticking) return;
    this.plan.nextTick(this.masters);
    if (this.ticks++ % UPKEEP_EVERY_TICKS === 0 && !this.upkeeping) {
      this.upkeeping = true;
      void this.upkeep().finally(() => { this.upkeeping = false; });
    }
    this.ticking = true;
    void this.pingDue().finally(() => { this.ticking = false; });
  }

  private async pingDue(): Promise<void> {
    const names = this.store.instanceNames();
    let masters = 0;
    for (let i = 0; i < names.length; i++) {
      if (i % SLICE === SLICE - 1) await yieldLoop();
      // Read at this moment, not from a list taken before the last slice: a failover may have written meanwhile.
      const inst = this.store.instance(names[i]);
      const master = inst && isServing(inst) ? runningMaster(inst) : undefined;
      if (!inst || !master) continue;
      masters++;
      const h = this.healthFor(inst, master); // one PING at a time (MasterHealth.pingInFlight)
      if (this.plan.due(inst, master, h) && !h.pingInFlight) void this.ping(inst, master, h);
    }
    this.masters = masters;
  }

  /** Links, thresholds (watchFleetInSlices), and everything kept per proc forgotten once the proc is no longer watched. */
  private async upkeep(): Promise<void> {
    const { health, heard, links } = this;
    const known = function* (): Generator<string> {
      yield* health.keys();
      yield* heard;
      yield* links.ids();
    };
    const seen = await watchFleetInSlices(this.store, this.links, this.busy, known, () => this.stopped);
    if (!seen) return;
    const { watched, linked, remembered } = seen;
    for (const id of this.health.keys()) if (!watched.has(id)) this.health.delete(id);
    this.busy.retain(watched);
    this.objective.retain(watched);
    this.plan.retain(watched);
    // A dead master stays "heard" while it is still named, for the window until its promotion.
    for (const id of this.heard) if (!remembered.has(id)) this.heard.delete(id);
    this.links.retain(linked);
  }

  private healthFor(inst: Instance, master: Proc): MasterHealth {
    let h = this.health.get(master.id);
    if (!h) {
      h = newHealth(master.id, inst.name, Date.now());
      this.health.set(master.id, h);
    }
    return h;
  }

  /** Whether the master is subjectively down (see isSilentFor), the scheduler's own stalls not counted. */
  private silentFor(h: MasterHealth, downAfter: number, now = Date.now()): boolean {
    return isSilentFor(h, downAfter, (since) => this.lag.stalledWithin(since, now), now);
  }

  /**
   * The scheduler's open link to a master closed (RedisLinks.dropped): its silence starts now, as
   * Sentinel counts a disconnected master's from its last reply, and a PING goes at once rather
   * than at the next tick (it fails at once while the link is down).
   */
  private linkDropped(procId: string): void {
    const h = this.health.get(procId);
    const inst = h && this.store.instance(h.instance);
    const master = inst && runningMaster(inst);
    if (h && inst && master?.id === procId && !h.failingOver && !h.pingInFlight) void this.ping(inst, master, h);
  }

  /** One PING, once the link has ended its first connect (RedisLinks.firstConnect): no silence counts before. */
  private async ping(inst: Instance, master: Proc, h: MasterHealth): Promise<void> {
    h.pingInFlight = true;
    if (!this.links.settled(master)) await this.links.firstConnect(master);
    pingSent(h, Date.now());
    this.pingsSent++;
    const { reply, error } = await this.links.probe(master, 'PING').finally(() => { h.pingInFlight = false; });
    if (reply === 'PONG' || (error && ALIVE_ERRORS.test(error))) {
      this.answered(inst, master, h);
      return;
    }
    const busy = Boolean(error?.startsWith('BUSY'));
    if (busy) await this.busy.kill(inst, master, h);
    await this.judge(inst, master, h, busy);
  }

  /** Once the master is subjectively down (see silentFor): +sdown, then the replicas' view. */
  private async judge(inst: Instance, master: Proc, h: MasterHealth, busy = h.agentBusy): Promise<void> {
    const downAfter = downAfterOf(inst);
    if (h.failingOver || !this.silentFor(h, downAfter)) return;
    if (!h.sdown) {
      h.sdown = true;
      const agentSilentMs = h.agentSilentSince === 0 ? 0 : Date.now() - h.agentSilentSince;
      this.log.warn('master subjectively down', { instance: inst.name, proc: master.id, downAfterMs: downAfter, busy, agentSilentMs, loopStallMs: this.lag.stalledWithin(h.pendingSince) });
      this.emitEvent('+sdown', `master ${inst.name} ${master.ip} ${master.port}`);
    }
    await this.objective.check(inst, master, h, downAfter);
  }

  /**
   * Every SAMPLE_EVERY_MS: for each master with a PING unanswered for SAMPLE_AFTER_MS, samples its
   * replicas' offsets (so their silence is proven from shortly after the master's last ping; the
   * longest silent first, MAX_SAMPLED_PER_ROUND at most), and once it is subjectively down asks
   * for their votes without waiting for its next PING (MAX_JUDGED_PER_ROUND at most, in turns).
   */
  private sampleSilentMasters(): void {
    const now = Date.now();
    const toSample: { inst: Instance; master: Proc; since: number }[] = [];
    const toJudge: { inst: Instance; master: Proc; h: MasterHealth }[] = [];
    for (const h of this.health.values()) {
      if (h.pendingSince === 0 || now - h.pendingSince < SAMPLE_AFTER_MS || h.failingOver) continue;
      const inst = this.store.instance(h.instance);
      const master = inst && runningMaster(inst);
      if (!inst || !master || master.id !== h.procId) continue;
      if (h.sdown || this.silentFor(h, downAfterOf(inst), now)) toJudge.push({ inst, master, h });
      else toSample.push({ inst, master, since: h.pendingSince });
    }
    for (const { inst, master, h } of this.judging.next(toJudge, MAX_JUDGED_PER_ROUND)) void this.judge(inst, master, h);
    for (const { inst, master } of longestSilentFirst(toSample, MAX_SAMPLED_PER_ROUND)) this.objective.sample(inst, master);
  }

  private answered(inst: Instance, master: Proc, h: MasterHealth): void {
    this.heard.add(master.id);
    validReply(h, Date.now());
    if (!h.sdown) return;
    h.sdown = false;
    h.odown = false;
    this.emitEvent('-sdown', `master ${inst.name} ${master.ip} ${master.port}`);
  }

  /** See ObjectiveDown.replicasStillHear. */
  replicasStillHear(inst: Instance, master: Proc): Promise<boolean> {
    return this.objective.replicasStillHear(inst, master);
  }
}
