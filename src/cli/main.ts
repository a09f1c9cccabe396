#!/usr/bin/env node
import { FleetKeyError, UsageError } from '../errors.js';
import { CLIENT_HELP, createCommand, deleteCommand, listCommand, statusCommand } from './client.js';
import { devCommand, DEV_USAGE } from './dev.js';
import { explainError, type Endpoints } from './explain.js';
import { schedulerCommand } from './scheduler-command.js';
import { agentCommand } from './agent-command.js';
import { INSTANCE_CHANGE_USAGE, resizeCommand, scaleCommand } from './instance-change.js';
import { backupCommand } from './backup-command.js';
import { drainCommand, undrainCommand } from './drain-command.js';
import { upgradeCommand } from './upgrade-command.js';
import { failoverCommand } from './failover-command.js';
import { rebalanceCommand } from './rebalance-command.js';
import { topCommand } from './top-command.js';

const HELP = `redfleet: Redis-as-a-service on a two-level scheduler

Fleet processes:
  redfleet scheduler --etcd URLS [--api HOST:PORT] [--sentinel HOST:PORT] [--fleet-key FILE] [--api-token-file FILE] ...
  redfleet agent --scheduler URL --id NAME [--etcd URLS] [--mem MB] [--ports FIRST-LAST] ...
${DEV_USAGE}

${CLIENT_HELP}

Every client command takes --output json (progress, if any, then goes to stderr).

Day-2 operations (each waits with --wait: a spinner on a terminal, else a line per step; docs/operations.md):
${INSTANCE_CHANGE_USAGE}
  redfleet backup NAME [--wait] | backup list NAME | backup delete NAME ID | backup schedule NAME --every M --keep N
  redfleet drain AGENT [--wait [--timeout 600]]   |   redfleet undrain AGENT
  redfleet upgrade --redis-server PATH|VERSION [NAME...] [--wait]
  redfleet failover NAME [--to PROC] [--wait [--timeout 60]]   planned switchover, no acknowledged write lost
  redfleet rebalance [--dry-run] [--wait [--timeout 600]]   spread masters: at most ceil(masters/agents)+1 per agent

Environment: REDFLEET_API, REDFLEET_TOKEN (client commands), REDFLEET_API_TOKEN (scheduler), REDFLEET_ETCD,
REDFLEET_SENTINEL, REDFLEET_SENTINEL_PASSWORD, REDFLEET_PREFIX, REDFLEET_FLEET_KEY, REDFLEET_PREVIOUS_FLEET_KEY, REDFLEET_LOG_LEVEL,
REDFLEET_BACKUP_DIR.`;

/** Where the running command points, so that a library error can say what to check. */
const endpoints: Endpoints = {};

/** Each command; the fleet processes record where they point in `endpoints`. */
const COMMANDS: Record<string, (argv: string[], endpoints: Endpoints) => Promise<void>> = {
  dev: devCommand,
  scheduler: schedulerCommand,
  agent: agentCommand,
  create: createCommand,
  status: statusCommand,
  list: listCommand,
  delete: deleteCommand,
  resize: resizeCommand,
  scale: scaleCommand,
  backup: backupCommand,
  drain: drainCommand,
  undrain: undrainCommand,
  upgrade: upgradeCommand,
  failover: failoverCommand,
  rebalance: rebalanceCommand,
  top: topCommand,
};

/** Exit status of a bad command line, as for every other usage error. */
const USAGE_EXIT = 2;

async function main(): Promise<void> {
  const [command, ...rest] = process.argv.slice(2);
  if (command === undefined) {
    // No command is a mistake, not a request for help: a script that lost its arguments must fail.
    console.error(HELP);
    process.exit(USAGE_EXIT);
  }
  if (command === '--help' || command === '-h' || command === 'help') return void console.log(HELP);
  const run = COMMANDS[command];
  if (!run) throw new UsageError(`unknown command '${command}'; run 'redfleet --help'`);
  await run(rest, endpoints);
}

main().catch((err: Error) => {
  const known = err instanceof UsageError || err instanceof FleetKeyError;
  console.error(`redfleet: ${known ? err.message : explainError(err, endpoints)}`);
  // A wrong or missing fleet key is a setup error like a bad flag: retrying cannot help.
  process.exit(known ? USAGE_EXIT : 1);
});
