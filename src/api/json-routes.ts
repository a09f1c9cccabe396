import { ConflictError, NotFoundError } from '../errors.js';
import { instanceView } from './views.js';
import { validateCreateBody, validateName, validatePatchBody, MAX_CAPACITY_MB } from './validate.js';
import { allow, mustFind, readJson, type ApiRouter, type RouteDeps } from './request.js';
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
    const q = parseWith(InstanceListQuery, { ...ctx.query });
    const page = service.instancePage({ limit: q.limit === undefined ? undefined : Number(q.limit), after: q.after, status: q.status });
    if (page.next !== undefined) {
      const next = new URLSearchParams({ ...q, after: page.next });
      ctx.set('X-Next-After', page.next);
      ctx.set('Link', `</api/instances?${next}>; rel="next"`);
    }
    ctx.body = page.instances.map((i) => instanceView(i, rule));
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
