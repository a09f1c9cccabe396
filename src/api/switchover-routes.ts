import { isProcIdOf } from '../domain/names.js';
import { InvalidInputError } from '../errors.js';
import { instanceView } from './views.js';
import { validateName } from './validate.js';
import { allow, mustFind, readJson, type ApiRouter, type RouteDeps } from './request.js';

/** The optional body of POST /api/instances/:name/failover: {} or {"to": "<name>::<uuid>"}. */
export function validateFailoverBody(name: string, body: unknown): { to?: string } {
  if (body === undefined) return {};
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new InvalidInputError('INVALID_BODY', 'body', 'body must be empty or a JSON object like {"to":"<proc id>"}');
  }
  const record = body as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (key !== 'to') throw new InvalidInputError('UNKNOWN_FIELD', key, `unknown field '${key}'; allowed: to`);
  }
  if (record.to === undefined) return {};
  if (typeof record.to !== 'string' || !isProcIdOf(name, record.to)) {
    throw new InvalidInputError('INVALID_PROC', 'to', `to must be a proc id of '${name}' ("${name}::<uuid>"), got ${JSON.stringify(record.to)}`);
  }
  return { to: record.to };
}

/** The optional body of POST /api/rebalance: {} or {"dryRun": true|false}. */
export function validateRebalanceBody(body: unknown): { dryRun: boolean } {
  if (body === undefined) return { dryRun: false };
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new InvalidInputError('INVALID_BODY', 'body', 'body must be empty or a JSON object like {"dryRun":true}');
  }
  const record = body as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (key !== 'dryRun') throw new InvalidInputError('UNKNOWN_FIELD', key, `unknown field '${key}'; allowed: dryRun`);
  }
  if (record.dryRun !== undefined && typeof record.dryRun !== 'boolean') {
    throw new InvalidInputError('INVALID_BOOLEAN', 'dryRun', `dryRun must be true or false, got ${JSON.stringify(record.dryRun)}`);
  }
  return { dryRun: record.dryRun === true };
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
