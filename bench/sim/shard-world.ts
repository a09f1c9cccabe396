/**
 * bench/sim/shard-world: the simulator split over several processes (shards), each with its own
 * agents. A replica must see its master wherever that master is simulated: whether it answers,
 * whether it is gone, how far its stream has gone; and a master lists its replicas. So each shard
 * tells the others every change of its procs' state as one small event (address, target, frozen,
 * exited, offset and when), relayed by the process that started the shards
 * (test/harness/sim-agents.ts), and keeps the others' procs as RemoteProcs.
 *
 * Why shards: one process holds two file descriptors per proc (its listener and the scheduler's
 * link) and one event loop for every agent's heartbeat answers and REPORTs. On a host whose
 * `ulimit -n` cannot be raised past 20,000, 10,000 procs do not fit one process; and a single
 * loop at 70% of a core stalls for a second now and then, which the scheduler cannot tell from
 * dead agents (docs/BENCHMARKS.md#scale).
 *
 * A live master's offset is a formula of time (sim-proc.ts masterOffset), so one event per change
 * is enough: a shard computes a remote master's offset as its own shard does.
 */
import { masterOffset, type ProcView } from './sim-proc.js';

/** One proc's state, as a shard tells the others. */
export interface WorldEvent {
  /** ip:port */
  a: string;
  /** The address it follows (null: a master). */
  t: string | null;
  f: boolean;
  x: boolean;
  /** Offset at `at` (ms since the epoch). */
  o: number;
  at: number;
}

export function worldEvent(p: ProcView & { base: number; baseAt: number }): WorldEvent {
  return { a: p.address, t: p.target, f: p.frozen, x: p.exited, o: p.base, at: p.baseAt };
}

/** A proc simulated by another shard, as this one sees it. */
export class RemoteProc implements ProcView {
  readonly ip: string;
  readonly port: number;
  target: string | null = null;
  frozen = false;
  exited = false;
  private base = 0;
  private baseAt = 0;

  constructor(readonly address: string, private readonly masterAt: (address: string) => ProcView | undefined) {
    const colon = address.lastIndexOf(':');
    this.ip = address.slice(0, colon);
    this.port = Number(address.slice(colon + 1));
  }

  apply(ev: WorldEvent): void {
    this.target = ev.t;
    this.frozen = ev.f;
    this.exited = ev.x;
    this.base = ev.o;
    this.baseAt = ev.at;
  }

  /** A live master's offset moves with time; a replica of a live master is as far as its master. */
  get offset(): number {
    if (this.frozen || this.exited) return this.base;
    if (!this.target) return masterOffset(this.base, this.baseAt);
    const master = this.masterAt(this.target);
    return master && !master.target && !master.frozen && !master.exited ? Math.max(this.base, master.offset) : this.base;
  }
}
