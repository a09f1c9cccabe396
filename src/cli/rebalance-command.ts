import { setTimeout as sleep } from 'node:timers/promises';
import { UsageError } from '../errors.js';
import type { RebalanceRecord } from '../domain/rebalance.js';
import { intFlag, parseFlags } from './args.js';
import { apiBase, apiFlag, call, CONNECTION_FLAGS } from './api-client.js';
import { jsonOutput } from './drain-command.js';

export const REBALANCE_HELP = `Usage: redfleet rebalance [flags]
Moves masters by planned switchover, one instance at a time, until no agent holds more than
ceil(masters / agents) + 1 masters. No acknowledged write is lost; each instance's switchover
shows in its status. Prints the plan: which instance's master moves from which agent to which.

  --dry-run            print the plan only; move nothing
  --wait               print each step until the rebalance ends
  --timeout SECONDS    with --wait: give up after this long and exit 1 with the reason; default 600
  --output json        print the rebalance record (at its end, with --wait); progress goes to stderr
${CONNECTION_FLAGS}`;

const DEFAULT_WAIT_SECONDS = 600;

/** `redfleet rebalance [--dry-run] [--wait] [--timeout S]`: POST /api/rebalance. */
export async function rebalanceCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseFlags(argv, {
    ...apiFlag,
    'dry-run': { type: 'boolean' },
    wait: { type: 'boolean' },
    timeout: { type: 'string' },
    output: { type: 'string' },
  });
  if (values.help) return void console.log(REBALANCE_HELP);
  if (positionals.length !== 0) throw new UsageError('rebalance takes no arguments');
  const seconds = intFlag(values.timeout, 'timeout', DEFAULT_WAIT_SECONDS, 1);
  const base = apiBase(values.api, values.token);
  const dryRun = values['dry-run'] === true;
  const { body } = await call(base, 'POST', '/api/rebalance', dryRun ? { dryRun } : undefined);
  const record = body as unknown as RebalanceRecord;
  const json = jsonOutput(values.output);
  if (json) console.log(JSON.stringify(record, null, 2));
  else printPlan(record);
  if (dryRun || !values.wait || record.state !== 'running') return;
  const end = await waitForRebalance(base, record.id, seconds, json ? (line) => console.error(line) : (line) => console.log(line));
  if (json) console.log(JSON.stringify(end, null, 2));
}

function printPlan(r: RebalanceRecord): void {
  const { plan } = r;
  console.log(`${plan.masters} master(s) on ${plan.agents} agent(s): at most ${plan.limit} per agent`);
  console.log(`masters per agent now: ${Object.entries(plan.before).map(([a, n]) => `${a}=${n}`).join(' ')}`);
  for (const m of plan.moves) console.log(`move ${m.instance}: ${m.from} -> ${m.to}`);
  console.log(`after: ${Object.entries(plan.after).map(([a, n]) => `${a}=${n}`).join(' ')}`);
  console.log(`rebalance: ${r.step}`);
}

/** Prints one line per step of rebalance `id` until it ends; throws when it failed or after `seconds`. */
async function waitForRebalance(base: string, id: string, seconds: number, say: (line: string) => void): Promise<RebalanceRecord> {
  const started = Date.now();
  let last = '';
  for (;;) {
    const r = (await call(base, 'GET', '/api/rebalance')).body as unknown as RebalanceRecord;
    if (r.id !== id) throw new Error(`rebalance ${id} was replaced by another; see GET /api/rebalance`);
    const line = `rebalance: ${r.state === 'running' ? r.step : `${r.state}: ${r.step}`}`;
    if (line !== last) say(`${line} (${Math.round((Date.now() - started) / 1000)} s)`);
    last = line;
    if (r.state === 'done') {
      for (const s of r.skipped) say(`skipped: ${s}`);
      return r;
    }
    if (r.state === 'failed') throw new Error(`rebalance failed: ${r.error ?? r.step}`);
    if (Date.now() - started > seconds * 1000) throw new Error(`gave up waiting for the rebalance after ${seconds} s: ${r.step}`);
    await sleep(200);
  }
}
