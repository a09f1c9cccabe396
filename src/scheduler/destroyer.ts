import { InstanceStatus, type Proc } from '../domain/model.js';
import { isLive } from '../domain/rules.js';
import { isShuttingDown, shutdownFields } from '../domain/message.js';
import type { FrameworkContext } from './framework-context.js';
import type { Creator } from './creator.js';

/**
 * The destroyer: shuts down every proc of a DELETING instance, then marks it DELETED. Runs in
 * the destroyer queue, one instance at a time.
 */
export class Destroyer {
  /** Procs already sent SHUTDOWN, so a Msg reset does not trigger a second one. */
  private readonly shutdownSent = new Set<string>();

  constructor(private readonly ctx: FrameworkContext, private readonly creator: Pick<Creator, 'drop'>) {}

  async destroy(name: string): Promise<void> {
    const { store, procs, log } = this.ctx;
    const inst = store.instance(name);
    if (!inst || inst.status !== InstanceStatus.Deleting) return;
    this.creator.drop(name);
    const live = inst.procs.filter(isLive);
    for (const proc of live) {
      if (!procs.brokerHas(proc.sid) && !store.agentRecord(proc.sid)) {
        await procs.markLost(proc, 'its agent is gone');
        continue;
      }
      if (await this.requestShutdown(name, proc)) log.info('shutdown requested', { instance: name, proc: proc.id, agent: proc.sid });
    }
    if (live.length > 0) return;
    for (const proc of inst.procs) this.shutdownSent.delete(proc.id);
    await store.clearSnames(name);
    if (!(await store.setInstance(name, { Status: InstanceStatus.Deleted, Masters: '0', Slaves: '0', Mname: '', Reason: '', DeletedAt: new Date().toISOString() }, InstanceStatus.Deleting))) return;
    log.info('instance status', { instance: name, status: InstanceStatus.Deleted });
  }

  /** Writes SHUTDOWN into the proc's Msg unless it was sent already; true when it was written now. */
  async requestShutdown(instance: string, proc: Proc): Promise<boolean> {
    if (isShuttingDown(proc) || this.shutdownSent.has(proc.id)) return false;
    this.shutdownSent.add(proc.id);
    await this.ctx.store.setProc(instance, proc.id, shutdownFields());
    return true;
  }
}
