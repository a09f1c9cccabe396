/**
 * bench/sim/sim-fleet: N simulated agents in one process, and the world their procs share.
 *
 * Addresses: agent i gets its own loopback address, 127.1.(i / 250).(i % 250 + 1), announced as
 * its IP, and its procs listen there on the same port range as every other agent's. Linux routes
 * all of 127.0.0.0/8 to the loopback interface, so no setup is needed, no two agents' ports can
 * clash, placement sees as many distinct hosts as there are agents, and the scheduler's links,
 * Sentinel replies and etcd's IP/Port keys read like a real fleet's. (The other way, a socket-free
 * interface that the scheduler's failure detector would call instead of PINGing, would change the
 * scheduler under test; a real socket per proc costs the scheduler exactly what a real fleet does.)
 * Each agent connects to the scheduler from its own address too.
 *
 * File descriptors: one listener per proc here, one connection per live proc in both the scheduler
 * (its link) and here (the accepted side): raise `ulimit -n` to at least 3 x procs + 1000.
 *
 * A pool of etcd clients serves the simulated agents (a real agent has its own): thousands of gRPC
 * connections in one process would measure the simulator, not the fleet. The requests are the
 * same: each agent's lease and registration, one Msg watch per proc, Stats transactions. The pool
 * is not one client, because the etcd3 library creates one client's watches one at a time (its
 * AttachQueue): with one client for 100 agents a LAUNCH waited seconds for its Msg watch, a delay
 * no real agent has. Ten agents per client by default (`etcdClients`).
 */
import { connectEtcd } from '../../src/store/etcd.js';
import type { Etcd3 } from 'etcd3';
import { createLogger, type Logger } from '../../src/logger.js';
import { SimAgent, type SimAgentOptions } from './sim-agent.js';
import { HEARTBEAT_MS, SimProc, type ProcView, type ProcWorld } from './sim-proc.js';
import { RemoteProc, worldEvent, type WorldEvent } from './shard-world.js';

/** What every simulated agent shares (its id and address are its own). */
export interface SimFleetOptions extends Omit<SimAgentOptions, 'id' | 'ip'> {
  agents: number;
  /** The index of the first agent (ids sim<first>..., addresses from it): several simulators can share a fleet. */
  first?: number;
  /** etcd clients shared by the agents (default one per ten agents, at most 64). */
  etcdClients?: number;
  /** Agents subscribing at once while starting. */
  startBatch?: number;
  logLevel?: string;
  /** Told every change of a local proc's state, when other shards must see it (bench/sim/shard-world.ts). */
  publish?: (event: WorldEvent) => void;
}

/** Agent i's loopback address. */
export function simAgentIp(i: number): string {
  if (i < 0 || i >= 250 * 256) throw new Error(`agent index ${i} is beyond the 64,000 simulated addresses`);
  return `127.1.${Math.floor(i / 250)}.${(i % 250) + 1}`;
}

export class SimFleet implements ProcWorld {
  readonly agents = new Map<string, SimAgent>();
  /** Every proc by its address: this process's SimProcs and other shards' RemoteProcs. */
  private readonly byAddress = new Map<string, ProcView>();
  private readonly following = new Map<string, Set<ProcView>>();
  private readonly remote = new Map<string, RemoteProc>();
  private readonly log: Logger;
  private etcd: Etcd3[] = [];
  private ticker?: NodeJS.Timeout;
  private lastTick = Date.now();
  /** The longest the simulator's own event loop was late (ms): a starved simulator answers late, and that is not the scheduler's doing. */
  maxLoopLagMs = 0;
  /** Lost agents' background clean-up (watches, registration), awaited by stop(). */
  private readonly cleanUps = new Set<Promise<void>>();

  constructor(private readonly opts: SimFleetOptions) {
    this.log = createLogger('sim-agent');
    this.log.level = opts.logLevel ?? 'warn';
  }

  // ---- the world the procs share ----

  procAt(address: string): ProcView | undefined {
    return this.byAddress.get(address);
  }

  followersOf(address: string): ProcView[] {
    return [...(this.following.get(address) ?? [])];
  }

  retargeted(proc: SimProc, before: string | null): void {
    this.place(proc, before);
    this.opts.publish?.(worldEvent(proc));
  }

  /** Another shard's proc changed. */
  applyRemote(ev: WorldEvent): void {
    const local = this.byAddress.get(ev.a);
    if (local instanceof SimProc) return;
    let proc = this.remote.get(ev.a);
    if (!proc) this.remote.set(ev.a, (proc = new RemoteProc(ev.a, (a) => this.byAddress.get(a))));
    const before = proc.target;
    proc.apply(ev);
    if (proc.exited) this.remote.delete(ev.a);
    this.place(proc, before);
  }

  private place(proc: ProcView, before: string | null): void {
    if (before) this.following.get(before)?.delete(proc);
    if (proc.exited) {
      if (this.byAddress.get(proc.address) === proc) this.byAddress.delete(proc.address);
      return;
    }
    this.byAddress.set(proc.address, proc);
    if (!proc.target) return;
    let set = this.following.get(proc.target);
    if (!set) this.following.set(proc.target, (set = new Set()));
    set.add(proc);
  }

  // ---- starting and stopping ----

  /** Starts every agent, `startBatch` at a time, and resolves once each has been SUBSCRIBED (bounded by `timeoutMs`). */
  async start(timeoutMs = 120_000): Promise<void> {
    const clients = this.opts.etcdClients ?? Math.min(64, Math.ceil(this.opts.agents / 10));
    this.etcd = Array.from({ length: Math.max(1, clients) }, () => connectEtcd(this.opts.etcd));
    this.lastTick = Date.now();
    this.ticker = setInterval(() => this.tick(), HEARTBEAT_MS);
    const first = this.opts.first ?? 0;
    const all: SimAgent[] = [];
    for (let i = first; i < first + this.opts.agents; i++) {
      const id = `sim${i}`;
      const agent = new SimAgent({ ...this.opts, id, ip: simAgentIp(i) }, this.log.child({ agent: id }), this);
      this.agents.set(id, agent);
      all.push(agent);
    }
    const batch = this.opts.startBatch ?? 50;
    for (let i = 0; i < all.length; i += batch) await Promise.all(all.slice(i, i + batch).map((a, j) => a.start(this.etcd[(i + j) % this.etcd.length])));
    const deadline = Date.now() + timeoutMs;
    while (all.some((a) => !a.subscribed)) {
      if (Date.now() > deadline) throw new Error(`only ${all.filter((a) => a.subscribed).length} of ${all.length} simulated agents subscribed within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  private tick(): void {
    const now = Date.now();
    const lag = now - this.lastTick - HEARTBEAT_MS;
    this.lastTick = now;
    if (lag > this.maxLoopLagMs) this.maxLoopLagMs = lag;
    if (lag > 500) this.log.warn('simulator event loop stalled', { stalledMs: lag });
  }

  /** Stops every agent cleanly (procs reported KILLED), then the shared etcd client. */
  async stop(): Promise<void> {
    clearInterval(this.ticker);
    await Promise.all([...this.agents.values()].map((a) => a.stop().catch(() => undefined)));
    this.agents.clear();
    await Promise.all(this.cleanUps);
    for (const client of this.etcd) client.close();
  }

  // ---- failures on command ----

  private agentOf(procId: string): SimAgent | undefined {
    for (const a of this.agents.values()) if (a.liveTasks().some((t) => t.proc.id === procId)) return a;
    return undefined;
  }

  /** The proc's process dies (its agent reports it FAILED). */
  killProc(procId: string): boolean {
    return this.agentOf(procId)?.killProc(procId) ?? false;
  }

  /** The proc stops answering, as a SIGSTOPped redis-server. */
  freezeProc(procId: string): boolean {
    return this.agentOf(procId)?.freezeProc(procId) ?? false;
  }

  /** The agent's node is gone: stream, responders and watches, all at once (their etcd clean-up follows in the background). */
  loseAgent(id: string): boolean {
    const agent = this.agents.get(id);
    if (!agent) return false;
    this.agents.delete(id);
    this.cleanUps.add(agent.lose().cleanedUp.catch(() => undefined));
    return true;
  }

  /** Every live proc, with its agent and role. */
  procs(): { agent: string; proc: string; instance: string; address: string; role: string; frozen: boolean }[] {
    const out = [];
    for (const a of this.agents.values()) {
      for (const p of a.procs()) out.push({ agent: a.id, proc: p.id, instance: p.instance, address: p.address, role: p.role, frozen: p.frozen });
    }
    return out;
  }

  summary(): { agents: number; subscribed: number; procs: number; masters: number; frozen: number; maxLoopLagMs: number } {
    const procs = this.procs();
    return {
      agents: this.agents.size,
      subscribed: [...this.agents.values()].filter((a) => a.subscribed).length,
      procs: procs.length,
      masters: procs.filter((p) => p.role === 'master').length,
      frozen: procs.filter((p) => p.frozen).length,
      maxLoopLagMs: this.maxLoopLagMs,
    };
  }
}
