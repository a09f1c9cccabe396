import { BackupNotFoundError, ForbiddenError, InvalidInputError, OperationRefusedError } from '../errors.js';
import { isActive } from '../domain/rules.js';
import { instanceView } from './views.js';
import { validateName } from './validate.js';
import { validateBackupId, validateBackupPatch, validateRestoreFrom } from './backup-input.js';
import { allow, mustFind, type ApiContext, type ApiRouter, type RouteDeps } from './request.js';
import type { CreateRequest } from './validate.js';

/**
 * Backups of an instance (issue 9 part 6): `POST /api/instances/:name/backups` starts a 'backup'
 * operation (202, the operation; `redfleet backup NAME --wait` follows it), `GET` lists the
 * stored backups newest first, `DELETE …/backups/:id` removes one. An instance's access key
 * reaches its own backups (but takes none of an anonymous instance); schedules and restoring
 * into a new instance are an admin's.
 */
export function backupRoutes(router: ApiRouter, deps: RouteDeps): void {
  const { service, log } = deps;

  router.post('/api/instances/:name/backups', async (ctx) => {
    const name = validateName(ctx.params.name);
    allow(ctx, name);
    const inst = mustFind(service, name);
    // Backups fill the scheduler's disk: a throwaway anonymous instance gets none from its tenant.
    if (inst.creator && ctx.state.principal.kind !== 'admin') throw new ForbiddenError(`instance '${name}' is an anonymous instance: only an admin token takes its backups`);
    const op = await service.startOperation(name, 'backup', {});
    ctx.status = 202;
    ctx.body = op;
  });

  router.get('/api/instances/:name/backups', async (ctx) => {
    const name = validateName(ctx.params.name);
    allow(ctx, name);
    ctx.body = await service.backups(name);
  });

  router.delete('/api/instances/:name/backups/:id', async (ctx) => {
    const name = validateName(ctx.params.name);
    allow(ctx, name);
    const id = validateBackupId(ctx.params.id);
    if (!(await service.deleteBackup(name, id))) throw new BackupNotFoundError(`${name}/${id}`, 'id');
    log.info('backup deleted', { instance: name, backup: id });
    ctx.status = 204;
  });
}

/** PATCH /api/instances/:name with `backup` (alone): sets the schedule, or removes it with null. */
export async function patchBackupSchedule(ctx: ApiContext, deps: RouteDeps, name: string, body: Record<string, unknown>): Promise<void> {
  // A schedule fills the scheduler's disk over time: an admin's choice, as at create.
  if (ctx.state.principal.kind !== 'admin') throw new ForbiddenError('a backup schedule needs an admin token');
  const schedule = validateBackupPatch(body);
  const inst = mustFind(deps.service, name);
  if (!isActive(inst)) throw new OperationRefusedError(`instance '${name}' is ${inst.status}; its backup schedule can no longer change`);
  await deps.service.setBackupSchedule(name, schedule);
  deps.log.info('backup schedule set', { instance: name, schedule });
  ctx.body = instanceView(mustFind(deps.service, name), deps.service.announcedMaster);
}

/** Whether a PATCH body is about the backup schedule. */
export function isBackupPatch(body: unknown): body is Record<string, unknown> {
  return typeof body === 'object' && body !== null && !Array.isArray(body) && 'backup' in body;
}

/**
 * A create's restore source, before anything is written: admins only (an anonymous caller may
 * not read another instance's data), and the backup must exist and match its SHA-256. Returns
 * the checksum the agent checks the file against again.
 */
export async function checkRestore(ctx: ApiContext, deps: RouteDeps, req: CreateRequest): Promise<string | undefined> {
  if (req.restoreFrom === undefined && req.backupSchedule === undefined) return undefined;
  if (ctx.state.principal.kind !== 'admin') {
    const field = req.restoreFrom !== undefined ? 'restoreFrom' : 'backup';
    throw new InvalidInputError('NOT_ALLOWED', field, `${field} needs an admin token; an anonymous instance cannot be restored from or backed up on a schedule`);
  }
  if (req.restoreFrom === undefined) return undefined;
  const backup = await deps.service.checkBackup(validateRestoreFrom(req.restoreFrom));
  return backup.sha256;
}
