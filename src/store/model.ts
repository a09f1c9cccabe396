/** The shapes of the Instance and Proc trees as read from etcd (all values are plain strings there). */

export type InstanceType = 'S' | 'MS';
export type InstanceStatus = 'CREATING' | 'RUNNING' | 'DEGRADED' | 'DELETING' | 'DELETED';
export type ProcState = 'STAGING' | 'STARTING' | 'RUNNING' | 'FINISHED' | 'FAILED' | 'KILLED' | 'LOST' | 'ERROR';
export type ProcType = 'M' | 'S';

/**
 * Every agent publishes an empty message on this channel through each of its redis-servers this
 * often. A master copies it to its replicas, so a replica's read offset moves about ten times a
 * second while it hears its master (see executor/replication-heartbeat.ts and
 * scheduler/replica-silence.ts).
 */
export const REPLICATION_HEARTBEAT_MS = 100;
export const REPLICATION_HEARTBEAT_CHANNEL = '__redfleet__:heartbeat';

export const LIVE_PROC_STATES: ReadonlySet<string> = new Set(['STAGING', 'STARTING', 'RUNNING']);

export interface ProcStats {
  uptime: number;
  usedMemory: number;
  clients: number;
  role: string;
  replOffset: number;
  masterLinkStatus?: string | null;
  lastIoSecondsAgo?: number | null;
  connectedReplicas?: number | null;
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
  placement: 'spread' | 'binpack';
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
  procs: Proc[];
}

export function isLive(proc: Proc): boolean {
  return LIVE_PROC_STATES.has(proc.state);
}

function int(value: string | undefined): number {
  const n = Number.parseInt(value ?? '', 10);
  return Number.isFinite(n) ? n : 0;
}

function parseStats(text: string | undefined): ProcStats | undefined {
  if (!text) return undefined;
  try {
    return JSON.parse(text) as ProcStats;
  } catch {
    return undefined;
  }
}

export function procFromFields(id: string, f: Map<string, string>): Proc {
  return {
    id,
    instance: f.get('Instance') ?? '',
    nodename: f.get('Nodename') ?? '',
    capacity: int(f.get('Capacity')),
    memUsed: int(f.get('MemUsed')),
    pid: int(f.get('Pid')),
    ip: f.get('IP') ?? '',
    port: int(f.get('Port')),
    state: (f.get('State') ?? 'STAGING') as ProcState,
    type: (f.get('Type') ?? 'S') as ProcType,
    slaveOf: f.get('SlaveOf') ?? '',
    eid: f.get('EID') ?? '',
    sid: f.get('SID') ?? '',
    msg: f.get('Msg') ?? '',
    stats: parseStats(f.get('Stats')),
  };
}

export function instanceFromFields(
  name: string,
  f: Map<string, string>,
  procs: Map<string, Map<string, string>>,
  snames: Set<string>,
): Instance {
  return {
    name,
    type: (f.get('Type') ?? 'MS') as InstanceType,
    status: (f.get('Status') ?? 'CREATING') as InstanceStatus,
    capacity: int(f.get('Capacity')),
    masters: int(f.get('Masters')),
    slaves: int(f.get('Slaves')),
    expMasters: int(f.get('ExpMasters')),
    expSlaves: int(f.get('ExpSlaves')),
    dValue: Math.max(1, int(f.get('DValue'))),
    mname: f.get('Mname') ?? '',
    snames: [...snames].sort(),
    reason: f.get('Reason') ?? '',
    placement: f.get('Placement') === 'binpack' ? 'binpack' : 'spread',
    createdAt: f.get('CreatedAt') ?? '',
    expiresAt: f.get('ExpiresAt') ?? '',
    deletedAt: f.get('DeletedAt') ?? '',
    epoch: int(f.get('Epoch')),
    dataLost: f.get('DataLost') ?? '',
    downAfterMs: int(f.get('DownAfter')),
    failoverTimeoutMs: int(f.get('FailoverTimeout')),
    minReplicasMaxLag: int(f.get('MinReplicasMaxLag')),
    passwordHash: f.get('PasswordHash') ?? '',
    accessKeyHash: f.get('AccessKeyHash') ?? '',
    creator: f.get('Creator') ?? '',
    maxClients: int(f.get('MaxClients')),
    procs: [...procs.entries()].map(([id, pf]) => procFromFields(id, pf)).sort((a, b) => a.id.localeCompare(b.id)),
  };
}
