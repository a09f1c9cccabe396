import { UsageError } from '../errors.js';
import { intFlag, parseFlags } from './args.js';
import { apiBase, apiFlag, call, CONNECTION_FLAGS, waitForOperation } from './api-client.js';

/** `redfleet resize` and `redfleet scale`: the PATCH operations on an instance, followed with --wait. */

export const RESIZE_HELP = `Usage: redfleet resize NAME --capacity MB [flags]
Changes the memory of every proc of the instance (redis maxmemory), in place: no proc restarts
where its agent has the room. Growing reserves the extra memory on each agent; a proc whose agent
lacks it moves to another agent (a new replica synced first, a master switched over first).
Shrinking below the memory in use is refused (409, with the numbers).

  --capacity MB        the new capacity of each proc; required
  --wait               print each step until the resize ends; exit 1 if it fails
  --timeout SECONDS    with --wait: give up after this long; default 300
  --output json        print the API's JSON (the instance, then with --wait its end state)
${CONNECTION_FLAGS}`;

export const SCALE_HELP = `Usage: redfleet scale NAME --replicas N [flags]
Changes the number of replicas. New replicas count once their link to the master is up; removing
takes the least caught-up replicas first and never the master. 0 makes the instance standalone
(Type S); 0 to 1 makes it master/replica again.

  --replicas N         the number of replicas wanted; required
  --wait               print each step until the scale ends; exit 1 if it fails
  --timeout SECONDS    with --wait: give up after this long; default 300
  --output json        print the API's JSON (the instance, then with --wait its end state)
${CONNECTION_FLAGS}`;

/** One help line each, for \`redfleet --help\`. */
export const INSTANCE_CHANGE_USAGE = `  redfleet resize NAME --capacity MB [--wait [--timeout 300]] [--output json]
  redfleet scale NAME --replicas N [--wait [--timeout 300]] [--output json]`;

const DEFAULT_WAIT_SECONDS = 300;

export async function resizeCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseChange(argv, 'capacity');
  if (values.help) return void console.log(RESIZE_HELP);
  if (values.capacity === undefined) throw new UsageError('resize needs --capacity MB');
  await change(positionals, values, 'resize', { capacityMb: intFlag(values.capacity, 'capacity', 0, 1) });
}

export async function scaleCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseChange(argv, 'replicas');
  if (values.help) return void console.log(SCALE_HELP);
  if (values.replicas === undefined) throw new UsageError('scale needs --replicas N');
  await change(positionals, values, 'scale', { replicas: intFlag(values.replicas, 'replicas', 0, 0) });
}

function parseChange(argv: string[], flag: string): ReturnType<typeof parseFlags> {
  return parseFlags(argv, { ...apiFlag, [flag]: { type: 'string' }, wait: { type: 'boolean' }, timeout: { type: 'string' }, output: { type: 'string' } });
}

async function change(positionals: string[], values: Record<string, string | boolean | undefined>, verb: string, body: Record<string, number>): Promise<void> {
  if (positionals.length !== 1) throw new UsageError(`${verb} takes exactly one NAME`);
  if (values.output !== undefined && values.output !== 'json') throw new UsageError(`--output takes only 'json', got '${String(values.output)}'`);
  const json = values.output === 'json';
  const waitSeconds = intFlag(values.timeout, 'timeout', DEFAULT_WAIT_SECONDS, 1);
  const name = positionals[0];
  const base = apiBase(values.api, values.token);
  const { body: inst } = await call(base, 'PATCH', `/api/instances/${encodeURIComponent(name)}`, body);
  const op = inst.operation as { id: string; kind: string; step: string } | null;
  if (json) console.log(JSON.stringify(inst, null, 2));
  else console.log(`instance ${name}: ${verb} started (${Object.entries(body).map(([k, v]) => `${k} ${v}`).join(', ')})`);
  if (!values.wait || !op) return;
  const end = await waitForOperation(base, name, op.id, waitSeconds, json ? process.stderr : process.stdout);
  if (json) console.log(JSON.stringify(end, null, 2));
  else console.log(`instance ${name}: ${verb} done: ${end.capacityMb} MB, ${(end.slaves as unknown[]).length} of ${end.replicas} replica(s) running, ${end.status}`);
}
