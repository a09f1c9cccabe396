import { EventEmitter } from 'node:events';
import type { FleetStore } from '../store/fleet-store.js';
import type { Instance, Proc } from '../domain/model.js';
import { announcedMaster, isLive } from '../domain/rules.js';
import { parsePortRange, subtractPorts, type PortRange } from '../proto/messages.js';
import type { Failover, MasterHealth } from './failover.js';
import type { AgentView } from './offers.js';
import type { HealthSource } from './sentinel-view.js';

/**
 * The Sentinel view's window on failure detection, which only the leader runs. It follows the
 * current term's detector and forwards its events; on a standby it knows no health at all, so
 * the view names masters (from the watched store) without s_down flags it could not vouch for.
 */
export class DetectorRelay implements HealthSource {
  readonly events = new EventEmitter();
  private current?: Failover;
  private readonly forward = (channel: string, message: string): void => {
    this.events.emit('event', channel, message);
  };

  follow(failover: Failover | undefined): void {
    this.current?.events.off('event', this.forward);
    this.current = failover;
    failover?.events.on('event', this.forward);
  }

  healthOf(procId: string): MasterHealth | undefined {
    return this.current?.healthOf(procId);
  }

  /** The leader's detector knows which masters it saw alive; without one, only a RUNNING Mname proc is named. */
  announced(inst: Instance): Proc | undefined {
    return this.current ? this.current.announced(inst) : announcedMaster(inst);
  }
}

/**
 * Agents as a standby sees them: the registrations in etcd (alive while the agent's lease is),
 * with what their live procs take subtracted. `connected` is false: an agent holds its stream
 * with the leader, not here (so /healthz on a standby counts no agents, and nothing mistakes a
 * standby for a leader with agents). `skip`: ids left out (those a leader's broker holds).
 */
export function registeredAgents(store: FleetStore, procCpus: number, skip?: Set<string>): AgentView[] {
  const views: AgentView[] = [];
  for (const id of store.agentIds()) {
    if (skip?.has(id)) continue;
    const record = store.agentRecord(id);
    if (!record) continue;
    const res = (record.resources ?? {}) as { cpus?: number; mem?: number; ports?: string };
    const ports = portsOf(res.ports);
    const mine = liveProcsOn(store, id);
    const total = { cpus: Number(res.cpus ?? 0), mem: Number(res.mem ?? 0), ports };
    views.push({
      id,
      hostname: String(record.hostname ?? record.ip ?? ''),
      ip: String(record.ip ?? ''),
      connected: false,
      total,
      free: {
        cpus: Math.max(0, Math.round((total.cpus - procCpus * mine.length) * 1000) / 1000),
        mem: Math.max(0, total.mem - mine.reduce((sum, p) => sum + p.capacity, 0)),
        ports: subtractPorts(ports, mine.map((p) => p.port)),
      },
      tasks: mine.map((p) => p.id),
      subscribedAt: String(record.startedAt ?? ''),
      redisServers: Array.isArray(record.redisServers) ? (record.redisServers as { path: string; version: string }[]) : [],
    });
  }
  return views;
}

function portsOf(text: string | undefined): PortRange[] {
  try {
    return text ? [parsePortRange(text)] : [];
  } catch {
    return [];
  }
}

/**
 * The agent's live procs, by instance name as before, from the store's index of instances by agent: each agent's look costs
 * its own procs, not the fleet's (a scan of every proc for each agent was agents x procs: 10^9 at
 * 10,000 agents / 100,000 procs, for every /healthz and create on a standby).
 */
export function liveProcsOn(store: Pick<FleetStore, 'instancesOnAgent'>, agentId: string): Proc[] {
  const held = store.instancesOnAgent(agentId).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return held.flatMap((i) => i.procs.filter((p) => p.sid === agentId && isLive(p)));
}
