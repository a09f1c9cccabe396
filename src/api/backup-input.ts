import { InvalidInputError } from '../errors.js';
import type { BackupSchedule } from '../domain/backup.js';
import { parseWith } from './schemas/parse.js';
import { BackupIdSchema, BackupPatchSchema, RestoreFromSchema } from './schemas/requests.js';

export { MAX_BACKUP_EVERY_MINUTES, MAX_BACKUP_KEEP } from './schemas/requests.js';

/** `"restoreFrom": "<instance>/<backupId>"` at create. */
export function validateRestoreFrom(value: unknown): string {
  return parseWith(RestoreFromSchema, value);
}

/** A backup id in a path: the time it was taken, `YYYYMMDDTHHMMSSmmmZ`; nothing else reaches the file system. */
export function validateBackupId(value: unknown): string {
  return parseWith(BackupIdSchema, value);
}

/** PATCH /api/instances/:name with `backup`: it comes alone (other fields go in their own PATCH); `null` turns the schedule off. */
export function validateBackupPatch(body: Record<string, unknown>): BackupSchedule | null {
  return parseWith(BackupPatchSchema, body, {
    unknown: (key) => new InvalidInputError('UNKNOWN_FIELD', key, `a PATCH that sets backup takes no other field; send '${key}' in its own PATCH`),
  }).backup;
}
