import { InstanceStatus } from '../domain/model.js';
import { NotFoundError } from '../errors.js';
import { v1Status } from './views.js';
import { V1StatusList } from './v1-list.js';
import { validateInt, validateName, validateV1Body, MAX_CAPACITY_MB, MAX_REPLICAS } from './validate.js';
import { allow, mustFind, readJson, type ApiRouter, type RouteDeps } from './request.js';
import type { InstanceCreation } from './creation.js';

/** MrRedis's v1 routes: same paths, bodies and field names, with its bugs fixed (DESIGN.md). */
export function v1Routes(router: ApiRouter, deps: RouteDeps, creation: InstanceCreation): void {
  const { service } = deps;
  const rule = service.announcedMaster;
  const list = new V1StatusList();

  router.post('/v1/CREATE/:name/:capacity/:masters/:slaves', async (ctx) => {
    allow(ctx);
    const name = validateName(ctx.params.name);
    const capacityMb = validateInt(ctx.params.capacity, 'capacity', 1, MAX_CAPACITY_MB);
    validateInt(ctx.params.masters, 'masters', 1, 1);
    const replicas = validateInt(ctx.params.slaves, 'slaves', 0, MAX_REPLICAS);
    const body = validateV1Body(await readJson(ctx, true));
    const { created, password, accessKey } = await creation.create({ name, capacityMb, replicas, placement: 'spread', ...body }, { capacity: 'capacity', replicas: 'slaves' });
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
    ctx.body = v1Status(mustFind(service, name), rule);
  });

  router.get('/v1/STATUS/', async (ctx) => {
    allow(ctx);
    ctx.type = 'application/json';
    ctx.body = await list.render(service.instances(), rule);
  });

  router.delete('/v1/DELETE/:name', async (ctx) => {
    const name = validateName(ctx.params.name);
    allow(ctx, name);
    const before = await service.markDeleting(name);
    if (!before) throw new NotFoundError('instance', name);
    ctx.body = before === InstanceStatus.Deleted ? `Instance ${name} is already deleted` : `Request accepted: instance ${name} is being deleted`;
  });
}
