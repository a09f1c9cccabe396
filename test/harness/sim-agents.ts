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

/**
 * The agent simulator as a child process against a LocalFleet's scheduler and etcd (started with
 * no real agents), with its control port: for the scale test and `bench:scale`. Its log is
 * `sim-agents.log` in the fleet's directory.
 */
export class SimAgents {
  private constructor(readonly child: ChildProcess, readonly controlUrl: string, readonly readyLine: Record<string, number>) {}

  /** Starts `agents` simulated agents and resolves once all are SUBSCRIBED (bounded by `timeoutMs`). */
  static async start(fleet: LocalFleet, opts: { agents: number; cpus?: number; mem?: number; nodeArgs?: string[]; timeoutMs?: number }): Promise<SimAgents> {
    const control = await freePort();
    const fd = openSync(join(fleet.dir, 'sim-agents.log'), 'a');
    const child = spawn(process.execPath, [
      ...(opts.nodeArgs ?? []), SIM_AGENTS, '--scheduler', fleet.apiUrl, '--etcd', fleet.etcd.url, '--fleet-key', fleet.fleetKeyPath,
      '--agents', String(opts.agents), '--cpus', String(opts.cpus ?? 16), '--mem', String(opts.mem ?? 8192), '--control', String(control),
    ], { stdio: ['ignore', 'pipe', fd] });
    live.add(child);
    child.on('exit', () => live.delete(child));
    const ready = await new Promise<Record<string, number>>((resolvePromise, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`the simulator did not report ready within ${opts.timeoutMs ?? 120_000} ms`)), opts.timeoutMs ?? 120_000);
      child.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        const line = /^ready (\{.*\})$/m.exec(out);
        if (!line) return;
        clearTimeout(timer);
        resolvePromise(JSON.parse(line[1]) as Record<string, number>);
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`the simulator exited (${code}) before it was ready; see ${join(fleet.dir, 'sim-agents.log')}`));
      });
    }).catch(async (err: Error) => {
      await stopChild(child, 'SIGKILL', 2000);
      throw err;
    });
    return new SimAgents(child, `http://127.0.0.1:${control}`, ready);
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  async control(method: 'GET' | 'POST', path: string): Promise<{ status: number; json: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
    const res = await fetch(`${this.controlUrl}${path}`, { method, signal: AbortSignal.timeout(30_000) });
    return { status: res.status, json: await res.json() };
  }

  async procs(): Promise<SimProcInfo[]> {
    return (await this.control('GET', '/procs')).json as SimProcInfo[];
  }

  /** Loses these agents at once (their nodes are gone). */
  async loseAgents(ids: string[]): Promise<void> {
    const query = ids.map((id) => `agent=${encodeURIComponent(id)}`).join('&');
    const res = await this.control('POST', `/lose-agent?${query}`);
    if (res.status !== 200) throw new Error(`lose-agent answered ${res.status}: ${JSON.stringify(res.json)}`);
  }

  async killProc(proc: string): Promise<void> {
    const res = await this.control('POST', `/kill-proc?proc=${encodeURIComponent(proc)}`);
    if (res.status !== 200) throw new Error(`kill-proc answered ${res.status}: ${JSON.stringify(res.json)}`);
  }

  async freeze(proc: string): Promise<void> {
    const res = await this.control('POST', `/freeze?proc=${encodeURIComponent(proc)}`);
    if (res.status !== 200) throw new Error(`freeze answered ${res.status}: ${JSON.stringify(res.json)}`);
  }

  /** Stops every simulated agent cleanly (SIGTERM), SIGKILL after `graceMs`. */
  stop(graceMs = 20_000): Promise<void> {
    return stopChild(this.child, 'SIGTERM', graceMs);
  }
}
