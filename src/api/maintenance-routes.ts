import { parseWith } from './schemas/parse.js';
import { UpgradeBodySchema } from './schemas/requests.js';
import { instanceView } from './views.js';
import { validateAgentId, validateName } from './validate.js';
import { allow, mustFind, readJson, type ApiRouter, type RouteDeps } from './request.js';

/**
 * Maintenance routes (docs/operations.md): draining an agent, and the rolling redis-server
 * upgrade of an instance. Admin only, but an instance's own key may upgrade its instance.
 */
export function maintenanceRoutes(router: ApiRouter, deps: RouteDeps): void {
  const { service } = deps;

  router.post('/api/agents/:id/drain', async (ctx) => {
    allow(ctx);
    const id = validateAgentId(ctx.params.id);
    const drain = await service.drain(id);
    ctx.status = 202;
    ctx.body = service.agents().find((a) => a.id === id) ?? { id, draining: true, left: drain.left, drain };
  });

  router.post('/api/agents/:id/undrain', async (ctx) => {
    allow(ctx);
    const id = validateAgentId(ctx.params.id);
    await service.undrain(id);
    ctx.body = service.agents().find((a) => a.id === id) ?? { id, draining: false, left: 0, drain: null };
  });

  router.post('/api/instances/:name/upgrade', async (ctx) => {
    const name = validateName(ctx.params.name);
    allow(ctx, name);
    mustFind(service, name);
    const { redisServer } = validateUpgradeBody(await readJson(ctx, false));
    await service.startOperation(name, 'upgrade', { redisServer });
    ctx.status = 202;
    ctx.body = instanceView(mustFind(service, name), service.announcedMaster);
  });
}

/** {"redisServer": "/path/to/redis-server" | "7.2.4"}; nothing else. */
export function validateUpgradeBody(body: unknown): { redisServer: string } {
  return parseWith(UpgradeBodySchema, body);
}
