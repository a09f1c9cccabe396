import { InvalidInputError } from '../errors.js';
import { NAME_PATTERN } from '../domain/names.js';
import type { BackupSchedule, Persistence } from '../domain/backup.js';
import { intError, parseWith } from './schemas/parse.js';
import {
  AgentIdSchema, createBodySchema, MAX_CAPACITY_MB, MAX_TTL_SECONDS, NameSchema, PATCH_FIELDS, PatchBodySchema, patchBodySchema, V1BodySchema,
} from './schemas/requests.js';

export { NAME_PATTERN };
export { MAX_CAPACITY_MB, MAX_REPLICAS, MAX_TTL_SECONDS } from './schemas/requests.js';

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
  return parseWith(NameSchema, name);
}

/** An agent id from a path segment, as `redfleet agent --id` takes it. */
export function validateAgentId(id: unknown): string {
  return parseWith(AgentIdSchema, id);
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
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw intError(field, value, min, max);
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

/** Checks a JSON create body against its schema (schemas/requests.ts); unknown fields are refused by name. */
export function validateCreateBody(body: unknown, maxCapacityMb: number): CreateRequest {
  const r = parseWith(createBodySchema(maxCapacityMb), body);
  return {
    name: r.name,
    capacityMb: r.capacityMb,
    replicas: r.replicas ?? 0,
    distribution: r.distribution ?? 1,
    ttlSeconds: r.ttlSeconds,
    placement: r.placement ?? 'spread',
    downAfterMs: r.downAfterMs,
    minReplicasMaxLag: r.minReplicasMaxLag,
    persistence: r.persistence ?? 'none',
    backupSchedule: r.backup,
    restoreFrom: r.restoreFrom,
  };
}

/** The optional JSON body of MrRedis's v1 CREATE: {"Distribution": n, "TTL": seconds}. */
export function validateV1Body(body: unknown): { distribution: number; ttlSeconds?: number } {
  if (body === undefined) return { distribution: 1 };
  const r = parseWith(V1BodySchema, body);
  return { distribution: r.Distribution ?? 1, ttlSeconds: r.TTL };
}

/** What a PATCH of an instance asks for: a time-to-live, and at most one of a resize or a scale. */
export interface InstancePatch {
  ttlSeconds?: number;
  capacityMb?: number;
  replicas?: number;
}

/**
 * PATCH /api/instances/:name: {"ttlSeconds": n}, {"capacityMb": n} (resize), {"replicas": n}
 * (scale), with the create's bounds. A resize and a scale are separate operations, one at a time:
 * asking for both in one PATCH is refused; a ttlSeconds may come with either.
 */
export function validatePatchBody(body: unknown, maxTtl = MAX_TTL_SECONDS, maxCapacityMb = MAX_CAPACITY_MB): InstancePatch {
  const schema = maxTtl === MAX_TTL_SECONDS && maxCapacityMb === MAX_CAPACITY_MB ? PatchBodySchema : patchBodySchema(maxTtl, maxCapacityMb);
  const r = parseWith(schema, body, { across: patchAcross });
  return { ttlSeconds: r.ttlSeconds, capacityMb: r.capacityMb, replicas: r.replicas };
}

function patchAcross(record: Record<string, unknown>): void {
  if (Object.keys(record).length === 0) {
    throw new InvalidInputError('MISSING_FIELD', 'body', `body must name at least one of ${PATCH_FIELDS.join(', ')}`);
  }
  if (record.capacityMb !== undefined && record.replicas !== undefined) {
    throw new InvalidInputError('ONE_CHANGE_AT_A_TIME', 'replicas', 'capacityMb and replicas cannot change in one PATCH: each is an operation of its own; send the resize, wait for it, then the scale');
  }
}
