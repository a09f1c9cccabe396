import { collectDefaultMetrics, Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { EventEmitter } from 'node:events';
import type { AgentView, FleetService, MetricsSource, SchedulerRole } from '../domain/services.js';
import { ProcType, type Instance, type Proc } from '../domain/model.js';
import { isLive } from '../domain/rules.js';
import { isOperationRunning } from '../domain/operation.js';
import { renderProcMetrics } from './proc-metrics.js';

const MIB = 1024 * 1024;
/** The events that start a failover's clock. */
const FAULT_EVENTS = new Set(['+sdown', '+odown', '+try-failover']);
/** Failovers take from a second (a few missed pings) to the failover timeout. */
const FAILOVER_BUCKETS = [0.5, 1, 2, 3, 5, 8, 13, 21, 34, 60];

/**
 * The scheduler's Prometheus metrics. Fleet gauges are computed at scrape time from the watched
 * cache (nothing to keep in step); only events that leave no trace in the cache (failovers, API
 * requests) are counted as they happen, and so is the scheduler's work (WorkMetrics, whose
 * registry this one is). Served by every scheduler, leader or standby.
 */
export class SchedulerMetrics implements MetricsSource {
  private readonly apiRequests: Counter<'route' | 'code'>;
  private readonly failovers: Counter<'instance' | 'cause'>;
  private readonly failoverDuration: Histogram;
  /** When a fault (+sdown) was first seen per instance, until its +switch-master. */
  private readonly faultSeen = new Map<string, number>();
  /** The fleet as the current scrape reads it (see `fleet`). */
  private snapshot?: FleetSnapshot;
  /** Connections to the Sentinel-compatible endpoint, once it listens. */
  private sentinelClients: () => number = () => 0;

  constructor(readonly registry: Registry, private readonly service: FleetService, private readonly role: SchedulerRole, events: EventEmitter) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.apiRequests = new Counter({ name: 'redfleet_api_requests_total', help: 'API requests answered, by route pattern and status code', labelNames: ['route', 'code'], registers });
    this.failovers = new Counter({ name: 'redfleet_failovers_total', help: 'Completed failovers (a new master announced), by instance and cause (failure, or operation: a planned switchover)', labelNames: ['instance', 'cause'], registers });
    this.failoverDuration = new Histogram({ name: 'redfleet_failover_duration_seconds', help: 'Unplanned failovers, from the fault seen (+sdown, or +try-failover when the master exited) to the new master confirmed (+switch-master)', buckets: FAILOVER_BUCKETS, registers });
    this.fleetGauges();
    events.on('event', (channel: string, message: string) => this.onEvent(channel, message));
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The registry's families, then the per-proc ones (rendered apart: see renderProcMetrics), from one snapshot of the fleet. */
  async render(): Promise<string> {
    const { live } = this.fleet();
    const registered = await this.registry.metrics();
    return `${registered}\n${await renderProcMetrics(live)}\n`;
  }

  /** Where redfleet_sentinel_clients reads from (the endpoint starts after the metrics). */
  countSentinelClients(count: () => number): void {
    this.sentinelClients = count;
  }

  countRequest(route: string, code: number): void {
    this.apiRequests.inc({ route, code: String(code) });
  }

  /**
   * Sentinel's event stream: the first +sdown, +odown or +try-failover of an instance starts a
   * failover's clock (a master whose redis-server exited is promoted at once, with no +sdown),
   * +switch-master stops it. A running day-2 operation (switchover, drain, rebalance ...) makes
   * the cause `operation`, anything else `failure`; only failures feed the duration histogram.
   */
  private onEvent(channel: string, message: string): void {
    const words = message.split(' ');
    if (FAULT_EVENTS.has(channel) && words[0] === 'master') {
      if (!this.faultSeen.has(words[1])) this.faultSeen.set(words[1], Date.now());
      return;
    }
    if (channel !== '+switch-master') return;
    const name = words[0];
    const seen = this.faultSeen.get(name);
    this.faultSeen.delete(name);
    const planned = isOperationRunning(this.service.instance(name)?.operation);
    this.failovers.inc({ instance: name, cause: planned ? 'operation' : 'failure' });
    if (!planned && seen !== undefined) this.failoverDuration.observe((Date.now() - seen) / 1000);
  }

  /**
   * The fleet for one scrape, built once and shared by every family's collect: building the
   * instances from the cache (each proc's Stats parsed) is what a scrape costs, and every fleet
   * family reads them. The collects of one render run in one go, before the next macrotask, so the
   * snapshot is dropped at the next setImmediate: the next scrape reads the cache afresh.
   */
  private fleet(): FleetSnapshot {
    if (this.snapshot) return this.snapshot;
    const instances = this.service.instances();
    const procs = instances.flatMap((i) => i.procs);
    const snapshot: FleetSnapshot = { instances, procs, live: procs.filter(isLive), agents: this.service.agents() };
    this.snapshot = snapshot;
    setImmediate(() => {
      if (this.snapshot === snapshot) this.snapshot = undefined;
    });
    return snapshot;
  }

  private fleetGauges(): void {
    const registers = [this.registry];
    const { role } = this;
    const fleet = () => this.fleet();
    const clients = () => this.sentinelClients();
    new Gauge({ name: 'redfleet_sentinel_clients', help: 'Connections to this scheduler\'s Sentinel-compatible endpoint', registers, collect() { this.set(clients()); } });
    new Gauge({ name: 'redfleet_scheduler_leader', help: '1 while this scheduler leads', registers, collect() { this.set(role.isLeader() ? 1 : 0); } });
    new Gauge({
      name: 'redfleet_agents', help: 'Agents by state', labelNames: ['state'], registers,
      collect() {
        const agents = fleet().agents;
        this.set({ state: 'connected' }, agents.filter((a) => a.connected).length);
        this.set({ state: 'disconnected' }, agents.filter((a) => !a.connected).length);
        this.set({ state: 'draining' }, agents.filter((a) => a.draining).length);
      },
    });
    new Gauge({
      name: 'redfleet_agent_resources', help: 'Agent resources (cpus, mem_bytes, ports), total and free', labelNames: ['agent', 'resource', 'kind'], registers,
      collect() {
        this.reset();
        for (const a of fleet().agents) setResources(this, a);
      },
    });
    new Gauge({
      name: 'redfleet_instances', help: 'Instances by status', labelNames: ['status'], registers,
      collect() {
        this.reset();
        for (const i of fleet().instances) this.inc({ status: i.status });
      },
    });
    new Gauge({
      name: 'redfleet_procs', help: 'Procs by state and role (master or replica)', labelNames: ['state', 'role'], registers,
      collect() {
        this.reset();
        for (const p of fleet().procs) this.inc({ state: p.state, role: p.type === ProcType.Master ? 'master' : 'replica' });
      },
    });
  }
}

interface FleetSnapshot {
  instances: Instance[];
  procs: Proc[];
  /** The live procs: those the per-proc families show. */
  live: Proc[];
  agents: AgentView[];
}

function setResources(g: Gauge<'agent' | 'resource' | 'kind'>, a: AgentView): void {
  for (const kind of ['total', 'free'] as const) {
    const r = a[kind];
    g.set({ agent: a.id, resource: 'cpus', kind }, r.cpus);
    g.set({ agent: a.id, resource: 'mem_bytes', kind }, r.mem * MIB);
    g.set({ agent: a.id, resource: 'ports', kind }, r.ports.reduce((n, s) => n + s.end - s.begin + 1, 0));
  }
}
