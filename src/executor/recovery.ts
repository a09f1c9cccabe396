import { readlinkSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { FRAMEWORK_USER } from '../store/secrets.js';
import type { AgentStore, ProcAssignment } from '../store/agent-store.js';
import { parseInfo } from '../domain/redis-info.js';
import type { Logger } from '../logger.js';
import { decideAdoption, type ProcProbe } from './adoption.js';
import type { CheckpointFile, ProcCheckpoint } from './checkpoint.js';
import { pidRunning, processName } from './pid-watch.js';

/** How long a restarting agent keeps asking an unreachable etcd before it gives its procs up. */
const ASSIGNMENT_WITHIN_MS = 30_000;

/** What recovery needs from the rest of the agent. */
export interface RecoveryContext {
  agentId: string;
  workDir: string;
  log: Logger;
  store: Pick<AgentStore, 'assignment'>;
  file: CheckpointFile;
  frameworkSecretOf: (instance: string) => string;
  /** Supervises a proven proc again; resolves whether it was adopted. */
  adopt: (cp: ProcCheckpoint) => Promise<boolean>;
}

/**
 * Mesos-style agent recovery, run at start before the agent subscribes: each redis-server the
 * checkpoint lists is probed (pid, port, run_id, the framework user), etcd is asked whether it
 * still belongs to this agent, and it is adopted or killed (decideAdoption). Resolves with the
 * names of the adopted procs' directories, which reapOrphans then leaves alone.
 */
export async function recoverProcs(ctx: RecoveryContext): Promise<Set<string>> {
  const adopted = new Set<string>();
  const checkpointed = ctx.file.load();
  if (checkpointed.length === 0) return adopted;
  ctx.log.info('recovering the procs of an earlier life of this agent', { procs: checkpointed.length });
  await Promise.all(checkpointed.map(async (cp) => {
    if (await recoverOne(ctx, cp)) adopted.add(basename(cp.dir));
  }));
  ctx.log.info('recovery done', { adopted: adopted.size, killed: checkpointed.length - adopted.size });
  return adopted;
}

async function recoverOne(ctx: RecoveryContext, cp: ProcCheckpoint): Promise<boolean> {
  const log = ctx.log.child({ instance: cp.instance, proc: cp.procId });
  const probe = await probeProc(cp, ctx.frameworkSecretOf(cp.instance));
  const etcd = await readAssignment(ctx, cp, log);
  const decision = resolve(dirname(cp.dir)) === resolve(ctx.workDir)
    ? decideAdoption(cp, probe, etcd, ctx.agentId)
    : { adopt: false as const, reason: `its directory ${cp.dir} is outside this agent's work dir` };
  if (decision.adopt && (await adoptSafely(ctx, cp, log))) return true;
  const reason = decision.adopt ? 'its supervision could not be set up again' : decision.reason;
  if (probe.alive) log.warn('killing a redis-server this agent no longer owns', { pid: cp.pid, port: cp.port, reason });
  else log.info('a checkpointed redis-server is gone', { pid: cp.pid, reason });
  killIfOurs(cp);
  ctx.file.remove(cp.procId);
  return false;
}

/** ctx.adopt, with a checkpoint entry that cannot be read back (a bad LAUNCH) counted as not adopted. */
async function adoptSafely(ctx: RecoveryContext, cp: ProcCheckpoint, log: Logger): Promise<boolean> {
  try {
    return await ctx.adopt(cp);
  } catch (err) {
    log.error('checkpointed proc cannot be adopted', { error: (err as Error).message });
    return false;
  }
}

/** What etcd says about the proc; retried while etcd does not answer (undefined after that). */
async function readAssignment(ctx: RecoveryContext, cp: ProcCheckpoint, log: Logger): Promise<ProcAssignment | undefined> {
  const deadline = Date.now() + ASSIGNMENT_WITHIN_MS;
  for (let wait = 100; ; wait = Math.min(wait * 2, 2000)) {
    try {
      return await ctx.store.assignment(cp.instance, cp.procId);
    } catch (err) {
      if (Date.now() > deadline) {
        log.error('etcd did not answer: the proc cannot be proven ours', { error: (err as Error).message });
        return undefined;
      }
      await sleep(wait);
    }
  }
}

/**
 * Looks at the checkpointed process: alive, a redis-server, and what it says as the framework
 * user about itself (`INFO server` process_id, tcp_port, run_id) and its role.
 */
async function probeProc(cp: Pick<ProcCheckpoint, 'pid' | 'ip' | 'port'>, frameworkSecret: string): Promise<ProcProbe> {
  const alive = pidRunning(cp.pid) && processName(cp.pid) === 'redis-server';
  if (!alive) return { alive };
  const link = new Redis({
    host: cp.ip,
    port: cp.port,
    username: FRAMEWORK_USER,
    password: frameworkSecret,
    lazyConnect: true,
    connectTimeout: 1000,
    commandTimeout: 2000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
  });
  link.on('error', () => undefined);
  try {
    await link.connect();
    const server = parseInfo(await link.info('server'));
    const role = (await link.call('ROLE')) as unknown[];
    return { alive, info: { runId: server.get('run_id') ?? '', processId: Number(server.get('process_id')), port: Number(server.get('tcp_port')), role: String(role[0]) } };
  } catch (err) {
    return { alive, error: (err as Error).message };
  } finally {
    link.disconnect();
  }
}

/**
 * SIGKILLs the checkpointed pid only while it is provably that proc's redis-server (its working
 * directory is the proc's): a pid reused by another process is left alone.
 */
function killIfOurs(cp: ProcCheckpoint): void {
  if (!pidRunning(cp.pid) || processName(cp.pid) !== 'redis-server') return;
  let cwd = '';
  try {
    cwd = readlinkSync(`/proc/${cp.pid}/cwd`);
  } catch {
    return;
  }
  if (resolve(cwd) !== resolve(cp.dir)) return;
  try {
    process.kill(cp.pid, 'SIGKILL');
  } catch {
    // it went away meanwhile
  }
}
