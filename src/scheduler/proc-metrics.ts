import { TimeSlices } from '../slices.js';
import { ProcType, type Proc, type ProcStats } from '../domain/model.js';

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

/** A label value as the exposition format wants it: backslash, newline and double quote escaped. */
function escaped(value: unknown): string {
  return String(value).replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

/** A sample value as prom-client writes one. */
function valueText(v: number): string {
  if (Number.isNaN(v)) return 'Nan';
  if (!Number.isFinite(v)) return v < 0 ? '-Inf' : '+Inf';
  return String(v);
}

function labelsOf(p: Proc): string {
  return `instance="${escaped(p.instance)}",proc="${escaped(p.id)}",agent="${escaped(p.sid)}",role="${escaped(roleOf(p))}"`;
}

/** The value of one family for a proc: a proc without Stats yet shows only redis_up 0. */
function valueOf(m: ProcMetric, p: Proc): number | undefined {
  if (!p.stats) return m.name === 'redis_up' ? 0 : undefined;
  return m.value(p.stats, p);
}

const INFO_HELP = 'Always 1; the labels carry the role and redis_version';

/**
 * The per-proc families (redis_exporter's names, from the Stats the agents report, overlaid by
 * the scheduler's own polls) as Prometheus text, in the exposition prom-client writes: HELP and
 * TYPE, then one line per proc, in the order given. Rendered here and not as prom-client gauges:
 * setting 12 labelled series per proc and formatting them held the event loop 0.6-0.8 s at
 * 10,000 procs in one piece (a 1.1 s stall in bench:scale's scheduler at each scrape), which at
 * 100,000 would outlast the leader's 5 s lease. This costs a tenth of that, in slices of at most
 * `sliceMs` with the loop let go between them.
 */
export async function renderProcMetrics(procs: readonly Proc[], sliceMs = 20): Promise<string> {
  const families = PROC_METRICS.map((m) => [`# HELP ${m.name} ${m.help}`, `# TYPE ${m.name} ${m.counter ? 'counter' : 'gauge'}`]);
  const info = ['# HELP redis_instance_info ' + INFO_HELP, '# TYPE redis_instance_info gauge'];
  const slices = new TimeSlices(sliceMs);
  for (const p of procs) {
    if (slices.due()) await slices.next();
    const labels = labelsOf(p);
    for (let k = 0; k < PROC_METRICS.length; k++) {
      const v = valueOf(PROC_METRICS[k], p);
      if (v !== undefined) families[k].push(`${PROC_METRICS[k].name}{${labels}} ${valueText(v)}`);
    }
    if (p.stats) info.push(`redis_instance_info{${labels},redis_version="${escaped(p.stats.redisVersion ?? '')}"} 1`);
  }
  return [...families, info].map((lines) => lines.join('\n')).join('\n\n');
}
