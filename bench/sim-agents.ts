/**
 * bench/sim-agents: N simulated RedFleet agents in one process, against a real scheduler and a
 * real etcd (docs/scale.md). Each speaks the real agent protocol with its own id, fleet-key-signed
 * SUBSCRIBE and resources, runs what it is LAUNCHed as simulated procs (a RESP responder each, on
 * the agent's own loopback address), reports their stats every second and writes them to etcd as
 * a real agent does, and carries out Msg orders. Failures are injected through the control port
 * (bench/sim/control.ts).
 *
 *   npm run build && node dist/bench/sim-agents.js --scheduler http://127.0.0.1:5656 \
 *       --etcd http://127.0.0.1:2379 --fleet-key .redfleet/fleet.key --agents 200 --control 5700
 *
 * It prints one line `ready {"agents":N,...}` on stdout once every agent is SUBSCRIBED, and stops
 * every agent cleanly (procs reported KILLED) on SIGINT, SIGTERM or POST /stop.
 *
 * Started with an IPC channel (as a shard, by test/harness/sim-agents.ts), it sends its procs'
 * changes to the parent, which relays them to the other shards, and applies theirs
 * (bench/sim/shard-world.ts).
 */
import { loadFleetKey } from '../src/store/secrets.js';
import { parsePortRange } from '../src/proto/messages.js';
import { fail, parseFlags, runMain, type Program } from './program.js';
import { SimFleet } from './sim/sim-fleet.js';
import { startControl } from './sim/control.js';
import type { WorldEvent } from './sim/shard-world.js';

const USAGE = `usage: node dist/bench/sim-agents.js --scheduler URL --etcd URLS --fleet-key FILE [--agents 100]
       [--first 0] [--cpus 16] [--mem 8192] [--ports 7000-7099] [--prefix /MrRedis] [--control PORT] [--log-level warn]
  --agents N       simulated agents (ids sim<first>..sim<first+N-1>, addresses 127.1.x.y)
  --first I        index of the first agent, to run several simulators against one fleet
  --cpus, --mem    each agent's resources (a proc takes 0.1 cpu and its capacity in MB)
  --ports A-B      each agent's port range (every agent has its own address, so all share it)
  --control PORT   the control port on 127.0.0.1 (failures on command); none when absent`;

const PROGRAM: Program = { name: 'sim-agents', usage: USAGE };

function whole(value: string | boolean | undefined, flag: string, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  const text = String(value);
  if (!/^[0-9]{1,6}$/.test(text) || Number(text) > max) fail(PROGRAM, `--${flag} must be a whole number up to ${max}, got '${text}'`);
  return Number(text);
}

/** Sends this shard's changes to the parent, those of one turn of the loop in one message. */
function shardPublisher(): (ev: WorldEvent) => void {
  let batch: WorldEvent[] = [];
  return (ev) => {
    if (batch.length === 0) {
      setImmediate(() => {
        const out = batch;
        batch = [];
        if (process.connected) process.send?.({ world: out });
      });
    }
    batch.push(ev);
  };
}

async function main(): Promise<number> {
  const v = parseFlags(PROGRAM, process.argv.slice(2), {
    scheduler: { type: 'string' }, etcd: { type: 'string' }, 'fleet-key': { type: 'string' }, agents: { type: 'string' },
    first: { type: 'string' }, cpus: { type: 'string' }, mem: { type: 'string' }, ports: { type: 'string' },
    prefix: { type: 'string' }, control: { type: 'string' }, 'log-level': { type: 'string' },
  });
  if (!v.scheduler || !v.etcd || !v['fleet-key']) fail(PROGRAM, `--scheduler, --etcd and --fleet-key are required\n${USAGE}`);
  let ports;
  try {
    ports = parsePortRange(String(v.ports ?? '7000-7099'));
  } catch (err) {
    fail(PROGRAM, (err as Error).message);
  }
  const fleet = new SimFleet({
    agents: whole(v.agents, 'agents', 100, 64_000),
    first: whole(v.first, 'first', 0, 63_999),
    schedulerUrl: String(v.scheduler),
    etcd: String(v.etcd),
    prefix: String(v.prefix ?? '/MrRedis'),
    fleetKey: loadFleetKey(String(v['fleet-key']), false).key,
    cpus: whole(v.cpus, 'cpus', 16, 100_000),
    mem: whole(v.mem, 'mem', 8192, 10_000_000),
    ports,
    logLevel: typeof v['log-level'] === 'string' ? v['log-level'] : undefined,
    publish: process.send ? shardPublisher() : undefined,
  });
  process.on('message', (message: { world?: WorldEvent[] }) => {
    for (const ev of message.world ?? []) fleet.applyRemote(ev);
  });
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= fleet.stop();
    return stopping;
  };
  const stopped = new Promise<void>((resolve) => {
    const onSignal = () => void stop().then(resolve, resolve);
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    if (v.control !== undefined) {
      void startControl(fleet, whole(v.control, 'control', 0, 65535), onSignal).then((server) => {
        void stopped.then(() => server.close());
      });
    }
  });
  const t0 = Date.now();
  try {
    await fleet.start();
  } catch (err) {
    await stop();
    throw err;
  }
  console.log(`ready ${JSON.stringify({ ...fleet.summary(), startMs: Date.now() - t0 })}`);
  await stopped;
  if (process.connected) process.disconnect();
  // Anything still holding the loop (a socket the scheduler keeps open) must not hold the exit.
  setTimeout(() => process.exit(process.exitCode ?? 0), 2000).unref();
  return 0;
}

runMain('sim-agents', main);
