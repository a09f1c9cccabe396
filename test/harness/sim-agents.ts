import { spawn, type ChildProcess } from 'node:child_process';
import { openSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../src/net.js';
import { stopChild } from '../../src/devtools/child-process.js';
import type { LocalFleet } from './local-fleet.js';

/** The compiled simulator (bench/sim-agents.ts). */
export const SIM_AGENTS = resolve(fileURLToPath(new URL('../../bench/sim-agents.js', import.meta.url)));

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export interface SimProcInfo {
  agent: string;
  proc: string;
  instance: string;
  address: string;
  role: string;
  frozen: boolean;
}

/** One simulator process: its agents are sim<first>..sim<first+agents-1>. */
interface Shard {
  child: ChildProcess;
  controlUrl: string;
  first: number;
  agents: number;
  ready: Record<string, number>;
}

/**
 * The agent simulator against a LocalFleet's scheduler and etcd (started with no real agents), as
 * one or several child processes (`shards`, each with a share of the agents and its own control
 * port), for the scale test and `bench:scale`. The shards see each other's procs through this
 * process, which relays their changes (bench/sim/shard-world.ts). Their log is `sim-agents.log`
 * in the fleet's directory.
 */
export class SimAgents {
  private constructor(private readonly shards: Shard[]) {}

  /** Starts `agents` simulated agents over `shards` processes and resolves once all are SUBSCRIBED (bounded by `timeoutMs`). */
  static async start(fleet: LocalFleet, opts: { agents: number; shards?: number; cpus?: number; mem?: number; nodeArgs?: string[]; timeoutMs?: number }): Promise<SimAgents> {
    const count = Math.max(1, Math.min(opts.shards ?? 1, opts.agents));
    const fd = openSync(join(fleet.dir, 'sim-agents.log'), 'a');
    const shards: Shard[] = [];
    let first = 0;
    for (let k = 0; k < count; k++) {
      const agents = Math.floor(opts.agents / count) + (k < opts.agents % count ? 1 : 0);
      const control = await freePort();
      const child = spawn(process.execPath, [
        ...(opts.nodeArgs ?? []), SIM_AGENTS, '--scheduler', fleet.apiUrl, '--etcd', fleet.etcd.url, '--fleet-key', fleet.fleetKeyPath,
        '--agents', String(agents), '--first', String(first), '--cpus', String(opts.cpus ?? 16), '--mem', String(opts.mem ?? 8192), '--control', String(control),
      ], { stdio: count > 1 ? ['ignore', 'pipe', fd, 'ipc'] : ['ignore', 'pipe', fd] });
      live.add(child);
      child.on('exit', () => live.delete(child));
      shards.push({ child, controlUrl: `http://127.0.0.1:${control}`, first, agents, ready: {} });
      first += agents;
    }
    // Relay each shard's proc changes to the others.
    for (const shard of shards) {
      shard.child.on('message', (message) => {
        for (const other of shards) if (other !== shard && other.child.connected) other.child.send(message as object);
      });
    }
    try {
      await Promise.all(shards.map(async (shard) => {
        shard.ready = await readyLine(shard.child, opts.timeoutMs ?? 120_000, join(fleet.dir, 'sim-agents.log'));
      }));
    } catch (err) {
      await Promise.all(shards.map((s) => stopChild(s.child, 'SIGKILL', 2000)));
      throw err;
    }
    return new SimAgents(shards);
  }

  /** What the shards printed when ready, summed. */
  get readyLine(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const s of this.shards) for (const [k, v] of Object.entries(s.ready)) out[k] = k.startsWith('max') || k.endsWith('Ms') ? Math.max(out[k] ?? 0, v) : (out[k] ?? 0) + v;
    return out;
  }

  /** Every simulator process's pid. */
  get pids(): number[] {
    return this.shards.map((s) => s.child.pid ?? 0).filter((pid) => pid > 0);
  }

  private async call(shard: Shard, method: 'GET' | 'POST', path: string): Promise<{ status: number; json: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
    const res = await fetch(`${shard.controlUrl}${path}`, { method, signal: AbortSignal.timeout(30_000) });
    return { status: res.status, json: await res.json() };
  }

  /** The fleet's summary: agents, subscribed, procs, masters, frozen summed; the worst loop lag. */
  async status(): Promise<Record<string, number>> {
    const all = await Promise.all(this.shards.map((s) => this.call(s, 'GET', '/status')));
    const out: Record<string, number> = {};
    for (const { json } of all) for (const [k, v] of Object.entries(json as Record<string, number>)) out[k] = k === 'maxLoopLagMs' ? Math.max(out[k] ?? 0, v) : (out[k] ?? 0) + v;
    return out;
  }

  async procs(): Promise<SimProcInfo[]> {
    const all = await Promise.all(this.shards.map((s) => this.call(s, 'GET', '/procs')));
    return all.flatMap((r) => r.json as SimProcInfo[]);
  }

  /** Loses these agents at once (their nodes are gone), each through its own shard. */
  async loseAgents(ids: string[]): Promise<void> {
    await Promise.all(this.shards.map(async (shard) => {
      const mine = ids.filter((id) => {
        const i = Number(/^sim([0-9]+)$/.exec(id)?.[1] ?? NaN);
        return i >= shard.first && i < shard.first + shard.agents;
      });
      if (mine.length === 0) return;
      const res = await this.call(shard, 'POST', `/lose-agent?${mine.map((id) => `agent=${encodeURIComponent(id)}`).join('&')}`);
      if (res.status !== 200) throw new Error(`lose-agent answered ${res.status}: ${JSON.stringify(res.json)}`);
    }));
  }

  /** Sends a proc's failure to every shard: the one that has the proc answers 200. */
  private async onProc(path: string, proc: string): Promise<void> {
    const answers = await Promise.all(this.shards.map((s) => this.call(s, 'POST', `${path}?proc=${encodeURIComponent(proc)}`)));
    if (!answers.some((a) => a.status === 200)) throw new Error(`${path} answered ${answers.map((a) => a.status).join(', ')}: ${JSON.stringify(answers[0]?.json)}`);
  }

  killProc(proc: string): Promise<void> {
    return this.onProc('/kill-proc', proc);
  }

  freeze(proc: string): Promise<void> {
    return this.onProc('/freeze', proc);
  }

  /** Stops every simulated agent cleanly (SIGTERM), SIGKILL after `graceMs`. */
  async stop(graceMs = 20_000): Promise<void> {
    await Promise.all(this.shards.map((s) => stopChild(s.child, 'SIGTERM', graceMs)));
  }
}

/** Waits for a shard's `ready {...}` line (bounded by `timeoutMs`). */
function readyLine(child: ChildProcess, timeoutMs: number, logPath: string): Promise<Record<string, number>> {
  return new Promise<Record<string, number>>((resolvePromise, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`the simulator did not report ready within ${timeoutMs} ms`)), timeoutMs);
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const line = /^ready (\{.*\})$/m.exec(out);
      if (!line) return;
      clearTimeout(timer);
      resolvePromise(JSON.parse(line[1]) as Record<string, number>);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the simulator exited (${code}) before it was ready; see ${logPath}`));
    });
  });
}
