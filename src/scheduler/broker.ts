import { v4 as uuidv4 } from 'uuid';
import { fromResourceList, pb, toResourceList } from '../proto/messages.js';
import type { redfleet } from '../proto/redfleet.js';
import type { Logger } from '../logger.js';
import { NotYourProcError } from '../errors.js';
import type { AgentStatus, AgentView, Framework, Offer, ResourceBroker, TaskLaunch } from './offers.js';
import type { AgentEntry, EventSink, SessionGrant } from './agent-entry.js';
import { AgentResources, type HeldTask } from './agent-resources.js';
import { AgentLiveness, type LivenessOptions } from './agent-liveness.js';
import { LoopLag } from './loop-lag.js';

export type { EventSink, SessionGrant } from './agent-entry.js';

export interface BrokerOptions extends LivenessOptions {
  frameworkId: string;
}

const { TASK_FINISHED, TASK_FAILED, TASK_KILLED, TASK_LOST, TASK_ERROR } = pb.TaskState;
const TERMINAL = new Set<number>([TASK_FINISHED, TASK_FAILED, TASK_KILLED, TASK_LOST, TASK_ERROR]);

/**
 * The offer broker: tracks subscribed agents and what their tasks hold, turns free resources
 * into offers for the framework, and carries the framework's launches and kills to agents.
 * Whether each agent is alive is AgentLiveness's business.
 */
export class OfferBroker implements ResourceBroker {
  private readonly agentsById = new Map<string, AgentEntry>();
  private readonly offers = new Map<string, Offer>();
  private readonly liveness: AgentLiveness;
  private framework?: Framework;
  private suppressed = false;
  private cycleQueued = false;
  private readonly timer: NodeJS.Timeout;
  /** After close(), streams that end are no news: nothing is armed or declared lost any more. */
  private closed = false;

  /** `lag`: the term's watch on the scheduler's own event loop, shared with the failure detector. */
  constructor(private readonly opts: BrokerOptions, private readonly log: Logger, lag: LoopLag = new LoopLag()) {
    // Refuse filters expire with time; a slow tick re-offers what they held back.
    this.timer = setInterval(() => this.scheduleCycle(), 500);
    this.liveness = new AgentLiveness(this.agentsById, opts, log, {
      dropStream: (agentId, why) => this.dropStream(agentId, why),
      lost: (entry) => this.framework?.agentLost(entry.id, entry.held.ids()),
    }, lag);
  }

  attach(framework: Framework): void {
    this.framework = framework;
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    this.liveness.close();
    for (const a of this.agentsById.values()) {
      a.cancelLost?.();
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
    previous?.cancelLost?.();
    this.rescindOffersOf(id);
    const running = tasks.map((t): [string, HeldTask] => [t.task_id.value, { resources: fromResourceList(t.resources) }]);
    // Ports that were cooling stay cooling across a resubscription.
    const held = new AgentResources(fromResourceList(info.resources), running, previous?.held.cooling);
    const entry: AgentEntry = {
      id,
      // The node's host name; an agent that sends no ip sent its address in hostname.
      hostname: info.ip && info.hostname ? info.hostname : address,
      ip: address,
      redisServers: (info.redis_servers ?? []).map((b) => ({ path: b.path, version: b.version ?? '' })),
      held,
      sink,
      lastSeen: Date.now(),
      answeredAt: previous?.answeredAt ?? Date.now(),
      waiters: [],
      refuseUntil: 0,
      subscribedAt: new Date().toISOString(),
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
    this.log.info('agent subscribed', { agent: id, ip: entry.ip, tasks: held.size, mem: held.total.mem, cpus: held.total.cpus });
    this.framework?.agentSubscribed(id, held.ids());
    this.resourcesChanged();
  }

  /**
   * The agent's stream closed (or was dropped as silent). Its tasks stay held until it returns or
   * the agent timeout, counted from its last sign of life rather than from now (and in the
   * scheduler's awake time, see AgentLiveness), has passed: a partitioned agent is declared lost
   * within the timeout (plus one heartbeat) of the cut.
   */
  disconnected(agentId: string, sink: EventSink): void {
    const entry = this.agentsById.get(agentId);
    if (this.closed || !entry || entry.sink !== sink) return;
    entry.sink = undefined;
    this.rescindOffersOf(agentId);
    this.log.warn('agent disconnected', { agent: agentId, silentMs: Date.now() - entry.lastSeen, awakeMs: this.liveness.silentMs(entry), unansweredMs: Date.now() - entry.answeredAt });
    this.liveness.armLost(entry);
  }

  /** A sign of life from the agent on its current stream `sink` (a heartbeat answer or any call). */
  heardFrom(agentId: string, sink: EventSink): void {
    this.liveness.heardFrom(agentId, sink);
  }

  /** Whether the store places live procs on this agent (it matters when such an agent is refused). */
  holdsProcs(agentId: string): boolean {
    return this.framework?.holdsProcs(agentId) ?? false;
  }

  /** Whether the agent has a stream open (alive or not yet found silent). */
  connected(agentId: string): boolean {
    return Boolean(this.agentsById.get(agentId)?.sink);
  }

  /** Asks the agent's current stream for a heartbeat answer within `timeoutMs` (see AgentLiveness.probe). */
  probe(agentId: string, timeoutMs: number): Promise<boolean> {
    return this.liveness.probe(agentId, timeoutMs);
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
    return entry !== undefined && this.liveness.alive(entry);
  }

  /** Applies a status update to the resources held, then lets the framework persist it. */
  async update(agentId: string, status: redfleet.v1.ITaskStatus): Promise<void> {
    const entry = this.agentsById.get(agentId);
    const taskId = status.task_id.value;
    const owner = this.framework?.procAgent(taskId);
    if (owner !== undefined && owner !== agentId) throw new NotYourProcError(agentId, taskId);
    if (entry && TERMINAL.has(status.state) && entry.held.release(taskId)) this.resourcesChanged();
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
    if (!this.liveness.alive(entry)) throw new Error(`agent ${offer.agentId} has not answered a heartbeat lately; no launch over a stream that may be dead`);
    entry.offerId = undefined;
    for (const l of launches) {
      entry.held.hold(l.taskId, { resources: l.resources });
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

  resizeTask(agentId: string, taskId: string, memMb: number): boolean | undefined {
    const entry = this.agentsById.get(agentId);
    return entry?.held.resize(taskId, memMb);
  }

  agents(): AgentView[] {
    return [...this.agentsById.values()].map((a) => ({
      id: a.id,
      hostname: a.hostname,
      ip: a.ip,
      connected: Boolean(a.sink),
      total: a.held.total,
      free: a.held.free(),
      tasks: a.held.ids(),
      subscribedAt: a.subscribedAt,
      redisServers: a.redisServers,
    }));
  }

  /** Each agent's id, total and free resources, without the rest of its view. */
  capacities(): { id: string; total: AgentView['total']; free: AgentView['free'] }[] {
    return Array.from(this.agentsById.values(), (a) => ({ id: a.id, total: a.held.total, free: a.held.free() }));
  }

  connectedCount(): number {
    return Array.from(this.agentsById.values()).filter((a) => a.sink).length;
  }

  agentStatus(agentId: string): AgentStatus | undefined {
    const entry = this.agentsById.get(agentId);
    return entry && { connected: Boolean(entry.sink), runs: (taskId) => entry.held.has(taskId) };
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
      if (!this.liveness.alive(a, now) || a.offerId || a.refuseUntil > now) continue;
      const free = a.held.free(now);
      if (free.mem <= 0 || free.ports.length === 0) continue;
      const offer: Offer = { id: uuidv4(), agentId: a.id, hostname: a.hostname, ip: a.ip, resources: free, redisServers: a.redisServers };
      a.offerId = offer.id;
      this.offers.set(offer.id, offer);
      batch.push(offer);
    }
    if (batch.length > 0) this.framework.resourceOffers(batch);
  }

  private rescindOffersOf(agentId: string): void {
    const entry = this.agentsById.get(agentId);
    if (entry?.offerId) this.offers.delete(entry.offerId);
    if (entry) entry.offerId = undefined;
  }
}
