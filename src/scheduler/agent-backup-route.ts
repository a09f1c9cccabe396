import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseBackupRef } from '../domain/backup.js';
import { InstanceStatus } from '../domain/model.js';
import { isLive } from '../domain/rules.js';
import type { FleetStore } from '../store/fleet-store.js';
import type { Logger } from '../logger.js';
import type { BackupStorage } from './backup-storage.js';
import { reply } from './agent-call.js';

/** The backup an agent may fetch, by its ref; undefined when it may not (or there is none). */
export type AgentBackupSource = (agentId: string, ref: string) => Promise<Readable | undefined>;

/**
 * An agent may fetch a backup only to seed a master it was told to launch from it: a live proc
 * of an instance that is being created with `restoreFrom` set to this backup, placed on this
 * agent. Any other ask (another agent, another backup, an instance already running) is refused.
 */
export function agentBackupSource(store: FleetStore, storage: BackupStorage): AgentBackupSource {
  return async (agentId, ref) => {
    const parsed = parseBackupRef(ref);
    if (!parsed) return undefined;
    const seeding = store.instances().some((i) => i.restoreFrom === ref && i.status === InstanceStatus.Creating && i.procs.some((p) => p.sid === agentId && isLive(p)));
    if (!seeding) return undefined;
    return storage.get(parsed.instance, parsed.id);
  };
}

/** `GET /api/v1/agent/backup?ref=<instance>/<backupId>` within an agent's session: the RDB, or 404. */
export async function serveBackup(req: IncomingMessage, res: ServerResponse, agentId: string, source: AgentBackupSource | undefined, log: Logger): Promise<boolean> {
  req.resume();
  if (req.method !== 'GET') return reply(res, 405, 'METHOD_NOT_ALLOWED', 'a backup fetch is GET');
  const ref = new URL(req.url ?? '', 'http://agent').searchParams.get('ref') ?? '';
  const data = source ? await source(agentId, ref) : undefined;
  if (!data) {
    log.warn('backup fetch refused: no restore of this backup is placed on the agent', { agent: agentId, backup: ref.slice(0, 100) });
    return reply(res, 404, 'NO_SUCH_BACKUP', 'no backup by that ref is being restored on this agent');
  }
  res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
  try {
    await pipeline(data, res);
    log.info('backup sent to an agent to seed a restored master', { agent: agentId, backup: ref });
  } catch (err) {
    log.warn('backup fetch broke off', { agent: agentId, backup: ref, error: (err as Error).message });
  }
  return true;
}
