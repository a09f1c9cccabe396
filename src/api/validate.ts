import { InvalidInputError } from '../errors.js';
import { NAME_PATTERN } from '../store/names.js';

export { NAME_PATTERN };
export const MAX_REPLICAS = 16;
export const MAX_TTL_SECONDS = 365 * 24 * 3600;

export interface CreateRequest {
  name: string;
  capacityMb: number;
  replicas: number;
  distribution: number;
  ttlSeconds?: number;
  placement: 'spread' | 'binpack';
  downAfterMs?: number;
  minReplicasMaxLag?: number;
}

export function validateName(name: unknown): string {
  if (typeof name !== 'string' || !NAME_PATTERN.test(name)) {
    throw new InvalidInputError(
      'INVALID_NAME',
      'name',
      'name must be 1-63 lowercase letters, digits or "-", starting and ending with a letter or digit',
    );
  }
  return name;
}

/** A decimal integer within bounds, from a JSON number or a path segment. */
export function validateInt(value: unknown, field: string, min: number, max: number): number {
  const text = typeof value === 'number' ? String(value) : value;
  if (typeof text !== 'string' || !/^-?[0-9]{1,15}$/.test(text)) {
    throw new InvalidInputError('INVALID_NUMBER', field, `${field} must be a whole number from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  const n = Number(text);
  if (n < min || n > max) {
    throw new InvalidInputError('OUT_OF_RANGE', field, `${field} must be from ${min} to ${max}, got ${n}`);
  }
  return n;
}

const CREATE_FIELDS = new Set(['name', 'capacityMb', 'replicas', 'distribution', 'ttlSeconds', 'placement', 'downAfterMs', 'minReplicasMaxLag']);

/** Checks a JSON create body against the schema; unknown fields are refused by name. */
export function validateCreateBody(body: unknown, maxCapacityMb: number): CreateRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new InvalidInputError('INVALID_BODY', 'body', 'body must be a JSON object like {"name":"cache1","capacityMb":64,"replicas":2}');
  }
  const record = body as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!CREATE_FIELDS.has(key)) throw new InvalidInputError('UNKNOWN_FIELD', key, `unknown field '${key}'; allowed: ${[...CREATE_FIELDS].join(', ')}`);
  }
  const placement = record.placement ?? 'spread';
  if (placement !== 'spread' && placement !== 'binpack') {
    throw new InvalidInputError('INVALID_PLACEMENT', 'placement', 'placement must be "spread" or "binpack"');
  }
  return {
    name: validateName(record.name),
    capacityMb: validateInt(record.capacityMb, 'capacityMb', 1, maxCapacityMb),
    replicas: record.replicas === undefined ? 0 : validateInt(record.replicas, 'replicas', 0, MAX_REPLICAS),
    distribution: record.distribution === undefined ? 1 : validateInt(record.distribution, 'distribution', 1, MAX_REPLICAS + 1),
    ttlSeconds: record.ttlSeconds === undefined ? undefined : validateInt(record.ttlSeconds, 'ttlSeconds', 1, MAX_TTL_SECONDS),
    placement,
    downAfterMs: record.downAfterMs === undefined ? undefined : validateInt(record.downAfterMs, 'downAfterMs', 200, 60_000),
    minReplicasMaxLag: record.minReplicasMaxLag === undefined ? undefined : validateInt(record.minReplicasMaxLag, 'minReplicasMaxLag', 1, 3600),
  };
}

const V1_BODY_FIELDS = new Set(['Distribution', 'TTL']);

/** The optional JSON body of MrRedis's v1 CREATE: {"Distribution": n, "TTL": seconds}. */
export function validateV1Body(body: unknown): { distribution: number; ttlSeconds?: number } {
  if (body === undefined) return { distribution: 1 };
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new InvalidInputError('INVALID_BODY', 'body', 'body must be a JSON object like {"Distribution":1}');
  }
  const record = body as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!V1_BODY_FIELDS.has(key)) throw new InvalidInputError('UNKNOWN_FIELD', key, `unknown field '${key}'; allowed: Distribution, TTL`);
  }
  return {
    distribution: record.Distribution === undefined ? 1 : validateInt(record.Distribution, 'Distribution', 1, MAX_REPLICAS + 1),
    ttlSeconds: record.TTL === undefined ? undefined : validateInt(record.TTL, 'TTL', 1, MAX_TTL_SECONDS),
  };
}

/** PATCH /api/instances/:name: only {"ttlSeconds": n}. */
export function validatePatchBody(body: unknown, maxTtl = MAX_TTL_SECONDS): { ttlSeconds: number } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new InvalidInputError('INVALID_BODY', 'body', 'body must be a JSON object like {"ttlSeconds":3600}');
  }
  const record = body as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (key !== 'ttlSeconds') throw new InvalidInputError('UNKNOWN_FIELD', key, `unknown field '${key}'; allowed: ttlSeconds`);
  }
  return { ttlSeconds: validateInt(record.ttlSeconds, 'ttlSeconds', 1, maxTtl) };
}
