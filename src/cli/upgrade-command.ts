import { UsageError } from '../errors.js';
import { intFlag, parseFlags } from './args.js';
import { apiBase, apiFlag, call, CONNECTION_FLAGS, waitForOperation } from './api-client.js';
import { jsonOutput } from './drain-command.js';

export const UPGRADE_HELP = `Usage: redfleet upgrade --redis-server PATH|VERSION [NAME...] [flags]
Rolling redis-server upgrade, with no acknowledged write lost: each replica is replaced by one on the
new binary (one at a time, each synced before the next), then the master's replacement is added, a
switchover promotes an upgraded replica, and the old master is retired. With no NAME, every
instance, one at a time. Agents offer binaries with 'redfleet agent --redis-server' (see GET /api/agents).

  --redis-server B     the binary: a path an agent offers, or a version such as 7.2.4; required
  --wait               with one NAME: print each step until it is done (several NAMEs always wait,
                       since they go one at a time)
  --timeout SECONDS    per instance: give up after this long and exit 1 with the reason; default 600
  --output json        print each instance as the API shows it (at its end, when waiting); progress
                       lines then go to stderr
${CONNECTION_FLAGS}`;

const DEFAULT_WAIT_SECONDS = 600;

export async function upgradeCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseFlags(argv, { ...apiFlag, 'redis-server': { type: 'string' }, wait: { type: 'boolean' }, timeout: { type: 'string' }, output: { type: 'string' } });
  if (values.help) return void console.log(UPGRADE_HELP);
  const binary = values['redis-server'];
  if (typeof binary !== 'string' || binary === '') throw new UsageError('upgrade needs --redis-server PATH or VERSION');
  const json = jsonOutput(values.output);
  const waitSeconds = intFlag(values.timeout, 'timeout', DEFAULT_WAIT_SECONDS, 1);
  const base = apiBase(values.api, values.token);
  const names = positionals.length > 0 ? positionals : await activeInstances(base);
  const wait = Boolean(values.wait) || names.length > 1;
  for (const name of names) {
    const { body } = await call(base, 'POST', `/api/instances/${encodeURIComponent(name)}/upgrade`, { redisServer: binary });
    const op = body.operation as { id: string; step: string };
    if (!json) console.log(`instance ${name}: upgrade to ${binary} started`);
    const last = wait ? await quietIf(json, () => waitForOperation(base, name, op.id, waitSeconds)) : body;
    if (json) console.log(JSON.stringify(last, null, 2));
  }
  if (wait && !json) console.log(`upgraded ${names.length} instance(s) to ${binary}`);
}

/** Runs `fn` with its console.log lines (waitForOperation's progress) sent to stderr when `quiet`. */
async function quietIf<T>(quiet: boolean, fn: () => Promise<T>): Promise<T> {
  if (!quiet) return fn();
  const log = console.log;
  console.log = (...args: unknown[]) => console.error(...args);
  try {
    return await fn();
  } finally {
    console.log = log;
  }
}

async function activeInstances(base: string): Promise<string[]> {
  const { body } = await call(base, 'GET', '/api/instances');
  const all = body as unknown as { name: string; status: string }[];
  return all.filter((i) => i.status === 'RUNNING' || i.status === 'DEGRADED').map((i) => i.name);
}
