import type { Context } from 'koa';
import type { Instance } from '../domain/model.js';
import { isActive } from '../domain/rules.js';
import type { CreatedInstance } from '../domain/services.js';
import { InvalidInputError, QuotaError } from '../errors.js';
import { PerClientLock, clientAddress, quotaKey, type AnonymousPolicy } from './access.js';
import { admit, type FieldNames } from './admission.js';
import type { RouteDeps } from './request.js';
import type { CreateRequest } from './validate.js';

/** Who created an anonymous instance, and its redis maxclients. */
interface AnonymousOrigin {
  creator: string;
  maxClients: number;
}

/**
 * Creates instances for the v1 and JSON routes: admission against the fleet's agents, then the
 * service writes the instance with fresh secrets. Anonymous creates also pass the operator's
 * limits and the per-client quota.
 */
export class InstanceCreation {
  private readonly anonymousLock = new PerClientLock();

  constructor(private readonly deps: RouteDeps) {}

  async create(req: CreateRequest, names?: FieldNames, origin?: AnonymousOrigin): Promise<CreatedInstance> {
    const { service, log } = this.deps;
    const waiting = admit(req, service.agentCapacities(), names);
    const created = await service.create({ ...req, reason: waiting, ...origin });
    if (created.created) log.info('instance requested', { instance: req.name, capacityMb: req.capacityMb, replicas: req.replicas, distribution: req.distribution, ttlSeconds: req.ttlSeconds, creator: origin?.creator });
    return created;
  }

  /** A create without a token in anonymous mode: within the operator's limits and the per-client quota. */
  async createAnonymous(ctx: Context, req: CreateRequest): Promise<CreatedInstance> {
    const { access, service, log } = this.deps;
    const policy = access.anonymous!;
    checkAnonymousLimits(req, policy);
    const client = clientAddress(ctx.req, access.trustedProxies);
    const key = quotaKey(client);
    // A create that can never be placed is refused before it can count against the quota.
    admit(req, service.agentCapacities());
    return this.anonymousLock.run(key, async () => {
      const mine = service.instances().filter((i) => i.creator && quotaKey(i.creator) === key && isActive(i));
      if (mine.length >= policy.perClient) {
        const soonest = mine.map((i) => Date.parse(i.expiresAt)).filter(Number.isFinite).sort((a, b) => a - b)[0];
        const when = soonest ? `the next slot frees at ${new Date(soonest).toISOString()} (in ${Math.max(0, Math.ceil((soonest - Date.now()) / 1000))} s), or when you delete one` : 'delete one to free a slot';
        log.warn('anonymous quota exceeded', { client, quotaKey: key, live: mine.length, limit: policy.perClient });
        throw new QuotaError(`client ${key === client ? client : `${client} (counted as ${key})`} already has ${mine.length} live anonymous instances, the limit is ${policy.perClient}; ${when}`);
      }
      return this.create({ ...req, ttlSeconds: req.ttlSeconds ?? policy.ttlSeconds }, undefined, { creator: client, maxClients: policy.maxClients });
    });
  }
}

function checkAnonymousLimits(req: CreateRequest, policy: AnonymousPolicy): void {
  if (req.capacityMb > policy.maxCapacityMb) throw new InvalidInputError('OUT_OF_RANGE', 'capacityMb', `capacityMb must be at most ${policy.maxCapacityMb} for an anonymous instance`);
  if (req.replicas > policy.maxReplicas) throw new InvalidInputError('OUT_OF_RANGE', 'replicas', `replicas must be at most ${policy.maxReplicas} for an anonymous instance`);
  if (req.ttlSeconds !== undefined && req.ttlSeconds > policy.ttlSeconds) throw new InvalidInputError('OUT_OF_RANGE', 'ttlSeconds', `ttlSeconds must be at most ${policy.ttlSeconds} for an anonymous instance`);
}

/**
 * An anonymous instance lives at most the anonymous TTL from its creation: a PATCH may shorten or
 * restore that, never extend it, or a client could keep a free instance forever by re-patching.
 */
export function checkAnonymousExpiry(inst: Instance, expiresAt: number, maxTtlSeconds: number): void {
  const created = Date.parse(inst.createdAt);
  if (!Number.isFinite(created)) return;
  const latest = created + maxTtlSeconds * 1000;
  if (expiresAt <= latest) return;
  const left = Math.max(0, Math.floor((latest - Date.now()) / 1000));
  throw new InvalidInputError('OUT_OF_RANGE', 'ttlSeconds', `an anonymous instance expires at most ${maxTtlSeconds} s after its creation (${new Date(latest).toISOString()}); ttlSeconds can be at most ${left} now`);
}
