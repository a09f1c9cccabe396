import { chmodSync, createReadStream, createWriteStream, mkdirSync } from 'node:fs';
import { readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { backupTime, isBackupId, type Backup } from '../domain/backup.js';
import { NAME_PATTERN } from '../domain/names.js';
import { ChecksumTap } from '../checksum.js';

/**
 * Where backups are kept. Ids are backup ids (domain/backup.ts) and instance names: both are
 * checked before they reach an implementation, and each implementation checks them again.
 * Another store (S3-compatible, say) implements these four calls; see docs/operations.md.
 */
export interface BackupStorage {
  /** Stores the stream as the instance's backup `id`; resolves with what was stored. Nothing is listed until it is complete. */
  put(instance: string, id: string, data: Readable): Promise<Backup>;
  /** The backup's bytes; undefined when there is none. */
  get(instance: string, id: string): Promise<Readable | undefined>;
  /** The instance's complete backups, newest first. */
  list(instance: string): Promise<Backup[]>;
  /** Removes one; false when there was none. */
  delete(instance: string, id: string): Promise<boolean>;
}

/**
 * Backups in a local directory: `<dir>/<instance>/<id>.rdb` with `<id>.rdb.sha256` beside it
 * (`sha256sum` format), directories 0700 and files 0600. A backup is written under a temporary
 * name and renamed once complete, its checksum file last: a backup without one is not listed.
 */
export class LocalBackupStorage implements BackupStorage {
  constructor(readonly dir: string) {}

  async put(instance: string, id: string, data: Readable): Promise<Backup> {
    const folder = this.folder(instance);
    mkdirSync(folder, { recursive: true, mode: 0o700 });
    chmodSync(this.dir, 0o700);
    chmodSync(folder, 0o700);
    const file = this.file(instance, id);
    const partial = `${file}.partial`;
    const tap = new ChecksumTap();
    try {
      await pipeline(data, tap, createWriteStream(partial, { flags: 'w', mode: 0o600 }));
      await rename(partial, file);
    } catch (err) {
      await rm(partial, { force: true });
      throw err;
    }
    const sha256 = tap.digest();
    await writeFile(`${file}.sha256`, `${sha256}  ${id}.rdb\n`, { mode: 0o600 });
    return { id, instance, createdAt: backupTime(id).toISOString(), bytes: tap.bytes, sha256 };
  }

  async get(instance: string, id: string): Promise<Readable | undefined> {
    if (!(await this.info(instance, id))) return undefined;
    return createReadStream(this.file(instance, id));
  }

  async list(instance: string): Promise<Backup[]> {
    let names: string[];
    try {
      names = await readdir(this.folder(instance));
    } catch {
      return [];
    }
    const ids = names.filter((n) => n.endsWith('.rdb.sha256')).map((n) => n.slice(0, -'.rdb.sha256'.length)).filter(isBackupId);
    const found = await Promise.all(ids.map((id) => this.info(instance, id)));
    return found.filter((b): b is Backup => b !== undefined).sort((a, b) => b.id.localeCompare(a.id));
  }

  async delete(instance: string, id: string): Promise<boolean> {
    const known = await this.info(instance, id);
    const file = this.file(instance, id);
    // The checksum first: a half-deleted backup is never listed.
    await rm(`${file}.sha256`, { force: true });
    await rm(file, { force: true });
    return known !== undefined;
  }

  /** One complete backup (its file and its checksum), or undefined. */
  private async info(instance: string, id: string): Promise<Backup | undefined> {
    const file = this.file(instance, id);
    try {
      const [sum, st] = await Promise.all([readFile(`${file}.sha256`, 'utf8'), stat(file)]);
      const sha256 = sum.trim().split(/\s+/)[0];
      if (!/^[0-9a-f]{64}$/.test(sha256)) return undefined;
      return { id, instance, createdAt: backupTime(id).toISOString(), bytes: st.size, sha256 };
    } catch {
      return undefined;
    }
  }

  private folder(instance: string): string {
    if (!NAME_PATTERN.test(instance)) throw new Error(`not an instance name: ${JSON.stringify(instance)}`);
    return join(this.dir, instance);
  }

  private file(instance: string, id: string): string {
    if (!isBackupId(id)) throw new Error(`not a backup id: ${JSON.stringify(id)}`);
    return join(this.folder(instance), `${id}.rdb`);
  }
}

/** Reads a stored backup through and compares its SHA-256 with the one stored beside it. */
export async function verifyBackup(storage: BackupStorage, backup: Backup): Promise<boolean> {
  const data = await storage.get(backup.instance, backup.id);
  if (!data) return false;
  const tap = new ChecksumTap();
  await pipeline(data, tap, new Writable({ write: (_chunk, _enc, done) => done() }));
  return tap.digest() === backup.sha256;
}
