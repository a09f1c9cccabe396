import { randomUUID } from 'node:crypto';
import { fromResourceList, pb, subtractPorts, toResourceList, type Resources } from '../proto/messages.js';
import type { redfleet } from '../proto/redfleet.js';
import type { Logger } from '../logger.js';
import { NotYourProcError } from '../errors.js';
import type { AgentView, Framework, Offer, ResourceBroker, TaskLaunch } from './offers.js';

/** Where the broker writes an agent's events: the open SUBSCRIBE response. */
export interface EventSink {
  send(event: redfleet.v1.IEvent): void;
  /** Ends the stream; `abort` drops the connection at once (a silent peer never reads a FIN). */
  close(abort?: boolean): void;
  /** Since when (ms epoch) written events have been waiting for the peer to read them; 0 when none wait. */
  backedUpSince(): number;
}

/** What the endpoint adds to SUBSCRIBED: the session token and the scheduler's proof. */
export interface SessionGrant {
  session: string;
  proof: Uint8Array;
}

interface HeldTask {
  resources: Resources;
}

interface AgentEntry {
  id: string;
  hostname: string;
  ip: string;
  total: Resources;
  tasks: Map<string, HeldTask>;
  sink?: EventSink;
  /** The last sign of life on the current stream: SUBSCRIBE, a heartbeat answer or any call (ms epoch). */
  lastSeen: number;
  /** Resolved by the next sign of life (see probe). */
  waiters: (() => void)[];
  offerId?: string;
  refuseUntil: number;
  subscribedAt: string;
  lostTimer?: NodeJS.Timeout;
  /** Ports whose task ended lately, and when. */
  cooling: Map<number, number>;
}

/**
 * A port whose redis-server just ended is offered again only after this long (or when the agent
 * has no other port): clients that still hold the old address must not land on a different
 * instance's proc, or on a new replica where a master used to be.
 */
const PORT_COOLDOWN_MS = 30_000;

export interface BrokerOptions {
  /** The agents must answer each heartbeat; this often they get one. */
  heartbeatSeconds: number;
  /** How long an agent may stay disconnected before its tasks are declared lost. */
  agentTimeoutMs: number;
  frameworkId: string;
}

const TERMINAL = new Set<number>([
  pb.TaskState.TASK_FINISHED,
  pb.TaskState.TASK_FAILED,
  pb.TaskState.TASK_KILLED,
  pb.TaskState.TASK_LOST,
  pb.TaskState.TASK_ERROR,
]);

/** An agent silent for this many heartbeat intervals is disconnected (its stream may be a dead TCP connection). */
const SILENT_INTERVALS = 3;
/** An agent offers and takes launches only while its last answer is at most this many intervals old. */
const ALIVE_INTERVALS = 2;
const SILENCE_CHECK_MS = 250;
/**
 * A silence check this late means the scheduler's own event loop stalled (GC, CPU starvation, a
 * SIGSTOP): it could not have heard anyone, so silence up to now is not the agents' fault.
 */
const STALL_MS = 750;
/** Slack on ALIVE_INTERVALS for an answer's round trip and timer jitter. */
const ALIVE_SLACK_MS = 500;

/**
 * The offer broker: tracks subscribed agents and what their tasks hold, turns free resources
 * into offers for the framework, and carries the framework's launches and kills to agents.
 */
export class OfferBroker implements ResourceBroker {
  private readonly agentsById = new Map<string, AgentEntry>();
  private readonly offers = new Map<string, Offer>();
  private framework?: Framework;
  private suppressed = false;
  private cycleQueued = false;
  private readonly timer: NodeJS.Timeout;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly silence: NodeJS.Timeout;
  private lastSilenceCheck = Date.now();
  /** After close(), streams that end are no news: nothing is armed or declared lost any more. */
  private closed = false;

  constructor(private readonly opts: BrokerOptions, private readonly log: Logger) {
    // Refuse filters expire with time; a slow tick re-offers what they held back.
    this.timer = setInterval(() => this.scheduleCycle(), 500);
    this.heartbeat = setInterval(() => this.sendHeartbeats(), opts.heartbeatSeconds * 1000);
    // Checked more often than heartbeats go out, so that silence is found close to its limit.
    this.silence = setInterval(() => this.dropSilent(), SILENCE_CHECK_MS);
  }

  attach(framework: Framework): void {
    this.framework = framework;
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    clearInterval(this.heartbeat);
    clearInterval(this.silence);
    for (const a of this.agentsById.values()) {
      clearTimeout(a.lostTimer);
      a.sink?.close(true);
    }
  }

  /**
   * An agent subscribed (or re-subscribed after a broken stream or a scheduler restart), at
   * `address` (an IP literal the endpoint checked). The endpoint has made sure that any earlier
   * stream of this agent is gone (see probe).
   */
  subscribe(info: redfleet.v1.IAgentInfo, address: string, tasks: redfleet.v1.ITaskInfo[], sink: EventSink, grant: SessionGrant): void {
    const id = info.id?.value ?? '';
    const previous = this.agentsById.get(id);
    if (previous?.sink && previous.sink !== sink) previous.sink.close(true);
    clearTimeout(previous?.lostTimer);
    this.rescindOffersOf(id);
    const held = new Map<string, HeldTask>();
    for (const t of tasks) held.set(t.task_id.value, { resources: fromResourceList(t.resources) });
    const entry: AgentEntry = {
      id,
      // The node's host name; an agent that sends no ip sent its address in hostname.
      hostname: info.ip && info.hostname ? info.hostname : address,
      ip: address,
      total: fromResourceList(info.resources),
      tasks: held,
      sink,
      lastSeen: Date.now(),
      waiters: [],
      refuseUntil: 0,
      subscribedAt: new Date().toISOString(),
      cooling: previous?.cooling ?? new Map(),
    };
    this.agentsById.set(id, entry);
    sink.send({
      type: pb.Event.Type.SUBSCRIBED,
      subscribed: {
        agent_id: { value: id },
        framework_id: { value: this.opts.frameworkId },
        heartbeat_interval_seconds: this.opts.heartbeatSeconds,
        session: grant.session,
        proof: grant.proof,
      },
    });
    this.log.info('agent subscribed', { agent: id, ip: entry.ip, tasks: held.size, mem: entry.total.mem, cpus: entry.total.cpus });
    this.framework?.agentSubscribed(id, [...held.keys()]);
    this.resourcesChanged();
  }

  /**
   * The agent's stream closed (or was dropped as silent). Its tasks stay held until it returns or
   * the agent timeout, counted from its last sign of life rather than from now, has passed: a
   * partitioned agent is declared lost within the timeout (plus one heartbeat) of the cut.
   */
  disconnected(agentId: string, sink: EventSink): void {
    const entry = this.agentsById.get(agentId);
    if (this.closed || !entry || entry.sink !== sink) return;
    entry.sink = undefined;
    this.rescindOffersOf(agentId);
    const now = Date.now();
    if (this.stalled(now)) entry.lastSeen = now;
    this.log.warn('agent disconnected', { agent: agentId, silentMs: now - entry.lastSeen });
    this.armLost(entry);
  }

  /** Declares the agent lost at its last sign of life + the agent timeout, unless it returns first. */
  private armLost(entry: AgentEntry): void {
    clearTimeout(entry.lostTimer);
    entry.lostTimer = setTimeout(() => {
      if (entry.sink || this.agentsById.get(entry.id) !== entry) return;
      if (this.stalled(Date.now())) {
        this.forgiveStall(Date.now());
        return;
      }
      this.agentsById.delete(entry.id);
      this.log.warn('agent lost: no resubscription within the agent timeout', { agent: entry.id, timeoutMs: this.opts.agentTimeoutMs, silentMs: Date.now() - entry.lastSeen });
      this.framework?.agentLost(entry.id, [...entry.tasks.keys()]);
    }, Math.max(0, entry.lastSeen + this.opts.agentTimeoutMs - Date.now()));
  }

  /** Whether this scheduler's event loop is (or just was) stalled: the silence check is overdue. */
  private stalled(now: number): boolean {
    return now - this.lastSilenceCheck > SILENCE_CHECK_MS + STALL_MS;
  }

  /** A sign of life from the agent on its current stream `sink` (a heartbeat answer or any call). */
  heardFrom(agentId: string, sink: EventSink): void {
    const entry = this.agentsById.get(agentId);
    if (!entry || entry.sink !== sink) return;
    entry.lastSeen = Date.now();
    const waiters = entry.waiters.splice(0);
    for (const w of waiters) w();
  }

  /** Whether the store places live procs on this agent (it matters when such an agent is refused). */
  holdsProcs(agentId: string): boolean {
    return this.framework?.holdsProcs(agentId) ?? false;
  }

  /** Whether the agent has a stream open (alive or not yet found silent). */
  connected(agentId: string): boolean {
    return Boolean(this.agentsById.get(agentId)?.sink);
  }

  /**
   * Asks the agent's current stream for a heartbeat answer; resolves true if one comes within
   * `timeoutMs`. Used before a second SUBSCRIBE may replace a stream: only a stream that is
   * proven gone gives up its agent's procs.
   */
  probe(agentId: string, timeoutMs: number): Promise<boolean> {
    const entry = this.agentsById.get(agentId);
    if (!entry?.sink) return Promise.resolve(false);
    return new Promise((resolve) => {
      const answered = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        entry.waiters = entry.waiters.filter((w) => w !== answered);
        resolve(false);
      }, timeoutMs);
      entry.waiters.push(answered);
      entry.sink?.send({ type: pb.Event.Type.HEARTBEAT });
    });
  }

  /** Drops the agent's current stream now (it failed a probe); its procs stay held as after any disconnect. */
  dropStream(agentId: string, why: string): void {
    const sink = this.agentsById.get(agentId)?.sink;
    if (!sink) return;
    this.log.warn('dropping agent stream', { agent: agentId, why });
    sink.close(true);
    this.disconnected(agentId, sink);
  }

  agentAlive(agentId: string): boolean {
    const entry = this.agentsById.get(agentId);
    return entry !== undefined && this.alive(entry);
  }

  /** The agent answered a heartbeat lately enough to be trusted with offers and launches. */
  private alive(entry: AgentEntry, now = Date.now()): boolean {
    return Boolean(entry.sink) && now - entry.lastSeen <= ALIVE_INTERVALS * this.opts.heartbeatSeconds * 1000 + ALIVE_SLACK_MS;
  }

  /** Applies a status update to the resources held, then lets the framework persist it. */
  async update(agentId: string, status: redfleet.v1.ITaskStatus): Promise<void> {
    const entry = this.agentsById.get(agentId);
    const taskId = status.task_id.value;
    const owner = this.framework?.procAgent(taskId);
    if (owner !== undefined && owner !== agentId) throw new NotYourProcError(agentId, taskId);
    const ended = entry && TERMINAL.has(status.state) ? entry.tasks.get(taskId) : undefined;
    if (entry && ended) {
      entry.tasks.delete(taskId);
      for (const r of ended.resources.ports) for (let p = r.begin; p <= r.end; p++) entry.cooling.set(p, Date.now());
      this.resourcesChanged();
    }
    await this.framework?.statusUpdate(agentId, status);
    if (status.uuid && status.uuid.length > 0) {
      entry?.sink?.send({ type: pb.Event.Type.ACKNOWLEDGED, acknowledged: { task_id: { value: taskId }, uuid: status.uuid } });
    }
  }

  // ---- ResourceBroker ----

  accept(offerId: string, launches: TaskLaunch[]): void {
    const offer = this.offers.get(offerId);
    if (!offer) throw new Error(`offer ${offerId} is no longer valid`);
    this.offers.delete(offerId);
    const entry = this.agentsById.get(offer.agentId);
    if (!entry?.sink) throw new Error(`agent ${offer.agentId} disconnected before the launch`);
    // A launch written into a dead stream is lost without an error: only a stream that answers goes.
    if (!this.alive(entry)) throw new Error(`agent ${offer.agentId} has not answered a heartbeat lately; no launch over a stream that may be dead`);
    entry.offerId = undefined;
    for (const l of launches) {
      entry.tasks.set(l.taskId, { resources: l.resources });
      entry.sink.send({
        type: pb.Event.Type.LAUNCH,
        launch: {
          task: {
            name: l.name,
            task_id: { value: l.taskId },
            agent_id: { value: entry.id },
            resources: toResourceList(l.resources),
            data: l.data,
          },
        },
      });
      this.log.info('task launched', { agent: entry.id, proc: l.taskId });
    }
    this.scheduleCycle();
  }

  decline(offerId: string, refuseSeconds: number): void {
    const offer = this.offers.get(offerId);
    if (!offer) return;
    this.offers.delete(offerId);
    const entry = this.agentsById.get(offer.agentId);
    if (!entry) return;
    entry.offerId = undefined;
    entry.refuseUntil = Date.now() + refuseSeconds * 1000;
  }

  suppress(): void {
    this.suppressed = true;
  }

  revive(): void {
    this.suppressed = false;
    for (const a of this.agentsById.values()) a.refuseUntil = 0;
    this.scheduleCycle();
  }

  kill(agentId: string, taskId: string): void {
    this.agentsById.get(agentId)?.sink?.send({ type: pb.Event.Type.KILL, kill: { task_id: { value: taskId } } });
  }

  agents(): AgentView[] {
    return [...this.agentsById.values()].map((a) => ({
      id: a.id,
      hostname: a.hostname,
      ip: a.ip,
      connected: Boolean(a.sink),
      total: a.total,
      free: this.freeOf(a),
      tasks: [...a.tasks.keys()],
      subscribedAt: a.subscribedAt,
    }));
  }

  largestAgentMem(): number {
    let max = 0;
    for (const a of this.agentsById.values()) if (a.sink) max = Math.max(max, a.total.mem);
    return max;
  }

  // ---- offers ----

  /**
   * The fleet's free resources changed (an agent joined, a task ended): clear every refuse filter
   * so that all agents are offered together again. Without this, agents declined at different
   * moments would come back in separate rounds, and an instance that needs several agents at
   * once would never see them in the same round.
   */
  private resourcesChanged(): void {
    for (const a of this.agentsById.values()) a.refuseUntil = 0;
    this.scheduleCycle();
  }

  private freeOf(a: AgentEntry): Resources {
    let cpus = a.total.cpus;
    let mem = a.total.mem;
    const taken: number[] = [];
    for (const t of a.tasks.values()) {
      cpus -= t.resources.cpus;
      mem -= t.resources.mem;
      for (const r of t.resources.ports) for (let p = r.begin; p <= r.end; p++) taken.push(p);
    }
    const free = subtractPorts(a.total.ports, taken);
    const now = Date.now();
    for (const [port, at] of a.cooling) if (now - at > PORT_COOLDOWN_MS) a.cooling.delete(port);
    const rested = subtractPorts(free, [...a.cooling.keys()]);
    return { cpus: Math.max(0, Math.round(cpus * 1000) / 1000), mem: Math.max(0, mem), ports: rested.length > 0 ? rested : free };
  }

  private scheduleCycle(): void {
    if (this.cycleQueued) return;
    this.cycleQueued = true;
    setImmediate(() => {
      this.cycleQueued = false;
      this.offerCycle();
    });
  }

  private offerCycle(): void {
    if (this.suppressed || !this.framework) return;
    const now = Date.now();
    const batch: Offer[] = [];
    for (const a of this.agentsById.values()) {
      if (!this.alive(a, now) || a.offerId || a.refuseUntil > now) continue;
      const free = this.freeOf(a);
      if (free.mem <= 0 || free.ports.length === 0) continue;
      const offer: Offer = { id: randomUUID(), agentId: a.id, hostname: a.hostname, ip: a.ip, resources: free };
      a.offerId = offer.id;
      this.offers.set(offer.id, offer);
      batch.push(offer);
    }
    if (batch.length > 0) this.framework.resourceOffers(batch);
  }

  /** After a stall of our own, every agent gets a fresh window, connected or waiting to return. */
  private forgiveStall(now: number): void {
    this.log.warn('scheduler event loop stalled; agents\' silence during the stall is not held against them', { stalledMs: now - this.lastSilenceCheck });
    this.lastSilenceCheck = now;
    for (const a of this.agentsById.values()) {
      a.lastSeen = Math.max(a.lastSeen, now);
      if (!a.sink) this.armLost(a);
    }
  }

  private rescindOffersOf(agentId: string): void {
    const entry = this.agentsById.get(agentId);
    if (entry?.offerId) this.offers.delete(entry.offerId);
    if (entry) entry.offerId = undefined;
  }

  /** Every interval, a heartbeat that each agent must answer with a HEARTBEAT call. */
  private sendHeartbeats(): void {
    for (const a of this.agentsById.values()) a.sink?.send({ type: pb.Event.Type.HEARTBEAT });
  }

  /**
   * Drops the streams of agents that went silent or stopped reading their events. A write into a
   * dead TCP connection (a partition: no RST) succeeds, so silence is the only sign of one.
   */
  private dropSilent(): void {
    const now = Date.now();
    if (this.stalled(now)) {
      this.forgiveStall(now);
      return;
    }
    this.lastSilenceCheck = now;
    const silentMs = SILENT_INTERVALS * this.opts.heartbeatSeconds * 1000;
    for (const a of this.agentsById.values()) {
      const backedUp = a.sink?.backedUpSince() ?? 0;
      if (!a.sink) continue;
      if (now - a.lastSeen > silentMs) this.dropStream(a.id, `no heartbeat answer for ${now - a.lastSeen} ms`);
      else if (backedUp > 0 && now - backedUp > silentMs) this.dropStream(a.id, `events unread for ${now - backedUp} ms`);
    }
  }
}
