import { InstanceType, type Proc } from '../domain/model.js';
import type { Operation } from '../domain/operation.js';
import { countedReplicas, namedMaster } from '../domain/rules.js';
import { parseInfo } from '../domain/redis-info.js';
import { NotFoundError } from '../errors.js';
import type { OperationHandler, Progress } from './operations.js';
import type { OperationDeps } from './resize.js';
import { configSetAll } from './proc-settings.js';

/** How long placing and syncing the new replicas may take. */
const ADD_TIMEOUT_MS = 120_000;

/**
 * Scale replicas (`PATCH /api/instances/:name {"replicas"}`):
 * - adding places the new replicas as surge replicas (see proc-move.ts), which count only once
 *   their link is up; only then does ExpSlaves rise, so the instance stays RUNNING meanwhile;
 * - removing lowers ExpSlaves, then retires replicas, least caught-up (lowest offset) first,
 *   never the master;
 * - 0 replicas makes the instance Type S, and 0 to 1 makes it MS again; `min-replicas-to-write`
 *   follows on every proc (1 with replicas, 0 without): raised only once a replica is linked,
 *   lowered before the last replica goes, so writes never stop for want of a replica.
 * The choice of replicas to add or remove is checkpointed, so the next leader resumes it.
 */
export class ScaleOperation implements OperationHandler {
  readonly kind = 'scale' as const;

  constructor(private readonly deps: OperationDeps) {}

  async run(name: string, op: Operation, progress: Progress): Promise<void> {
    const inst = this.deps.store.instance(name);
    if (!inst) throw new NotFoundError('instance', name);
    const to = Number(op.params.replicas);
    const from = typeof op.params.from === 'number' ? op.params.from : inst.expSlaves;
    await progress(`scaling from ${from} to ${to} replica(s)`);
    const live = countedReplicas(inst, namedMaster(inst)).length;
    const adding = Array.isArray(op.data.adding) || (!Array.isArray(op.data.removing) && to > live);
    if (adding) await this.add(name, op, to, progress);
    else await this.remove(name, op, to, progress);
    this.deps.log.info('instance scaled', { instance: name, replicas: to });
  }

  private async add(name: string, op: Operation, to: number, progress: Progress): Promise<void> {
    const { store, moves, links, log } = this.deps;
    const inst = store.instance(name)!;
    const adding = Array.isArray(op.data.adding)
      ? (op.data.adding as string[])
      // Replicas the maintainer already owes (ExpSlaves not met) come from it, not from here.
      : Array.from({ length: Math.max(0, to - Math.max(inst.expSlaves, countedReplicas(inst, namedMaster(inst)).length)) }, (_, i) => `scale:${op.id}:${i}`);
    await progress(`placing ${adding.length} new replica(s)`, { adding });
    await Promise.all(adding.map((key) => moves.addReplica(name, {}, ADD_TIMEOUT_MS, key)));
    await progress('counting the new replicas');
    await store.setInstance(name, { ExpSlaves: String(to), Type: InstanceType.MasterReplica });
    await progress('min-replicas-to-write 1 on every proc');
    await configSetAll(store, links, name, 'min-replicas-to-write', '1', log);
  }

  private async remove(name: string, op: Operation, to: number, progress: Progress): Promise<void> {
    const { store, moves, links, log } = this.deps;
    const removing = Array.isArray(op.data.removing) ? (op.data.removing as string[]) : await this.leastCaughtUp(name, to);
    await progress(`removing ${removing.length} replica(s), least caught-up first`, { removing });
    await store.setInstance(name, { ExpSlaves: String(to), Type: to === 0 ? InstanceType.Standalone : InstanceType.MasterReplica });
    if (to === 0) {
      // Before the last replica goes: a master that still asks for one would refuse every write.
      await progress('min-replicas-to-write 0: no replica left to wait for');
      await configSetAll(store, links, name, 'min-replicas-to-write', '0', log);
    }
    for (const id of removing) {
      await progress(`removing replica ${id}`);
      await moves.retireReplica(name, id);
    }
  }

  /** The replicas to retire to keep `to`: the lowest replication offset first (unreachable ones before all). */
  private async leastCaughtUp(name: string, to: number): Promise<string[]> {
    const inst = this.deps.store.instance(name)!;
    const master = namedMaster(inst);
    const replicas = countedReplicas(inst, master).filter((p) => p.id !== inst.mname);
    const ranked = await Promise.all(replicas.map(async (p) => ({ id: p.id, offset: await this.offsetOf(p) })));
    return leastCaughtUpFirst(ranked).slice(0, Math.max(0, replicas.length - to));
  }

  private async offsetOf(proc: Proc): Promise<number> {
    const text = await this.deps.links.call(proc, 'INFO', 'replication');
    if (typeof text !== 'string') return -1;
    const info = parseInfo(text);
    return Number(info.get('slave_repl_offset') ?? info.get('master_repl_offset') ?? -1);
  }
}

/** Replica ids, the lowest replication offset first (-1, unreachable, before all), then by id. Pure. */
export function leastCaughtUpFirst(replicas: { id: string; offset: number }[]): string[] {
  return [...replicas].sort((a, b) => a.offset - b.offset || a.id.localeCompare(b.id)).map((r) => r.id);
}
