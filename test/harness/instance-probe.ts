import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { FRAMEWORK_USER, dataKey, frameworkSecret, loadFleetKey } from '../../src/store/secrets.js';
import type { LocalFleet } from './local-fleet.js';

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

export const LIVE_STATES = ['STAGING', 'STARTING', 'RUNNING'];

/**
 * What the day-2 operation tests look at in a proc from outside: its settings as the framework
 * user reads them (CONFIG GET, INFO), its memory cgroup's ceiling, and the instance's keys in etcd.
 */
export class InstanceProbe {
  constructor(private readonly fleet: LocalFleet, readonly name: string) {}

  async view(): Promise<Json> {
    return (await this.fleet.api('GET', `/api/instances/${this.name}`)).json;
  }

  /** The live procs of the instance, by id. */
  async liveProcs(): Promise<Json[]> {
    return (await this.view()).procs.filter((p: Json) => LIVE_STATES.includes(p.state));
  }

  /** Runs one command on a proc as the framework user. */
  async command(proc: { ip: string; port: number }, ...args: string[]): Promise<unknown> {
    const secret = frameworkSecret(dataKey(loadFleetKey(this.fleet.fleetKeyPath, false).key), this.name);
    const r = new Redis({ host: proc.ip, port: proc.port, username: FRAMEWORK_USER, password: secret, lazyConnect: true, maxRetriesPerRequest: 1 });
    r.on('error', () => undefined);
    try {
      await r.connect();
      return await r.call(args[0], ...args.slice(1));
    } finally {
      r.disconnect();
    }
  }

  async config(proc: { ip: string; port: number }, param: string): Promise<string> {
    const reply = (await this.command(proc, 'CONFIG', 'GET', param)) as string[];
    return reply[1];
  }

  /** One INFO field of a proc. */
  async info(proc: { ip: string; port: number }, field: string): Promise<string | undefined> {
    const text = String(await this.command(proc, 'INFO'));
    return new RegExp(`^${field}:(.*)\\r?$`, 'm').exec(text)?.[1]?.trim();
  }

  /** One etcd key of the instance (a path under /MrRedis/Instances/<name>/). */
  key(path: string): string | undefined {
    return this.fleet.tree(`/MrRedis/Instances/${this.name}/${path}`).get(`/MrRedis/Instances/${this.name}/${path}`);
  }

  /** The instance's etcd tree without the keys agents rewrite on their own (Stats, MemUsed). */
  stableTree(): Map<string, string> {
    const tree = this.fleet.tree(`/MrRedis/Instances/${this.name}/`);
    for (const k of [...tree.keys()]) if (k.endsWith('/Stats') || k.endsWith('/MemUsed')) tree.delete(k);
    return tree;
  }

  /**
   * The memory ceiling of the process's own memory cgroup in bytes, when it runs in one the
   * agent made (v2 memory.max or v1 memory.limit_in_bytes); undefined where the node gives none.
   */
  static cgroupLimit(pid: number): number | undefined {
    const lines = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n');
    const v1 = lines.find((l) => /^\d+:([^:]*,)?memory(,[^:]*)?:/.test(l));
    const v2 = lines.find((l) => l.startsWith('0::'));
    const candidates: string[] = [];
    if (v1) candidates.push(join('/sys/fs/cgroup/memory', v1.slice(v1.lastIndexOf(':') + 1), 'memory.limit_in_bytes'));
    if (v2) candidates.push(join('/sys/fs/cgroup', v2.slice(3), 'memory.max'), join('/sys/fs/cgroup/unified', v2.slice(3), 'memory.max'));
    for (const file of candidates) {
      if (!file.includes('redfleet-')) continue;
      try {
        return Number(readFileSync(file, 'utf8').trim());
      } catch {
        // not this hierarchy
      }
    }
    return undefined;
  }
}
