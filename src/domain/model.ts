/**
 * The Instance and Proc model every layer shares: what an instance and each of its redis-server
 * processes (procs) are, and the names of their statuses, states and roles. Pure: no I/O, and it
 * imports nothing of ours but the Operation record and the backup types. The enum values are the strings stored in etcd (MrRedis's layout).
 */

import type { Operation } from './operation.js';
import type { BackupSchedule, Persistence } from './backup.js';
import type { SurgeRequest } from './surge.js';
import type { FailoverRecord } from './failover-record.js';

export enum InstanceType {
  /** One master, no replicas. */
  Standalone = 'S',
  /** One master and its replicas. */
  MasterReplica = 'MS',
}

export enum InstanceStatus {
  Creating = 'CREATING',
  Running = 'RUNNING',
  Degraded = 'DEGRADED',
  Deleting = 'DELETING',
  Deleted = 'DELETED',
}

/** A proc's state: Mesos's TaskState names, as its agent reports them. */
export enum ProcState {
  Staging = 'STAGING',
  Starting = 'STARTING',
  Running = 'RUNNING',
  Finished = 'FINISHED',
  Failed = 'FAILED',
  Killed = 'KILLED',
  Lost = 'LOST',
  Error = 'ERROR',
}

/** A proc's role in its instance, as etcd's Type field spells it. */
export enum ProcType {
  Master = 'M',
  Replica = 'S',
}

export type Placement = 'spread' | 'binpack';

export interface ProcStats {
  uptime: number;
  usedMemory: number;
  clients: number;
  role: string;
  replOffset: number;
  masterLinkStatus?: string | null;
  lastIoSecondsAgo?: number | null;
  connectedReplicas?: number | null;
  /** INFO counters and settings for /metrics (absent in stats written by older agents). */
  commandsProcessed?: number;
  keyspaceHits?: number;
  keyspaceMisses?: number;
  evictedKeys?: number;
  /** maxmemory in bytes (0: no limit). */
  maxMemory?: number;
  redisVersion?: string;
  updatedAt: string;
}

export interface Proc {
  id: string;
  instance: string;
  nodename: string;
  capacity: number;
  memUsed: number;
  pid: number;
  ip: string;
  port: number;
  state: ProcState;
  type: ProcType;
  slaveOf: string;
  eid: string;
  sid: string;
  msg: string;
  /** When the scheduler ordered it to SHUTDOWN (key ShutdownAt); unset when it never did. */
  shutdownAt?: string;
  /** The redis-server binary it runs ('' for a proc placed before binaries were recorded: the agent's default). */
  redisServer: string;
  /** That binary's version, as its agent reported it ('' when unknown). */
  redisVersion: string;
  /** The surge request this proc was placed for ('' for none; see domain/surge.ts). */
  surge: string;
  stats?: ProcStats;
}

export interface Instance {
  name: string;
  type: InstanceType;
  status: InstanceStatus;
  capacity: number;
  masters: number;
  slaves: number;
  expMasters: number;
  expSlaves: number;
  dValue: number;
  mname: string;
  snames: string[];
  reason: string;
  placement: Placement;
  createdAt: string;
  /** Raised at every failover; a master from an older epoch is stale. */
  epoch: number;
  /** Set when the instance had to restart empty; says when and why. */
  dataLost: string;
  downAfterMs: number;
  failoverTimeoutMs: number;
  minReplicasMaxLag: number;
  /** ISO time after which the reaper deletes the instance; '' for none. */
  expiresAt: string;
  /** ISO time the instance became DELETED; the reaper purges its tree a retention period later. */
  deletedAt: string;
  passwordHash: string;
  /** SHA-256 of the instance's access key (it reads and deletes this instance only). */
  accessKeyHash: string;
  /** The client address of an anonymous creator ('' when an admin created it). */
  creator: string;
  maxClients: number;
  /** How the instance keeps its data: 'none' (default), 'rdb' or 'aof' (see domain/backup.ts). */
  persistence: Persistence;
  /** Scheduled backups, when set. */
  backupSchedule?: BackupSchedule;
  /** The backup `<instance>/<backupId>` the instance was created from ('' for none). */
  restoreFrom: string;
  /** The SHA-256 the restored backup was checked against at create ('' for none). */
  restoreSha256: string;
  /**
   * The redis-server binary (path or version) its new procs run, set by a rolling upgrade; ''
   * for each agent's default.
   */
  redisServer: string;
  /** The day-2 operation running now, or the last one (see domain/operation.ts). */
  operation?: Operation;
  /** Replicas asked for beyond ExpSlaves while procs move (see domain/surge.ts). */
  surges: SurgeRequest[];
  /** The changes of master, oldest first (see domain/failover-record.ts). */
  failovers: FailoverRecord[];
  procs: Proc[];
}

/**
 * Every agent publishes an empty message on this channel through each of its redis-servers this
 * often. A master copies it to its replicas, so a replica's read offset moves about ten times a
 * second while it hears its master (see executor/replication-heartbeat.ts and
 * scheduler/replica-silence.ts).
 */
export const REPLICATION_HEARTBEAT_MS = 100;
export const REPLICATION_HEARTBEAT_CHANNEL = '__redfleet__:heartbeat';
