import { ConflictError, NotFoundError } from '../errors.js';
import { instanceView } from './views.js';
import { validateCreateBody, validateName, validatePatchBody, MAX_CAPACITY_MB } from './validate.js';
import { allow, mustFind, readJson, type ApiContext, type ApiRouter, type RouteDeps } from './request.js';
import type { Instance } from '../domain/model.js';
import type { FleetService } from '../domain/services.js';
import type { InstanceCreation } from './creation.js';
import { patchInstance } from './instance-patch.js';
import { checkRestore, isBackupPatch, patchBackupSchedule } from './backup-routes.js';
import { parseWith } from './schemas/parse.js';
import { InstanceListQuery } from './schemas/requests.js';

/** The JSON API's instance routes under /api/instances. */
export function jsonRoutes(router: ApiRouter, deps: RouteDeps, creation: InstanceCreation): void {
  const { service } = deps;
  const rule = service.announcedMaster;

  router.post('/api/instances', async (ctx) => {
    const anonymous = ctx.state.principal.kind === 'anonymous';
    if (!anonymous) allow(ctx);
    const req = validateCreateBody(await readJson(ctx, false), MAX_CAPACITY_MB);
    const restoreSha256 = await checkRestore(ctx, deps, req);
    const { created, password, accessKey } = anonymous ? await creation.createAnonymous(ctx, req) : await creation.create({ ...req, restoreSha256 });
    if (!created) throw new ConflictError(`instance '${req.name}' already exists; delete it first or pick another name`);
    if (req.restoreFrom) await service.startOperation(req.name, 'restore', { from: req.restoreFrom });
    ctx.status = 202;
    ctx.body = instanceView(mustFind(service, req.name), rule, { password, accessKey });
  });

  router.get('/api/instances', (ctx) => {
    allow(ctx);
    ctx.body = listInstances(ctx, service).map((i) => instanceView(i, rule));
  });
  router.get('/api/instances/:name', (ctx) => {
    const name = validateName(ctx.params.name);
    allow(ctx, name);
    ctx.body = instanceView(mustFind(service, name), rule);
  });

  router.patch('/api/instances/:name', async (ctx) => {
    const name = validateName(ctx.params.name);
    allow(ctx, name);
    const inst = mustFind(service, name);
    const body = await readJson(ctx, false);
    if (isBackupPatch(body)) return patchBackupSchedule(ctx, deps, name, body);
    const patch = validatePatchBody(body);
    ctx.status = await patchInstance(ctx, deps, inst, patch);
    ctx.body = instanceView(mustFind(service, name), rule);
  });

  router.delete('/api/instances/:name', async (ctx) => {
    const name = validateName(ctx.params.name);
    allow(ctx, name);
    const before = await service.markDeleting(name);
    if (!before) throw new NotFoundError('instance', name);
    ctx.status = 202;
    ctx.body = instanceView(mustFind(service, name), rule);
  });

  // An operator's explicit choice to give up a lost master's data (see docs/hardening/failover.md).
  router.post('/api/instances/:name/restart-empty', async (ctx) => {
    const name = validateName(ctx.params.name);
    allow(ctx);
    mustFind(service, name);
    await service.restartEmpty(name);
    ctx.status = 202;
    ctx.body = instanceView(mustFind(service, name), rule);
  });
}

/**
 * GET /api/instances: the whole list by name, or one page (`limit`, `after`) with the next
 * page's start in `X-Next-After` and a `Link: rel="next"` header; `status` filters.
 */
function listInstances(ctx: ApiContext, service: FleetService): Instance[] {
  const q = parseWith(InstanceListQuery, { ...ctx.query });
  const page = service.instancePage({ limit: q.limit === undefined ? undefined : Number(q.limit), after: q.after, status: q.status });
  if (page.next !== undefined) {
    ctx.set('X-Next-After', page.next);
    ctx.set('Link', `</api/instances?${new URLSearchParams({ ...q, after: page.next })}>; rel="next"`);
  }
  return page.instances;
}
