import { InstanceStatus, ProcState } from '../domain/model.js';
import { isLive } from '../domain/rules.js';
import { isShuttingDown } from '../domain/message.js';
import type { ProcAssignment } from '../store/agent-store.js';
import type { ProcCheckpoint } from './checkpoint.js';

export type { ProcAssignment } from '../store/agent-store.js';

/** What the restarted agent found at the checkpointed pid and port. */
export interface ProcProbe {
  /** The pid exists, is not a zombie, and is a redis-server. */
  alive: boolean;
  /** Its `INFO server` and ROLE, read as the framework user; undefined when it did not answer. */
  info?: { runId: string; processId: number; port: number; role: string };
  /** Why it did not answer. */
  error?: string;
}

export type AdoptionDecision = { adopt: true } | { adopt: false; reason: string };

/**
 * Whether a restarted agent takes a checkpointed redis-server back or kills it. It adopts only
 * a process that is provably the one it launched (same pid, a redis-server, listening on the
 * port, same run_id, answering the framework user) and that etcd still assigns to this agent as
 * a live proc of an active instance. A proc that serves as master (its own ROLE) is kept only
 * while it is still the instance's master at the epoch it was checkpointed with: one failed over
 * while the agent was away must never serve again (the fencing rule). A master written off with
 * its agent but still named by Mname (nothing promoted in its place) is kept too: the scheduler
 * takes such a master back.
 */
export function decideAdoption(cp: ProcCheckpoint, probe: ProcProbe, etcd: ProcAssignment | undefined, agentId: string): AdoptionDecision {
  const refused = processMismatch(cp, probe) ?? assignmentMismatch(cp, probe, etcd, agentId);
  return refused ? { adopt: false, reason: refused } : { adopt: true };
}

/** Why the process is not (or no longer provably) the checkpointed redis-server. */
function processMismatch(cp: ProcCheckpoint, probe: ProcProbe): string | undefined {
  if (!probe.alive) return `no redis-server runs as pid ${cp.pid} any more`;
  const info = probe.info;
  if (!info) return `the redis-server at port ${cp.port} does not answer as the framework user (${probe.error ?? 'no answer'})`;
  if (info.processId !== cp.pid) return `port ${cp.port} is served by pid ${info.processId}, not ${cp.pid}`;
  if (info.port !== cp.port) return `pid ${cp.pid} listens on port ${info.port}, not ${cp.port}`;
  if (info.runId !== cp.runId) return `run_id ${info.runId} differs from the checkpointed ${cp.runId}`;
  return undefined;
}

/** Why etcd no longer gives this proc to this agent, or why it must not serve again. */
function assignmentMismatch(cp: ProcCheckpoint, probe: ProcProbe, etcd: ProcAssignment | undefined, agentId: string): string | undefined {
  if (!etcd?.proc) return 'etcd no longer has this proc';
  if (etcd.instanceStatus === InstanceStatus.Deleting || etcd.instanceStatus === InstanceStatus.Deleted || etcd.instanceStatus === '') {
    return `its instance is ${etcd.instanceStatus || 'gone'}`;
  }
  if (etcd.proc.sid !== agentId) return `etcd places it on agent ${etcd.proc.sid || '(none)'}`;
  // Also once Msg was reset: the agent acted on the SHUTDOWN, then died before the proc did.
  if (isShuttingDown(etcd.proc)) return 'the scheduler told it to shut down';
  // Its own ROLE decides: a master demoted by a switchover while the agent was away is a replica
  // of the new master now, and takes no writes.
  const servesAsMaster = probe.info?.role === 'master';
  if (servesAsMaster && etcd.mname !== cp.procId) return `it serves as master, but the instance's master is now ${etcd.mname || '(none)'}: failed over while the agent was away`;
  if (servesAsMaster && cp.role === 'master' && etcd.epoch !== cp.epoch) return `it is a master of epoch ${cp.epoch}, and the instance is at epoch ${etcd.epoch}: failed over while the agent was away`;
  if (isLive({ state: etcd.proc.state as ProcState })) return undefined;
  // Written off with its agent, yet still the master: nothing was promoted in its place.
  if (etcd.proc.state === ProcState.Lost && servesAsMaster) return undefined;
  return `the scheduler wrote it off (${etcd.proc.state})`;
}
