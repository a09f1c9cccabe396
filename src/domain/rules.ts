import { InstanceStatus, ProcState, ProcType, type Instance, type Proc } from './model.js';
import { isShuttingDown } from './message.js';

/**
 * The rules about masters, replicas and status, each written once. Pure.
 */

const LIVE_STATES: ReadonlySet<ProcState> = new Set([ProcState.Staging, ProcState.Starting, ProcState.Running]);
const ACTIVE_STATUSES: ReadonlySet<InstanceStatus> = new Set([InstanceStatus.Creating, InstanceStatus.Running, InstanceStatus.Degraded]);

/** Starting or running: a proc that holds (or will hold) its port and memory. */
export function isLive(proc: Pick<Proc, 'state'>): boolean {
  return LIVE_STATES.has(proc.state);
}

export function isRunning(proc: Proc): boolean {
  return proc.state === ProcState.Running;
}

/** RUNNING or DEGRADED: the instance serves clients and has a master to announce. */
export function isServing(inst: Instance): boolean {
  return inst.status === InstanceStatus.Running || inst.status === InstanceStatus.Degraded;
}

/** CREATING, RUNNING or DEGRADED: the maintainer looks after it. */
export function isActive(inst: Instance): boolean {
  return ACTIVE_STATUSES.has(inst.status);
}

/** The proc Mname names, in whatever state. */
export function namedMaster(inst: Instance): Proc | undefined {
  return inst.procs.find((p) => p.id === inst.mname);
}

/** The master an instance has now: the Mname proc while it runs. */
export function runningMaster(inst: Instance): Proc | undefined {
  const p = namedMaster(inst);
  return p && isRunning(p) ? p : undefined;
}

/**
 * The master clients are told about when nothing more is known than the tree itself (a process
 * without a failure detector): the running Mname proc of a serving instance, else none. The
 * scheduler's `FailureDetector.announced` is the fuller rule.
 */
export function announcedMaster(inst: Instance): Proc | undefined {
  return isServing(inst) ? runningMaster(inst) : undefined;
}

/**
 * The master the instance's counts and status follow: the running Mname proc; none while the
 * Mname proc is live but not yet running; else any running proc of Type M (a fresh instance
 * before Mname is written).
 */
export function countedMaster(inst: Instance): Proc | undefined {
  const named = runningMaster(inst);
  if (named) return named;
  const namedProc = namedMaster(inst);
  if (namedProc && isLive(namedProc)) return undefined;
  return inst.procs.find((p) => p.type === ProcType.Master && isRunning(p));
}

/** Running replicas other than `master`: the replicas clients are told about. */
export function runningReplicas(inst: Instance, master: { id: string } | undefined): Proc[] {
  return inst.procs.filter((p) => p.type === ProcType.Replica && isRunning(p) && p.id !== master?.id);
}

/**
 * Live procs that count as the master's replicas: every other live proc but one being shut down
 * (a fenced old master), whatever its Type says at this instant.
 */
export function countedReplicas(inst: Instance, master: Proc | undefined): Proc[] {
  return inst.procs.filter((p) => isLive(p) && p.id !== master?.id && !isShuttingDown(p) && (p.type === ProcType.Replica || Boolean(master)));
}

/** The instance fields that follow from its procs (Status, Masters, Slaves, Mname, Reason), as etcd strings. */
export interface DerivedStatus {
  fields: Record<string, string>;
  status: InstanceStatus;
  masters: number;
  replicas: number;
}

/** What the procs say the instance's status and counts are, and which fields must change. */
export function deriveStatus(inst: Instance): DerivedStatus {
  const master = countedMaster(inst);
  const replicas = countedReplicas(inst, master).filter(isRunning).length;
  const full = Boolean(master) && replicas >= inst.expSlaves;
  const status = full ? InstanceStatus.Running : inst.status === InstanceStatus.Creating ? InstanceStatus.Creating : InstanceStatus.Degraded;
  const fields: Record<string, string> = {};
  if (status !== inst.status) fields.Status = status;
  if ((master ? 1 : 0) !== inst.masters) fields.Masters = String(master ? 1 : 0);
  if (replicas !== inst.slaves) fields.Slaves = String(replicas);
  if (master && inst.mname !== master.id) fields.Mname = master.id;
  if (status === InstanceStatus.Running && inst.reason) fields.Reason = '';
  if (status === InstanceStatus.Degraded && !master && !inst.reason.startsWith('master lost')) fields.Reason = 'master lost: no live master proc';
  return { fields, status, masters: master ? 1 : 0, replicas };
}

/** The instance's down-after: its own, else 1000 ms. */
export function downAfterOf(inst: Instance): number {
  return inst.downAfterMs > 0 ? inst.downAfterMs : 1000;
}

/** The least time between two failovers of the instance: its own, else 3 x down-after. */
export function failoverTimeoutOf(inst: Instance): number {
  return inst.failoverTimeoutMs > 0 ? inst.failoverTimeoutMs : 3 * downAfterOf(inst);
}

/** How long a tenant's script may hold a proc before it answers -BUSY: half of down-after (100 ms to 5 s). */
export function busyThresholdOf(inst: Instance): number {
  return Math.min(5000, Math.max(100, Math.floor(downAfterOf(inst) / 2)));
}
