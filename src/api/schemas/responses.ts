import { z } from './parse.js';
import { BackupScheduleSchema, PersistenceSchema } from './requests.js';

/**
 * What the JSON API answers, for the OpenAPI document. The views are built in views.ts; these
 * describe their main fields and let further ones through (additionalProperties).
 */
export const ErrorBody = z.object({
  error: z.object({
    code: z.string().openapi({ example: 'OUT_OF_RANGE' }),
    message: z.string(),
    field: z.string().optional().openapi({ description: 'the request field at fault, when one is' }),
    leader: z.string().nullable().optional().openapi({ description: 'NOT_LEADER only: the leader\'s API URL' }),
  }),
}).openapi('Error', { description: 'every refusal: {"error":{"code","message","field"}}' });

const Resources = z.object({ cpus: z.number(), mem: z.number(), ports: z.number() }).passthrough();

export const ProcView = z.object({
  id: z.string(),
  role: z.enum(['master', 'replica']),
  state: z.string(),
  ip: z.string(),
  port: z.number().int(),
  agent: z.string(),
  nodename: z.string().optional(),
  pid: z.number().int().optional(),
  slaveOf: z.string().optional(),
  redisServer: z.object({ path: z.string(), version: z.string().optional() }).nullable(),
  stats: z.record(z.unknown()).nullable(),
}).passthrough().openapi('Proc');

export const FailoverRecordView = z.object({
  at: z.string(),
  epoch: z.number().int(),
  cause: z.string(),
  planned: z.boolean().openapi({ description: 'true for a switchover (no acknowledged write lost)' }),
  from: z.string(),
  fromAddress: z.string(),
  to: z.string(),
  toAddress: z.string(),
}).openapi('Failover');

export const InstanceView = z.object({
  name: z.string(),
  type: z.string(),
  status: z.string().openapi({ example: 'RUNNING' }),
  reason: z.string().optional(),
  capacityMb: z.number().int(),
  replicas: z.number().int(),
  distribution: z.number().int(),
  placement: z.enum(['spread', 'binpack']),
  createdAt: z.string(),
  expiresAt: z.string().nullable(),
  ttlRemainingSeconds: z.number().int().nullable(),
  epoch: z.number().int(),
  persistence: PersistenceSchema,
  backup: BackupScheduleSchema.nullable(),
  restoredFrom: z.string().nullable(),
  operation: z.record(z.unknown()).nullable(),
  failovers: z.array(FailoverRecordView).openapi({ description: 'the changes of master, newest first (at most 20)' }),
  redisServer: z.string().nullable(),
  master: ProcView.nullable(),
  slaves: z.array(ProcView),
  procs: z.array(ProcView),
  password: z.string().optional().openapi({ description: 'only in the answer to the create' }),
  accessKey: z.string().optional().openapi({ description: 'only in the answer to the create' }),
}).passthrough().openapi('Instance');

export const AgentView = z.object({
  id: z.string(),
  hostname: z.string(),
  ip: z.string(),
  connected: z.boolean(),
  total: Resources,
  free: Resources,
  tasks: z.array(z.string()),
  subscribedAt: z.string(),
  draining: z.boolean().optional(),
  left: z.number().int().optional(),
  drain: z.record(z.unknown()).nullable().optional(),
}).passthrough().openapi('Agent');

export const BackupView = z.object({
  id: z.string(),
  instance: z.string(),
  createdAt: z.string(),
  bytes: z.number().int(),
  sha256: z.string(),
}).openapi('Backup');

export const OperationView = z.object({ id: z.string(), kind: z.string(), state: z.string() }).passthrough().openapi('Operation');
export const RebalanceView = z.object({ state: z.string(), plan: z.unknown() }).passthrough().openapi('Rebalance');
export const HealthView = z.object({ ok: z.boolean(), leader: z.boolean(), leaderApi: z.string().nullable(), agents: z.number().int(), instances: z.number().int() }).passthrough().openapi('Health');

const V1Proc = z.object({ IP: z.string(), Port: z.string(), MemoryCapacity: z.number(), MemoryUsed: z.number(), Uptime: z.number(), ClientsConnected: z.number(), LastSyncedToMaster: z.number() });
export const V1Status = z.object({ Name: z.string(), Type: z.string(), Status: z.string(), Capacity: z.number(), Master: V1Proc.nullable(), Slaves: z.array(V1Proc) }).passthrough().openapi('V1Status');
