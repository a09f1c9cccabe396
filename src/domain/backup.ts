/**
 * Persistence and backups (issue 9 part 6): how an instance keeps its data, what a backup is,
 * how backups are named, and when a scheduled one is due. Pure: no I/O.
 */

import { NAME_PATTERN } from './names.js';

/** How an instance keeps its data on its agent: not at all (a cache), RDB snapshots, or an append-only file. */
export type Persistence = 'none' | 'rdb' | 'aof';
export const PERSISTENCE_MODES: readonly Persistence[] = ['none', 'rdb', 'aof'];

export function isPersistence(value: unknown): value is Persistence {
  return typeof value === 'string' && (PERSISTENCE_MODES as readonly string[]).includes(value);
}

/** One stored backup, as `GET /api/instances/:name/backups` lists it. */
export interface Backup {
  id: string;
  instance: string;
  createdAt: string;
  bytes: number;
  /** SHA-256 (hex) of the RDB file. */
  sha256: string;
}

/** A backup schedule: one every `everyMinutes`, the newest `keep` kept. */
export interface BackupSchedule {
  everyMinutes: number;
  keep: number;
}

/**
 * A backup id is the UTC time it was taken, `YYYYMMDDTHHMMSSmmmZ` (20261130T001611123Z): it
 * sorts by age, names the file (`<id>.rdb`) and can hold no path separator or dot.
 */
export const BACKUP_ID_PATTERN = /^[0-9]{8}T[0-9]{9}Z$/;

export function backupIdAt(at: Date): string {
  return at.toISOString().replace(/[-:.]/g, '');
}

/** The time a backup id names. */
export function backupTime(id: string): Date {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})Z$/.exec(id);
  if (!m) return new Date(NaN);
  return new Date(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}.${m[7]}Z`);
}

export function isBackupId(id: unknown): id is string {
  return typeof id === 'string' && BACKUP_ID_PATTERN.test(id);
}

/** `<instance>/<backupId>`, as restoreFrom names a backup; undefined when it is not one. */
export function parseBackupRef(ref: unknown): { instance: string; id: string } | undefined {
  if (typeof ref !== 'string') return undefined;
  const parts = ref.split('/');
  if (parts.length !== 2 || !NAME_PATTERN.test(parts[0]) || !isBackupId(parts[1])) return undefined;
  return { instance: parts[0], id: parts[1] };
}

/** The BackupSchedule key's JSON; undefined for none or for text that is not one. */
export function parseBackupSchedule(text: string | undefined): BackupSchedule | undefined {
  if (!text) return undefined;
  try {
    const s = JSON.parse(text) as BackupSchedule;
    return Number.isSafeInteger(s?.everyMinutes) && s.everyMinutes > 0 && Number.isSafeInteger(s.keep) && s.keep > 0 ? { everyMinutes: s.everyMinutes, keep: s.keep } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether a scheduled backup is due: none was taken yet, or the newest is at least
 * `everyMinutes` old. The newest backup's time comes from storage, so a scheduler that takes
 * over after a restart neither repeats one nor skips one. `minuteMs` is a minute's length
 * (60 000; shorter only in tests, see docs/operations.md).
 */
export function backupDue(schedule: BackupSchedule, newestAt: Date | undefined, now: Date, minuteMs = 60_000): boolean {
  if (!newestAt || Number.isNaN(newestAt.getTime())) return true;
  return now.getTime() - newestAt.getTime() >= schedule.everyMinutes * minuteMs;
}

/** The backups a schedule keeping `keep` deletes: all but the newest `keep`. */
export function backupsBeyond(backups: readonly Backup[], keep: number): Backup[] {
  const newestFirst = [...backups].sort((a, b) => b.id.localeCompare(a.id));
  return newestFirst.slice(keep);
}
