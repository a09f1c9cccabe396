import { v4 as uuidv4 } from 'uuid';
import { instanceOfProc } from '../store/keys.js';
import type { NewProc } from '../store/fleet-store.js';
import { InstanceStatus, ProcType, type Instance, type Proc } from '../domain/model.js';
import { isActive, isLive } from '../domain/rules.js';
import { place, shortfall, type Assignment, type PlacementRequest, type Slot } from './placement.js';
import type { Offer, TaskLaunch } from './offers.js';
import type { FrameworkContext } from './framework-context.js';
import type { Need } from './need.js';
import { launchData, launchOf } from './launch-data.js';
import { placeSurge, slotOffers } from './surge-placement.js';
import { offeredBinary } from './redis-binaries.js';
import type { RedisServerBinary } from '../domain/services.js';
import { secondsSince } from './meter.js';

/** Instances of one offer round whose procs are being written to etcd at once. */
const RECORDS_IN_FLIGHT = 16;

/** One round of offers: what is left of them, the launches on each, masters per agent so far. */
interface Round {
  slots: Slot[];
  launches: Map<string, TaskLaunch[]>;
  /** Live masters per agent, read from the cache once per round and counted up as masters are placed. */
  masters: Map<string, number> | undefined;
}

/**
 * The creator: places procs on offers (whole instances at creation, single replicas after a
 * loss), writes them to etcd and launches them. Runs in the creator queue, one round of offers
 * at a time.
 */
export class Creator {
  /** Instances that need procs placed. */
  private readonly wanting = new Set<string>();
  /** The binaries each offer of the current round carries (by offer id). */
  private binaries = new Map<string, RedisServerBinary[]>();
  /** Counts want(): a round that began at an older count has not weighed the newest wants. */
  private wants = 0;

  constructor(private readonly ctx: FrameworkContext) {}

  /** The instance lacks procs: ask the broker for offers. */
  want(name: string): void {
    this.wanting.add(name);
    this.wants += 1;
    this.ctx.broker.revive();
  }

  /** The instance lacks nothing (or is going away). */
  drop(name: string): void {
    this.wanting.delete(name);
  }

  resourceOffers(offers: Offer[]): void {
    void this.ctx.jobs.create(() => this.placeOn(offers)).catch((err: Error) => {
      this.ctx.log.error('placement failed', { error: err.message });
      for (const o of offers) this.decline(o.id, this.ctx.opts.pendingRefuseSeconds);
    });
  }

  private async placeOn(all: Offer[]): Promise<void> {
    const wantsSeen = this.wants;
    // A draining (or drained) agent gets no new procs: its offers go back unused.
    const offers = all.filter((o) => !this.ctx.store.drain(o.agentId));
    for (const o of all) if (!offers.includes(o)) this.decline(o.id, this.ctx.opts.idleRefuseSeconds);
    this.binaries = new Map(offers.map((o) => [o.id, o.redisServers ?? []]));
    const slots: Slot[] = offers.map((o) => ({
      agentId: o.agentId,
      offerId: o.id,
      ip: o.ip,
      hostname: o.hostname,
      cpus: o.resources.cpus,
      mem: o.resources.mem,
      ports: o.resources.ports.map((r) => ({ ...r })),
      redisServers: o.redisServers ?? [],
    }));
    const round: Round = { slots, launches: new Map(), masters: undefined };
    const byAge = [...this.wanting]
      .map((n) => this.ctx.store.instance(n))
      .filter((i): i is Instance => Boolean(i))
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt));
    // Each instance is placed in order (the slots shrink as procs are placed, synchronously), and
    // its procs are written to etcd while the next ones are placed: a burst of creates waits on
    // RECORDS_IN_FLIGHT etcd round trips at a time rather than one after another.
    const writing = new Set<Promise<void>>();
    for (const { name } of byAge) {
      if (this.ctx.jobs.stopped) break;
      // Read again when its turn comes: the list was read before the awaits of the instances
      // ahead of it, and a need judged on that older copy dropped a want the maintainer had made
      // since (from a newer one), leaving the instance a replica short for good.
      const inst = this.ctx.store.instance(name);
      if (!inst) continue;
      const job = this.placeInstance(inst, round).catch((err: Error) => {
        this.ctx.log.error('placement failed', { instance: name, error: err.message });
      });
      writing.add(job);
      void job.finally(() => writing.delete(job));
      if (writing.size >= RECORDS_IN_FLIGHT) await Promise.race(writing);
    }
    await Promise.all(writing);
    for (const offer of offers) await this.answer(offer, round.launches.get(offer.id));
    // Instances wanted while this round ran were never weighed against the offers it declined:
    // offer every agent again at once, or the next round would see only the agents it used (five
    // creates posted back to back all went to the two agents of the first one's round).
    if (this.wants !== wantsSeen) this.ctx.broker.revive();
    else if (this.wanting.size === 0) this.ctx.broker.suppress();
  }

  /** Accepts the offer with its launches, or declines it when nothing was placed on it. */
  private async answer(offer: Offer, mine: TaskLaunch[] | undefined): Promise<void> {
    const { broker, opts } = this.ctx;
    if (!mine) {
      this.decline(offer.id, this.wanting.size > 0 ? opts.pendingRefuseSeconds : opts.idleRefuseSeconds);
      return;
    }
    try {
      broker.accept(offer.id, mine);
      this.launched(mine);
    } catch (err) {
      this.ctx.log.warn('launch failed', { agent: offer.agentId, error: (err as Error).message });
      for (const l of mine) {
        const proc = this.ctx.store.instance(instanceOfProc(l.taskId))?.procs.find((p) => p.id === l.taskId);
        if (proc) await this.ctx.procs.markLost(proc, 'its agent went away before the launch');
      }
    }
  }

  private decline(offerId: string, refuseSeconds: number): void {
    this.ctx.broker.decline(offerId, refuseSeconds);
    this.ctx.meter.offer('declined');
  }

  /** Counts an accepted offer and its procs; those of an instance still CREATING time its placement from the POST. */
  private launched(launches: TaskLaunch[]): void {
    const { meter, store } = this.ctx;
    meter.offer('accepted');
    const now = Date.now();
    for (const l of launches) {
      const inst = store.instance(instanceOfProc(l.taskId));
      meter.placed(inst?.status === InstanceStatus.Creating ? secondsSince(inst.createdAt, now) : undefined);
    }
  }

  private async placeInstance(inst: Instance, round: Round): Promise<void> {
    const need = isActive(inst) ? this.ctx.needs.of(inst) : undefined;
    if (!need || need.count <= 0) {
      this.drop(inst.name);
      return;
    }
    const placed = await this.placeProcs(inst, need, round);
    if (placed.length === 0) return;
    const procs = placed.map((p) => p.proc);
    const master = need.master ?? { ip: procs[0].ip, port: procs[0].port };
    for (const p of procs) if (p.type === ProcType.Replica) p.slaveOf = `${master.ip}:${master.port}`;
    await this.record(inst, need, procs);
    const { launches } = round;
    for (const { proc, offerId } of placed) {
      launches.set(offerId, [...(launches.get(offerId) ?? []), launchOf(inst, proc, master, this.ctx.opts.procCpus, launchData(inst, proc, need))]);
    }
    if (this.ctx.needs.of(this.ctx.store.instance(inst.name) ?? inst).count <= 0) this.drop(inst.name);
  }

  /** The procs the instance lacks that fit on these slots: first the plain ones, then each surge replica under its constraints. */
  private async placeProcs(inst: Instance, need: Need, round: Round): Promise<{ proc: NewProc; offerId: string }[]> {
    const placed: { proc: NewProc; offerId: string }[] = [];
    const plain = need.count - need.surges.length;
    const { slots } = round;
    // An upgraded instance's new procs (replacements too) run its binary, only where it is offered.
    const wanted = inst.redisServer || undefined;
    const eligible = wanted ? slots.filter((s) => slotOffers(s, wanted)) : slots;
    const assignments = plain > 0 ? await this.fit(inst, { ...need, count: plain }, eligible, round) : undefined;
    const binaryOf = (a: Assignment, binary?: string) => offeredBinary(this.binaries.get(a.offerId) ?? [], binary);
    for (const [i, a] of (assignments ?? []).entries()) placed.push({ proc: newProc(inst, a, need.gang && i === 0 ? ProcType.Master : ProcType.Replica, binaryOf(a, wanted)), offerId: a.offerId });
    for (const req of need.surges) {
      const a = placeSurge(inst, { ...req, redisServer: req.redisServer ?? wanted }, slots, this.ctx.opts.procCpus);
      if (!a) continue;
      placed.push({ proc: { ...newProc(inst, a, ProcType.Replica, binaryOf(a, req.redisServer ?? wanted)), capacity: req.capacityMb ?? inst.capacity, surge: req.id }, offerId: a.offerId });
    }
    return placed;
  }

  /**
   * Where the needed procs go on these slots; undefined when they do not fit (the instance's
   * Reason then says what the fleet lacks). Replacements that do not all fit go as far as they do.
   */
  private async fit(inst: Instance, need: Need, slots: Slot[], round: Round): Promise<Assignment[] | undefined> {
    const existing = new Map<string, number>();
    for (const p of inst.procs.filter(isLive)) existing.set(p.sid, (existing.get(p.sid) ?? 0) + 1);
    const req: PlacementRequest = {
      count: need.count,
      memMb: inst.capacity,
      cpus: this.ctx.opts.procCpus,
      dValue: inst.dValue,
      strategy: inst.placement,
      existing,
      masters: need.gang ? this.mastersOf(round) : undefined,
    };
    // A restart in place goes on the dead master's agent or waits for room there.
    const usable = need.inPlace ? slots.filter((s) => s.agentId === need.inPlace!.sid) : slots;
    let result = place(req, usable);
    // A fresh master counts at once: the next instance of this round sees it before etcd does.
    if (result.ok && need.gang && req.masters) {
      const first = result.assignments[0];
      round.masters!.set(first.agentId, (round.masters!.get(first.agentId) ?? 0) + 1);
    }
    if (!result.ok) {
      const reason = shortfall(req, this.fleetSlots());
      if (inst.reason !== reason) await this.ctx.store.setInstance(inst.name, { Reason: reason });
      if (need.gang || result.placed.length === 0) return undefined;
      result = place({ ...req, count: result.placed.length }, usable);
      if (!result.ok) return undefined;
    }
    return result.assignments;
  }

  /** Writes the placed procs, and the instance's Reason (with the data loss of an empty restart). */
  private async record(inst: Instance, need: Need, procs: NewProc[]): Promise<void> {
    if (need.inPlace) return this.recordInPlace(inst, need.inPlace, procs);
    const restart = need.gang && inst.procs.length > 0 && inst.status !== InstanceStatus.Creating;
    const reason = restart
      ? 'data lost: the master ended with no replica to promote; starting a fresh, empty master'
      : need.gang ? `launching ${procs.length} procs` : `replacing ${procs.length} replica(s)`;
    const fields: Record<string, string> = { Reason: reason };
    if (restart) {
      this.ctx.lostMasters.restarted(inst);
      fields.DataLost = `${new Date().toISOString()} the master ended with no replica to promote; the instance restarted empty`;
      fields.Mname = '';
      this.ctx.log.error('instance restarted empty: data lost', { instance: inst.name });
    }
    await this.ctx.store.addProcs(inst.name, procs, fields);
    this.ctx.log.info('placed', { instance: inst.name, procs: procs.map((p) => `${p.id}@${p.agentId}:${p.port}`) });
  }

  /** A persistent master restarted in place: no data lost, the kept data is its starting point. */
  private async recordInPlace(inst: Instance, dead: Proc, procs: NewProc[]): Promise<void> {
    this.ctx.lostMasters.restarted(inst);
    const reason = `restarting the master in place on agent ${dead.sid} with its ${inst.persistence} data (its redis-server ended)`;
    await this.ctx.store.addProcs(inst.name, procs, { Reason: reason, Mname: '' });
    this.ctx.log.warn('persistent master restarted in place with its data', { instance: inst.name, proc: procs[0].id, from: dead.id, agent: dead.sid });
  }

  /** The round's count of masters per agent: read once per round, then kept by `fit`. */
  private mastersOf(round: Round): Map<string, number> {
    round.masters ??= this.mastersByAgent();
    return round.masters;
  }

  /** Live masters (procs of Type M, of every instance) per agent, for a fresh master's placement. */
  private mastersByAgent(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const inst of this.ctx.store.instances()) {
      for (const p of inst.procs) if (p.type === ProcType.Master && isLive(p)) counts.set(p.sid, (counts.get(p.sid) ?? 0) + 1);
    }
    return counts;
  }

  /** Every connected agent's free resources, offered or not: what the fleet has, for messages. */
  private fleetSlots(): Slot[] {
    return this.ctx.broker.agents().filter((a) => a.connected && !this.ctx.store.drain(a.id)).map((a) => ({
      agentId: a.id,
      offerId: '',
      ip: a.ip,
      hostname: a.hostname,
      cpus: a.free.cpus,
      mem: a.free.mem,
      ports: a.free.ports,
    }));
  }
}

/** The proc to write for this assignment, on the binary its agent offers for it. */
function newProc(inst: Instance, a: Assignment, type: ProcType, binary: RedisServerBinary | undefined): NewProc {
  return {
    redisServer: binary?.path,
    redisVersion: binary?.version,
    id: `${inst.name}::${uuidv4()}`,
    instance: inst.name,
    nodename: a.hostname,
    capacity: inst.capacity,
    ip: a.ip,
    port: a.port,
    type,
    slaveOf: '',
    agentId: a.agentId,
  };
}
