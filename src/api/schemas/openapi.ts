import { OpenAPIRegistry, OpenApiGeneratorV31, type RouteConfig } from '@asteasolutions/zod-to-openapi';
import { z } from './parse.js';
import {
  AgentParams, BackupParams, InstanceListQuery, BackupPatchSchema, createBodySchema, failoverBodySchema, InstanceParams, NameSchema, PatchBodySchema,
  RebalanceBodySchema, UpgradeBodySchema, V1BodySchema,
} from './requests.js';
import { AgentView, BackupView, ErrorBody, HealthView, InstanceView, OperationView, RebalanceView, V1Status } from './responses.js';

/**
 * The OpenAPI 3.1 document of the HTTP API, generated from the same zod schemas the routes
 * validate with (requests.ts), so the two cannot drift. Paths are written as Koa writes them
 * (':name'); test/integration/openapi.test.ts checks that they are exactly the router's.
 */
type Method = RouteConfig['method'];
type Schema = z.ZodTypeAny;
interface Route {
  method: Method;
  path: string;
  summary: string;
  params?: z.AnyZodObject;
  query?: z.AnyZodObject;
  body?: Schema;
  optionalBody?: boolean;
  ok: [number, Schema | 'text' | 'html' | 'file' | 'none'];
  open?: boolean;
}

const UiParams = z.object({ file: z.string().regex(/^[a-z0-9-]+\.(html|js|css|svg)$/).openapi({ example: 'app.js' }) });
const V1Params = z.object({ name: NameSchema, capacity: z.string().regex(/^[0-9]+$/), masters: z.string().regex(/^[0-9]+$/), slaves: z.string().regex(/^[0-9]+$/) });

export const API_ROUTES: Route[] = [
  { method: 'get', path: '/healthz', summary: 'the scheduler\'s health and leadership (no auth; 503 when agents are refused)', ok: [200, HealthView], open: true },
  { method: 'get', path: '/api/openapi.json', summary: 'this document (no auth)', ok: [200, z.record(z.unknown())], open: true },
  { method: 'post', path: '/api/instances', summary: 'create an instance (202); the answer alone carries its password and access key', body: createBodySchema(), ok: [202, InstanceView] },
  { method: 'get', path: '/api/instances', summary: 'the instances by name, optionally paged (`limit`, `after`; the `X-Next-After` and `Link` headers give the next page) and filtered by `status`', query: InstanceListQuery, ok: [200, z.array(InstanceView)] },
  { method: 'get', path: '/api/instances/:name', summary: 'one instance', params: InstanceParams, ok: [200, InstanceView] },
  { method: 'patch', path: '/api/instances/:name', summary: 'change the TTL, resize (capacityMb) or scale (replicas); or set the backup schedule alone', params: InstanceParams, body: z.union([PatchBodySchema, BackupPatchSchema]), ok: [200, InstanceView] },
  { method: 'delete', path: '/api/instances/:name', summary: 'delete an instance (202)', params: InstanceParams, ok: [202, InstanceView] },
  { method: 'post', path: '/api/instances/:name/restart-empty', summary: 'give up a lost master\'s data and restart empty (202)', params: InstanceParams, ok: [202, InstanceView] },
  { method: 'post', path: '/api/instances/:name/failover', summary: 'planned switchover to the best replica or to `to` (202)', params: InstanceParams, body: failoverBodySchema(), optionalBody: true, ok: [202, InstanceView] },
  { method: 'post', path: '/api/instances/:name/upgrade', summary: 'rolling redis-server upgrade (202)', params: InstanceParams, body: UpgradeBodySchema, ok: [202, InstanceView] },
  { method: 'post', path: '/api/instances/:name/backups', summary: 'take a backup now (202, the operation)', params: InstanceParams, ok: [202, OperationView] },
  { method: 'get', path: '/api/instances/:name/backups', summary: 'the stored backups, newest first', params: InstanceParams, ok: [200, z.array(BackupView)] },
  { method: 'delete', path: '/api/instances/:name/backups/:id', summary: 'delete one backup (204)', params: BackupParams, ok: [204, 'none'] },
  { method: 'get', path: '/api/agents', summary: 'every agent, its resources total and free, draining or not', ok: [200, z.array(AgentView)] },
  { method: 'post', path: '/api/agents/:id/drain', summary: 'drain an agent: its procs move away (202)', params: AgentParams, ok: [202, AgentView] },
  { method: 'post', path: '/api/agents/:id/undrain', summary: 'end a drain', params: AgentParams, ok: [200, AgentView] },
  { method: 'post', path: '/api/rebalance', summary: 'spread masters over the agents (202; 200 with dryRun)', body: RebalanceBodySchema, optionalBody: true, ok: [202, RebalanceView] },
  { method: 'get', path: '/api/rebalance', summary: 'the last rebalance', ok: [200, RebalanceView] },
  { method: 'get', path: '/', summary: 'the dashboard (no auth; its data calls carry the token)', ok: [200, 'html'], open: true },
  { method: 'get', path: '/ui/:file', summary: 'the dashboard\'s files: scripts, styles, the API page (no auth)', params: UiParams, ok: [200, 'file'], open: true },
  { method: 'get', path: '/metrics', summary: 'Prometheus metrics, text format 0.0.4 (admin token; `--metrics HOST:PORT` serves it without one)', ok: [200, 'text'] },
  { method: 'post', path: '/v1/CREATE/:name/:capacity/:masters/:slaves', summary: 'MrRedis v1 create (text answer)', params: V1Params, body: V1BodySchema, optionalBody: true, ok: [201, 'text'] },
  { method: 'get', path: '/v1/STATUS/:name', summary: 'MrRedis v1 status of one instance', params: InstanceParams, ok: [200, V1Status] },
  { method: 'get', path: '/v1/STATUS/', summary: 'MrRedis v1 status of every instance', ok: [200, z.array(V1Status)] },
  { method: 'delete', path: '/v1/DELETE/:name', summary: 'MrRedis v1 delete (text answer)', params: InstanceParams, ok: [200, 'text'] },
];

/** ':name' as OpenAPI writes it: '{name}'. */
export function openApiPath(koaPath: string): string {
  return koaPath.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

/** Answers that are no JSON schema: nothing, text, the dashboard's page, its files. */
const PLAIN_ANSWERS = {
  none: { description: 'done' },
  text: { description: 'done', content: { 'text/plain': { schema: z.string() } } },
  html: { description: 'the page', content: { 'text/html': { schema: z.string() } } },
  file: {
    description: 'the file, with its ETag (304 when unchanged)',
    content: { 'text/html': { schema: z.string() }, 'text/javascript': { schema: z.string() }, 'text/css': { schema: z.string() }, 'image/svg+xml': { schema: z.string() } },
  },
};

const errorContent = { content: { 'application/json': { schema: ErrorBody } } };

function register(registry: OpenAPIRegistry, bearer: { name: string }, r: Route): void {
  const [status, answer] = r.ok;
  const okResponse = typeof answer === 'string' ? PLAIN_ANSWERS[answer] : { description: 'done', content: { 'application/json': { schema: answer } } };
  registry.registerPath({
    method: r.method,
    path: openApiPath(r.path),
    summary: r.summary,
    security: r.open ? [] : [{ [bearer.name]: [] }],
    request: {
      params: r.params,
      query: r.query,
      body: r.body ? { required: !r.optionalBody, content: { 'application/json': { schema: r.body } } } : undefined,
    },
    responses: {
      [status]: okResponse,
      ...(r.open ? {} : { 400: { description: 'bad input', ...errorContent }, 401: { description: 'no or unknown token', ...errorContent }, 403: { description: 'not allowed', ...errorContent }, 404: { description: 'no such thing', ...errorContent }, 409: { description: 'conflict', ...errorContent }, 503: { description: 'not the leader', ...errorContent } }),
    },
  });
}

let cached: object | undefined;

/** The document, built once. */
export function openApiDocument(): object {
  if (cached) return cached;
  const registry = new OpenAPIRegistry();
  const bearer = registry.registerComponent('securitySchemes', 'bearer', { type: 'http', scheme: 'bearer', description: 'an admin token or an instance access key' });
  for (const r of API_ROUTES) register(registry, bearer, r);
  cached = new OpenApiGeneratorV31(registry.definitions).generateDocument({
    openapi: '3.1.0',
    info: { title: 'RedFleet', version: '0.1.0', description: 'Redis as a service: the scheduler\'s HTTP API. Generated from the schemas the routes validate with (docs/api.md).' },
  });
  return cached;
}
