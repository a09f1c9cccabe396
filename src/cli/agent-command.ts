import { cpus as osCpus, totalmem } from 'node:os';
import { resolve } from 'node:path';
import { DEFAULT_STATS_HEARTBEAT_SECONDS, RedFleetAgent } from '../executor/agent.js';
import { defaultFleetKeyPath, loadFleetKey } from '../store/secrets.js';
import { DEFAULT_PREFIX } from '../store/keys.js';
import { intFlag, parseFlags, portRangeFlag, str } from './args.js';
import { UsageError } from '../errors.js';
import { AGENT_ID_PATTERN } from '../domain/names.js';
import { binaryPaths } from '../executor/redis-binaries.js';
import type { Endpoints } from './explain.js';
import { previousFleetKey } from './fleet-key.js';
import { stopOnSignal } from './signals.js';

export const AGENT_HELP = `Usage: redfleet agent --scheduler URL --id NAME [flags]
Runs an agent: offers this host's memory, CPUs and ports and runs the redis-servers it is given.

  --scheduler URL            the scheduler's API, e.g. http://10.0.0.1:5656; required
  --id NAME                  this agent's unique name (letters, digits, "_", "." or "-"); required
  --etcd URLS                etcd client URLs; default $REDFLEET_ETCD, else http://127.0.0.1:2379
  --prefix PATH              etcd key prefix; default $REDFLEET_PREFIX, else /MrRedis
  --ip ADDR                  the address clients reach this host's redis-servers at; default 127.0.0.1
  --cpus N                   CPUs to offer; default all of this host's (${osCpus().length})
  --mem MB                   memory to offer; default 75% of this host's
  --ports FIRST-LAST         ports for redis-servers; default 6380-6479
  --work-dir DIR             proc directories; default .redfleet/agents/<id>
  --redis-server PATH        a redis-server binary; repeat it (or give a comma list) to offer several for
                             rolling upgrades, the first being the default; default redis-server (on PATH)
  --fleet-key FILE           the fleet key file, copied from the scheduler; default $REDFLEET_FLEET_KEY, else .redfleet/fleet.key
  --previous-fleet-key FILE  during a fleet key rotation, the old key; default $REDFLEET_PREVIOUS_FLEET_KEY, else none
  --stats-heartbeat SECONDS  write a proc's Stats to etcd at least this often, else only on a meaningful change; default 20
  --keep-procs-on-stop       on SIGINT/SIGTERM leave the redis-servers running (an agent upgrade): the next agent
                             with this id adopts them if it starts within the scheduler's --agent-timeout;
                             default: stop them. A SIGKILLed agent always leaves them to the next one.
  -h, --help                 this text`;

/** `redfleet agent`: runs this node's agent until SIGINT/SIGTERM. */
export async function agentCommand(argv: string[], endpoints: Endpoints): Promise<void> {
  const { values } = parseFlags(argv, {
    scheduler: { type: 'string' },
    etcd: { type: 'string' },
    id: { type: 'string' },
    ip: { type: 'string' },
    cpus: { type: 'string' },
    mem: { type: 'string' },
    ports: { type: 'string' },
    'work-dir': { type: 'string' },
    'redis-server': { type: 'string', multiple: true },
    'fleet-key': { type: 'string' },
    'previous-fleet-key': { type: 'string' },
    prefix: { type: 'string' },
    'stats-heartbeat': { type: 'string' },
    'keep-procs-on-stop': { type: 'boolean' },
  });
  if (values.help) return void console.log(AGENT_HELP);
  if (typeof values.scheduler !== 'string') throw new UsageError('agent needs --scheduler URL (the scheduler API, e.g. http://127.0.0.1:5656)');
  if (typeof values.id !== 'string' || !AGENT_ID_PATTERN.test(values.id)) throw new UsageError('agent needs --id NAME (letters, digits, "_", "." or "-")');
  const schedulerUrl = /^https?:\/\//.test(values.scheduler) ? values.scheduler.replace(/\/$/, '') : `http://${values.scheduler}`;
  const etcd = str(values.etcd, process.env.REDFLEET_ETCD ?? 'http://127.0.0.1:2379');
  endpoints.etcd = etcd;
  endpoints.scheduler = schedulerUrl;
  const id = values.id;
  const keyPath = resolve(str(values['fleet-key'], defaultFleetKeyPath()));
  const ports = portRangeFlag(str(values.ports, '6380-6479'), 'ports');
  const agent = new RedFleetAgent({
    schedulerUrl,
    etcd,
    prefix: str(values.prefix, process.env.REDFLEET_PREFIX ?? DEFAULT_PREFIX),
    id,
    ip: str(values.ip, '127.0.0.1'),
    cpus: intFlag(values.cpus, 'cpus', osCpus().length),
    mem: intFlag(values.mem, 'mem', Math.floor((totalmem() / 1024 / 1024) * 0.75), 1),
    ports,
    workDir: resolve(str(values['work-dir'], resolve('.redfleet', 'agents', id))),
    redisServer: redisServerFlag(values['redis-server'] as unknown as string[] | undefined),
    fleetKey: loadFleetKey(keyPath, false).key,
    statsHeartbeatSeconds: intFlag(values['stats-heartbeat'], 'stats-heartbeat', DEFAULT_STATS_HEARTBEAT_SECONDS, 1),
    previousFleetKey: previousFleetKey(values['previous-fleet-key']),
    stopProcsOnExit: values['keep-procs-on-stop'] !== true,
  });
  await agent.start();
  stopOnSignal(() => agent.stop());
}

/** `--redis-server` given once, several times or as a comma list: one comma list, the first the default. */
function redisServerFlag(values: string[] | undefined): string {
  const paths = binaryPaths(values ?? []);
  return paths.length > 0 ? paths.join(',') : 'redis-server';
}
