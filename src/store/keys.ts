/**
 * The MrRedis key layout under the prefix (default /MrRedis). Every key RedFleet reads or
 * writes is spelled here and nowhere else.
 */
export const DEFAULT_PREFIX = '/MrRedis';

export class Keys {
  constructor(readonly prefix = DEFAULT_PREFIX) {}

  get root(): string { return `${this.prefix}/`; }
  config(field: 'FrameworkID' | 'RegisteredAt' | 'FleetKeyFingerprint' | 'Rebalance' | 'TreeWindows'): string { return `${this.prefix}/Config/${field}`; }
  /** Where the scheduler election's keys live (etcd3's Election adds `election/<name>/<lease>`). */
  get configDir(): string { return `${this.prefix}/Config/`; }
  get agents(): string { return `${this.prefix}/Agents/`; }
  agent(id: string): string { return `${this.agents}${id}`; }
  /** Agents under maintenance (see domain/drain.ts); not under Agents/, whose keys die with the agent's lease. */
  get drains(): string { return `${this.prefix}/Drains/`; }
  drain(agentId: string): string { return `${this.drains}${agentId}`; }
  get instances(): string { return `${this.prefix}/Instances/`; }
  instance(name: string): string { return `${this.instances}${name}/`; }
  instanceField(name: string, field: string): string { return `${this.instance(name)}${field}`; }
  procs(name: string): string { return `${this.instance(name)}Procs/`; }
  proc(name: string, procId: string): string { return `${this.procs(name)}${procId}/`; }
  procField(name: string, procId: string, field: string): string { return `${this.proc(name, procId)}${field}`; }
  snames(name: string): string { return `${this.instance(name)}Snames/`; }
  sname(name: string, procId: string): string { return `${this.snames(name)}${procId}`; }
}

/** A proc id is `<instance>::<uuid v4>`; the instance name is what comes before `::`. */
export function instanceOfProc(procId: string): string {
  const at = procId.indexOf('::');
  return at < 0 ? '' : procId.slice(0, at);
}
