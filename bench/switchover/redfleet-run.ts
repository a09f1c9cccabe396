/**
 * bench/switchover/redfleet-run: the RedFleet side. One LocalFleet (etcd, a scheduler, AGENTS
 * agents) and one instance (1 master + REPLICAS replicas); each run is one planned switchover
 * (POST /api/instances/:name/failover, the best replica) with a writer on, from whichever proc is
 * the master then.
 */
import { LocalFleet } from '../../test/harness/local-fleet.js';
import { waitFor } from '../failover/wait.js';
import { AGENTS, CAPACITY_MB, REPLICAS, RUN_TIMEOUT_MS, SETUP_TIMEOUT_MS, type Outcome, type Run } from './parameters.js';
import { series } from './series.js';
import { measureSwitch } from './writer-run.js';

const NAME = 'switch';

/* eslint-disable @typescript-eslint/no-explicit-any */
async function view(fleet: LocalFleet): Promise<any> {
  return (await fleet.api('GET', `/api/instances/${NAME}`)).json;
}

/** Whole again: RUNNING, no operation running, REPLICAS replicas listed with their links up. */
async function whole(fleet: LocalFleet): Promise<any> {
  return waitFor(`${NAME} to be whole`, SETUP_TIMEOUT_MS, async () => {
    const i = await view(fleet);
    const linked = (i.slaves ?? []).filter((p: any) => (p.stats?.masterLinkStatus ?? 'up') === 'up');
    return i.status === 'RUNNING' && i.operation?.state !== 'running' && linked.length === REPLICAS ? i : undefined;
  });
}

async function switchOnce(fleet: LocalFleet): Promise<{ ip: string; port: number; pausedMs?: number }> {
  const res = await fleet.api('POST', `/api/instances/${NAME}/failover`);
  if (res.status !== 202) throw new Error(`POST failover answered ${res.status}: ${res.text.slice(0, 200)}`);
  const id = res.json.operation.id;
  const ended = await waitFor('the switchover to end', RUN_TIMEOUT_MS, async () => {
    const i = await view(fleet);
    return i.operation?.id === id && i.operation.state !== 'running' ? i : undefined;
  });
  if (ended.operation.state !== 'done') throw new Error(`switchover ${ended.operation.state}: ${ended.operation.error}`);
  return { ip: ended.master.ip, port: ended.master.port, pausedMs: ended.operation.data?.result?.gapMs };
}

export async function benchFleet(runs: number, out: Outcome): Promise<void> {
  const fleet = await LocalFleet.start({ agents: AGENTS });
  try {
    const res = await fleet.api('POST', '/api/instances', { name: NAME, capacityMb: CAPACITY_MB, replicas: REPLICAS });
    if (res.status !== 202) throw new Error(`POST /api/instances answered ${res.status}: ${res.text.slice(0, 200)}`);
    const password = String(res.json.password);
    await series('RedFleet', runs, async (i): Promise<Run> => {
      await whole(fleet);
      return measureSwitch('RedFleet', `run ${i}`, fleet.sentinelPort, NAME, password, { run: () => switchOnce(fleet) });
    }, out);
  } finally {
    await fleet.stop();
  }
}
