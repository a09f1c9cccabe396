import { Redis } from 'ioredis';
import { FRAMEWORK_USER } from '../store/secrets.js';
import { sleep } from './redis-process.js';

/** How long a SLAVEOF waits for its new master to take the role before it follows anyway. */
export const AWAIT_MASTER_MS = 2000;

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
