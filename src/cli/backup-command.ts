import { UsageError } from '../errors.js';
import { intFlag, parseFlags } from './args.js';
import { jsonOutput } from './drain-command.js';
import { apiBase, apiFlag, call, CONNECTION_FLAGS, waitForOperation } from './api-client.js';

/** `redfleet backup`: take, list, delete and schedule an instance's RDB backups (issue 9 part 6). */

export const BACKUP_HELP = `Usage: redfleet backup NAME [--wait [--timeout 600]]
       redfleet backup list NAME [--json]
       redfleet backup delete NAME ID
       redfleet backup schedule NAME (--every MINUTES --keep N | --off)
Takes an RDB backup of an instance from a replica (a standalone instance: from its master, which
costs it one fork), lists its backups newest first (id, time, bytes, SHA-256), deletes one, or sets
its backup schedule. Restore one into a new instance with 'redfleet create NEW --restore-from NAME/ID'.

  --wait               print each step until the backup is stored
  --timeout SECONDS    with --wait: give up after this long and exit 1 with the reason; default 600
  --json               list: print the API's JSON array (the same as --output json)
  --output json        print the API's JSON: the operation, then with --wait the instance at its end
                       (progress to stderr); list: the array; delete, schedule: {"ok": true, ...}
  --every MINUTES      schedule: a backup every MINUTES
  --keep N             schedule: keep the newest N backups (manual ones count too)
  --off                schedule: stop scheduled backups (stored ones stay)
${CONNECTION_FLAGS}`;

/** Flags `redfleet create` takes for persistence and backups. */
export const CREATE_BACKUP_FLAGS = {
  persistence: { type: 'string' as const },
  'restore-from': { type: 'string' as const },
  'backup-every': { type: 'string' as const },
  'backup-keep': { type: 'string' as const },
};

export const CREATE_BACKUP_HELP = `  --persistence MODE   none (a cache), rdb (snapshots) or aof (append-only file, fsync every second); default none
  --restore-from INSTANCE/ID
                       start from that backup (see 'redfleet backup list'); default none
  --backup-every MINUTES, --backup-keep N
                       take a backup every MINUTES, keep the newest N; default no schedule`;

/** Adds the create flags above to a create body. */
export function addCreateBackupFields(values: Record<string, string | boolean | undefined>, body: Record<string, unknown>): void {
  if (typeof values.persistence === 'string') body.persistence = values.persistence;
  if (typeof values['restore-from'] === 'string') body.restoreFrom = values['restore-from'];
  if (values['backup-every'] === undefined && values['backup-keep'] === undefined) return;
  body.backup = { everyMinutes: intFlag(values['backup-every'], 'backup-every', 60, 1), keep: intFlag(values['backup-keep'], 'backup-keep', 24, 1) };
}

const DEFAULT_WAIT_SECONDS = 600;

export async function backupCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseFlags(argv, {
    ...apiFlag,
    wait: { type: 'boolean' },
    timeout: { type: 'string' },
    json: { type: 'boolean' },
    output: { type: 'string' },
    every: { type: 'string' },
    keep: { type: 'string' },
    off: { type: 'boolean' },
  });
  if (values.help) return void console.log(BACKUP_HELP);
  const base = apiBase(values.api, values.token);
  const [first, name, id] = positionals;
  const json = values.json === true || jsonOutput(values.output);
  const say = (text: string, obj: Record<string, unknown>): void => console.log(json ? JSON.stringify({ ok: true, ...obj }, null, 2) : text);
  if (first === 'list' && positionals.length === 2) return listBackups(base, name, json);
  if (first === 'delete' && positionals.length === 3) return deleteBackup(base, name, id, say);
  if (first === 'schedule' && positionals.length === 2) return scheduleBackups(base, name, values, say);
  if (positionals.length !== 1) throw new UsageError("backup takes NAME, or 'list NAME', 'delete NAME ID' or 'schedule NAME'; see 'redfleet backup --help'");
  const enc = encodeURIComponent(first);
  const { body: op } = await call(base, 'POST', `/api/instances/${enc}/backups`);
  if (json) console.log(JSON.stringify(op, null, 2));
  else console.log(`backup of ${first}: started (operation ${op.id})`);
  if (!values.wait) return;
  const done = await waitForOperation(base, first, String(op.id), intFlag(values.timeout, 'timeout', DEFAULT_WAIT_SECONDS, 1), json ? process.stderr : process.stdout);
  if (json) return void console.log(JSON.stringify(done, null, 2));
  const data = (done.operation as { data?: Record<string, unknown> } | undefined)?.data ?? {};
  console.log(`backup ${first}/${String(data.backupId)}: ${String(data.bytes)} bytes, sha256 ${String(data.sha256)}`);
}

async function listBackups(base: string, name: string, json: boolean): Promise<void> {
  const { body } = await call(base, 'GET', `/api/instances/${encodeURIComponent(name)}/backups`);
  const list = body as unknown as { id: string; createdAt: string; bytes: number; sha256: string }[];
  if (json) return void console.log(JSON.stringify(list, null, 2));
  if (list.length === 0) return void console.log(`no backups of ${name}`);
  for (const b of list) console.log([b.id, b.createdAt, `${b.bytes} bytes`, b.sha256].join('\t'));
}

type Say = (text: string, obj: Record<string, unknown>) => void;

async function deleteBackup(base: string, name: string, id: string, say: Say): Promise<void> {
  await call(base, 'DELETE', `/api/instances/${encodeURIComponent(name)}/backups/${encodeURIComponent(id)}`);
  say(`backup ${name}/${id}: deleted`, { instance: name, deleted: id });
}

async function scheduleBackups(base: string, name: string, values: Record<string, string | boolean | undefined>, say: Say): Promise<void> {
  if (values.off && (values.every !== undefined || values.keep !== undefined)) throw new UsageError('--off takes no --every or --keep');
  if (!values.off && (values.every === undefined || values.keep === undefined)) throw new UsageError('backup schedule needs --every MINUTES and --keep N, or --off');
  const backup = values.off ? null : { everyMinutes: intFlag(values.every, 'every', 60, 1), keep: intFlag(values.keep, 'keep', 24, 1) };
  await call(base, 'PATCH', `/api/instances/${encodeURIComponent(name)}`, { backup });
  say(backup ? `backups of ${name}: every ${backup.everyMinutes} min, keeping ${backup.keep}` : `backups of ${name}: no schedule`, { instance: name, backup });
}
