import type { Instance } from '../domain/model.js';
import type { OperationKind } from '../domain/operation.js';
import { isActive } from '../domain/rules.js';
import { ConflictError } from '../errors.js';
import { admit } from './admission.js';
import { checkAnonymousExpiry } from './creation.js';
import { allow, type ApiContext, type RouteDeps } from './request.js';
import type { InstancePatch } from './validate.js';

/**
 * PATCH /api/instances/:name. A resize (capacityMb) or a scale (replicas) starts an operation
 * (202, the instance with its `operation`), for admins only: a tenant's key (above all an
 * anonymous one) must not grow past its quota. A ttlSeconds, alone or with either, is set once the
 * operation has started, so a refused operation writes nothing. Every check runs before any write.
 * Returns the HTTP status to answer with.
 */
export async function patchInstance(ctx: ApiContext, deps: RouteDeps, inst: Instance, patch: InstancePatch): Promise<number> {
  const { service, log, access } = deps;
  const change = operationOf(inst, patch);
  if (change) allow(ctx);
  if (!isActive(inst)) throw new ConflictError(`instance '${inst.name}' is ${inst.status}; it can no longer change`);
  const expiresAt = patch.ttlSeconds === undefined ? undefined : Date.now() + patch.ttlSeconds * 1000;
  if (expiresAt !== undefined && inst.creator && access.anonymous) checkAnonymousExpiry(inst, expiresAt, access.anonymous.ttlSeconds);
  if (change) {
    // The create's fleet checks: a size no agent has in total, or more procs than agents x distribution, could never be placed.
    admit({ capacityMb: patch.capacityMb ?? inst.capacity, replicas: patch.replicas ?? inst.expSlaves, distribution: inst.dValue }, service.agentCapacities());
    const op = await service.startOperation(inst.name, change.kind, change.params);
    log.info('instance change started', { instance: inst.name, kind: change.kind, operation: op.id, ...change.params });
  }
  if (expiresAt !== undefined) {
    await service.setExpiry(inst.name, new Date(expiresAt));
    log.info('instance time-to-live set', { instance: inst.name, ttlSeconds: patch.ttlSeconds });
  }
  return change ? 202 : 200;
}

function operationOf(inst: Instance, patch: InstancePatch): { kind: OperationKind; params: Record<string, unknown> } | undefined {
  if (patch.capacityMb !== undefined) return { kind: 'resize', params: { capacityMb: patch.capacityMb, fromMb: inst.capacity } };
  if (patch.replicas !== undefined) return { kind: 'scale', params: { replicas: patch.replicas, from: inst.expSlaves } };
  return undefined;
}
