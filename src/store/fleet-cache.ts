import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Etcd3, Watcher } from 'etcd3';
import { instanceOfProc, Keys } from './keys.js';
import type { Instance, ProcStats } from '../domain/model.js';
import { parseDrain, type Drain } from '../domain/drain.js';
import { frozenWhenTesting, instanceFromFields } from './records.js';
import { parseTreeBounds, readTree, TREE_PAGING } from './tree-read.js';
import { emptyNode, setOrDelete, shared, type InstanceNode } from './tree-node.js';
import { AgentIndex } from './agent-index.js';
import { boundsFromCounts, TreeHint } from './tree-hint.js';
import { namesPage } from './instance-page.js';
import { retryingConnection } from './etcd.js';
import { withNewerStats, withProcStats } from './stats-overlay.js';
import type { Logger } from '../logger.js';

/**
 * The whole /MrRedis tree in memory, filled once at start and kept current by one etcd watch.
 * Reads never touch etcd. Writers get the etcd revision of their write and can wait until the
 * cache has seen it (`caughtUp`), so a read that follows a write sees it.
 *
 * Events: 'instance' (name) whenever anything of an instance but its Stats changes;
 * 'agents' whenever an agent registration key changes; 'drains' whenever a Drain record does.
 */
export class FleetCache extends EventEmitter {
  readonly keys: Keys;
  /** The root's length in bytes: paths below it are decoded from there. */
  private readonly rootBytes: number;
  private readonly nodes = new Map<string, InstanceNode>();
  private readonly agentRecords = new Map<string, string>();
  private readonly drainRecords = new Map<string, string>();
  protected revision = 0n;
  private waiters: { rev: bigint; resolve: () => void }[] = [];
  private watcher?: Watcher;
  private stopped = false;
  /** Every-second stats (agents' REPORTs, the StatsPoller), by proc id: fresher than the agents' etcd writes. */
  private readonly polledStats = new Map<string, ProcStats>();
  /** instanceNames(), sorted, until an instance's Status key comes or goes. */
  private sortedNames?: string[];
  /** Instances as last built, by name, until one of their keys changes (see instance()). */
  private readonly built = new Map<string, Instance>();
  private readonly agentIndex = new AgentIndex();
  /** The next start's window bounds under Config/TreeWindows. */
  private readonly hint: TreeHint;

  constructor(readonly etcd: Etcd3, prefix: string, protected readonly log?: Logger) {
    super();
    this.keys = new Keys(prefix);
    this.rootBytes = Buffer.byteLength(this.keys.root);
    const counts = () => [...this.nodes].map(([name, n]): [string, number] => [name, n.fields.size + n.snames.size + [...n.procs.values()].reduce((k, p) => k + p.size, 0)]);
    this.hint = new TreeHint(etcd, this.keys.config('TreeWindows'), () => boundsFromCounts(`${this.keys.root}Instances/`, counts(), TREE_PAGING.windowKeys));
  }

  /** Loads the tree and starts the watch from the revision just after the load. */
  async start(): Promise<void> {
    await this.load();
    await retryingConnection(() => this.watchFrom(this.revision + 1n), (err, attempt) => this.log?.warn('etcd watch could not start; trying again', { attempt, error: err.message }));
    this.hint.start();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.hint.stop();
    await this.watcher?.cancel().catch(() => undefined);
  }

  /** Replaces the whole cache with a fresh read; returns the names of the instances it held before. */
  private async load(): Promise<Set<string>> {
    const before = new Set(this.nodes.keys());
    const t0 = Date.now();
    const hint = await this.etcd.get(this.keys.config('TreeWindows')).string().catch(() => null);
    this.hint.seen(hint);
    // Each page goes into the cache as it arrives (and a read that starts over clears it again).
    const res = await readTree(this.etcd, this.keys.root, {
      begin: () => this.clear(),
      page: (kvs) => {
        for (const kv of kvs) this.route(kv.key.slice(this.keys.root.length), kv.value);
      },
    }, TREE_PAGING, 'grpc', parseTreeBounds(hint));
    this.advance(BigInt(res.revision));
    this.log?.info('etcd tree read', { keys: res.keys, instances: this.nodes.size, ms: Date.now() - t0, revision: res.revision, pages: res.pages, windows: res.windows, via: res.via });
    void this.hint.keep(res.bounds);
    return before;
  }

  private clear(): void {
    this.nodes.clear();
    this.agentIndex.clear();
    this.built.clear();
    this.sortedNames = undefined;
    this.agentRecords.clear();
    this.drainRecords.clear();
  }

  private async watchFrom(rev: bigint): Promise<void> {
    const watcher = await this.etcd.watch().prefix(this.keys.root).startRevision(rev.toString()).create();
    this.watcher = watcher;
    watcher.on('data', (res) => {
      const touched = new Set<string>();
      for (const ev of res.events) {
        const name = this.route(ev.kv.key.toString('utf8', this.rootBytes), ev.type === 'Delete' ? undefined : ev.kv.value.toString());
        if (name) touched.add(name);
      }
      this.advance(BigInt(res.header.revision));
      for (const name of touched) this.emit(name === '\0agents' ? 'agents' : name === '\0drains' ? 'drains' : 'instance', name);
    });
    // etcd3 emits 'error' only when etcd cancelled the watch, and then drops it. The usual cause:
    // the stream broke, and by the time it came back its next revision had been compacted
    // ("required revision has been compacted"). The missed events are gone, so read the tree
    // afresh and watch again from there.
    watcher.on('error', (err) => {
      if (this.watcher !== watcher || this.stopped) return;
      this.log?.warn('etcd watch cancelled; reloading the tree', { error: err.message });
      void this.resync();
    });
    watcher.on('disconnected', () => this.log?.warn('etcd watch disconnected; it resumes from the last revision'));
  }

  /** Reloads the tree and re-creates the watch, retrying while etcd is unreachable. */
  private async resync(): Promise<void> {
    for (let attempt = 1; !this.stopped; attempt++) {
      try {
        const before = await this.load();
        await this.watchFrom(this.revision + 1n);
        for (const name of new Set([...before, ...this.nodes.keys()])) this.emit('instance', name);
        this.emit('agents', '\0agents');
        this.emit('drains', '\0drains');
        this.log?.info('etcd tree reloaded', { revision: this.revision.toString() });
        return;
      } catch (err) {
        this.log?.warn('etcd tree reload failed; trying again', { attempt, error: (err as Error).message });
        await sleep(Math.min(200 * attempt, 2000));
      }
    }
  }

  /** Resolves once the cache reflects every write up to `rev`. */
  caughtUp(rev: string | bigint | undefined): Promise<void> {
    if (rev === undefined) return Promise.resolve();
    const want = BigInt(rev);
    if (want <= this.revision) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ rev: want, resolve }));
  }

  private advance(rev: bigint): void {
    if (rev > this.revision) this.revision = rev;
    const ready = this.waiters.filter((w) => w.rev <= this.revision);
    this.waiters = this.waiters.filter((w) => w.rev > this.revision);
    for (const w of ready) w.resolve();
  }

  /** Applies one key below the root (value undefined: deleted); returns whom to tell (instance name, '\0agents', '\0drains', ''). */
  private route(path: string, value: string | undefined): string {
    const rel = path.split('/');
    if (rel[0] === 'Agents' && rel.length === 2) {
      setOrDelete(this.agentRecords, rel[1], value);
      return '\0agents';
    }
    if (rel[0] === 'Drains' && rel.length === 2) {
      setOrDelete(this.drainRecords, rel[1], value);
      return '\0drains';
    }
    if (rel[0] !== 'Instances' || rel.length < 3) return '';
    const name = rel[1];
    this.built.delete(name);
    const node = this.node(name);
    if (rel.length === 3) {
      if (rel[2] === 'Status' && node.fields.has('Status') !== (value !== undefined)) this.sortedNames = undefined;
      setOrDelete(node.fields, shared(rel[2]), value === undefined ? value : shared(value));
    } else if (rel[2] === 'Snames' && rel.length === 4) {
      if (value === undefined) node.snames.delete(rel[3]);
      else node.snames.add(rel[3]);
    } else if (rel[2] === 'Procs' && rel.length === 5) {
      let proc = node.procs.get(rel[3]);
      if (!proc) {
        proc = new Map();
        node.procs.set(rel[3], proc);
      }
      if (rel[4] === 'SID') this.agentIndex.moved(name, proc.get('SID'), value);
      setOrDelete(proc, shared(rel[4]), value === undefined ? value : shared(value));
      if (proc.size === 0) {
        node.procs.delete(rel[3]);
        this.polledStats.delete(rel[3]);
      }
      if (rel[4] === 'Stats' || rel[4] === 'MemUsed') return '';
    }
    if (node.fields.size === 0 && node.procs.size === 0 && node.snames.size === 0) this.nodes.delete(name);
    return name;
  }

  private node(name: string): InstanceNode {
    let node = this.nodes.get(name);
    if (!node) {
      node = emptyNode();
      this.nodes.set(name, node);
    }
    return node;
  }

  // ---- reads (memory only) ----

  /**
   * The instance, built from its keys once per change and then shared by every reader until one
   * of its keys (or its polled stats) changes: the failure detector, the stats poller, the reaper
   * and the API read every instance several times a second, and building one (its procs, their
   * Stats JSON) was most of the scheduler's steady CPU (docs/BENCHMARKS.md, scale). Readers must
   * not change what they get; the tests run the scheduler with REDFLEET_FROZEN_CACHE=1, which
   * freezes each built instance so that a change throws.
   */
  instance(name: string): Instance | undefined {
    const memo = this.built.get(name);
    if (memo) return memo;
    const node = this.nodes.get(name);
    if (!node || !node.fields.has('Status')) return undefined;
    const inst = instanceFromFields(name, node.fields, node.procs, node.snames);
    inst.procs = inst.procs.map((p) => withNewerStats(p, this.polledStats.get(p.id)));
    this.built.set(name, frozenWhenTesting(inst));
    return inst;
  }

  /**
   * Overlays every-second stats (an agent's report, or the scheduler's own INFO read) over the
   * agent's last etcd write; a shared instance is replaced by a copy (see stats-overlay.ts).
   */
  overlayStats(procId: string, stats: ProcStats): void {
    this.polledStats.set(procId, stats);
    const name = instanceOfProc(procId);
    const memo = this.built.get(name);
    if (memo) this.built.set(name, frozenWhenTesting(withProcStats(memo, procId, stats)));
  }

  /** Forgets overlaid stats of procs neither polled nor reported any more, so an ended proc shows its last etcd Stats. */
  retainPolledStats(procIds: Set<string>): void {
    for (const id of this.polledStats.keys()) {
      if (procIds.has(id)) continue;
      this.polledStats.delete(id);
      this.built.delete(instanceOfProc(id));
    }
  }

  /** The first instance whose `field` satisfies `matches`, found without building any Instance. */
  instanceWhere(field: string, matches: (value: string) => boolean): string | undefined {
    for (const [name, node] of this.nodes) {
      const value = node.fields.get(field);
      if (value && node.fields.has('Status') && matches(value)) return name;
    }
    return undefined;
  }

  /** The names of the instances (those with a Status), sorted; kept until one comes or goes. */
  instanceNames(): string[] {
    this.sortedNames ??= [...this.nodes.keys()].filter((n) => this.nodes.get(n)?.fields.has('Status')).sort();
    return this.sortedNames;
  }

  /**
   * Up to `limit` instances after the name `after` (exclusive), by name, with `status` when
   * given; `next` is the last name returned when more may follow. Builds only the instances it
   * returns: a page of a large fleet costs its own size plus a binary search.
   */
  instancePage(q: { limit?: number; after?: string; status?: string }): { instances: Instance[]; next?: string } {
    const page = namesPage(this.instanceNames(), q, (name) => this.nodes.get(name)?.fields.get('Status'));
    const instances = page.names.map((n) => this.instance(n)!);
    return page.next === undefined ? { instances } : { instances, next: page.next };
  }

  /** The instances with a proc placed on the agent (its SID), from an index: no scan of the fleet. */
  instancesOnAgent(agentId: string): Instance[] {
    return this.agentIndex.instancesOn(agentId).map((n) => this.instance(n)).filter((i): i is Instance => i !== undefined);
  }

  instances(): Instance[] {
    return this.instanceNames().map((n) => this.instance(n)!);
  }

  /** Ids of the agents registered in etcd (each registration lives on its agent's lease). */
  agentIds(): string[] {
    return [...this.agentRecords.keys()].sort();
  }

  /** The agent's Drain record (see domain/drain.ts), when it is draining or drained. */
  drain(agentId: string): Drain | undefined {
    return parseDrain(this.drainRecords.get(agentId));
  }

  drains(): Drain[] {
    return [...this.drainRecords.keys()].sort().map((id) => this.drain(id)).filter((d): d is Drain => d !== undefined);
  }

  agentRecord(id: string): Record<string, unknown> | undefined {
    const text = this.agentRecords.get(id);
    if (!text) return undefined;
    try {
      return JSON.parse(text) as Record<string, unknown>;
    } catch {
      return undefined;
    }
  }
}

