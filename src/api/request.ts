import type { Context } from 'koa';
import type Router from '@koa/router';
import type { Logger } from '../logger.js';
import type { Instance } from '../domain/model.js';
import type { FleetService, SchedulerRole } from '../domain/services.js';
import { ForbiddenError, InvalidInputError, NotFoundError, UnauthenticatedError } from '../errors.js';
import { readBody } from '../net.js';
import { parseStrictJson } from './validate.js';
import type { AccessPolicy, Principal } from './access.js';

export const MAX_JSON_BODY = 64 * 1024;

/** What the access check leaves on every request it lets through. */
export type State = { principal: Principal };
export type ApiContext = Context & { state: State };
export type ApiRouter = Router<State>;

/** What the routes are built from. */
export interface RouteDeps {
  service: FleetService;
  log: Logger;
  access: AccessPolicy;
  role: SchedulerRole;
}

/** Admins reach everything; an instance key reaches its own instance; anonymous callers only create. */
export function allow(ctx: ApiContext, name?: string): void {
  const p = ctx.state.principal;
  if (p.kind === 'admin') return;
  if (p.kind === 'instance' && name !== undefined && p.name === name) return;
  if (p.kind === 'anonymous') throw new UnauthenticatedError('this route needs Authorization: Bearer <admin token or instance access key>');
  throw new ForbiddenError(name === undefined ? 'an instance access key reaches only its own instance' : `this access key does not reach instance '${name}'`);
}

export function mustFind(service: FleetService, name: string): Instance {
  const inst = service.instance(name);
  if (!inst) throw new NotFoundError('instance', name);
  return inst;
}

/**
 * Parses a JSON body of at most 64 KiB, integers strictly; `optional` lets an empty body through
 * as undefined.
 */
export async function readJson(ctx: Context, optional: boolean): Promise<unknown> {
  const raw = await readBody(ctx.req, MAX_JSON_BODY);
  if (raw.length === 0) {
    if (optional) return undefined;
    throw new InvalidInputError('INVALID_BODY', 'body', 'a JSON body is required');
  }
  return parseStrictJson(raw.toString('utf8'));
}
