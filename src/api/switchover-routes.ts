import { parseWith } from './schemas/parse.js';
import { failoverBodySchema, RebalanceBodySchema } from './schemas/requests.js';
import { instanceView } from './views.js';
import { validateName } from './validate.js';
import { allow, mustFind, readJson, type ApiRouter, type RouteDeps } from './request.js';

/** The optional body of POST /api/instances/:name/failover: {} or {"to": "<name>::<uuid>"}. */
export function validateFailoverBody(name: string, body: unknown): { to?: string } {
  if (body === undefined) return {};
  const { to } = parseWith(failoverBodySchema(name), body);
  return to === undefined ? {} : { to };
}

/** The optional body of POST /api/rebalance: {} or {"dryRun": true|false}. */
export function validateRebalanceBody(body: unknown): { dryRun: boolean } {
  if (body === undefined) return { dryRun: false };
  return { dryRun: parseWith(RebalanceBodySchema, body).dryRun === true };
}

/** Planned switchover of one instance's master (issue 9, part 3), and rebalancing masters (part 7). */
export function switchoverRoutes(router: ApiRouter, deps: RouteDeps): void {
  const { service, log } = deps;
  const rule = service.announcedMaster;

  router.post('/api/instances/:name/failover', async (ctx) => {
    const name = validateName(ctx.params.name);
    allow(ctx, name);
    const params = validateFailoverBody(name, await readJson(ctx, true));
    mustFind(service, name);
    const op = await service.startOperation(name, 'switchover', params);
    log.info('switchover requested', { instance: name, operation: op.id, to: params.to ?? 'best replica' });
    ctx.status = 202;
    ctx.body = instanceView(mustFind(service, name), rule);
  });

  router.post('/api/rebalance', async (ctx) => {
    allow(ctx);
    const { dryRun } = validateRebalanceBody(await readJson(ctx, true));
    const record = await service.rebalance(dryRun);
    log.info('rebalance requested', { rebalance: record.id, dryRun, moves: record.plan.moves.length });
    ctx.status = dryRun ? 200 : 202;
    ctx.body = record;
  });

  router.get('/api/rebalance', async (ctx) => {
    allow(ctx);
    ctx.body = (await service.rebalanceStatus()) ?? { state: 'none', plan: null };
  });
}
