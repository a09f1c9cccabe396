import { subtractPorts, type Resources } from '../proto/messages.js';

/** What one task holds on its agent. */
export interface HeldTask {
  resources: Resources;
}

/**
 * A port whose redis-server just ended is offered again only after this long (or when the agent
 * has no other port): clients that still hold the old address must not land on a different
 * instance's proc, or on a new replica where a master used to be.
 */
export const PORT_COOLDOWN_MS = 30_000;

/**
 * An agent's tasks and what they hold, with running totals, so that an offer round reads the
 * agent's free resources instead of recomputing them from all its tasks and all its ports (the
 * 200-agent profile of issue 11 had `subtractPorts` and `freeOf` at 6.7% of the scheduler). The
 * totals change with each launch, end and resize; the free port ranges are worked out again only
 * after such a change or when a cooling port's cooldown is over.
 */
export class AgentResources {
  private readonly tasks = new Map<string, HeldTask>();
  private cpusHeld = 0;
  private memHeld = 0;
  /** Ports held, with how many tasks hold each (a SUBSCRIBE may list two tasks on one port). */
  private readonly portsHeld = new Map<number, number>();
  /** What free() answers until `until` (ms epoch), or until the next change. */
  private cached?: { free: Resources; until: number };

  /** `cooling`: ports whose task ended lately, and when; kept across the agent's resubscriptions. */
  constructor(readonly total: Resources, tasks: Iterable<[string, HeldTask]> = [], readonly cooling = new Map<number, number>()) {
    for (const [id, task] of tasks) this.hold(id, task);
  }

  get size(): number {
    return this.tasks.size;
  }

  ids(): string[] {
    return [...this.tasks.keys()];
  }

  has(taskId: string): boolean {
    return this.tasks.has(taskId);
  }

  /** The task now holds its resources (a launch, or a task the agent runs when it subscribes). */
  hold(taskId: string, task: HeldTask): void {
    this.release(taskId, false);
    this.tasks.set(taskId, task);
    this.count(task, 1);
  }

  /** The task ended: what it held is free again, its ports after their cooldown (`cool`). */
  release(taskId: string, cool = true, now = Date.now()): HeldTask | undefined {
    const task = this.tasks.get(taskId);
    if (!task) return undefined;
    this.tasks.delete(taskId);
    this.count(task, -1);
    if (cool) for (const p of portsOf(task.resources)) this.cooling.set(p, now);
    return task;
  }

  /**
   * Sets the memory a task holds (a resize): growing only where the agent's free memory covers the
   * difference. Returns whether the task now holds `memMb`; undefined for a task the agent does not hold.
   */
  resize(taskId: string, memMb: number): boolean | undefined {
    const task = this.tasks.get(taskId);
    if (!task) return undefined;
    const extra = memMb - task.resources.mem;
    if (extra > 0 && this.total.mem - this.memHeld < extra) return false;
    this.memHeld += extra;
    task.resources = { ...task.resources, mem: memMb };
    this.cached = undefined;
    return true;
  }

  /** What the agent has left, cooling ports held back while others are free. A fresh copy each time. */
  free(now = Date.now()): Resources {
    if (!this.cached || now >= this.cached.until) this.cached = this.compute(now);
    const f = this.cached.free;
    return { cpus: f.cpus, mem: f.mem, ports: f.ports.map((r) => ({ ...r })) };
  }

  private compute(now: number): { free: Resources; until: number } {
    let until = Infinity;
    for (const [port, at] of this.cooling) {
      if (now - at > PORT_COOLDOWN_MS) this.cooling.delete(port);
      else until = Math.min(until, at + PORT_COOLDOWN_MS + 1);
    }
    const free = subtractPorts(this.total.ports, [...this.portsHeld.keys()]);
    const rested = this.cooling.size > 0 ? subtractPorts(free, [...this.cooling.keys()]) : free;
    const cpus = Math.max(0, Math.round((this.total.cpus - this.cpusHeld) * 1000) / 1000);
    return { free: { cpus, mem: Math.max(0, this.total.mem - this.memHeld), ports: rested.length > 0 ? rested : free }, until };
  }

  private count(task: HeldTask, sign: 1 | -1): void {
    this.cpusHeld += sign * task.resources.cpus;
    this.memHeld += sign * task.resources.mem;
    for (const p of portsOf(task.resources)) {
      const n = (this.portsHeld.get(p) ?? 0) + sign;
      if (n > 0) this.portsHeld.set(p, n);
      else this.portsHeld.delete(p);
    }
    this.cached = undefined;
  }
}

function* portsOf(r: Resources): Generator<number> {
  for (const range of r.ports) for (let p = range.begin; p <= range.end; p++) yield p;
}
