import { setTimeout as sleep } from 'node:timers/promises';
import { InstanceType, ProcType, type Instance, type Proc } from '../domain/model.js';
import type { Operation } from '../domain/operation.js';
import { isLive, isRunning, namedMaster } from '../domain/rules.js';
import { InvalidInputError, OperationRefusedError } from '../errors.js';
import type { FleetStore } from '../store/fleet-store.js';
import type { Logger } from '../logger.js';
import type { ResourceBroker } from './offers.js';
import type { OperationHandler, Progress } from './operations.js';
import { offeredBinary, runsBinary } from './redis-binaries.js';
import { settleCheckpointedSwitchover, untilStoreShows, type ReplicaMoves, type Switchovers } from './replica-moves.js';

export interface UpgradeDeps {
  store: FleetStore;
  broker: ResourceBroker;
  log: Logger;
  moves: ReplicaMoves;
  switchovers: Switchovers;
  /** How long one new replica may take to be placed and synced. */
  moveTimeoutMs: number;
}


/**
 * The 'upgrade' operation: moves every proc of an instance onto another redis-server binary
 * (params.redisServer: a path, or a version) with no acknowledged write lost and no restart in
 * place. Order, which is what keeps the master's version never newer than a replica that syncs
 * from it (Redis replicates from an older master to a newer replica, not the reverse):
 *  1. each replica not on the binary is replaced by one on it, one at a time, each synced before
 *     the next (replaceReplica);
 *  2. the old master's replacement is added on the binary (the instance holds one replica more
 *     for a moment: a standalone instance gets its first replica here, so it loses nothing);
 *  3. a switchover promotes an upgraded, synced replica: every replica now runs the new binary;
 *  4. the old master, now a surplus replica that never has to sync from the new master, is retired.
 * Each pass reads the instance afresh, so a resumed run (a new leader term) goes on from where the
 * last one stopped; `data.steps` lists what was done, in order.
 */
const STANDALONE = 'a standalone instance (no replica) cannot be upgraded without restarting its only proc and losing its data; scale it to 1 replica first (it then upgrades with zero loss), or delete and re-create it';

export function rollingUpgrade(deps: UpgradeDeps): OperationHandler {
  return {
    kind: 'upgrade',
    check(name, params) {
      const wanted = params.redisServer;
      if (typeof wanted !== 'string' || wanted === '') throw new InvalidInputError('INVALID_REDIS_SERVER', 'redisServer', 'redisServer must be a binary path or a version, e.g. "/opt/redis-7.2/redis-server" or "7.2.4"');
      const offering = deps.broker.agents().filter((a) => a.connected && offeredBinary(a.redisServers ?? [], wanted));
      if (offering.length === 0) throw new InvalidInputError('UNKNOWN_REDIS_SERVER', 'redisServer', `no connected agent offers redis-server '${wanted}'; see the binaries each agent offers in GET /api/agents (agents offer more with --redis-server)`);
      if (deps.store.instance(name)?.type === InstanceType.Standalone) throw new OperationRefusedError(STANDALONE, 'redisServer');
    },
    run: (name, op, progress) => upgrade(deps, name, op, progress),
  };
}

async function upgrade(deps: UpgradeDeps, name: string, op: Operation, progress: Progress): Promise<void> {
  const wanted = String(op.params.redisServer);
  const steps = Array.isArray(op.data.steps) ? [...(op.data.steps as string[])] : [];
  const step = async (text: string, extra: Record<string, unknown> = {}): Promise<void> => {
    steps.push(text);
    await progress(text, { steps, ...extra });
  };
  await settleCheckpointedSwitchover(deps.switchovers, name, op, progress);
  if (deps.store.instance(name)?.redisServer !== wanted) {
    // From now on every new proc of the instance (a replacement after a loss too) runs the new binary.
    await progress(`recording ${wanted} as the binary of new procs`);
    await deps.store.setInstance(name, { RedisServer: wanted });
  }
  for (;;) {
    const inst = deps.store.instance(name);
    if (!inst) throw new Error(`instance '${name}' is gone`);
    const master = namedMaster(inst);
    if (!master || !isLive(master)) throw new Error(`instance '${name}' has no master right now; try again once it is RUNNING`);
    const replicas = liveReplicas(inst);
    const oldMaster = typeof op.data.oldMaster === 'string' ? replicas.find((r) => r.id === op.data.oldMaster) : undefined;
    const stale = replicas.filter((r) => !runsBinary(r, wanted) && r !== oldMaster);
    if (stale.length > 0) {
      await step(`replacing replica ${stale[0].id} (${describe(stale[0])}) with one on ${wanted}`);
      await deps.moves.replaceReplica(name, stale[0].id, { redisServer: wanted }, deps.moveTimeoutMs);
      await untilStoreShows(deps.store, name, () => !liveReplicas(deps.store.instance(name) ?? inst).some((r) => r.id === stale[0].id), `replica ${stale[0].id} to stop`);
      continue;
    }
    if (oldMaster) {
      await step(`retiring the old master ${oldMaster.id} (${describe(oldMaster)}), now a replica`);
      await deps.moves.retireReplica(name, oldMaster.id);
      await untilStoreShows(deps.store, name, () => !liveReplicas(deps.store.instance(name) ?? inst).some((r) => r.id === oldMaster.id), `old master ${oldMaster.id} to stop`);
      continue;
    }
    if (runsBinary(master, wanted)) return;
    if (replicas.length <= inst.expSlaves) {
      await step(`adding the master's replacement on ${wanted}`);
      // Placed as the master's replacement: the distribution counts it in the master's stead.
      await deps.moves.addReplica(name, { redisServer: wanted }, deps.moveTimeoutMs, `upgrade:${op.id}:${master.id}`, master.id);
      continue;
    }
    await switchOver(deps, inst, master, wanted, step, progress);
  }
}

/** Promotes a synced replica on the new binary; the old master is remembered, to be retired next. */
async function switchOver(deps: UpgradeDeps, inst: Instance, master: Proc, wanted: string, step: (t: string, extra: Record<string, unknown>) => Promise<void>, progress: Progress): Promise<void> {
  const to = liveReplicas(inst).find((r) => runsBinary(r, wanted) && isRunning(r) && r.stats?.masterLinkStatus === 'up');
  if (!to) {
    await sleep(250);
    return;
  }
  await step(`switching over from ${master.id} (${describe(master)}) to ${to.id} on ${wanted}`, { oldMaster: master.id });
  const result = await deps.switchovers.run(inst.name, {
    to: to.id,
    cause: `upgrade to ${wanted}`,
    beforeSwitch: (plan) => progress(`switching over from ${master.id} to ${plan.to}`, { plan }),
  });
  await progress(`switched over to ${result.to}`, { plan: null });
  deps.log.info('upgrade switched over', { instance: inst.name, proc: to.id, from: master.id, gapMs: result.gapMs });
  await untilStoreShows(deps.store, inst.name, () => deps.store.instance(inst.name)?.mname !== master.id, `the switchover from ${master.id}`);
}

function liveReplicas(inst: Instance): Proc[] {
  return inst.procs.filter((p) => p.type === ProcType.Replica && p.id !== inst.mname && isLive(p));
}

function describe(p: Proc): string {
  return p.redisVersion ? `${p.redisServer || 'default binary'} ${p.redisVersion}` : p.redisServer || 'the default binary';
}
