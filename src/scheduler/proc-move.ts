import { setTimeout as sleep } from 'node:timers/promises';
import { v4 as uuidv4 } from 'uuid';
import type { FleetStore } from '../store/fleet-store.js';
import { ProcType, type Instance, type Proc } from '../domain/model.js';
import { isActive, isLive, isRunning } from '../domain/rules.js';
import { isShuttingDown, SHUTDOWN_AT_FIELD, SHUTDOWN_MESSAGE, shutdownFields } from '../domain/message.js';
import { parseInfo } from '../domain/redis-info.js';
import { encodeSurge, type SurgeRequest } from '../domain/surge.js';
import { NotFoundError, OperationRefusedError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { RedisLinks } from './redis-links.js';
import type { AgentView } from './offers.js';

/** Where a moved replica may go. */
export interface MoveConstraints {
  /** Agents it must not go to. */
  avoidAgents?: string[];
  /** The redis-server binary (path or version) it must run (see surge-placement.ts's slotOffers). */
  redisServer?: string;
  /** Its capacity when it differs from the instance's (a resize that moves a proc). */
  capacityMb?: number;
}

/** How often a move looks at the tree while it waits. */
const POLL_MS = 100;
/** A retired replica still running after this long is killed through its agent's stream. */
const RETIRE_KILL_AFTER_MS = 5000;
/** A retire gives up waiting for the proc to end after this long. */
const RETIRE_TIMEOUT_MS = 20_000;

/**
 * Moving procs without loss, the primitive under drain, upgrade and resize: add a replica
 * placed under constraints (a surge replica beyond ExpSlaves, see domain/surge.ts), retire a
 * replica without the maintainer replacing it, or both. Masters are the caller's business:
 * switch over first, then retire the old master, now a replica. Every step is idempotent under
 * the same key, so an operation resumed by the next leader picks up the same replica.
 */
export class ProcMove {
  constructor(
    private readonly store: FleetStore,
    private readonly links: RedisLinks,
    private readonly log: Logger,
    /** The connected agents (to say why nothing was placed). */
    private readonly agents: () => AgentView[],
    /** Asks an agent to kill a task (a retired replica that ignores its SHUTDOWN). */
    private readonly kill: (agentId: string, taskId: string) => void,
  ) {}

  /**
   * Adds one replica placed by the creator under the constraints; resolves with its proc id once
   * it runs with its link up (master_link_status:up) and counts. Throws after `timeoutMs`, with
   * the request withdrawn and a replica placed for it but not yet linked stopped. `key` names
   * the request: called again with the same key (a resumed operation) it finds the same replica.
   */
  async addReplica(name: string, c: MoveConstraints, timeoutMs: number, key: string = uuidv4(), replacing?: string): Promise<string> {
    const linked = await this.linkedSurge(name, key);
    if (linked) {
      await this.withdraw(name, key);
      return linked.id;
    }
    await this.request(name, { id: key, avoidAgents: c.avoidAgents ?? [], redisServer: c.redisServer, capacityMb: c.capacityMb, replacing, requestedAt: new Date().toISOString() });
    this.log.info('surge replica requested', { instance: name, surge: key, avoidAgents: c.avoidAgents ?? [], redisServer: c.redisServer, capacityMb: c.capacityMb, replacing });
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const proc = await this.linkedSurge(name, key);
      if (proc) {
        await this.withdraw(name, key);
        this.log.info('surge replica linked', { instance: name, proc: proc.id, agent: proc.sid, surge: key });
        return proc.id;
      }
      await sleep(POLL_MS);
    }
    await this.giveUp(name, key);
    throw new OperationRefusedError(`no replica of '${name}' was placed and linked within ${Math.round(timeoutMs / 1000)} s${explain(this.whyNowhere(name, c, replacing))}`);
  }

  /**
   * Stops a replica (SHUTDOWN through its Msg) and resolves once it has ended; the maintainer
   * does not replace it as long as the instance keeps ExpSlaves replicas. Refuses the master.
   */
  async retireReplica(name: string, procId: string): Promise<void> {
    const inst = this.instance(name);
    const proc = inst.procs.find((p) => p.id === procId);
    if (!proc || !isLive(proc)) return;
    if (proc.id === inst.mname || proc.type === ProcType.Master) {
      throw new OperationRefusedError(`proc ${procId} is the master of '${name}'; switch over before retiring it`);
    }
    this.log.info('retiring a replica', { instance: name, proc: procId, agent: proc.sid });
    const started = Date.now();
    let killed = false;
    while (Date.now() - started < RETIRE_TIMEOUT_MS) {
      const now = this.store.instance(name)?.procs.find((p) => p.id === procId);
      if (!now || !isLive(now)) return;
      // A failover's SLAVEOF may have replaced the SHUTDOWN meanwhile: ask again. (Its ShutdownAt
      // mark stays once written, so the Msg itself says whether the order is still pending.)
      if (!now.msg) await this.store.sendMsg(name, procId, SHUTDOWN_MESSAGE, { [SHUTDOWN_AT_FIELD]: new Date().toISOString() });
      if (!killed && Date.now() - started > RETIRE_KILL_AFTER_MS) {
        this.log.warn('retired replica still runs; killing it through its agent', { instance: name, proc: procId, agent: now.sid });
        this.kill(now.sid, procId);
        killed = true;
      }
      await sleep(POLL_MS);
    }
    throw new OperationRefusedError(`replica ${procId} of '${name}' did not stop within ${RETIRE_TIMEOUT_MS / 1000} s`);
  }

  /**
   * Replaces a replica: addReplica (the new one placed as if the old one were not there), then
   * retireReplica. Resolves with the new proc's id; '' when the old proc had already ended and
   * no replica was placed for it (the maintainer replaces it as any lost replica).
   */
  async replaceReplica(name: string, procId: string, c: MoveConstraints, timeoutMs: number): Promise<string> {
    const key = `move:${procId}`;
    const old = this.instance(name).procs.find((p) => p.id === procId);
    if (!old || !isLive(old)) {
      const placed = this.instance(name).procs.find((p) => p.surge === key && isLive(p));
      if (!placed) await this.withdraw(name, key);
      return placed?.id ?? '';
    }
    if (old.id === this.instance(name).mname) throw new OperationRefusedError(`proc ${procId} is the master of '${name}'; switch over before moving it`);
    const added = await this.addReplica(name, c, timeoutMs, key, procId);
    await this.retireReplica(name, procId);
    return added;
  }

  private instance(name: string): Instance {
    const inst = this.store.instance(name);
    if (!inst) throw new NotFoundError('instance', name);
    if (!isActive(inst)) throw new OperationRefusedError(`instance '${name}' is ${inst.status}`);
    return inst;
  }

  /** The live replica placed for surge `key`, once it runs, counts and its link is up. */
  private async linkedSurge(name: string, key: string): Promise<Proc | undefined> {
    const inst = this.instance(name);
    const proc = inst.procs.find((p) => p.surge === key && isLive(p));
    if (!proc || !isRunning(proc) || isShuttingDown(proc) || proc.id === inst.mname) return undefined;
    const text = await this.links.call(proc, 'INFO', 'replication');
    return typeof text === 'string' && parseInfo(text).get('master_link_status') === 'up' ? proc : undefined;
  }

  /** Adds the surge request unless one with its id is there already. */
  private async request(name: string, req: SurgeRequest): Promise<void> {
    for (;;) {
      const inst = this.instance(name);
      if (inst.surges.some((r) => r.id === req.id)) return;
      const clean = Object.fromEntries(Object.entries(req).filter(([, v]) => v !== undefined)) as unknown as SurgeRequest;
      if (await this.store.swapInstanceField(name, 'Surge', encodeSurge(inst.surges), encodeSurge([...inst.surges, clean]))) return;
    }
  }

  /** Removes the surge request: the replica placed for it (if any) is an ordinary replica now. */
  private async withdraw(name: string, key: string): Promise<void> {
    for (;;) {
      const inst = this.store.instance(name);
      if (!inst || !inst.surges.some((r) => r.id === key)) return;
      if (await this.store.swapInstanceField(name, 'Surge', encodeSurge(inst.surges), encodeSurge(inst.surges.filter((r) => r.id !== key)))) return;
    }
  }

  /** The move timed out: withdraw the request and stop a replica placed for it that never linked. */
  private async giveUp(name: string, key: string): Promise<void> {
    await this.withdraw(name, key);
    const placed = this.store.instance(name)?.procs.find((p) => p.surge === key && isLive(p));
    if (!placed) return;
    this.log.warn('surge replica did not link in time; stopping it', { instance: name, proc: placed.id, agent: placed.sid });
    await this.store.setProc(name, placed.id, shutdownFields());
  }

  /**
   * Why no agent could take a replica under these constraints right now (none connected outside
   * the avoided ones, none with the memory and a port, none within the distribution); undefined
   * when one could. A caller that would rather fail at once than wait for agents asks this first.
   */
  whyNowhere(name: string, c: MoveConstraints, replacing?: string): string | undefined {
    const inst = this.store.instance(name);
    const mem = c.capacityMb ?? inst?.capacity ?? 0;
    const avoid = new Set(c.avoidAgents ?? []);
    const candidates = this.agents().filter((a) => a.connected && !avoid.has(a.id));
    const roomy = candidates.filter((a) => a.free.mem >= mem && a.free.ports.length > 0);
    const held = new Map<string, number>();
    for (const p of inst?.procs.filter((p) => isLive(p) && p.id !== replacing) ?? []) held.set(p.sid, (held.get(p.sid) ?? 0) + 1);
    const within = roomy.filter((a) => (held.get(a.id) ?? 0) < (inst?.dValue ?? 1));
    if (within.length > 0) return undefined;
    return `${candidates.length} connected agent(s) may take it${avoid.size ? ` (not ${[...avoid].join(', ')})` : ''}, ${roomy.length} with ${mem} MB and a port free, ${within.length} of those below the distribution of ${inst?.dValue ?? 1} proc(s) per agent`;
  }
}

function explain(why: string | undefined): string {
  return why ? `: ${why}` : ' (an agent had the room: see the scheduler log)';
}
