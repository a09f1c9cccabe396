import { expect } from 'chai';
import { Gauge, Registry } from 'prom-client';
import { ProcState, ProcType, type Proc, type ProcStats } from '../../src/domain/model.js';
import { renderProcMetrics, roleOf } from '../../src/scheduler/proc-metrics.js';

function stats(over: Partial<ProcStats> = {}): ProcStats {
  return {
    role: 'master', usedMemory: 1_048_576, maxMemory: 16_777_216, clients: 3, connectedReplicas: 2, masterLinkStatus: undefined, replOffset: 1234,
    commandsProcessed: 99, keyspaceHits: 7, keyspaceMisses: 1, evictedKeys: 0, redisVersion: '7.0.15', updatedAt: '2026-12-01T00:00:00.000Z', ...over,
  } as ProcStats;
}

function proc(id: string, over: Partial<Proc> = {}): Proc {
  return { id, instance: id.split('::')[0], ip: '127.0.0.1', port: 7000, state: ProcState.Running, type: ProcType.Master, sid: 'agent-1', capacity: 16, ...over } as Proc;
}

/** The same families as prom-client gauges render them: what /metrics served before. */
async function viaPromClient(procs: Proc[]): Promise<string> {
  const registry = new Registry();
  const labelNames = ['instance', 'proc', 'agent', 'role'] as const;
  const labels = (p: Proc) => ({ instance: p.instance, proc: p.id, agent: p.sid, role: roleOf(p) });
  const families: [string, string, boolean, (s: ProcStats, p: Proc) => number | undefined][] = [
    ['redis_up', '1 when the proc answered INFO lately', false, () => 1],
    ['redis_memory_used_bytes', 'INFO used_memory', false, (s) => s.usedMemory],
    ['redis_memory_max_bytes', 'INFO maxmemory (the instance capacity)', false, (s, p) => s.maxMemory ?? p.capacity * 1024 * 1024],
    ['redis_connected_clients', 'INFO connected_clients', false, (s) => s.clients],
    ['redis_connected_slaves', 'INFO connected_slaves (masters only)', false, (s) => s.connectedReplicas ?? undefined],
    ['redis_master_link_up', '1 when a replica\'s link to its master is up (replicas only)', false, (s) => (s.masterLinkStatus ? Number(s.masterLinkStatus === 'up') : undefined)],
    ['redis_master_repl_offset', 'INFO master_repl_offset (slave_repl_offset on a replica)', false, (s) => s.replOffset],
    ['redis_commands_processed_total', 'INFO total_commands_processed', true, (s) => s.commandsProcessed],
    ['redis_keyspace_hits_total', 'INFO keyspace_hits', true, (s) => s.keyspaceHits],
    ['redis_keyspace_misses_total', 'INFO keyspace_misses', true, (s) => s.keyspaceMisses],
    ['redis_evicted_keys_total', 'INFO evicted_keys', true, (s) => s.evictedKeys],
  ];
  for (const [name, help, counter, value] of families) {
    const g = new Gauge({ name, help, labelNames, registers: [registry] });
    for (const p of procs) {
      const v = p.stats ? value(p.stats, p) : name === 'redis_up' ? 0 : undefined;
      if (v !== undefined) g.set(labels(p), v);
    }
    if (counter) (g as unknown as { type: string }).type = 'counter';
  }
  const info = new Gauge({ name: 'redis_instance_info', help: 'Always 1; the labels carry the role and redis_version', labelNames: [...labelNames, 'redis_version'], registers: [registry] });
  for (const p of procs) if (p.stats) info.set({ ...labels(p), redis_version: p.stats.redisVersion ?? '' }, 1);
  return registry.metrics();
}

describe('per-proc metrics (redis_exporter names), rendered apart from prom-client', () => {
  it('writes exactly what prom-client gauges wrote: HELP, TYPE, labels escaped, a proc without Stats as redis_up 0', async () => {
    const procs = [
      proc('c1::m', { stats: stats() }),
      proc('c1::r', { type: ProcType.Replica, sid: 'agent-2', stats: stats({ role: 'slave', masterLinkStatus: 'up', connectedReplicas: undefined, maxMemory: undefined }) }),
      proc('c1::new', { type: ProcType.Replica }),
      proc('odd"na\\me::x', { sid: 'agent\n3', stats: stats({ usedMemory: Number.NaN, redisVersion: undefined }) }),
    ];
    expect(`${await renderProcMetrics(procs)}\n`).to.equal(await viaPromClient(procs));
    expect(`${await renderProcMetrics([])}\n`, 'no proc: the families\' HELP and TYPE alone').to.equal(await viaPromClient([]));
  });

  it('lets the event loop go while it renders a large fleet', async () => {
    const procs = Array.from({ length: 20_000 }, (_, i) => proc(`c${i}::m`, { stats: stats() }));
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    try {
      const text = await renderProcMetrics(procs, 1);
      expect(text.split('\n').filter((l) => l.startsWith('redis_up{')).length).to.equal(20_000);
      expect(ticks, 'timers ran during the render').to.be.above(0);
    } finally {
      clearInterval(timer);
    }
  });
});
