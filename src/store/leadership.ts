import type { Campaign, Etcd3 } from 'etcd3';
import { Keys } from './keys.js';

/** What the elected scheduler announces: who it is and where agents reach its API. */
export interface LeaderInfo {
  id: string;
  api: string;
}

const ELECTION = 'scheduler';

/**
 * One leader among the fleet's schedulers, by etcd election under `<prefix>/Config/`. The leader's
 * campaign key lives on a lease; if the leader dies, the lease lapses (after `ttlSeconds`) and the
 * next candidate is elected. Agents find the leader's API through `currentLeader`.
 */
export async function campaignForLeadership(etcd: Etcd3, prefix: string, me: LeaderInfo, ttlSeconds: number): Promise<Campaign> {
  const config = etcd.namespace(new Keys(prefix).configDir);
  // A scheduler restarted after a crash finds its earlier self's campaign still holding the lease
  // for up to ttlSeconds. That is this same scheduler (ids are unique per scheduler), so it takes
  // its place at once rather than waiting out its own ghost.
  const earlier = await config.getAll().prefix(`election/${ELECTION}/`).exec();
  for (const kv of earlier.kvs) {
    // Keys come back relative to the namespace.
    if (parseLeader(kv.value.toString())?.id === me.id) await config.delete().key(kv.key.toString());
  }
  const election = config.election(ELECTION, ttlSeconds);
  const campaign = election.campaign(JSON.stringify(me));
  await campaign.wait();
  return campaign;
}

/** The elected scheduler, or undefined when there is none (or etcd cannot say right now). */
export async function currentLeader(etcd: Etcd3, prefix: string): Promise<LeaderInfo | undefined> {
  const election = etcd.namespace(new Keys(prefix).configDir).election(ELECTION);
  try {
    return parseLeader((await election.leader()) ?? '');
  } catch {
    return undefined;
  }
}

function parseLeader(text: string): LeaderInfo | undefined {
  try {
    const v = JSON.parse(text) as LeaderInfo;
    return typeof v.id === 'string' && typeof v.api === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}
