import { InvalidInputError } from '../errors.js';
import { AGENT_ID_PATTERN, NAME_PATTERN } from '../domain/names.js';
import type { BackupSchedule, Persistence } from '../domain/backup.js';
import { validateBackupSchedule, validatePersistence, validateRestoreFrom } from './backup-input.js';

export { NAME_PATTERN };
export const MAX_REPLICAS = 16;
/**
 * The schema's bound on capacity. Whether the connected agents can hold it is admit()'s
 * question, answered with 409 and the numbers rather than a 400 range error.
 */
export const MAX_CAPACITY_MB = 1024 * 1024;
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
  persistence?: Persistence;
  backupSchedule?: BackupSchedule;
  restoreFrom?: string;
  /** Set by the route once checkBackup found the backup sound. */
  restoreSha256?: string;
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

/** An agent id from a path segment, as `redfleet agent --id` takes it. */
export function validateAgentId(id: unknown): string {
  if (typeof id !== 'string' || !AGENT_ID_PATTERN.test(id)) {
    throw new InvalidInputError('INVALID_AGENT_ID', 'id', 'an agent id is 1-63 letters, digits, "_", "." or "-", starting with a letter or digit');
  }
  return id;
}

/** A decimal integer within bounds, from a path segment (or an already checked JSON number). */
export function validateInt(value: unknown, field: string, min: number, max: number): number {
  const text = typeof value === 'number' && Number.isSafeInteger(value) ? String(value) : value;
  if (typeof text !== 'string' || !/^-?[0-9]{1,15}$/.test(text)) {
    throw new InvalidInputError('INVALID_NUMBER', field, `${field} must be a whole number from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return inRange(Number(text), field, min, max);
}

/**
 * A JSON body's integer field. A string such as "64" is refused: a client that quotes its
 * numbers has a bug we would rather show than guess around. The raw-text check that refuses
 * `64.0`, `1e1` and `16.0000000000000001` is in parseStrictJson, because JSON.parse has already
 * turned those into integers by the time a value reaches here.
 */
export function jsonInt(value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
    throw new InvalidInputError('INVALID_NUMBER', field, `${field} must be a JSON integer from ${min} to ${max} (no quotes, no fraction, no exponent), got ${JSON.stringify(value)}`);
  }
  return inRange(value, field, min, max);
}

function inRange(n: number, field: string, min: number, max: number): number {
  if (n < min || n > max) {
    throw new InvalidInputError('OUT_OF_RANGE', field, `${field} must be from ${min} to ${max}, got ${n}`);
  }
  return n;
}

/**
 * JSON.parse, then a pass over the raw text that refuses every number token that is not a plain
 * integer (`-?(0|[1-9][0-9]*)`). JSON.parse keeps no source text, and `64.0`, `1e1` and
 * `16.0000000000000001` all parse to integers, so only the text can tell them apart. The error
 * names the object key the number belongs to (or `body` for a bare number).
 */
export function parseStrictJson(text: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new InvalidInputError('INVALID_JSON', 'body', 'body is not valid JSON');
  }
  const bad = firstNonIntegerNumber(text);
  if (bad) {
    throw new InvalidInputError('INVALID_NUMBER', bad.field, `${bad.field} must be a JSON integer (no fraction, no exponent), got ${bad.token}`);
  }
  return value;
}

const NUMBER_TOKEN = /-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;
const INTEGER_TOKEN = /^-?(0|[1-9][0-9]*)$/;

/**
 * Walks already-valid JSON text. Strings are skipped whole (so digits inside them are never seen);
 * a string followed by ':' is an object key and becomes the field of the numbers after it.
 */
export function firstNonIntegerNumber(text: string): { field: string; token: string } | undefined {
  let field = 'body';
  for (let i = 0; i < text.length; ) {
    const c = text[i];
    if (c === '"') {
      const end = endOfString(text, i);
      const after = skipSpace(text, end);
      if (text[after] === ':') field = JSON.parse(text.slice(i, end)) as string;
      i = end;
      continue;
    }
    if (c === '-' || (c >= '0' && c <= '9')) {
      NUMBER_TOKEN.lastIndex = i;
      const token = NUMBER_TOKEN.exec(text)?.[0] ?? c;
      if (!INTEGER_TOKEN.test(token)) return { field, token };
      i += token.length;
      continue;
    }
    i++;
  }
  return undefined;
}

/** Index just past the closing quote of the string that opens at `start`. */
function endOfString(text: string, start: number): number {
  for (let i = start + 1; i < text.length; i++) {
    if (text[i] === '\\') i++;
    else if (text[i] === '"') return i + 1;
  }
  return text.length;
}

function skipSpace(text: string, i: number): number {
  while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i++;
  return i;
}

const CREATE_FIELDS = new Set(['name', 'capacityMb', 'replicas', 'distribution', 'ttlSeconds', 'placement', 'downAfterMs', 'minReplicasMaxLag', 'persistence', 'backup', 'restoreFrom']);

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
    capacityMb: jsonInt(record.capacityMb, 'capacityMb', 1, maxCapacityMb),
    replicas: record.replicas === undefined ? 0 : jsonInt(record.replicas, 'replicas', 0, MAX_REPLICAS),
    distribution: record.distribution === undefined ? 1 : jsonInt(record.distribution, 'distribution', 1, MAX_REPLICAS + 1),
    ttlSeconds: record.ttlSeconds === undefined ? undefined : jsonInt(record.ttlSeconds, 'ttlSeconds', 1, MAX_TTL_SECONDS),
    placement,
    downAfterMs: record.downAfterMs === undefined ? undefined : jsonInt(record.downAfterMs, 'downAfterMs', 200, 60_000),
    minReplicasMaxLag: record.minReplicasMaxLag === undefined ? undefined : jsonInt(record.minReplicasMaxLag, 'minReplicasMaxLag', 1, 3600),
    persistence: validatePersistence(record.persistence),
    backupSchedule: record.backup === undefined ? undefined : validateBackupSchedule(record.backup),
    restoreFrom: record.restoreFrom === undefined ? undefined : validateRestoreFrom(record.restoreFrom),
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
    distribution: record.Distribution === undefined ? 1 : jsonInt(record.Distribution, 'Distribution', 1, MAX_REPLICAS + 1),
    ttlSeconds: record.TTL === undefined ? undefined : jsonInt(record.TTL, 'TTL', 1, MAX_TTL_SECONDS),
  };
}

/** What a PATCH of an instance asks for: a time-to-live, and at most one of a resize or a scale. */
export interface InstancePatch {
  ttlSeconds?: number;
  capacityMb?: number;
  replicas?: number;
}

const PATCH_FIELDS = ['ttlSeconds', 'capacityMb', 'replicas'];

/**
 * PATCH /api/instances/:name: {"ttlSeconds": n}, {"capacityMb": n} (resize), {"replicas": n}
 * (scale), with the create's bounds. A resize and a scale are separate operations, one at a time:
 * asking for both in one PATCH is refused; a ttlSeconds may come with either.
 */
export function validatePatchBody(body: unknown, maxTtl = MAX_TTL_SECONDS, maxCapacityMb = MAX_CAPACITY_MB): InstancePatch {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new InvalidInputError('INVALID_BODY', 'body', 'body must be a JSON object like {"ttlSeconds":3600}, {"capacityMb":128} or {"replicas":2}');
  }
  const record = body as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!PATCH_FIELDS.includes(key)) throw new InvalidInputError('UNKNOWN_FIELD', key, `unknown field '${key}'; allowed: ${PATCH_FIELDS.join(', ')}`);
  }
  if (Object.keys(record).length === 0) {
    throw new InvalidInputError('MISSING_FIELD', 'body', `body must name at least one of ${PATCH_FIELDS.join(', ')}`);
  }
  if (record.capacityMb !== undefined && record.replicas !== undefined) {
    throw new InvalidInputError('ONE_CHANGE_AT_A_TIME', 'replicas', 'capacityMb and replicas cannot change in one PATCH: each is an operation of its own; send the resize, wait for it, then the scale');
  }
  return {
    ttlSeconds: record.ttlSeconds === undefined ? undefined : jsonInt(record.ttlSeconds, 'ttlSeconds', 1, maxTtl),
    capacityMb: record.capacityMb === undefined ? undefined : jsonInt(record.capacityMb, 'capacityMb', 1, maxCapacityMb),
    replicas: record.replicas === undefined ? undefined : jsonInt(record.replicas, 'replicas', 0, MAX_REPLICAS),
  };
}
