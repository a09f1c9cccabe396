import type { RedisServerBinary } from '../domain/services.js';

/**
 * Which redis-server binary an agent offers for a request: `wanted` is a path ("/opt/redis/7.2/
 * redis-server") or a version ("7.2.4", or a prefix of one such as "7.2"); undefined asks for the
 * agent's default (its first). Pure; the offer filter for placements that need a given binary.
 */
export function offeredBinary(offered: readonly RedisServerBinary[], wanted?: string): RedisServerBinary | undefined {
  if (wanted === undefined || wanted === '') return offered[0];
  if (wanted.startsWith('/')) return offered.find((b) => b.path === wanted);
  return offered.find((b) => b.version === wanted || b.version.startsWith(`${wanted}.`));
}

/** Whether the proc runs the binary `wanted` names (by its path, or its version). */
export function runsBinary(proc: { redisServer: string; redisVersion: string }, wanted: string): boolean {
  if (wanted.startsWith('/')) return proc.redisServer === wanted;
  return proc.redisVersion === wanted || proc.redisVersion.startsWith(`${wanted}.`);
}
