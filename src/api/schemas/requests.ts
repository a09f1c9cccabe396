import { InvalidInputError } from '../../errors.js';
import { AGENT_ID_PATTERN, NAME_PATTERN } from '../../domain/names.js';
import { isBackupId, parseBackupRef, PERSISTENCE_MODES } from '../../domain/backup.js';
import { isProcIdOf } from '../../domain/names.js';
import { InstanceStatus } from '../../domain/model.js';
import { jsonIntSchema, refusedAs, z } from './parse.js';

/**
 * The JSON API's requests, written once: the routes validate with these schemas (parseWith) and
 * GET /api/openapi.json is generated from them (openapi.ts). See docs/api.md.
 */
export const MAX_REPLICAS = 16;
/** The schema's bound on capacity; whether the agents can hold it is admit()'s 409. */
export const MAX_CAPACITY_MB = 1024 * 1024;
export const MAX_TTL_SECONDS = 365 * 24 * 3600;
export const MAX_BACKUP_EVERY_MINUTES = 365 * 24 * 60;
export const MAX_BACKUP_KEEP = 1000;

const bodyObject = (example: string) => (_field: string) => new InvalidInputError('INVALID_BODY', 'body', `body must be a JSON object like ${example}`);

export const NameSchema = refusedAs(
  z.string().regex(NAME_PATTERN).openapi('InstanceName', { description: 'a DNS label: 1-63 lowercase letters, digits or "-"', example: 'cache1' }),
  () => new InvalidInputError('INVALID_NAME', 'name', 'name must be 1-63 lowercase letters, digits or "-", starting and ending with a letter or digit'),
);

export const AgentIdSchema = refusedAs(
  z.string().regex(AGENT_ID_PATTERN).openapi('AgentId', { description: 'an agent id, as `redfleet agent --id` takes it', example: 'agent1' }),
  () => new InvalidInputError('INVALID_AGENT_ID', 'id', 'an agent id is 1-63 letters, digits, "_", "." or "-", starting with a letter or digit'),
);

export const BackupIdSchema = refusedAs(
  z.string().refine(isBackupId).openapi('BackupId', { description: 'the time the backup was taken, YYYYMMDDTHHMMSSmmmZ', example: '20261130T001611123Z', pattern: '^[0-9]{8}T[0-9]{9}Z$' }),
  (_f, value) => new InvalidInputError('INVALID_BACKUP_ID', 'id', `a backup id is the time it was taken, like 20261130T001611123Z, got ${JSON.stringify(value)?.slice(0, 100)}`),
);

export const PersistenceSchema = refusedAs(
  z.enum(PERSISTENCE_MODES as ['none', 'rdb', 'aof']).openapi('Persistence', { description: 'how the instance keeps its data; "none" by default' }),
  (_f, value) => new InvalidInputError('INVALID_PERSISTENCE', 'persistence', `persistence must be one of ${PERSISTENCE_MODES.map((m) => `"${m}"`).join(', ')}, got ${JSON.stringify(value)}`),
);

export const BackupScheduleSchema = refusedAs(
  z.object({
    everyMinutes: jsonIntSchema(1, MAX_BACKUP_EVERY_MINUTES, 'minutes between backups'),
    keep: jsonIntSchema(1, MAX_BACKUP_KEEP, 'how many backups are kept'),
  }).strict().openapi('BackupSchedule'),
  () => new InvalidInputError('INVALID_BACKUP_SCHEDULE', 'backup', 'backup must be a JSON object like {"everyMinutes":60,"keep":24}'),
);

export const RestoreFromSchema = refusedAs(
  z.string().refine((v) => parseBackupRef(v) !== undefined).openapi({ description: '"<instance>/<backupId>" as GET /api/instances/{name}/backups lists it', example: 'cache1/20261130T001611123Z' }),
  (_f, value) => new InvalidInputError('INVALID_BACKUP_REF', 'restoreFrom', `restoreFrom must be "<instance>/<backupId>" as GET /api/instances/<instance>/backups lists it (e.g. "cache1/20261130T001611123Z"), got ${JSON.stringify(value)?.slice(0, 100)}`),
);

const PlacementSchema = refusedAs(
  z.enum(['spread', 'binpack']).openapi({ description: 'spread (the default) or binpack' }),
  () => new InvalidInputError('INVALID_PLACEMENT', 'placement', 'placement must be "spread" or "binpack"'),
);

const createShape = (maxCapacityMb: number) => ({
  name: NameSchema,
  capacityMb: jsonIntSchema(1, maxCapacityMb, 'maxmemory of each proc, in MB'),
  replicas: jsonIntSchema(0, MAX_REPLICAS, 'replicas besides the master; 0 by default').optional(),
  distribution: jsonIntSchema(1, MAX_REPLICAS + 1, 'at most this many procs of the instance on one agent; 1 by default').optional(),
  ttlSeconds: jsonIntSchema(1, MAX_TTL_SECONDS, 'the instance is deleted this long after creation').optional(),
  // null is the default, as the hand-written check had it (placement ?? 'spread').
  placement: PlacementSchema.nullish(),
  downAfterMs: jsonIntSchema(200, 60_000, 'how long a silent master is down before failover').optional(),
  minReplicasMaxLag: jsonIntSchema(1, 3600, 'min-replicas-max-lag of the master, in seconds').optional(),
  persistence: PersistenceSchema.optional(),
  backup: BackupScheduleSchema.optional(),
  restoreFrom: RestoreFromSchema.optional(),
});

const createSchemas = new Map<number, ReturnType<typeof buildCreate>>();
function buildCreate(maxCapacityMb: number) {
  const schema = z.object(createShape(maxCapacityMb)).strict();
  return refusedAs(maxCapacityMb === MAX_CAPACITY_MB ? schema.openapi('CreateInstanceRequest') : schema, bodyObject('{"name":"cache1","capacityMb":64,"replicas":2}'));
}
/** POST /api/instances; a smaller bound on capacity makes a schema of its own (tests use one). */
export function createBodySchema(maxCapacityMb = MAX_CAPACITY_MB) {
  let schema = createSchemas.get(maxCapacityMb);
  if (!schema) createSchemas.set(maxCapacityMb, (schema = buildCreate(maxCapacityMb)));
  return schema;
}

export const V1BodySchema = refusedAs(
  z.object({
    Distribution: jsonIntSchema(1, MAX_REPLICAS + 1, 'at most this many procs on one agent').optional(),
    TTL: jsonIntSchema(1, MAX_TTL_SECONDS, 'seconds to live').optional(),
  }).strict().openapi('V1CreateRequest'),
  bodyObject('{"Distribution":1}'),
);

export const PATCH_FIELDS = ['ttlSeconds', 'capacityMb', 'replicas'];
export function patchBodySchema(maxTtl = MAX_TTL_SECONDS, maxCapacityMb = MAX_CAPACITY_MB) {
  const schema = z.object({
    ttlSeconds: jsonIntSchema(1, maxTtl, 'a new time-to-live from now').optional(),
    capacityMb: jsonIntSchema(1, maxCapacityMb, 'resize: the new maxmemory per proc, in MB').optional(),
    replicas: jsonIntSchema(0, MAX_REPLICAS, 'scale: the new number of replicas').optional(),
  }).strict();
  const named = maxTtl === MAX_TTL_SECONDS && maxCapacityMb === MAX_CAPACITY_MB ? schema.openapi('PatchInstanceRequest', { description: 'at least one field; capacityMb and replicas not together' }) : schema;
  return refusedAs(named, bodyObject('{"ttlSeconds":3600}, {"capacityMb":128} or {"replicas":2}'));
}
export const PatchBodySchema = patchBodySchema();

/** PATCH with `backup` comes alone; null removes the schedule. */
export const BackupPatchSchema = refusedAs(
  z.object({ backup: BackupScheduleSchema.nullable() }).strict().openapi('PatchBackupScheduleRequest'),
  bodyObject('{"backup":{"everyMinutes":60,"keep":24}}'),
);

const procIdSchema = (name?: string) => refusedAs(
  z.string().refine((v) => name === undefined || isProcIdOf(name, v)).openapi({ description: 'a replica\'s proc id, "<name>::<uuid>"' }),
  (_f, value) => new InvalidInputError('INVALID_PROC', 'to', `to must be a proc id of '${name}' ("${name}::<uuid>"), got ${JSON.stringify(value)}`),
);
/** POST /api/instances/:name/failover; with a name, `to` must be one of that instance's procs. */
export function failoverBodySchema(name?: string) {
  const schema = z.object({ to: procIdSchema(name).optional() }).strict();
  return refusedAs(name === undefined ? schema.openapi('FailoverRequest') : schema, () => new InvalidInputError('INVALID_BODY', 'body', 'body must be empty or a JSON object like {"to":"<proc id>"}'));
}

export const UpgradeBodySchema = refusedAs(
  z.object({
    redisServer: refusedAs(
      z.string().min(1).max(4096).regex(/^[^\0-\x1f]*$/).openapi({ description: 'a redis-server path an agent offers, or a version', example: '7.2.4' }),
      () => new InvalidInputError('INVALID_REDIS_SERVER', 'redisServer', 'redisServer must be a binary path an agent offers, or a version, e.g. "/opt/redis-7.2/redis-server" or "7.2.4"'),
    ),
  }).strict().openapi('UpgradeRequest'),
  bodyObject('{"redisServer":"/opt/redis-7.2/redis-server"}'),
);

export const RebalanceBodySchema = refusedAs(
  z.object({
    dryRun: refusedAs(z.boolean().openapi({ description: 'plan only' }), (_f, value) => new InvalidInputError('INVALID_BOOLEAN', 'dryRun', `dryRun must be true or false, got ${JSON.stringify(value)}`)).optional(),
  }).strict().openapi('RebalanceRequest'),
  () => new InvalidInputError('INVALID_BODY', 'body', 'body must be empty or a JSON object like {"dryRun":true}'),
);

/** The most instances one page of GET /api/instances holds. */
export const MAX_PAGE = 1000;
const STATUSES = Object.values(InstanceStatus) as [string, ...string[]];

/** GET /api/instances?limit=&after=&status=: every query parameter is optional; no limit is the whole list. */
export const InstanceListQuery = z.object({
  limit: refusedAs(
    z.string().regex(/^[1-9][0-9]{0,3}$/).refine((v) => Number(v) <= MAX_PAGE).openapi({ description: `page size, 1 to ${MAX_PAGE}; without it, every instance`, example: '100' }),
    (_f, value) => new InvalidInputError('OUT_OF_RANGE', 'limit', `limit must be a whole number from 1 to ${MAX_PAGE}, got ${JSON.stringify(value)?.slice(0, 40)}`),
  ).optional(),
  after: refusedAs(
    z.string().regex(NAME_PATTERN).openapi({ description: 'the last name of the previous page (the `X-Next-After` header): names sort as strings', example: 'cache1' }),
    (_f, value) => new InvalidInputError('INVALID_NAME', 'after', `after must be an instance name (the X-Next-After header of the previous page), got ${JSON.stringify(value)?.slice(0, 80)}`),
  ).optional(),
  status: refusedAs(
    z.enum(STATUSES).openapi({ description: 'only instances with this status' }),
    (_f, value) => new InvalidInputError('INVALID_STATUS', 'status', `status must be one of ${STATUSES.join(', ')}, got ${JSON.stringify(value)?.slice(0, 40)}`),
  ).optional(),
}).strict();

export const InstanceParams = z.object({ name: NameSchema });
export const AgentParams = z.object({ id: AgentIdSchema });
export const BackupParams = z.object({ name: NameSchema, id: BackupIdSchema });
