import { setTimeout as sleep } from 'node:timers/promises';
import { UsageError } from '../errors.js';
import { intFlag, parseDuration, parseFlags } from './args.js';
import { apiBase, apiFlag, call, CONNECTION_FLAGS } from './api-client.js';
import { jsonOutput } from './drain-command.js';
import { liveView } from './live.js';
import { progress } from './progress.js';
import { addCreateBackupFields, CREATE_BACKUP_FLAGS, CREATE_BACKUP_HELP } from './backup-command.js';
import { InstanceStatus, ProcState } from '../domain/model.js';

/** Client commands: create, status, list, delete. They speak the JSON API. */

export const CREATE_HELP = `Usage: redfleet create NAME [flags]
Asks for a new instance: a master and --replicas replicas. Prints the password and the access key
once; keep them.

  --capacity MB        memory of each proc (redis maxmemory); default 64
  --replicas N         replicas besides the master, 0 for a standalone master; default 0
  --distribution N     at most N of the instance's procs on one agent; default 1
  --placement P        spread (fewest procs per agent) or binpack (fullest agent first); default spread
  --ttl DURATION       delete it after 90, 45s, 30m, 2h or 1d; default none (anonymous: the
                       scheduler's --anonymous-ttl)
${CREATE_BACKUP_HELP}
  --wait               show progress until the instance is RUNNING (a spinner on a terminal)
  --timeout SECONDS    with --wait: give up after this long and exit 1 with the reason; default 120
  --output json        print the API's JSON (progress goes to stderr); default text
${CONNECTION_FLAGS}

A create the connected agents could never hold is refused (409 NEVER_PLACEABLE, with the numbers).`;

export const STATUS_HELP = `Usage: redfleet status NAME [flags]
Shows an instance: its status (and why, while it is not RUNNING), its master and replicas.

  --watch              redraw every second until Ctrl-C (not on a terminal: print each change)
  --output json        print the API's JSON instead of the table (--json is the same); default text
${CONNECTION_FLAGS}`;

export const LIST_HELP = `Usage: redfleet list [flags]
One line per instance: name, type, status, capacity, replicas running of wanted, master address.

  --output json        print the API's JSON (an object keyed by name); default text
${CONNECTION_FLAGS}`;

export const DELETE_HELP = `Usage: redfleet delete NAME [flags]
Deletes an instance: its redis-servers are stopped and its data is gone.

  --wait               show progress until the instance is DELETED (a spinner on a terminal)
  --timeout SECONDS    with --wait: give up after this long and exit 1 with the reason; default 120
  --output json        print the API's JSON (progress goes to stderr); default text
${CONNECTION_FLAGS}`;

/** The client commands in one block, for \`redfleet --help\`. */
export const CLIENT_HELP = `Client commands (they speak the JSON API at --api or REDFLEET_API, default http://127.0.0.1:5656,
and send REDFLEET_TOKEN or --token, an admin token or an instance's access key, when set):
  redfleet create NAME [--capacity 64] [--replicas 0] [--distribution 1] [--placement spread] [--ttl DURATION]
                       [--persistence none|rdb|aof] [--restore-from INSTANCE/ID] [--backup-every MINUTES --backup-keep N]
                       [--wait [--timeout 120]] [--output json]
  redfleet status NAME [--watch] [--output json]
  redfleet list [--output json]
  redfleet delete NAME [--wait [--timeout 120]] [--output json]
  redfleet top [--interval 1] [--once [--output json]]   live table of agents and instances
  redfleet COMMAND --help   lists a command's flags and their defaults`;

const DEFAULT_WAIT_SECONDS = 120;

export async function createCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseFlags(argv, {
    ...apiFlag,
    capacity: { type: 'string' },
    replicas: { type: 'string' },
    distribution: { type: 'string' },
    ttl: { type: 'string' },
    placement: { type: 'string' },
    wait: { type: 'boolean' },
    timeout: { type: 'string' },
    output: { type: 'string' },
    ...CREATE_BACKUP_FLAGS,
  });
  if (values.help) return void console.log(CREATE_HELP);
  if (positionals.length !== 1) throw new UsageError('create takes exactly one NAME');
  const body: Record<string, unknown> = {
    name: positionals[0],
    capacityMb: intFlag(values.capacity, 'capacity', 64, 1),
    replicas: intFlag(values.replicas, 'replicas', 0),
    distribution: intFlag(values.distribution, 'distribution', 1, 1),
  };
  if (typeof values.ttl === 'string') body.ttlSeconds = parseDuration(values.ttl);
  const waitSeconds = intFlag(values.timeout, 'timeout', DEFAULT_WAIT_SECONDS, 1);
  if (typeof values.placement === 'string') body.placement = values.placement;
  addCreateBackupFields(values, body);
  const base = apiBase(values.api, values.token);
  const json = jsonOutput(values.output);
  const { body: inst } = await call(base, 'POST', '/api/instances', body);
  if (json) {
    console.log(JSON.stringify(inst, null, 2));
    if (values.wait) console.log(JSON.stringify(await waitFor(base, String(inst.name), (i) => i.status === InstanceStatus.Running, waitSeconds, process.stderr), null, 2));
    return;
  }
  console.log(`instance ${inst.name}: ${inst.status} (${inst.capacityMb} MB, ${inst.replicas} replica(s))`);
  console.log(`password:   ${inst.password}`);
  console.log(`access key: ${inst.accessKey}   (reads and deletes this instance only: --token or REDFLEET_TOKEN)`);
  console.log('keep them: they are shown only this once.');
  if (inst.expiresAt) console.log(`expires:    ${inst.expiresAt}`);
  if (values.wait) await waitFor(base, String(inst.name), (i) => i.status === InstanceStatus.Running, waitSeconds);
}

export async function statusCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseFlags(argv, { ...apiFlag, json: { type: 'boolean' }, output: { type: 'string' }, watch: { type: 'boolean' } });
  if (values.help) return void console.log(STATUS_HELP);
  if (positionals.length !== 1) throw new UsageError('status takes exactly one NAME');
  const json = values.json === true || jsonOutput(values.output);
  const base = apiBase(values.api, values.token);
  const path = `/api/instances/${encodeURIComponent(positionals[0])}`;
  const render = async (): Promise<string> => {
    const { body } = await call(base, 'GET', path);
    return json ? JSON.stringify(body, null, 2) : instanceLines(body).join('\n');
  };
  if (values.watch) return liveView(render);
  console.log(await render());
}

export async function listCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseFlags(argv, { ...apiFlag, output: { type: 'string' } });
  if (values.help) return void console.log(LIST_HELP);
  if (positionals.length !== 0) throw new UsageError('list takes no arguments');
  const json = jsonOutput(values.output);
  const { body } = await call(apiBase(values.api, values.token), 'GET', '/api/instances');
  if (json) return void console.log(JSON.stringify(body, null, 2));
  const rows = Object.values(body) as Record<string, unknown>[];
  if (rows.length === 0) return void console.log('no instances');
  console.log(['NAME', 'TYPE', 'STATUS', 'CAPACITY', 'REPLICAS', 'MASTER'].join('\t'));
  for (const i of rows) {
    const m = i.master as { ip: string; port: number } | null;
    console.log([i.name, i.type, i.status, `${i.capacityMb}MB`, `${(i.slaves as unknown[]).length}/${i.replicas}`, m ? `${m.ip}:${m.port}` : '-'].join('\t'));
  }
}

export async function deleteCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseFlags(argv, { ...apiFlag, wait: { type: 'boolean' }, timeout: { type: 'string' }, output: { type: 'string' } });
  if (values.help) return void console.log(DELETE_HELP);
  const json = jsonOutput(values.output);
  if (positionals.length !== 1) throw new UsageError('delete takes exactly one NAME');
  const waitSeconds = intFlag(values.timeout, 'timeout', DEFAULT_WAIT_SECONDS, 1);
  const base = apiBase(values.api, values.token);
  const { body } = await call(base, 'DELETE', `/api/instances/${encodeURIComponent(positionals[0])}`);
  if (json) console.log(JSON.stringify(body, null, 2));
  else console.log(`instance ${body.name}: ${body.status}`);
  if (!values.wait) return;
  const end = await waitFor(base, positionals[0], (i) => i.status === InstanceStatus.Deleted, waitSeconds, json ? process.stderr : process.stdout);
  if (json) console.log(JSON.stringify(end, null, 2));
}

/** An instance as the lines `status` prints. */
export function instanceLines(i: Record<string, unknown>): string[] {
  const lines: string[] = [];
  lines.push(`name:      ${i.name}`);
  lines.push(`type:      ${i.type}`);
  lines.push(`status:    ${i.status}${i.reason ? ` (${i.reason})` : ''}`);
  lines.push(`capacity:  ${i.capacityMb} MB`);
  lines.push(`replicas:  ${(i.slaves as unknown[]).length} of ${i.replicas}`);
  if (i.expiresAt) lines.push(`expires:   ${i.expiresAt} (in ${formatSeconds(Number(i.ttlRemainingSeconds))})`);
  if (i.dataLost) lines.push(`data lost: ${i.dataLost}`);
  if (i.persistence && i.persistence !== 'none') lines.push(`persistence: ${i.persistence}`);
  const backup = i.backup as { everyMinutes: number; keep: number } | null;
  if (backup) lines.push(`backups:   every ${backup.everyMinutes} min, keeping ${backup.keep}`);
  if (i.restoredFrom) lines.push(`restored from: ${i.restoredFrom}`);
  lines.push(`epoch:     ${i.epoch}`);
  const op = i.operation as { kind: string; state: string; step: string; error?: string; startedAt: string } | null;
  if (op) lines.push(`operation: ${op.kind} ${op.state}: ${op.error ?? op.step} (since ${op.startedAt})`);
  for (const p of i.procs as Record<string, unknown>[]) {
    const stats = p.stats as Record<string, unknown> | null;
    const link = stats?.masterLinkStatus ? ` link=${stats.masterLinkStatus}` : '';
    lines.push(`  ${String(p.role).padEnd(7)} ${String(p.state).padEnd(8)} ${p.ip}:${p.port} agent=${p.agent} pid=${p.pid}${link}`);
  }
  const failovers = (i.failovers ?? []) as { at: string; planned: boolean; cause: string; fromAddress: string; toAddress: string }[];
  if (failovers.length) lines.push('failovers (newest first):');
  for (const f of failovers.slice(0, 5)) lines.push(`  ${f.at} ${f.planned ? 'switchover' : 'failover  '} ${f.fromAddress || '?'} -> ${f.toAddress} (${f.cause})`);
  return lines;
}

/**
 * Polls the instance, showing each change on `stream` (a spinner with the current status on a
 * terminal, plain lines otherwise), until `done` holds; returns the instance then. After `seconds`
 * it gives up with an error that carries the last status and its reason, so a script sees why (exit 1).
 */
async function waitFor(base: string, name: string, done: (i: Record<string, unknown>) => boolean, seconds: number,
  stream: NodeJS.WriteStream = process.stdout): Promise<Record<string, unknown>> {
  const deadline = Date.now() + seconds * 1000;
  const shown = progress(stream, false);
  try {
    for (;;) {
      const { body } = await call(base, 'GET', `/api/instances/${encodeURIComponent(name)}`);
      const running = (body.procs as { state: string }[]).filter((p) => p.state === ProcState.Running).length;
      shown.step(`${body.status}: ${running} of ${Number(body.replicas) + 1} procs running${body.reason ? ` (${body.reason})` : ''}`);
      if (done(body)) return body;
      if (Date.now() >= deadline) throw new Error(`gave up waiting for instance ${name} after ${seconds} s: it is ${body.status}${body.reason ? `, ${body.reason}` : ''}`);
      await sleep(Math.min(200, Math.max(0, deadline - Date.now())));
    }
  } finally {
    shown.done();
  }
}

function formatSeconds(total: number): string {
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const sec = total % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(sec).padStart(2, '0')}s` : `${sec}s`;
}
