import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { FRAMEWORK_USER } from '../store/secrets.js';
import { parseInfo } from '../domain/redis-info.js';
import type { Logger } from '../logger.js';
import { portOpen } from './redis-process.js';
import type { RunningProc } from './running-proc.js';

/** How long a SLAVEOF waits for its new master to take the role before it follows anyway. */
export const AWAIT_MASTER_MS = 2000;
/** How long a new replica may take to link to its master before its launch fails. */
const LINK_WITHIN_MS = 30_000;

/**
 * Points a new replica at its master as soon as the master listens, then waits for the link.
 * A SLAVEOF or MASTER message that arrives meanwhile (a failover during the start) changes the
 * target, and the wait follows it instead of waiting for a master that is gone.
 */
export async function followMaster(proc: RunningProc, log: Logger): Promise<void> {
  const deadline = Date.now() + LINK_WITHIN_MS;
  let sentTo = '';
  for (let i = 0; ; i++) {
    const target = proc.target;
    if (proc.redis.exited || !target) return;
    if (Date.now() > deadline) throw new Error(`no link to master ${target.ip}:${target.port} within 30 s`);
    const address = `${target.ip}:${target.port}`;
    if (sentTo !== address) {
      if (await portOpen(target.ip, target.port)) {
        await proc.redis.client.call('REPLICAOF', target.ip, String(target.port));
        log.debug('REPLICAOF sent', { proc: proc.task.task_id.value, master: address });
        sentTo = address;
      }
    } else if (parseInfo(await proc.redis.client.info('replication')).get('master_link_status') === 'up') {
      return;
    }
    await sleep(i < 3000 ? 3 : 250);
  }
}

/**
 * Resolves true once the redis-server at `target` says ROLE master, false when it has not within
 * `timeoutMs` (or `stillWanted` turned false). A replica told to follow a just-promoted master
 * waits for this first: a replica asked for a sync while its own master link is down refuses it
 * (-NOMASTERLINK), and the follower's Redis then tries again only at its next once-a-second
 * replication cron, so the new master stayed without a replica, and refused writes under
 * min-replicas-to-write, for up to a second after the failover.
 */
export async function awaitMasterRole(target: { ip: string; port: number }, frameworkSecret: string, timeoutMs: number, stillWanted: () => boolean): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  const link = new Redis({
    host: target.ip,
    port: target.port,
    username: FRAMEWORK_USER,
    password: frameworkSecret,
    lazyConnect: true,
    connectTimeout: 500,
    commandTimeout: 500,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
  });
  link.on('error', () => undefined);
  try {
    while (Date.now() < deadline && stillWanted()) {
      try {
        if (link.status !== 'ready') await link.connect();
        const role = (await link.call('ROLE')) as unknown[];
        if (role[0] === 'master') return true;
      } catch {
        // Not listening, not ready, or busy: ask again until the deadline.
      }
      await sleep(5);
    }
    return false;
  } finally {
    link.disconnect();
  }
}
