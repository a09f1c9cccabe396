import { createServer, type Server } from 'node:http';
import Koa, { type Context } from 'koa';
import Router from '@koa/router';
import { ConflictError, InvalidInputError, NotFoundError, RedFleetError } from '../errors.js';
import { generatePassword, sha256Hex } from '../store/secrets.js';
import type { FleetStore } from '../store/fleet-store.js';
import type { Instance } from '../store/model.js';
import { AgentEndpoint } from '../scheduler/agent-endpoint.js';
import type { ResourceBroker } from '../scheduler/offers.js';
import { BodyTooLargeError, readBody } from '../net.js';
import type { Logger } from '../logger.js';
import { instanceView, v1Status } from './views.js';
import { validateCreateBody, validateInt, validateName, validateV1Body, MAX_REPLICAS, type CreateRequest } from './validate.js';

export const MAX_JSON_BODY = 64 * 1024;
/** Capacity bound when no agent is connected yet to say how large the largest one is. */
const DEFAULT_MAX_CAPACITY_MB = 1024 * 1024;

export interface ApiDeps {
  store: FleetStore;
  broker: ResourceBroker;
  agentEndpoint: AgentEndpoint;
  log: Logger;
}

/**
 * The scheduler's HTTP face: MrRedis's v1 routes, the JSON API under /api, /healthz, and the
 * agents' protobuf endpoint. Every read is served from the in-memory tree; writes go to etcd
 * and are answered once the cache has seen them.
 */
export function createApiServer(deps: ApiDeps): Server {
  const app = new Koa();
  const router = new Router();
  const { store, broker, log } = deps;

  app.use(async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      const known = err instanceof RedFleetError;
      const tooLarge = err instanceof BodyTooLargeError;
      ctx.status = known ? err.status : tooLarge ? 413 : 500;
      const code = known ? err.code : tooLarge ? 'BODY_TOO_LARGE' : 'INTERNAL';
      const message = known || tooLarge ? (err as Error).message : 'internal error; see the scheduler log';
      ctx.body = { error: { code, message, ...(known && err.field ? { field: err.field } : {}) } };
      if (!known && !tooLarge) log.error('request failed', { method: ctx.method, path: ctx.path, error: (err as Error).stack });
    }
  });

  const maxCapacity = (): number => broker.largestAgentMem() || DEFAULT_MAX_CAPACITY_MB;

  const create = async (req: CreateRequest): Promise<{ created: boolean; password: string }> => {
    const password = generatePassword();
    const extra: Record<string, string> = {};
    if (req.ttlSeconds !== undefined) extra.ExpiresAt = new Date(Date.now() + req.ttlSeconds * 1000).toISOString();
    const created = await store.createInstance({
      name: req.name,
      type: req.replicas === 0 ? 'S' : 'MS',
      capacity: req.capacityMb,
      expSlaves: req.replicas,
      dValue: req.distribution,
      placement: req.placement,
      passwordHash: sha256Hex(password),
      extra,
    });
    if (created) log.info('instance requested', { instance: req.name, capacityMb: req.capacityMb, replicas: req.replicas, distribution: req.distribution });
    return { created, password };
  };

  const mustFind = (name: string): Instance => {
    const inst = store.instance(name);
    if (!inst) throw new NotFoundError('instance', name);
    return inst;
  };

  // ---- MrRedis v1 ----

  router.post('/v1/CREATE/:name/:capacity/:masters/:slaves', async (ctx) => {
    const name = validateName(ctx.params.name);
    const capacityMb = validateInt(ctx.params.capacity, 'capacity', 1, maxCapacity());
    validateInt(ctx.params.masters, 'masters', 1, 1);
    const replicas = validateInt(ctx.params.slaves, 'slaves', 0, MAX_REPLICAS);
    const body = validateV1Body(await readJson(ctx, true));
    const { created, password } = await create({ name, capacityMb, replicas, placement: 'spread', ...body });
    if (!created) {
      ctx.status = 200;
      ctx.body = `Instance ${name} already exists`;
      return;
    }
    ctx.status = 201;
    ctx.set('X-Redis-Password', password);
    ctx.body = `Request accepted: instance ${name} is being created`;
  });

  router.get('/v1/STATUS/:name', (ctx) => {
    ctx.body = v1Status(mustFind(validateName(ctx.params.name)));
  });

  router.get('/v1/STATUS/', (ctx) => {
    ctx.body = store.instances().map(v1Status);
  });

  router.delete('/v1/DELETE/:name', async (ctx) => {
    const name = validateName(ctx.params.name);
    const before = await store.markDeleting(name);
    if (!before) throw new NotFoundError('instance', name);
    ctx.body = before === 'DELETED' ? `Instance ${name} is already deleted` : `Request accepted: instance ${name} is being deleted`;
  });

  // ---- JSON API ----

  router.post('/api/instances', async (ctx) => {
    const req = validateCreateBody(await readJson(ctx, false), maxCapacity());
    const { created, password } = await create(req);
    if (!created) throw new ConflictError(`instance '${req.name}' already exists; delete it first or pick another name`);
    ctx.status = 202;
    ctx.body = instanceView(mustFind(req.name), { password });
  });

  router.get('/api/instances', (ctx) => {
    ctx.body = store.instances().map((i) => instanceView(i));
  });

  router.get('/api/instances/:name', (ctx) => {
    ctx.body = instanceView(mustFind(validateName(ctx.params.name)));
  });

  router.delete('/api/instances/:name', async (ctx) => {
    const name = validateName(ctx.params.name);
    const before = await store.markDeleting(name);
    if (!before) throw new NotFoundError('instance', name);
    ctx.status = 202;
    ctx.body = instanceView(mustFind(name));
  });

  router.get('/api/agents', (ctx) => {
    ctx.body = broker.agents();
  });

  router.get('/healthz', (ctx) => {
    ctx.body = { ok: true, agents: broker.agents().filter((a) => a.connected).length, instances: store.instanceNames().length };
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
      void deps.agentEndpoint.handle(req, res);
      return;
    }
    void koa(req, res);
  });
}

/** Parses a JSON body of at most 64 KiB; `optional` lets an empty body through as undefined. */
async function readJson(ctx: Context, optional: boolean): Promise<unknown> {
  const raw = await readBody(ctx.req, MAX_JSON_BODY);
  if (raw.length === 0) {
    if (optional) return undefined;
    throw new InvalidInputError('INVALID_BODY', 'body', 'a JSON body is required');
  }
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch {
    throw new InvalidInputError('INVALID_JSON', 'body', 'body is not valid JSON');
  }
}
