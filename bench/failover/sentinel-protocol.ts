/** bench/failover/sentinel-protocol: one-off commands to a Redis or Sentinel port, and their replies. */
import { Redis } from 'ioredis';

/** One command to a Redis or Sentinel port on a short-lived connection. */
export async function command(port: number, args: string[], password?: string): Promise<unknown> {
  const r = new Redis({
    host: '127.0.0.1', port, password, lazyConnect: true, connectTimeout: 1000, commandTimeout: 1000,
    maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false,
  });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return await r.call(args[0], ...args.slice(1));
  } finally {
    r.disconnect();
  }
}

/** A flat [k1, v1, k2, v2, ...] reply (RESP2 map) as an object. */
export function pairs(reply: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!Array.isArray(reply)) return out;
  for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = String(reply[i + 1]);
  return out;
}

/** `ip:port` of the master a Sentinel (or RedFleet's endpoint) names for `name`, or 'none'. */
export async function masterAddr(sentinelPort: number, name: string): Promise<string> {
  const reply = await command(sentinelPort, ['SENTINEL', 'get-master-addr-by-name', name]);
  return Array.isArray(reply) ? `${reply[0]}:${reply[1]}` : 'none';
}
