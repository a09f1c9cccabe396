import { Gauge, type Registry } from 'prom-client';
import { ProcType, type Proc, type ProcStats } from '../domain/model.js';

type Label = 'instance' | 'proc' | 'agent' | 'role';
const LABELS: Label[] = ['instance', 'proc', 'agent', 'role'];

/** One redis_exporter-named metric: its name, help, and how to read it from a proc's Stats. */
interface ProcMetric {
  name: string;
  help: string;
  /** Prometheus type: redis_exporter exposes its _total metrics as counters. */
  counter?: boolean;
  value: (s: ProcStats, p: Proc) => number | undefined;
}

const PROC_METRICS: ProcMetric[] = [
  { name: 'redis_up', help: '1 when the proc answered INFO lately', value: () => 1 },
  { name: 'redis_memory_used_bytes', help: 'INFO used_memory', value: (s) => s.usedMemory },
  { name: 'redis_memory_max_bytes', help: 'INFO maxmemory (the instance capacity)', value: (s, p) => s.maxMemory ?? p.capacity * 1024 * 1024 },
  { name: 'redis_connected_clients', help: 'INFO connected_clients', value: (s) => s.clients },
  { name: 'redis_connected_slaves', help: 'INFO connected_slaves (masters only)', value: (s) => s.connectedReplicas ?? undefined },
  { name: 'redis_master_link_up', help: '1 when a replica\'s link to its master is up (replicas only)', value: (s) => (s.masterLinkStatus ? Number(s.masterLinkStatus === 'up') : undefined) },
  { name: 'redis_master_repl_offset', help: 'INFO master_repl_offset (slave_repl_offset on a replica)', value: (s) => s.replOffset },
  { name: 'redis_commands_processed_total', help: 'INFO total_commands_processed', counter: true, value: (s) => s.commandsProcessed },
  { name: 'redis_keyspace_hits_total', help: 'INFO keyspace_hits', counter: true, value: (s) => s.keyspaceHits },
  { name: 'redis_keyspace_misses_total', help: 'INFO keyspace_misses', counter: true, value: (s) => s.keyspaceMisses },
  { name: 'redis_evicted_keys_total', help: 'INFO evicted_keys', counter: true, value: (s) => s.evictedKeys },
];

/** The role label: INFO's role (master or slave, as redis_exporter has it), else the proc's type. */
export function roleOf(p: Proc): string {
  if (p.stats?.role && p.stats.role !== 'unknown') return p.stats.role;
  return p.type === ProcType.Master ? 'master' : 'slave';
}

function labelsOf(p: Proc): Record<Label, string> {
  return { instance: p.instance, proc: p.id, agent: p.sid, role: roleOf(p) };
}

/**
 * Per-proc gauges from the Stats the agents write (overlaid by the scheduler's own polls), read
 * at scrape time. A proc without Stats yet shows only redis_up 0. The counters are gauges to
 * prom-client (their values come from Redis, not from increments) but are typed `counter` in the
 * exposition, as redis_exporter types them.
 */
export function procMetrics(registry: Registry, procs: () => Proc[]): void {
  for (const m of PROC_METRICS) {
    const g = new Gauge<Label>({
      name: m.name, help: m.help, labelNames: LABELS, registers: [registry],
      collect() {
        this.reset();
        for (const p of procs()) setOne(this, m, p);
      },
    });
    if (m.counter) (g as unknown as { type: string }).type = 'counter';
  }
  new Gauge<Label | 'redis_version'>({
    name: 'redis_instance_info', help: 'Always 1; the labels carry the role and redis_version', labelNames: [...LABELS, 'redis_version'], registers: [registry],
    collect() {
      this.reset();
      for (const p of procs()) if (p.stats) this.set({ ...labelsOf(p), redis_version: p.stats.redisVersion ?? '' }, 1);
    },
  });
}

function setOne(g: Gauge<Label>, m: ProcMetric, p: Proc): void {
  if (!p.stats) {
    if (m.name === 'redis_up') g.set(labelsOf(p), 0);
    return;
  }
  const v = m.value(p.stats, p);
  if (v !== undefined) g.set(labelsOf(p), v);
}
