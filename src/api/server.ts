import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import Koa, { type Context, type Middleware } from 'koa';
import Router from '@koa/router';
import { ForbiddenError, NotLeaderError, RedFleetError, UnauthenticatedError } from '../errors.js';
import type { FleetService, MetricsSource, SchedulerRole } from '../domain/services.js';
import type { Logger } from '../logger.js';
import { principalOf, type AccessPolicy } from './access.js';
import { InstanceCreation } from './creation.js';
import { v1Routes } from './v1-routes.js';
import { jsonRoutes } from './json-routes.js';
import { fleetRoutes } from './fleet-routes.js';
import { backupRoutes } from './backup-routes.js';
import { maintenanceRoutes } from './maintenance-routes.js';
import { switchoverRoutes } from './switchover-routes.js';
import { isUiPath, uiRoutes } from './ui-routes.js';
import type { RouteDeps, State } from './request.js';

/**
 * A raw handler served ahead of the Koa app, for requests it owns (the scheduler mounts the
 * agents' protobuf endpoint this way): the API itself knows nothing of that protocol.
 */
export interface Mount {
  owns(req: IncomingMessage): boolean;
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
}

export interface ApiDeps {
  service: FleetService;
  log: Logger;
  access: AccessPolicy;
  /** Absent: this server always leads (a scheduler without standbys). */
  role?: SchedulerRole;
  mounts?: Mount[];
  /** Served at GET /metrics to admins (everyone in open mode); absent: no /metrics route. */
  metrics?: MetricsSource;
}

const READ_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
/** Served without a token: the health check, and the API's description (it holds no secret); the dashboard's files too (isUiPath). */
const OPEN_PATHS = new Set(['/healthz', '/api/openapi.json']);


/**
 * How long an idle keep-alive connection stays open (Node's default is 5 s). Agents make their
 * calls (heartbeat answers, updates) over kept-alive connections; a scheduler whose loop is busy
 * answers late, and a connection closed under an agent meant a new one for its next call, which
 * then waited in the accept queue of that same busy scheduler (issue 11, 1,000 agents).
 */
const KEEP_ALIVE_MS = 30_000;

/**
 * The scheduler's HTTP face: MrRedis's v1 routes, the JSON API under /api, /healthz, and
 * whatever is mounted ahead of them. Every read is served from the in-memory tree; writes go to
 * etcd and are answered once the cache has seen them.
 */
export function createApiServer(deps: ApiDeps): Server {
  const app = new Koa<State>();
  const { log, access, service } = deps;
  const routeDeps: RouteDeps = { service, log, access, role: deps.role ?? { isLeader: () => true, leaderUrl: () => undefined } };

  // Koa reports here what happens after a response began, e.g. a socket cut mid-body. Without a
  // listener it prints a raw stack to stderr, outside the structured log.
  app.on('error', (err: Error, ctx?: Context) => {
    // A cut-off client: the request's own error path below logs its one debug line.
    if (ctx && clientAborted(ctx, err)) return;
    log.error('request failed after the response began', { method: ctx?.method, path: ctx?.path, error: err.message });
  });
  if (deps.metrics) app.use(requestCounter(deps.metrics));
  app.use(errorReplies(log));
  app.use(standbyGuard(routeDeps.role));
  app.use(async (ctx, next) => {
    if (OPEN_PATHS.has(ctx.path) || isUiPath(ctx.path)) return next();
    const principal = principalOf(ctx.req, access, service);
    if (!principal) throw new UnauthenticatedError('this API needs Authorization: Bearer <admin token or instance access key>');
    ctx.state.principal = principal;
    await next();
  });

  const router = apiRouter(routeDeps, deps.metrics);
  app.use(router.routes());
  app.use(router.allowedMethods());
  app.use((ctx) => {
    ctx.status = 404;
    ctx.body = { error: { code: 'NO_ROUTE', message: `no route for ${ctx.method} ${ctx.path}; see the README for the API` } };
  });

  const koa = app.callback();
  const mounts = deps.mounts ?? [];
  const server = createServer((req, res) => {
    const mount = mounts.find((m) => m.owns(req));
    if (!mount) return void koa(req, res);
    mount.handle(req, res).catch((err: Error) => {
      log.error('mounted handler failed', { error: err.message });
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  server.keepAliveTimeout = KEEP_ALIVE_MS;
  return server;
}

/** Every route the API serves; test/integration/openapi.test.ts reads its stack against the OpenAPI document. */
export function apiRouter(routeDeps: RouteDeps, metrics?: MetricsSource): Router<State> {
  const router = new Router<State>();
  const creation = new InstanceCreation(routeDeps);
  v1Routes(router, routeDeps, creation);
  jsonRoutes(router, routeDeps, creation);
  fleetRoutes(router, routeDeps);
  backupRoutes(router, routeDeps);
  maintenanceRoutes(router, routeDeps);
  switchoverRoutes(router, routeDeps);
  uiRoutes(router);
  if (metrics) metricsRoute(router, metrics);
  return router;
}

/**
 * GET /metrics on the API port. Prometheus scrapers send a bearer token as easily as any client
 * (`authorization` in the scrape config), so with admin tokens configured it takes an admin
 * token like the rest of the fleet routes; an instance's access key may not read fleet-wide
 * figures. `--metrics HOST:PORT` serves it without a token on an address the operator picks.
 */
function metricsRoute(router: Router<State>, metrics: MetricsSource): void {
  router.get('/metrics', async (ctx) => {
    if (ctx.state.principal.kind !== 'admin') throw new ForbiddenError('/metrics needs an admin token');
    ctx.type = metrics.contentType;
    ctx.body = await metrics.render();
  });
}

/** Counts every answered request by its route pattern (`unmatched` for none) and final status. */
function requestCounter(metrics: MetricsSource): Middleware<State> {
  return async (ctx, next) => {
    try {
      await next();
    } finally {
      const route = (ctx as unknown as { _matchedRoute?: string })._matchedRoute;
      metrics.countRequest(typeof route === 'string' ? route : 'unmatched', ctx.status);
    }
  };
}

/** Errors as JSON `{"error":{"code","message"[,"field"]}}`; an unknown one is a 500 whose cause only the log shows. */
function errorReplies(log: Logger): Middleware<State> {
  return async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      if (clientAborted(ctx, err)) {
        // Nobody is left to answer, and a client hanging up is not a scheduler fault: one debug line.
        log.debug('client aborted the request', { method: ctx.method, path: ctx.path });
        return;
      }
      const known = err instanceof RedFleetError;
      ctx.status = known ? err.status : 500;
      const code = known ? err.code : 'INTERNAL';
      const message = known ? err.message : 'internal error; see the scheduler log';
      ctx.body = { error: { code, message, ...(known && err.field ? { field: err.field } : {}) } };
      if (!known) log.error('request failed', { method: ctx.method, path: ctx.path, error: (err as Error).stack });
    }
  };
}

/**
 * Standby guard: every scheduler serves reads from its own watched cache; only the leader
 * writes. Ahead of auth, so a client is sent to the leader before it learns anything here.
 */
function standbyGuard(role: SchedulerRole): Middleware<State> {
  return async (ctx, next) => {
    if (READ_METHODS.has(ctx.method) || role.isLeader()) return next();
    const refusal = new NotLeaderError(role.leaderUrl());
    ctx.status = refusal.status;
    if (refusal.leader) ctx.set({ Location: refusal.leader, 'X-RedFleet-Leader': refusal.leader });
    ctx.body = { error: { code: refusal.code, message: refusal.message, leader: refusal.leader ?? null } };
  };
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
