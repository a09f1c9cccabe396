import { InvalidInputError } from '../errors.js';
import { isBackupId, isPersistence, parseBackupRef, PERSISTENCE_MODES, type BackupSchedule, type Persistence } from '../domain/backup.js';
import { jsonInt } from './validate.js';

/** A schedule's bounds: at most one backup a minute, at most a year apart; 1 to 1000 kept. */
export const MAX_BACKUP_EVERY_MINUTES = 365 * 24 * 60;
export const MAX_BACKUP_KEEP = 1000;

/** `"persistence"` at create: "none" (the default), "rdb" or "aof". */
export function validatePersistence(value: unknown): Persistence {
  if (value === undefined) return 'none';
  if (!isPersistence(value)) {
    throw new InvalidInputError('INVALID_PERSISTENCE', 'persistence', `persistence must be one of ${PERSISTENCE_MODES.map((m) => `"${m}"`).join(', ')}, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** `"backup": {"everyMinutes": n, "keep": k}` at create or PATCH; `null` in a PATCH turns the schedule off. */
export function validateBackupSchedule(value: unknown): BackupSchedule {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidInputError('INVALID_BACKUP_SCHEDULE', 'backup', 'backup must be a JSON object like {"everyMinutes":60,"keep":24}');
  }
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (key !== 'everyMinutes' && key !== 'keep') throw new InvalidInputError('UNKNOWN_FIELD', `backup.${key}`, `unknown field 'backup.${key}'; allowed: everyMinutes, keep`);
  }
  return {
    everyMinutes: jsonInt(record.everyMinutes, 'backup.everyMinutes', 1, MAX_BACKUP_EVERY_MINUTES),
    keep: jsonInt(record.keep, 'backup.keep', 1, MAX_BACKUP_KEEP),
  };
}

/** `"restoreFrom": "<instance>/<backupId>"` at create. */
export function validateRestoreFrom(value: unknown): string {
  if (!parseBackupRef(value)) {
    throw new InvalidInputError('INVALID_BACKUP_REF', 'restoreFrom', `restoreFrom must be "<instance>/<backupId>" as GET /api/instances/<instance>/backups lists it (e.g. "cache1/20261130T001611123Z"), got ${JSON.stringify(value)?.slice(0, 100)}`);
  }
  return value as string;
}

/** A backup id in a path: the time it was taken, `YYYYMMDDTHHMMSSmmmZ`; nothing else reaches the file system. */
export function validateBackupId(value: unknown): string {
  if (!isBackupId(value)) {
    throw new InvalidInputError('INVALID_BACKUP_ID', 'id', `a backup id is the time it was taken, like 20261130T001611123Z, got ${JSON.stringify(value)?.slice(0, 100)}`);
  }
  return value;
}

/** PATCH /api/instances/:name with `backup`: it comes alone (other fields go in their own PATCH). */
export function validateBackupPatch(body: Record<string, unknown>): BackupSchedule | null {
  for (const key of Object.keys(body)) {
    if (key !== 'backup') throw new InvalidInputError('UNKNOWN_FIELD', key, `a PATCH that sets backup takes no other field; send '${key}' in its own PATCH`);
  }
  return body.backup === null ? null : validateBackupSchedule(body.backup);
}
