import type { FleetStore } from '../store/fleet-store.js';
import { generatePassword, sameSecret, sha256Hex } from '../store/secrets.js';
import { InstanceType, type Instance, type InstanceStatus, type Proc } from '../domain/model.js';
import type { Operation, OperationKind } from '../domain/operation.js';
import type { RebalanceRecord } from '../domain/rebalance.js';
import { RebalanceStore } from '../store/rebalance-store.js';
import type { AgentCapacity, AgentView, CreatedInstance, FleetService, InstanceRequest, RefusedAgent } from '../domain/services.js';
import { BackupNotFoundError, InvalidInputError, NotFoundError, NotLeaderError } from '../errors.js';
import { parseBackupRef, type Backup, type BackupSchedule } from '../domain/backup.js';
import { verifyBackup, type BackupStorage } from './backup-storage.js';
import type { Drain } from '../domain/drain.js';
import type { OfferBroker } from './broker.js';
import type { AgentEndpoint } from './agent-endpoint.js';
import type { RedisFramework } from './framework.js';
import { liveProcsOn, registeredAgents, type DetectorRelay } from './standby.js';

/** The current term's leader-only parts; all unset on a standby. */
export interface TermParts {
  broker?: OfferBroker;
  endpoint?: AgentEndpoint;
  framework?: RedisFramework;
}

/**
 * The FleetService the API calls, on every scheduler: reads from the watched store, writes to
 * etcd, and what only the leader knows (connected agents, refused agents, restarts) from the
 * current term, with a standby's answer when there is none.
 */
export class SchedulerFleetService implements FleetService {
  constructor(
    private readonly store: FleetStore,
    private readonly term: () => TermParts,
    private readonly detector: DetectorRelay,
    private readonly leaderUrl: () => string | undefined,
    /** cpus each proc takes, to show a standby's agents with their free resources. */
    private readonly procCpus: number,
    private readonly backupStorage: BackupStorage,
  ) {}

  instances(): Instance[] {
    return this.store.instances();
  }

  instancePage(q: { limit?: number; after?: string; status?: string }): { instances: Instance[]; next?: string } {
    return this.store.instancePage(q);
  }

  instance(name: string): Instance | undefined {
    return this.store.instance(name);
  }

  instanceCount(): number {
    return this.store.instanceNames().length;
  }

  instanceWithAccessKey(key: string): string | undefined {
    const hash = sha256Hex(key);
    // Every request with a token lands here: look at one field, do not build every instance.
    return this.store.instanceWhere('AccessKeyHash', (stored) => sameSecret(stored, hash));
  }

  async create(req: InstanceRequest): Promise<CreatedInstance> {
    const password = generatePassword();
    const accessKey = generatePassword();
    const fields: Record<string, string> = { AccessKeyHash: sha256Hex(accessKey), ...(req.reason ? { Reason: req.reason } : {}) };
    if (req.creator !== undefined) fields.Creator = req.creator;
    if (req.maxClients !== undefined) fields.MaxClients = String(req.maxClients);
    if (req.ttlSeconds !== undefined) fields.ExpiresAt = new Date(Date.now() + req.ttlSeconds * 1000).toISOString();
    if (req.downAfterMs !== undefined) fields.DownAfter = String(req.downAfterMs);
    if (req.minReplicasMaxLag !== undefined) fields.MinReplicasMaxLag = String(req.minReplicasMaxLag);
    Object.assign(fields, backupFields(req));
    const created = await this.store.createInstance({
      name: req.name,
      type: req.replicas === 0 ? InstanceType.Standalone : InstanceType.MasterReplica,
      capacity: req.capacityMb,
      expSlaves: req.replicas,
      dValue: req.distribution,
      placement: req.placement,
      passwordHash: sha256Hex(password),
      extra: fields,
    });
    return { created, password, accessKey };
  }

  async markDeleting(name: string): Promise<InstanceStatus | undefined> {
    return (await this.store.markDeleting(name)) as InstanceStatus | undefined;
  }

  async setExpiry(name: string, expiresAt: Date): Promise<void> {
    await this.store.setInstance(name, { ExpiresAt: expiresAt.toISOString() });
  }

  async restartEmpty(name: string): Promise<void> {
    const framework = this.term().framework;
    if (!framework) throw new NotLeaderError(this.leaderUrl());
    await framework.restartEmpty(name);
  }

  async startOperation(name: string, kind: OperationKind, params: Record<string, unknown>): Promise<Operation> {
    const framework = this.term().framework;
    if (!framework) throw new NotLeaderError(this.leaderUrl());
    return framework.operations.start(name, kind, params);
  }

  backups(name: string): Promise<Backup[]> {
    return this.backupStorage.list(name);
  }

  deleteBackup(name: string, id: string): Promise<boolean> {
    return this.backupStorage.delete(name, id);
  }

  async checkBackup(ref: string): Promise<Backup> {
    const parsed = parseBackupRef(ref);
    const backup = parsed && (await this.backupStorage.list(parsed.instance)).find((b) => b.id === parsed.id);
    if (!backup) throw new BackupNotFoundError(ref, 'restoreFrom');
    if (!(await verifyBackup(this.backupStorage, backup))) {
      throw new InvalidInputError('BACKUP_CORRUPT', 'restoreFrom', `backup '${ref}' does not match its SHA-256 ${backup.sha256}: it was damaged in storage; pick another backup`);
    }
    return backup;
  }

  async setBackupSchedule(name: string, schedule: BackupSchedule | null): Promise<void> {
    // An empty key is no schedule (see parseBackupSchedule).
    await this.store.setInstance(name, { BackupSchedule: schedule ? JSON.stringify(schedule) : '' });
  }

  async drain(agentId: string): Promise<Drain> {
    const framework = this.term().framework;
    if (!framework) throw new NotLeaderError(this.leaderUrl());
    if (!this.knowsAgent(agentId)) throw new NotFoundError('agent', agentId);
    return framework.drainer.begin(agentId);
  }

  async undrain(agentId: string): Promise<boolean> {
    const framework = this.term().framework;
    if (!framework) throw new NotLeaderError(this.leaderUrl());
    if (!this.knowsAgent(agentId) && !this.store.drain(agentId)) throw new NotFoundError('agent', agentId);
    return framework.drainer.end(agentId);
  }

  async rebalance(dryRun: boolean): Promise<RebalanceRecord> {
    const framework = this.term().framework;
    if (!framework) throw new NotLeaderError(this.leaderUrl());
    return framework.rebalancer.start(dryRun);
  }

  rebalanceStatus(): Promise<RebalanceRecord | undefined> {
    return new RebalanceStore(this.store).read();
  }

  /** Every agent with its drain: `draining` and `left` (live procs still on it) while it has a Drain record. */
  agents(): AgentView[] {
    const views: AgentView[] = this.term().broker?.agents() ?? registeredAgents(this.store, this.procCpus);
    // Every create and /healthz asks for the agents: count procs only when some agent drains.
    const drains = new Map(this.store.drains().map((d) => [d.agent, d]));
    const left = new Map([...drains.keys()].map((agent) => [agent, liveProcsOn(this.store, agent).length]));
    return views.map((v) => {
      const drain = drains.get(v.id);
      return { ...v, redisServers: v.redisServers ?? [], draining: drain !== undefined, left: drain ? left.get(v.id) ?? 0 : 0, drain: drain ?? null };
    });
  }

  /**
   * The fleet as admission sees it: the agents the broker holds and, in a new term's agent grace,
   * the agents registered in etcd that have not resubscribed yet (a create right after a scheduler
   * restart must not be refused as never placeable because the agents are still reconnecting).
   */
  agentCapacities(): AgentCapacity[] {
    const { broker, framework } = this.term();
    if (!broker) return this.agents();
    const draining = new Set(this.store.drains().map((d) => d.agent));
    const held = broker.capacities();
    const known = new Set(held.map((c) => c.id));
    const returning = framework?.inAgentGrace() ? registeredAgents(this.store, this.procCpus, known) : [];
    return [...held, ...returning].map((c) => ({ total: c.total, free: c.free, draining: draining.has(c.id) }));
  }

  connectedAgentCount(): number {
    const broker = this.term().broker;
    return broker ? broker.connectedCount() : this.agents().filter((a) => a.connected).length;
  }

  /** An agent the leader's broker holds, or one registered in etcd. */
  private knowsAgent(agentId: string): boolean {
    return (this.term().broker?.agents() ?? []).some((a) => a.id === agentId) || this.store.agentIds().includes(agentId);
  }

  refusedAgents(): RefusedAgent[] {
    return this.term().endpoint?.refusedAgents() ?? [];
  }

  readonly announcedMaster = (inst: Instance): Proc | undefined => this.detector.announced(inst);
}

/** The create's persistence, backup schedule and restore source, as instance keys. */
function backupFields(req: InstanceRequest): Record<string, string> {
  const fields: Record<string, string> = { Persistence: req.persistence ?? 'none' };
  if (req.backupSchedule) fields.BackupSchedule = JSON.stringify(req.backupSchedule);
  if (req.restoreFrom && req.restoreSha256) {
    fields.RestoreFrom = req.restoreFrom;
    fields.RestoreSha256 = req.restoreSha256;
  }
  return fields;
}
