import { allow, type ApiRouter, type RouteDeps } from './request.js';
import { openApiDocument } from './schemas/openapi.js';

/** Routes about the fleet rather than one instance: its agents, and the scheduler's health. */
export function fleetRoutes(router: ApiRouter, deps: RouteDeps): void {
  const { service, role } = deps;

  router.get('/api/agents', (ctx) => {
    allow(ctx);
    ctx.body = service.agents();
  });

  // The API's own description, generated from the request schemas; served without a token.
  router.get('/api/openapi.json', (ctx) => {
    ctx.body = openApiDocument();
  });

  router.get('/healthz', (ctx) => {
    const agents = service.connectedAgentCount();
    const leadership = { leader: role.isLeader(), leaderApi: role.leaderUrl() ?? null };
    // Agents that hold procs being refused (a wrong fleet key, say) will have their procs written off: not ok.
    const refused = service.refusedAgents();
    if (refused.length > 0) {
      ctx.status = 503;
      ctx.body = { ok: false, ...leadership, agents, instances: service.instanceCount(), refusedAgents: refused };
      return;
    }
    ctx.body = { ok: true, ...leadership, agents, instances: service.instanceCount() };
  });
}
