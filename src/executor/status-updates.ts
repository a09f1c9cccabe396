import { setTimeout as sleep } from 'node:timers/promises';
import { v4 as uuidv4 } from 'uuid';
import { pb } from '../proto/messages.js';
import type { redfleet } from '../proto/redfleet.js';
import type { Logger } from '../logger.js';

/** How the updates reach the scheduler: a call within the current session, if there is one. */
export interface UpdateChannel {
  send(call: redfleet.v1.ICall): Promise<void>;
  readonly subscribed: boolean;
}

/**
 * At-least-once status updates: every TaskStatus is kept until the scheduler acknowledges its
 * uuid on the stream, sent again every second meanwhile, and carried in the next SUBSCRIBE when
 * the stream breaks.
 */
export class StatusUpdates {
  /** Status updates not yet acknowledged, by uuid (hex). */
  private readonly unacked = new Map<string, redfleet.v1.ITaskStatus>();
  /** Updates whose last send is still unanswered: not sent again beside it. */
  private readonly inFlight = new Set<string>();

  constructor(private readonly agentId: string, private readonly log: Logger, private readonly channel: UpdateChannel) {}

  /** The updates a SUBSCRIBE carries. */
  get pending(): redfleet.v1.ITaskStatus[] {
    return [...this.unacked.values()];
  }

  report(procId: string, state: redfleet.v1.TaskState, message = '', data?: redfleet.v1.IRedisState): void {
    const uuid = Buffer.from(uuidv4().replace(/-/g, ''), 'hex');
    const status: redfleet.v1.ITaskStatus = {
      task_id: { value: procId },
      state,
      message,
      agent_id: { value: this.agentId },
      timestamp: Date.now() / 1000,
      uuid,
      data: data ? pb.RedisState.encode(data).finish() : undefined,
    };
    this.unacked.set(uuid.toString('hex'), status);
    this.log.info('task status', { proc: procId, state: pb.TaskState[state], detail: message });
    void this.sendUpdate(status);
  }

  acknowledged(uuid: Uint8Array): void {
    this.unacked.delete(Buffer.from(uuid).toString('hex'));
  }

  /**
   * One UPDATE call. A resend waits for the previous send's answer: against a scheduler that
   * answers late, resends every second only stacked up calls (and connections) on it.
   */
  private sendUpdate(status: redfleet.v1.ITaskStatus): Promise<void> {
    const key = Buffer.from(status.uuid ?? new Uint8Array()).toString('hex');
    if (this.inFlight.has(key)) return Promise.resolve();
    this.inFlight.add(key);
    return this.channel.send({ type: pb.Call.Type.UPDATE, agent_id: { value: this.agentId }, update: { status } }).finally(() => this.inFlight.delete(key));
  }

  /** Updates are retried until the scheduler acknowledges them on the stream. */
  resendUnacked(): void {
    if (!this.channel.subscribed) return;
    for (const status of this.unacked.values()) {
      if (Date.now() / 1000 - (status.timestamp ?? 0) < 1) continue;
      void this.sendUpdate(status);
    }
  }

  /** Keeps sending until every update is acknowledged or `ms` have passed (the agent is stopping). */
  async flush(ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (this.unacked.size > 0 && Date.now() < deadline) {
      this.resendUnacked();
      await sleep(100);
    }
  }
}
