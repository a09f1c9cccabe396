/**
 * bench/switchover/sentinel-run: the Sentinel side. Per run a plain master with REPLICAS
 * replicas and three redis-sentinel processes, started by bench/failover's own code; the switch
 * is `SENTINEL FAILOVER mymaster`, done once every sentinel names the new master and it has
 * REPLICAS replicas linked.
 */
import { freePorts } from '../servers.js';
import { stopProcess } from '../started-here.js';
import { SENTINELS } from '../failover/parameters.js';
import { command, masterAddr, pairs } from '../failover/sentinel-protocol.js';
import { started, startRedis, startSentinels, type Child } from '../failover/sentinel-run.js';
import { waitFor } from '../failover/wait.js';
import { REPLICAS, RUN_TIMEOUT_MS, type Outcome, type Run } from './parameters.js';
import { series } from './series.js';
import { measureSwitch } from './writer-run.js';

async function sentinelFailover(sentinelPorts: number[], masterPort: number): Promise<{ ip: string; port: number }> {
  const reply = await command(sentinelPorts[0], ['SENTINEL', 'FAILOVER', 'mymaster']);
  if (reply !== 'OK') throw new Error(`SENTINEL FAILOVER answered ${String(reply)}`);
  const addr = await waitFor('every sentinel to name the new master', RUN_TIMEOUT_MS, async () => {
    const named = await Promise.all(sentinelPorts.map((p) => masterAddr(p, 'mymaster')));
    return named.every((a) => a === named[0]) && named[0] !== `127.0.0.1:${masterPort}` ? named[0] : undefined;
  });
  const port = Number(addr.split(':')[1]);
  await waitFor('the new master to have its replicas', RUN_TIMEOUT_MS, async () => {
    const m = pairs(await command(sentinelPorts[0], ['SENTINEL', 'master', 'mymaster']));
    const info = String(await command(port, ['INFO', 'replication']));
    return m.flags === 'master' && Number(/^connected_slaves:(\d+)/m.exec(info)?.[1] ?? 0) === REPLICAS ? true : undefined;
  });
  return { ip: '127.0.0.1', port };
}

async function sentinelRun(i: number): Promise<Run> {
  const dir = started.tempDir('redfleet-bench-switchover-');
  const children: Child[] = [];
  try {
    const ports = await freePorts(1 + REPLICAS + SENTINELS);
    const redisPorts = ports.slice(0, 1 + REPLICAS);
    const sentinelPorts = ports.slice(1 + REPLICAS);
    await startRedis(dir, redisPorts, children);
    await startSentinels(dir, sentinelPorts, redisPorts[0], children);
    return await measureSwitch('Sentinel', `run ${i}`, sentinelPorts[0], 'mymaster', '', { run: () => sentinelFailover(sentinelPorts, redisPorts[0]) });
  } finally {
    await Promise.all(children.map((c) => stopProcess(c, 'SIGKILL')));
    started.removeDir(dir);
  }
}

export async function benchSentinel(runs: number, out: Outcome): Promise<void> {
  await series('Sentinel', runs, sentinelRun, out);
}
