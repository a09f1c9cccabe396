import type { AgentStore, MsgWatch, ProcChange } from '../store/agent-store.js';
import { ProcType } from '../domain/model.js';
import { parseMessage, type ProcMessage } from '../domain/message.js';
import { pingPeriodCommand, REPLICA_PING_PERIOD_S } from '../domain/redis-info.js';
import type { Logger } from '../logger.js';
import { fromResourceList, pb, toResourceList } from '../proto/messages.js';
import { AWAIT_MASTER_MS, awaitMasterRole } from './replica-link.js';
import type { RedisProcess } from './redis-process.js';
import type { RunningProc } from './running-proc.js';

/**
 * A SHUTDOWN is for a master that was failed over: SIGKILL follows SIGTERM this soon. A healthy
 * redis-server without persistence exits on SIGTERM within a few ms; a frozen (SIGSTOPped) one
 * ignores it, and its tenants' clients stay stuck on its socket until the process is gone.
 */
const SHUTDOWN_GRACE_MS = 50;
/** Attempts at creating a proc's Msg watch before its launch fails. */
const WATCH_ATTEMPTS = 5;

/**
 * The scheduler's orders to each proc: watches the proc's Msg key in etcd, carries out SHUTDOWN,
 * MASTER, SLAVEOF <ip> <port> and CAPACITY <mb> (see domain/message.ts), and resets the key to ""
 * with what the message changed (its role, its capacity).
 */
export class MessageWatch {
  /**
   * @param frameworkSecretOf the framework user's secret on an instance's redis-servers (a new
   *   master is asked for its role with it)
   * @param changed called after a MASTER, SLAVEOF or CAPACITY was carried out (the agent checkpoints the proc again)
   */
  constructor(
    private readonly store: AgentStore,
    private readonly log: Logger,
    private readonly frameworkSecretOf: (instance: string) => string,
    private readonly changed: (proc: RunningProc) => void = () => undefined,
  ) {}

  /**
   * Watches the proc's Msg key (after acting on any message already there). A watch creation that
   * takes too long is abandoned and tried again.
   */
  async watch(proc: RunningProc): Promise<MsgWatch> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.store.watchMsg(proc.launch.instance, proc.task.task_id.value, (msg) => void this.onMsg(proc, msg));
      } catch (err) {
        if (attempt >= WATCH_ATTEMPTS || proc.redis.exited) throw err;
        this.log.warn('Msg watch not ready; trying again', { proc: proc.task.task_id.value, attempt, error: (err as Error).message });
      }
    }
  }

  cancel(watcher: MsgWatch | undefined): Promise<void> {
    return watcher ? watcher.cancel() : Promise.resolve();
  }

  private async onMsg(proc: RunningProc, msg: string): Promise<void> {
    if (!msg) return;
    const procId = proc.task.task_id.value;
    const instance = proc.launch.instance;
    const log = this.log.child({ instance, proc: procId });
    log.info('message received', { msg });
    let message: ProcMessage | undefined;
    let change: ProcChange | undefined;
    try {
      message = parseMessage(msg);
      if (message?.verb === 'SHUTDOWN') {
        // A fenced master must go at once: the stop does not wait for the Msg reset's round trip.
        await Promise.all([proc.redis.stop(SHUTDOWN_GRACE_MS), this.store.resetMsg(instance, procId, msg)]);
      } else if (message?.verb === 'MASTER') {
        proc.target = null;
        await promote(proc.redis.client);
        change = { type: ProcType.Master, slaveOf: '' };
      } else if (message?.verb === 'SLAVEOF') {
        const following = await this.follow(proc, { ip: message.ip, port: message.port }, log);
        if (!following) return;
        change = { type: ProcType.Replica, slaveOf: `${message.ip}:${message.port}` };
      } else if (message?.verb === 'CAPACITY') {
        await this.resize(proc, message.capacityMb);
        change = { capacityMb: message.capacityMb };
      }
      log.info('message carried out', { msg });
    } catch (err) {
      log.warn('message failed', { msg, error: (err as Error).message });
    }
    if (message?.verb !== 'SHUTDOWN') await this.store.resetMsg(instance, procId, msg, change);
    if (change) this.changed(proc);
  }

  /**
   * CAPACITY: the proc takes its new size in place (see RedisProcess.resize); its task and LAUNCH
   * say the new size too, so the memory a SUBSCRIBE reports and what a restarted agent adopts
   * (from its checkpoint) follow.
   */
  private async resize(proc: RunningProc, capacityMb: number): Promise<void> {
    await proc.redis.resize(capacityMb);
    proc.launch.capacity_mb = capacityMb;
    proc.task.data = pb.RedisLaunch.encode(proc.launch).finish();
    proc.task.resources = toResourceList({ ...fromResourceList(proc.task.resources), mem: capacityMb });
  }

  /**
   * SLAVEOF: points the proc at `target` once the target has taken the master role (or that wait
   * ran out). False when another message changed the proc's target meanwhile: that one wins, and
   * this one is left as it is.
   */
  private async follow(proc: RunningProc, target: { ip: string; port: number }, log: Logger): Promise<boolean> {
    proc.target = target;
    const secret = this.frameworkSecretOf(proc.launch.instance);
    if (!await awaitMasterRole(target, secret, AWAIT_MASTER_MS, () => proc.target === target && !proc.redis.exited)) {
      if (proc.target !== target) return false;
      log.warn('the new master did not take the role in time; following it anyway', { master: `${target.ip}:${target.port}`, waitedMs: AWAIT_MASTER_MS });
    }
    await proc.redis.client.call('REPLICAOF', target.ip, String(target.port));
    return true;
  }
}

/**
 * Makes the proc a master and drops the tenant's clients in one MULTI/EXEC, as Sentinel does:
 * the clients connected while it was a replica reconnect and ask the endpoint again, while a
 * client that finds the new master after the switch can never be caught by the kill (with two
 * separate commands, one that connected in between was dropped and could give up for good).
 * Only the tenant's clients go: the scheduler's own link (framework user) stays up to see the
 * new role.
 */
async function promote(client: RedisProcess['client']): Promise<void> {
  const results = await client.multi()
    .call('REPLICAOF', 'NO', 'ONE')
    // A switchover this proc was the old master of may have left its PINGs held (its scheduler died).
    .call(...pingPeriodCommand(REPLICA_PING_PERIOD_S))
    .call('CLIENT', 'KILL', 'TYPE', 'normal', 'USER', 'default', 'SKIPME', 'yes')
    .call('CLIENT', 'KILL', 'TYPE', 'pubsub', 'USER', 'default', 'SKIPME', 'yes')
    .exec();
  if (!results) throw new Error('MULTI/EXEC for the promotion was aborted');
  const failed = results.find(([err]) => err);
  if (failed) throw failed[0] as Error;
}
