import type { Redis } from 'ioredis';
import { REPLICATION_HEARTBEAT_CHANNEL, REPLICATION_HEARTBEAT_MS } from '../domain/model.js';

/**
 * Publishes an empty message on REPLICATION_HEARTBEAT_CHANNEL through the agent's own link to
 * its redis-server every REPLICATION_HEARTBEAT_MS. On a master, Redis copies every PUBLISH into
 * its replication stream, so each replica's read offset moves ten times a second while it hears
 * its master; Redis's own pings move it only once a second. The scheduler's failure detector
 * reads that movement as the replica's own timing (see scheduler/replica-silence.ts). On a
 * replica the message goes nowhere. The channel carries no data, and a heartbeat still waiting
 * for its reply (a frozen server) is not followed by another. Returns the function that stops it.
 */
export function startReplicationHeartbeat(client: Redis, everyMs = REPLICATION_HEARTBEAT_MS): () => void {
  let inFlight = false;
  const timer = setInterval(() => {
    if (inFlight || client.status !== 'ready') return;
    inFlight = true;
    client.publish(REPLICATION_HEARTBEAT_CHANNEL, '').catch(() => undefined).finally(() => {
      inFlight = false;
    });
  }, everyMs);
  return () => clearInterval(timer);
}
