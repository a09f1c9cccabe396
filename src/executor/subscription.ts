import { request, Agent as HttpAgent, type IncomingMessage, type ClientRequest } from 'node:http';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AgentStore } from '../store/agent-store.js';
import { FrameDecoder } from '../proto/recordio.js';
import { openEvent } from '../proto/sealed-event.js';
import { AGENT_PATH } from '../proto/routes.js';
import { pb, toResourceList, type Resources } from '../proto/messages.js';
import type { redfleet } from '../proto/redfleet.js';
import type { Logger } from '../logger.js';
import { fetchChallenge, openSession, readSmall, signSubscribe, type SignedSubscribe } from './session.js';

export interface SubscriptionOptions {
  id: string;
  /** The scheduler API given with --scheduler: used while etcd names no leader. */
  schedulerUrl: string;
  /** The address this node's redis-servers listen on. */
  ip: string;
  resources: Resources;
  /** The redis-server binaries offered, with their versions (the first the default). */
  redisServers: { path: string; version: string }[];
  fleetKey: string;
  /** During a fleet key rotation, the old key (see docs/hardening/session.md). */
  previousFleetKey?: string;
  /**
   * The local address to connect to the scheduler from (default: the system's choice). The agent
   * simulator gives each simulated agent its own loopback address, so the scheduler sees each one
   * connect from the address it announces.
   */
  localAddress?: string;
}

/** What the subscription needs from the rest of the agent. */
export interface SubscriptionHooks {
  /** True once the agent is stopping: a broken stream is then not subscribed again. */
  stopped(): boolean;
  /** What a SUBSCRIBE carries besides the agent: the tasks it runs, the updates not yet acknowledged. */
  subscribeState(): { tasks: redfleet.v1.ITaskInfo[]; updates: redfleet.v1.ITaskStatus[] };
  /** Every event of the stream but HEARTBEAT, which the subscription answers itself. */
  onEvent(event: redfleet.v1.Event): void;
  /** The procs' latest figures, for the next heartbeat answer (see ProcReporter.take). */
  heartbeatReport?(): redfleet.v1.IReport | undefined;
}

/**
 * A scheduler stream silent for this many heartbeat intervals is dropped and the agent subscribes
 * again. Five, not three: a scheduler whose loop stalls for 2-4 s (issue 11) sends no heartbeat
 * meanwhile, and an agent that dropped its stream for that had to win its way back in against the
 * same busy scheduler. This only decides how soon an agent gives up on a scheduler that is cut
 * off (one that died or stood down closes the stream), and a cut-off leader is not replaced
 * before its 5 s lease runs out; the scheduler drops a silent agent after 3 intervals on its side.
 */
const SILENT_HEARTBEATS = 5;
/** Until SUBSCRIBED: room for the scheduler's check of an older stream (2 s) and a slow start. */
const SUBSCRIBED_WITHIN_MS = 10_000;
/** Connecting for a challenge is quick: a scheduler that does not accept within this is not there. */
const CONNECT_TIMEOUT_MS = 2000;
/**
 * A call within a live session (UPDATE, HEARTBEAT, REPORT) waits this long for its answer. A
 * timed-out call costs its connection (HTTP/1.1 cannot abandon one request and keep the socket),
 * so a scheduler that answers late got a new connection per call from every agent, on top of its
 * work: at 1,000 agents its accept queue filled, and dropped agents could not reconnect (issue 11).
 * A scheduler that is really gone is found by the stream's watchdog (SILENT_HEARTBEATS), not here.
 */
const CALL_TIMEOUT_MS = 10_000;
/**
 * A challenge whose connection the scheduler accepted waits this long for its answer: that
 * scheduler is there, perhaps stalled (issue 11), and a challenge given up on costs the agent a
 * round of backoff and the busy scheduler another request.
 */
const CHALLENGE_ANSWER_MS = 5000;

/**
 * The agent's connection to the scheduler: finds the elected scheduler, subscribes with a signed
 * SUBSCRIBE, follows the sealed RecordIO event stream under a watchdog, and resubscribes with
 * backoff when the stream breaks. Calls (UPDATE, HEARTBEAT) travel within the stream's session.
 */
export class Subscription {
  private readonly httpAgent: HttpAgent;
  private stream?: ClientRequest;
  private isSubscribed = false;
  /** The session the current stream opened: its token authorizes every call, at that scheduler. */
  private session?: { token: string; scheduler: string };
  /** Which fleet key signs the next SUBSCRIBE (see fleetKeys); moves on after a 401 during a rotation. */
  private keyIndex = 0;
  /** The scheduler API currently in use (see findScheduler). */
  private schedulerUrl: string;
  private loop?: Promise<void>;

  constructor(
    private readonly opts: SubscriptionOptions,
    private readonly log: Logger,
    private readonly store: AgentStore,
    private readonly hooks: SubscriptionHooks,
  ) {
    this.schedulerUrl = opts.schedulerUrl;
    this.httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 8, localAddress: opts.localAddress });
  }

  /** Whether the current stream has been SUBSCRIBED (updates may be sent). */
  get subscribed(): boolean {
    return this.isSubscribed;
  }

  start(): void {
    this.loop = this.subscribeLoop();
  }

  /** Ends the stream; call once hooks.stopped() is true, so that it is not opened again. */
  async stop(): Promise<void> {
    this.stream?.destroy();
    await this.loop;
    this.httpAgent.destroy();
  }

  private async subscribeLoop(): Promise<void> {
    let backoff = 100;
    while (!this.hooks.stopped()) {
      const started = Date.now();
      try {
        await this.streamOnce();
      } catch (err) {
        if (!this.hooks.stopped()) this.log.warn('scheduler stream failed', { error: (err as Error).message, scheduler: this.schedulerUrl });
      }
      this.isSubscribed = false;
      this.session = undefined;
      if (this.hooks.stopped()) return;
      if (Date.now() - started > 10_000) backoff = 100;
      await sleep(backoff);
      backoff = Math.min(backoff * 2, 3000);
    }
  }

  /**
   * The elected scheduler's API, as announced in etcd, else the one given with --scheduler.
   * Asked afresh before every subscription, so agents follow a scheduler failover.
   */
  private async findScheduler(): Promise<string> {
    const leader = await this.store.leader();
    const url = leader?.api ?? this.opts.schedulerUrl;
    if (url !== this.schedulerUrl) this.log.info('scheduler address', { scheduler: url, leader: leader?.id ?? '' });
    this.schedulerUrl = url;
    return url;
  }

  /** The fleet keys this agent may sign with: the current one, then the previous one during a rotation. */
  private get fleetKeys(): string[] {
    return this.opts.previousFleetKey ? [this.opts.fleetKey, this.opts.previousFleetKey] : [this.opts.fleetKey];
  }

  /**
   * One session: fetch a nonce, SUBSCRIBE signed with the fleet key, check that SUBSCRIBED proves
   * the scheduler holds that key too, then follow the sealed event stream until it ends. A stream
   * that cannot prove itself, or goes silent for three heartbeat intervals, is dropped.
   */
  private async streamOnce(): Promise<void> {
    const scheduler = await this.findScheduler();
    const fleetKey = this.fleetKeys[this.keyIndex % this.fleetKeys.length];
    const serverNonce = await fetchChallenge(scheduler, { connectMs: CONNECT_TIMEOUT_MS, answerMs: CHALLENGE_ANSWER_MS }, this.opts.localAddress);
    return this.follow(signSubscribe(this.subscribeCall(), this.opts.id, fleetKey, scheduler, serverNonce));
  }

  /** SUBSCRIBE: this agent, its resources, the tasks it runs and the updates not yet acknowledged. */
  private subscribeCall(): redfleet.v1.ICall {
    const state = this.hooks.subscribeState();
    return {
      type: pb.Call.Type.SUBSCRIBE,
      agent_id: { value: this.opts.id },
      subscribe: {
        agent_info: { hostname: hostname(), ip: this.opts.ip, id: { value: this.opts.id }, resources: toResourceList(this.opts.resources), redis_servers: this.opts.redisServers },
        tasks: state.tasks,
        unacknowledged_updates: state.updates.map((status) => ({ status })),
      },
    };
  }

  /** Sends the SUBSCRIBE and follows its stream: resolves when the stream closes, rejects when it fails. */
  private follow(attempt: SignedSubscribe): Promise<void> {
    return new Promise((resolve, reject) => {
      const req = request(`${attempt.scheduler}${AGENT_PATH}`, { method: 'POST', agent: false, localAddress: this.opts.localAddress, headers: attempt.headers });
      this.stream = req;
      const watchdog = new StreamWatchdog(req, SUBSCRIBED_WITHIN_MS);
      const fail = (err: Error) => {
        watchdog.clear();
        reject(err);
      };
      req.on('response', (res: IncomingMessage) => {
        if (res.statusCode !== 200) {
          watchdog.clear();
          if (res.statusCode === 401 && this.fleetKeys.length > 1) this.keyIndex += 1;
          void readSmall(res).then((text) => reject(new Error(`SUBSCRIBE answered ${res.statusCode}: ${text}`)));
          return;
        }
        this.readEvents(attempt, req, res, watchdog);
        res.on('close', () => {
          watchdog.clear();
          resolve();
        });
        res.on('error', fail);
      });
      req.on('error', fail);
      req.end(attempt.body);
    });
  }

  /** Opens each frame of the stream (the first one opens the session) and hands its event on. */
  private readEvents(attempt: SignedSubscribe, req: ClientRequest, res: IncomingMessage, watchdog: StreamWatchdog): void {
    const decoder = new FrameDecoder();
    let verified: { key: Buffer; seq: number } | undefined;
    res.on('data', (chunk: Buffer) => {
      watchdog.arm();
      try {
        for (const frame of decoder.push(chunk)) {
          let event: redfleet.v1.Event;
          if (!verified) {
            const opened = openSession(frame, attempt, this.opts.id);
            this.session = { token: opened.token, scheduler: attempt.scheduler };
            verified = { key: opened.key, seq: 1 };
            event = opened.event;
            watchdog.rearm(SILENT_HEARTBEATS * (event.subscribed?.heartbeat_interval_seconds || 1) * 1000);
          } else {
            verified.seq += 1;
            event = openEvent(verified.key, verified.seq, frame);
          }
          this.onEvent(event);
        }
      } catch (err) {
        this.log.warn('dropping the scheduler stream', { scheduler: attempt.scheduler, error: (err as Error).message });
        req.destroy(err as Error);
      }
    });
  }

  private onEvent(event: redfleet.v1.Event): void {
    if (event.type === pb.Event.Type.SUBSCRIBED) {
      this.isSubscribed = true;
      this.log.info('subscribed', { frameworkId: event.subscribed?.framework_id?.value, scheduler: this.session?.scheduler });
    } else if (event.type === pb.Event.Type.HEARTBEAT) {
      // Unanswered, the agent counts as gone; the answer carries the procs' latest figures.
      const report = this.hooks.heartbeatReport?.();
      void this.send(report ? { type: pb.Call.Type.HEARTBEAT, report } : { type: pb.Call.Type.HEARTBEAT });
      return;
    }
    this.hooks.onEvent(event);
  }

  /** The current session (for the agent's GETs, such as a backup fetch), if a stream is open. */
  currentSession(): { token: string; scheduler: string } | undefined {
    return this.session ? { ...this.session } : undefined;
  }

  /**
   * A call within the current session; none between streams (unacked updates travel in the next
   * SUBSCRIBE, and a heartbeat is owed on a live stream only). */
  send(call: redfleet.v1.ICall): Promise<void> {
    const session = this.session;
    if (!session) return Promise.resolve();
    const body = pb.Call.encode(call).finish();
    return new Promise((resolve) => {
      const req = request(`${session.scheduler}${AGENT_PATH}`, {
        method: 'POST',
        agent: this.httpAgent,
        timeout: CALL_TIMEOUT_MS,
        headers: { 'Content-Type': 'application/x-protobuf', 'Content-Length': body.length, Authorization: `RedFleet-Session ${session.token}` },
      });
      req.on('response', (res) => {
        if (res.statusCode === 403) void readSmall(res).then((text) => this.log.warn('scheduler refused a call', { call: pb.Call.Type[call.type], detail: text.slice(0, 300) }));
        else res.resume();
        resolve();
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve());
      req.end(body);
    });
  }
}

/** Destroys a stream's request when nothing has arrived on it for a while; every chunk re-arms it. */
class StreamWatchdog {
  private timer?: NodeJS.Timeout;

  constructor(private readonly req: ClientRequest, private silenceMs: number) {
    this.arm();
  }

  arm(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.req.destroy(new Error(`the scheduler stream was silent for ${this.silenceMs} ms`)), this.silenceMs);
  }

  /** Arms it again with a new allowance of silence. */
  rearm(silenceMs: number): void {
    this.silenceMs = silenceMs;
    this.arm();
  }

  clear(): void {
    clearTimeout(this.timer);
  }
}
