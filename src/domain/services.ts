/**
 * What the outer faces (the REST API and the Sentinel-compatible endpoint) may ask of the
 * scheduler: types only. The scheduler side implements them (scheduler/fleet-service.ts,
 * scheduler/sentinel-view.ts) and src/cli hands the implementations over, so api/ and sentinel/
 * never reach into scheduler internals or the store.
 */
import type { Operation, OperationKind } from './operation.js';
import type { Drain } from './drain.js';
import type { RebalanceRecord } from './rebalance.js';
import type { EventEmitter } from 'node:events';
import type { Instance, InstanceStatus, Placement, Proc } from './model.js';
import type { Backup, BackupSchedule, Persistence } from './backup.js';

/** A port range an agent offers, both ends included. */
export interface PortSpan {
  begin: number;
  end: number;
}

export interface AgentResources {
  cpus: number;
  mem: number;
  ports: PortSpan[];
}

/** A redis-server binary an agent offers: its path and what its `--version` says (e.g. "7.0.15"). */
export interface RedisServerBinary {
  path: string;
  version: string;
}

/** An agent as GET /api/agents shows it. */
/** An agent as admission sees it (see FleetService.agentCapacities). */
export type AgentCapacity = Pick<AgentView, 'total' | 'free' | 'draining'>;

export interface AgentView {
  id: string;
  hostname: string;
  ip: string;
  connected: boolean;
  total: AgentResources;
  free: AgentResources;
  tasks: string[];
  subscribedAt: string;
  /** The binaries it offers, the first its default (empty for an agent that does not say). */
  redisServers?: RedisServerBinary[];
  /** Whether it is under maintenance (draining or drained): it gets no new procs. */
  draining?: boolean;
  /** Live procs still placed on it, while it drains. */
  left?: number;
  /** Its Drain record (state, left, waitingReason ...), or null. */
  drain?: Drain | null;
}

/** An agent that holds live procs and whose calls were refused lately (a wrong fleet key, a forged id). */
export interface RefusedAgent {
  agent: string;
  at: string;
  reason: string;
}

/** A new instance as the API asks for it, once validated and admitted. */
export interface InstanceRequest {
  name: string;
  capacityMb: number;
  replicas: number;
  distribution: number;
  placement: Placement;
  ttlSeconds?: number;
  downAfterMs?: number;
  minReplicasMaxLag?: number;
  /** Why the instance will wait for room, when admission says it cannot be placed right now. */
  reason?: string;
  /** The client address of an anonymous creator. */
  creator?: string;
  /** redis maxclients for an anonymous instance. */
  maxClients?: number;
  /** 'none' when unset. */
  persistence?: Persistence;
  backupSchedule?: BackupSchedule;
  /** `<instance>/<backupId>` to seed the master from, and the SHA-256 checkBackup found. */
  restoreFrom?: string;
  restoreSha256?: string;
}

/** The secrets of a new instance, shown once: only their SHA-256 is kept. */
export interface CreatedInstance {
  /** False when a live instance already holds the name (nothing was written). */
  created: boolean;
  password: string;
  accessKey: string;
}

/** Which proc of an instance is announced as its master (the failure detector's rule). */
export type MasterRule = (inst: Instance) => Proc | undefined;

/** The fleet as the API reads and changes it. Reads come from the scheduler's watched cache. */
export interface FleetService {
  instances(): Instance[];
  /** One page of instances by name (see FleetCache.instancePage); `next` when more may follow. */
  instancePage(q: { limit?: number; after?: string; status?: string }): { instances: Instance[]; next?: string };
  instance(name: string): Instance | undefined;
  /** How many instances the store holds, without building them (for /healthz). */
  instanceCount(): number;
  /** The instance whose access key this is, by its SHA-256; undefined when none. */
  instanceWithAccessKey(key: string): string | undefined;
  /** Writes a new instance with a fresh password and access key. */
  create(req: InstanceRequest): Promise<CreatedInstance>;
  /** Moves an instance to DELETING; the status it had, or undefined when there is none. */
  markDeleting(name: string): Promise<InstanceStatus | undefined>;
  /** Sets when the reaper deletes the instance. */
  setExpiry(name: string, expiresAt: Date): Promise<void>;
  /** Starts an empty master for an instance whose lost master waits for its agent (the leader only). */
  restartEmpty(name: string): Promise<void>;
  /** The current term's agents on the leader; the registered ones on a standby. */
  agents(): AgentView[];
  /**
   * What admission needs of each agent (its memory, and whether it drains), without building its
   * view: every create asks, and at 1,000 agents the full views were the top of a create's cost.
   */
  agentCapacities(): AgentCapacity[];
  /** Agents with a live stream to the leader (/healthz). */
  connectedAgentCount(): number;
  refusedAgents(): RefusedAgent[];
  /** The master clients are told about: exactly what the Sentinel endpoint answers. */
  announcedMaster: MasterRule;
  /** Starts draining an agent (the leader only): 404 for an agent that is not known; its record. */
  drain(agentId: string): Promise<Drain>;
  /** Ends an agent's drain (the leader only): procs already moved stay moved; false when it was not draining. */
  undrain(agentId: string): Promise<boolean>;
  /** Records and starts a day-2 operation on the instance (the leader only); its record. */
  startOperation(name: string, kind: OperationKind, params: Record<string, unknown>): Promise<Operation>;
  /** The instance's stored backups, newest first. */
  backups(name: string): Promise<Backup[]>;
  /** Removes one backup; false when there is none by that id. */
  deleteBackup(name: string, id: string): Promise<boolean>;
  /**
   * The backup `<instance>/<backupId>` names, read through and checked against its SHA-256.
   * Throws 404 (field restoreFrom) when there is none, 400 when its checksum does not match.
   */
  checkBackup(ref: string): Promise<Backup>;
  /** Sets (or, with null, removes) the instance's backup schedule. */
  setBackupSchedule(name: string, schedule: BackupSchedule | null): Promise<void>;
  /** Plans a rebalance of masters and, unless `dryRun`, starts it (the leader only); its record. */
  rebalance(dryRun: boolean): Promise<RebalanceRecord>;
  /** The last (or running) rebalance, from etcd; undefined when there was none. */
  rebalanceStatus(): Promise<RebalanceRecord | undefined>;
}

/** Whether this scheduler leads, and where the leader is: a standby serves reads only. */
export interface SchedulerRole {
  isLeader(): boolean;
  /** The leader's API URL, when one is elected. */
  leaderUrl(): string | undefined;
  /**
   * Resolves true once this scheduler leads, when it has just won the election and is taking up
   * the role (false at once otherwise, or after a short bound): agents that reconnect to a
   * restarted scheduler a moment early are held rather than sent into their backoff.
   */
  untilLeading?(): Promise<boolean>;
}

/** One instance as a Sentinel "master". */
export interface SentinelMaster {
  name: string;
  ip: string;
  port: number;
  runid: string;
  flags: string[];
  lastPingSentMs: number;
  lastOkPingReplyMs: number;
  downAfterMs: number;
  failoverTimeoutMs: number;
  configEpoch: number;
  numSlaves: number;
}

export interface SentinelReplica {
  ip: string;
  port: number;
  runid: string;
  flags: string[];
  masterLinkStatus: string;
  masterLinkDownMs: number;
  masterHost: string;
  masterPort: number;
  priority: number;
  offset: number;
}

/**
 * What the Sentinel endpoint serves. `events` emits ('event', channel, message) for every
 * failover event that Sentinel would publish: +sdown, +odown, +try-failover, +selected-slave,
 * +promoted-slave, +switch-master, +failover-end, -sdown, -odown and so on.
 */
export interface SentinelSource {
  myid: string;
  masters(): SentinelMaster[];
  master(name: string): SentinelMaster | undefined;
  replicas(name: string): SentinelReplica[];
  /**
   * SENTINEL FAILOVER: starts a planned switchover of the instance (the 'switchover' operation)
   * and answers at once, as Sentinel does: whether it started, or why not.
   */
  failover(name: string): SentinelFailoverReply;
  events: EventEmitter;
}

/** What SENTINEL FAILOVER answers (the switchover itself goes on after the reply). */
export type SentinelFailoverReply = 'started' | 'no-such-master' | 'in-progress' | 'no-good-slave' | 'not-leader';

/**
 * What /metrics serves: the Prometheus text exposition of the scheduler (scheduler/metrics.ts).
 * The API counts its own requests through `countRequest`, so it needs no metrics library itself.
 */
export interface MetricsSource {
  contentType: string;
  /** The whole exposition, computed at scrape time from the watched cache. */
  render(): Promise<string>;
  /** One answered API request, by its route pattern (not its path: names would be unbounded) and status code. */
  countRequest(route: string, code: number): void;
}
