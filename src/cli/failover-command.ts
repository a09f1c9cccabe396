import { UsageError } from '../errors.js';
import { intFlag, parseFlags } from './args.js';
import { jsonOutput } from './drain-command.js';
import { apiBase, apiFlag, call, CONNECTION_FLAGS, waitForOperation } from './api-client.js';

export const FAILOVER_HELP = `Usage: redfleet failover NAME [flags]
Planned switchover: a replica becomes the master with no write acknowledged by WAIT 1 lost. The
master's writes pause for a few ms while the replica catches up; the old master stays, as a
replica of the new one. Clients following the Sentinel endpoint get +switch-master.

  --to PROC            the replica to promote (a proc id from 'redfleet status NAME --json');
                       default the best replica (highest offset)
  --wait               print each step until the switchover ends
  --timeout SECONDS    with --wait: give up after this long and exit 1 with the reason; default 60
  --output json        print the instance as the API shows it (at its end, with --wait); progress
                       goes to stderr; default text
${CONNECTION_FLAGS}`;

const DEFAULT_WAIT_SECONDS = 60;

/** `redfleet failover NAME [--to PROC] [--wait] [--timeout S]`: POST /api/instances/:name/failover. */
export async function failoverCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseFlags(argv, {
    ...apiFlag,
    to: { type: 'string' },
    wait: { type: 'boolean' },
    timeout: { type: 'string' },
    output: { type: 'string' },
  });
  if (values.help) return void console.log(FAILOVER_HELP);
  if (positionals.length !== 1) throw new UsageError('failover takes exactly one NAME');
  const name = positionals[0];
  const json = jsonOutput(values.output);
  const seconds = intFlag(values.timeout, 'timeout', DEFAULT_WAIT_SECONDS, 1);
  const base = apiBase(values.api, values.token);
  const body = typeof values.to === 'string' ? { to: values.to } : undefined;
  const { body: inst } = await call(base, 'POST', `/api/instances/${encodeURIComponent(name)}/failover`, body);
  const op = inst.operation as { id: string; step: string };
  if (!values.wait) return void console.log(json ? JSON.stringify(inst, null, 2) : `switchover of ${name} started (operation ${op.id})`);
  if (!json) console.log(`switchover of ${name} started (operation ${op.id})`);
  const done = await waitForOperation(base, name, op.id, seconds, json ? process.stderr : process.stdout);
  if (json) return void console.log(JSON.stringify(done, null, 2));
  const master = done.master as { id: string; ip: string; port: number } | null;
  console.log(`${name}: master is now ${master ? `${master.id} at ${master.ip}:${master.port}` : 'unknown'} (epoch ${String(done.epoch)})`);
}
