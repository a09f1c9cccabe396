import { createWriteStream, rmSync } from 'node:fs';
import { request, type IncomingMessage } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { BACKUP_PATH } from '../proto/routes.js';
import { ChecksumTap } from '../checksum.js';
import { readSmall } from './session.js';

/** Where the agent's current session is: the scheduler's URL and the token its calls carry. */
export interface SessionRef {
  scheduler: string;
  token: string;
}

/**
 * Fetches a backup for a restored master over the authenticated agent API (GET
 * /api/v1/agent/backup with the session token) into `dest` (created owner-only, never over an
 * existing file), and checks its SHA-256 against the one the LAUNCH carried. On any failure the
 * partial file is removed and the error says why.
 */
export async function fetchBackup(session: SessionRef | undefined, ref: string, sha256: string, dest: string): Promise<number> {
  if (!session) throw new Error('no session with the scheduler to fetch the backup over');
  const res = await get(`${session.scheduler}${BACKUP_PATH}?ref=${encodeURIComponent(ref)}`, session.token);
  if (res.statusCode !== 200) throw new Error(`the scheduler answered ${res.statusCode} for backup ${ref}: ${(await readSmall(res)).slice(0, 200)}`);
  const tap = new ChecksumTap();
  try {
    await pipeline(res, tap, createWriteStream(dest, { flags: 'wx', mode: 0o600 }));
    const got = tap.digest();
    if (got !== sha256) throw new Error(`backup ${ref} has SHA-256 ${got}, the scheduler said ${sha256}: refusing it`);
    return tap.bytes;
  } catch (err) {
    rmSync(dest, { force: true });
    throw err;
  }
}

function get(url: string, token: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'GET', agent: false, timeout: 30_000, headers: { Authorization: `RedFleet-Session ${token}` } }, resolve);
    req.on('timeout', () => req.destroy(new Error('the scheduler did not answer the backup fetch in time')));
    req.on('error', reject);
    req.end();
  });
}
