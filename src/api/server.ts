import { createServer, type Server, type ServerResponse } from 'node:http';
import Koa, { type Context } from 'koa';
import Router from '@koa/router';
import { ConflictError, ForbiddenError, InvalidInputError, NotFoundError, NotLeaderError, QuotaError, RedFleetError, UnauthenticatedError } from '../errors.js';
import { generatePassword, sha256Hex } from '../store/secrets.js';
import type { FleetStore } from '../store/fleet-store.js';
import { InstanceStatus, InstanceType, type Instance } from '../domain/model.js';
import { AgentEndpoint } from '../scheduler/agent-endpoint.js';
import type { ResourceBroker } from '../scheduler/offers.js';
import { BodyTooLargeError, readBody } from '../net.js';
import type { Logger } from '../logger.js';
import { instanceView, v1Status, type MasterRule } from './views.js';
import { parseStrictJson, validateCreateBody, validateInt, validateName, validatePatchBody, validateV1Body, MAX_REPLICAS, type CreateRequest } from './validate.js';
import { PerClientLock, clientAddress, principalOf, quotaKey, type AccessPolicy, type Principal } from './access.js';
import { admit, type FieldNames } from './admission.js';

export const MAX_JSON_BODY = 64 * 1024;
/**
 * The schema's bound on capacity. Whether the connected agents can hold it is admit()'s
 * question, answered with 409 and the numbers rather than a 400 range error.
 */
const MAX_CAPACITY_MB = 1024 * 1024;

/** Whether this scheduler leads, and where the leader is: a standby serves reads only. */
export interface SchedulerRole {
  isLeader(): boolean;
  /** The leader's API URL, when one is elected. */
  leaderUrl(): string | undefined;
  /**
   * Resolves true once this scheduler leads, when it has just won the election and is taking up
   * the role (false at once otherwise, or after a short bound): agents that reconnect to a
   * restarted scheduler a moment early are held rather than sent into their backoff.
   */
  untilLeading?(): Promise<boolean>;
}

export interface ApiDeps {
  store: FleetStore;
  /** The current term's broker on the leader; registered agents on a standby. */
  broker: Pick<ResourceBroker, 'agents' | 'largestAgentMem'>;
  agentEndpoint: Pick<AgentEndpoint, 'handle' | 'refusedAgents'>;
  log: Logger;
  access: AccessPolicy;
  /** Absent: this server always leads (a scheduler without standbys). */
  role?: SchedulerRole;
  /** Which proc is announced as an instance's master (the failure detector's rule). */
  masterRule?: MasterRule;
  /** Starts an empty master for an instance whose lost master waits for its agent (see RedisFramework.restartEmpty). */
  restartEmpty?: (name: string) => Promise<void>;
}

const READ_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

type State = { principal: Principal };

/**
 * The scheduler's HTTP face: MrRedis's v1 routes, the JSON API under /api, /healthz, and the
 * agents' protobuf endpoint. Every read is served from the in-memory tree; writes go to etcd
 * and are answered once the cache has seen them.
 */
export function createApiServer(deps: ApiDeps): Server {
  const app = new Koa<State>();
  const router = new Router<State>();
  const { store, broker, log, access, masterRule } = deps;
  const role: SchedulerRole = deps.role ?? { isLeader: () => true, leaderUrl: () => undefined };
  const anonymousLock = new PerClientLock();

  // Koa reports here what happens after a response began, e.g. a socket cut mid-body. Without a
  // listener it prints a raw stack to stderr, outside the structured log.
  app.on('error', (err: Error, ctx?: Context) => {
    // A cut-off client: the request's own error path below logs its one debug line.
    if (ctx && clientAborted(ctx, err)) return;
    log.error('request failed after the response began', { method: ctx?.method, path: ctx?.path, error: err.message });
  });

  app.use(async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      if (clientAborted(ctx, err)) {
        // Nobody is left to answer, and a client hanging up is not a scheduler fault: one debug line.
        log.debug('client aborted the request', { method: ctx.method, path: ctx.path });
        return;
      }
      const known = err instanceof RedFleetError;
      const tooLarge = err instanceof BodyTooLargeError;
      ctx.status = known ? err.status : tooLarge ? 413 : 500;
      const code = known ? err.code : tooLarge ? 'BODY_TOO_LARGE' : 'INTERNAL';
      const message = known || tooLarge ? (err as Error).message : 'internal error; see the scheduler log';
      ctx.body = { error: { code, message, ...(known && err.field ? { field: err.field } : {}) } };
      if (!known && !tooLarge) log.error('request failed', { method: ctx.method, path: ctx.path, error: (err as Error).stack });
    }
  });

  // Standby guard: every scheduler serves reads from its own watched cache; only the leader
  // writes. Ahead of auth, so a client is sent to the leader before it learns anything here.
  app.use(async (ctx, next) => {
    if (READ_METHODS.has(ctx.method) || role.isLeader()) return next();
    const refusal = new NotLeaderError(role.leaderUrl());
    ctx.status = refusal.status;
    if (refusal.leader) ctx.set({ Location: refusal.leader, 'X-RedFleet-Leader': refusal.leader });
    ctx.body = { error: { code: refusal.code, message: refusal.message, leader: refusal.leader ?? null } };
  });

  app.use(async (ctx, next) => {
    if (ctx.path === '/healthz') return next();
    const principal = principalOf(ctx.req, access, store);
    if (!principal) throw new UnauthenticatedError('this API needs Authorization: Bearer <admin token or instance access key>');
    ctx.state.principal = principal;
    await next();
  });

  /** Admins reach everything; an instance key reaches its own instance; anonymous callers only create. */
  const allow = (ctx: Context & { state: State }, name?: string): void => {
    const p = ctx.state.principal;
    if (p.kind === 'admin') return;
    if (p.kind === 'instance' && name !== undefined && p.name === name) return;
    if (p.kind === 'anonymous') throw new UnauthenticatedError('this route needs Authorization: Bearer <admin token or instance access key>');
    throw new ForbiddenError(name === undefined ? 'an instance access key reaches only its own instance' : `this access key does not reach instance '${name}'`);
  };

  interface Created {
    created: boolean;
    password: string;
    accessKey: string;
  }

  const create = async (req: CreateRequest, extra: Record<string, string> = {}, names?: FieldNames): Promise<Created> => {
    const password = generatePassword();
    const accessKey = generatePassword();
    const waiting = admit(req, broker.agents(), names);
    const fields: Record<string, string> = { AccessKeyHash: sha256Hex(accessKey), ...(waiting ? { Reason: waiting } : {}), ...extra };
    if (req.ttlSeconds !== undefined) fields.ExpiresAt = new Date(Date.now() + req.ttlSeconds * 1000).toISOString();
    if (req.downAfterMs !== undefined) fields.DownAfter = String(req.downAfterMs);
    if (req.minReplicasMaxLag !== undefined) fields.MinReplicasMaxLag = String(req.minReplicasMaxLag);
    const created = await store.createInstance({
      name: req.name,
      type: req.replicas === 0 ? InstanceType.Standalone : InstanceType.MasterReplica,
      capacity: req.capacityMb,
      expSlaves: req.replicas,
      dValue: req.distribution,
      placement: req.placement,
      passwordHash: sha256Hex(password),
      extra: fields,
    });
    if (created) log.info('instance requested', { instance: req.name, capacityMb: req.capacityMb, replicas: req.replicas, distribution: req.distribution, ttlSeconds: req.ttlSeconds, creator: extra.Creator });
    return { created, password, accessKey };
  };

  /** A create without a token in anonymous mode: within the operator's limits and the per-client quota. */
  const createAnonymous = async (ctx: Context, req: CreateRequest): Promise<Created> => {
    const policy = access.anonymous!;
    if (req.capacityMb > policy.maxCapacityMb) throw new InvalidInputError('OUT_OF_RANGE', 'capacityMb', `capacityMb must be at most ${policy.maxCapacityMb} for an anonymous instance`);
    if (req.replicas > policy.maxReplicas) throw new InvalidInputError('OUT_OF_RANGE', 'replicas', `replicas must be at most ${policy.maxReplicas} for an anonymous instance`);
    if (req.ttlSeconds !== undefined && req.ttlSeconds > policy.ttlSeconds) throw new InvalidInputError('OUT_OF_RANGE', 'ttlSeconds', `ttlSeconds must be at most ${policy.ttlSeconds} for an anonymous instance`);
    const client = clientAddress(ctx.req, access.trustedProxies);
    const key = quotaKey(client);
    // A create that can never be placed is refused before it can count against the quota.
    admit(req, broker.agents());
    return anonymousLock.run(key, async () => {
      const mine = store.instances().filter((i) => i.creator && quotaKey(i.creator) === key && i.status !== InstanceStatus.Deleted && i.status !== InstanceStatus.Deleting);
      if (mine.length >= policy.perClient) {
        const soonest = mine.map((i) => Date.parse(i.expiresAt)).filter(Number.isFinite).sort((a, b) => a - b)[0];
        const when = soonest ? `the next slot frees at ${new Date(soonest).toISOString()} (in ${Math.max(0, Math.ceil((soonest - Date.now()) / 1000))} s), or when you delete one` : 'delete one to free a slot';
        log.warn('anonymous quota exceeded', { client, quotaKey: key, live: mine.length, limit: policy.perClient });
        throw new QuotaError(`client ${key === client ? client : `${client} (counted as ${key})`} already has ${mine.length} live anonymous instances, the limit is ${policy.perClient}; ${when}`);
      }
      return create({ ...req, ttlSeconds: req.ttlSeconds ?? policy.ttlSeconds }, { Creator: client, MaxClients: String(policy.maxClients) });
    });
  };

  const mustFind = (name: string): Instance => {
    const inst = store.instance(name);
    if (!inst) throw new NotFoundError('instance', name);
    return inst;
  };

  // ---- MrRedis v1 ----

  router.post('/v1/CREATE/:name/:capacity/:masters/:slaves', async (ctx) => {
    allow(ctx);
    const name = validateName(ctx.params.name);
    const capacityMb = validateInt(ctx.params.capacity, 'capacity', 1, MAX_CAPACITY_MB);
    validateInt(ctx.params.masters, 'masters', 1, 1);
    const replicas = validateInt(ctx.params.slaves, 'slaves', 0, MAX_REPLICAS);
    const body = validateV1Body(await readJson(ctx, true));
    const { created, password, accessKey } = await create({ name, capacityMb, replicas, placement: 'spread', ...body }, {}, { capacity: 'capacity', replicas: 'slaves' });
    if (!created) {
      ctx.status = 200;
      ctx.body = `Instance ${name} already exists`;
      return;
    }
    ctx.status = 201;
    ctx.set('X-Redis-Password', password);
    ctx.set('X-Access-Key', accessKey);
    ctx.body = `Request accepted: instance ${name} is being created`;
  });

  router.get('/v1/STATUS/:name', (ctx) => {
    const name = validateName(ctx.params.name);
    allow(ctx, name);
    ctx.body = v1Status(mustFind(name), masterRule);
  });

  router.get('/v1/STATUS/', (ctx) => {
    allow(ctx);
    ctx.body = store.instances().map((i) => v1Status(i, masterRule));
  });

  router.delete('/v1/DELETE/:name', async (ctx) => {
    const name = validateName(ctx.params.name);
    allow(ctx, name);
    const before = await store.markDeleting(name);
    if (!before) throw new NotFoundError('instance', name);
    ctx.body = before === InstanceStatus.Deleted ? `Instance ${name} is already deleted` : `Request accepted: instance ${name} is being deleted`;
  });

  // ---- JSON API ----

  router.post('/api/instances', async (ctx) => {
    const anonymous = ctx.state.principal.kind === 'anonymous';
    if (!anonymous) allow(ctx);
    const req = validateCreateBody(await readJson(ctx, false), MAX_CAPACITY_MB);
    const { created, password, accessKey } = anonymous ? await createAnonymous(ctx, req) : await create(req);
    if (!created) throw new ConflictError(`instance '${req.name}' already exists; delete it first or pick another name`);
    ctx.status = 202;
    ctx.body = instanceView(mustFind(req.name), { password, accessKey }, masterRule);
  });

  router.get('/api/instances', (ctx) => {
    allow(ctx);
    ctx.body = store.instances().map((i) => instanceView(i, {}, masterRule));
  });

  router.get('/api/instances/:name', (ctx) => {
    const name = validateName(ctx.params.name);
    allow(ctx, name);
    ctx.body = instanceView(mustFind(name), {}, masterRule);
  });

  router.patch('/api/instances/:name', async (ctx) => {
    const name = validateName(ctx.params.name);
    allow(ctx, name);
    const inst = mustFind(name);
    const { ttlSeconds } = validatePatchBody(await readJson(ctx, false));
    if (inst.status === InstanceStatus.Deleting || inst.status === InstanceStatus.Deleted) throw new ConflictError(`instance '${name}' is ${inst.status}; its time-to-live can no longer change`);
    const expiresAt = Date.now() + ttlSeconds * 1000;
    if (inst.creator && access.anonymous) checkAnonymousExpiry(inst, expiresAt, access.anonymous.ttlSeconds);
    await store.setInstance(name, { ExpiresAt: new Date(expiresAt).toISOString() });
    log.info('instance time-to-live set', { instance: name, ttlSeconds });
    ctx.body = instanceView(mustFind(name), {}, masterRule);
  });

  router.delete('/api/instances/:name', async (ctx) => {
    const name = validateName(ctx.params.name);
    allow(ctx, name);
    const before = await store.markDeleting(name);
    if (!before) throw new NotFoundError('instance', name);
    ctx.status = 202;
    ctx.body = instanceView(mustFind(name), {}, masterRule);
  });

  // An operator's explicit choice to give up a lost master's data (see docs/hardening/failover.md).
  router.post('/api/instances/:name/restart-empty', async (ctx) => {
    const name = validateName(ctx.params.name);
    allow(ctx);
    mustFind(name);
    if (!deps.restartEmpty) throw new ConflictError('this scheduler cannot restart instances');
    await deps.restartEmpty(name);
    ctx.status = 202;
    ctx.body = instanceView(mustFind(name), {}, masterRule);
  });

  router.get('/api/agents', (ctx) => {
    allow(ctx);
    ctx.body = broker.agents();
  });

  router.get('/healthz', (ctx) => {
    const agents = broker.agents().filter((a) => a.connected).length;
    const leadership = { leader: role.isLeader(), leaderApi: role.leaderUrl() ?? null };
    // Agents that hold procs being refused (a wrong fleet key, say) will have their procs written off: not ok.
    const refused = deps.agentEndpoint.refusedAgents();
    if (refused.length > 0) {
      ctx.status = 503;
      ctx.body = { ok: false, ...leadership, agents, instances: store.instanceNames().length, refusedAgents: refused };
      return;
    }
    ctx.body = { ok: true, ...leadership, agents, instances: store.instanceNames().length };
  });

  app.use(router.routes());
  app.use(router.allowedMethods());
  app.use((ctx) => {
    ctx.status = 404;
    ctx.body = { error: { code: 'NO_ROUTE', message: `no route for ${ctx.method} ${ctx.path}; see the README for the API` } };
  });

  const koa = app.callback();
  return createServer((req, res) => {
    if (AgentEndpoint.owns(req)) {
      void (async () => {
        if (!role.isLeader() && !(await role.untilLeading?.())) return refuseAgentCall(res, role.leaderUrl());
        await deps.agentEndpoint.handle(req, res);
      })().catch((err: Error) => {
        log.error('agent call failed', { error: err.message });
        if (!res.headersSent) res.writeHead(500).end();
      });
      return;
    }
    void koa(req, res);
  });
}

/** A standby takes no agent calls: the agent looks the leader up in etcd and goes there. */
function refuseAgentCall(res: ServerResponse, leader: string | undefined): void {
  const refusal = new NotLeaderError(leader);
  res.writeHead(refusal.status, { 'Content-Type': 'application/json', ...(leader ? { Location: leader, 'X-RedFleet-Leader': leader } : {}) });
  res.end(JSON.stringify({ error: { code: refusal.code, message: refusal.message, leader: leader ?? null } }));
}

/**
 * Parses a JSON body of at most 64 KiB, integers strictly; `optional` lets an empty body through
 * as undefined.
 */
async function readJson(ctx: Context, optional: boolean): Promise<unknown> {
  const raw = await readBody(ctx.req, MAX_JSON_BODY);
  if (raw.length === 0) {
    if (optional) return undefined;
    throw new InvalidInputError('INVALID_BODY', 'body', 'a JSON body is required');
  }
  return parseStrictJson(raw.toString('utf8'));
}

/**
 * An anonymous instance lives at most the anonymous TTL from its creation: a PATCH may shorten or
 * restore that, never extend it, or a client could keep a free instance forever by re-patching.
 */
function checkAnonymousExpiry(inst: Instance, expiresAt: number, maxTtlSeconds: number): void {
  const created = Date.parse(inst.createdAt);
  if (!Number.isFinite(created)) return;
  const latest = created + maxTtlSeconds * 1000;
  if (expiresAt <= latest) return;
  const left = Math.max(0, Math.floor((latest - Date.now()) / 1000));
  throw new InvalidInputError('OUT_OF_RANGE', 'ttlSeconds', `an anonymous instance expires at most ${maxTtlSeconds} s after its creation (${new Date(latest).toISOString()}); ttlSeconds can be at most ${left} now`);
}

/**
 * A request the client cut off: readBody saw 'aborted' (ECONNRESET), or the HTTP parser saw the
 * socket end inside the body (HPE_INVALID_EOF_STATE). Either way the socket is gone.
 */
function clientAborted(ctx: Context, err: unknown): boolean {
  const { code, message } = (err ?? {}) as NodeJS.ErrnoException;
  const cut = code === 'ECONNRESET' || code === 'ECONNABORTED' || code === 'HPE_INVALID_EOF_STATE' || message === 'aborted';
  return cut && (ctx.req.destroyed || ctx.req.aborted === true || ctx.req.socket?.destroyed === true);
}
