import { isIP } from 'node:net';
import { InvalidLaunchError } from '../errors.js';
import { NAME_PATTERN, isProcIdOf } from '../domain/names.js';
import { isPersistence, parseBackupRef, type Persistence } from '../domain/backup.js';
import { pb, type PortRange } from '../proto/messages.js';
import type { redfleet } from '../proto/redfleet.js';

/** What this agent offers, against which a LAUNCH is checked. */
export interface LaunchLimits {
  ports: PortRange;
  memMb: number;
  /** Ports of procs this agent already runs. */
  portsInUse: ReadonlySet<number>;
  /** The redis-server binaries this agent offers, the first its default. */
  redisServers: readonly string[];
}

/** A LAUNCH that passed every check, with defaults filled in. */
export interface CheckedLaunch {
  instance: string;
  procId: string;
  role: 'master' | 'replica';
  port: number;
  capacityMb: number;
  passwordSha256: string;
  master?: { ip: string; port: number };
  replicaPriority: number;
  minReplicasToWrite: number;
  minReplicasMaxLag: number;
  /** 0: the agent's default. */
  maxClients: number;
  persistence: Persistence;
  /** A restored master: the backup to fetch from the scheduler, and its SHA-256. */
  restore?: { backup: string; sha256: string };
  /** A persistent master restarted in place: the proc (of this instance) whose directory it takes over. */
  reuseDirOf?: string;
  /** The binary to run: one this agent offers. */
  redisServer: string;
}

/*
 * Bounds for the numbers a LAUNCH carries. They are wider than anything the scheduler sends
 * (it sends priority 100, at most 16 replicas, a lag of at most an hour) and narrow enough that
 * no value can turn into a surprising redis.conf line.
 */
export const LAUNCH_LIMITS = {
  replicaPriority: { min: 0, max: 1000 },
  minReplicasToWrite: { min: 0, max: 16 },
  minReplicasMaxLag: { min: 0, max: 3600 },
  maxClients: { min: 0, max: 100_000 },
} as const;

const SHA256_HEX = /^[0-9a-f]{64}$/i;

/**
 * Checks every field of a LAUNCH before the agent writes or spawns anything. Everything here
 * reaches redis.conf or the file system, and the agent must not trust that its scheduler is
 * honest: a newline in a string field would add lines to the config (a backdoor user, say).
 * Throws InvalidLaunchError naming the first bad field.
 */
export function checkLaunch(taskId: string, launch: redfleet.v1.IRedisLaunch, limits: LaunchLimits): CheckedLaunch {
  const instance = launch.instance;
  if (typeof instance !== 'string' || !NAME_PATTERN.test(instance)) {
    throw new InvalidLaunchError('instance', `instance name ${quote(instance)} does not match ${NAME_PATTERN.source}`);
  }
  if (!isProcIdOf(instance, taskId)) {
    throw new InvalidLaunchError('task_id', `task id ${quote(taskId)} is not "${instance}::<uuid v4>"`);
  }
  if (launch.proc_id !== taskId) {
    throw new InvalidLaunchError('proc_id', `proc_id ${quote(launch.proc_id)} differs from the task id ${quote(taskId)}`);
  }
  const passwordSha256 = launch.password_sha256;
  if (typeof passwordSha256 !== 'string' || !SHA256_HEX.test(passwordSha256)) {
    throw new InvalidLaunchError('password_sha256', 'password_sha256 must be exactly 64 hex characters');
  }
  const port = whole(launch.port, 'port', limits.ports.begin, limits.ports.end);
  if (limits.portsInUse.has(port)) throw new InvalidLaunchError('port', `port ${port} is already used by another proc on this agent`);
  const capacityMb = whole(launch.capacity_mb, 'capacity_mb', 1, limits.memMb);
  const role = roleOf(launch.role);
  const master = role === 'replica' ? masterOf(launch) : undefined;
  if (role === 'master' && launch.master_ip) throw new InvalidLaunchError('master_ip', 'a master LAUNCH carries no master_ip');
  return {
    instance,
    procId: taskId,
    role,
    port,
    capacityMb,
    passwordSha256: passwordSha256.toLowerCase(),
    master,
    replicaPriority: optional(launch.replica_priority, 'replica_priority', LAUNCH_LIMITS.replicaPriority, 100),
    minReplicasToWrite: optional(launch.min_replicas_to_write, 'min_replicas_to_write', LAUNCH_LIMITS.minReplicasToWrite, 0),
    minReplicasMaxLag: optional(launch.min_replicas_max_lag, 'min_replicas_max_lag', LAUNCH_LIMITS.minReplicasMaxLag, 0),
    maxClients: optional(launch.max_clients, 'max_clients', LAUNCH_LIMITS.maxClients, 0),
    redisServer: binaryOf(launch.redis_server, limits.redisServers),
    ...dataOf(instance, taskId, role, launch),
  };
}

/** Persistence, the backup a restored master starts from, the directory a restart reuses. */
function dataOf(instance: string, taskId: string, role: 'master' | 'replica', launch: redfleet.v1.IRedisLaunch): Pick<CheckedLaunch, 'persistence' | 'restore' | 'reuseDirOf'> {
  const persistence = launch.persistence || 'none';
  if (!isPersistence(persistence)) throw new InvalidLaunchError('persistence', `persistence ${quote(persistence)} is none of none, rdb, aof`);
  const out: Pick<CheckedLaunch, 'persistence' | 'restore' | 'reuseDirOf'> = { persistence };
  if (launch.restore_backup) {
    if (role !== 'master') throw new InvalidLaunchError('restore_backup', 'only a master LAUNCH is seeded from a backup');
    if (!parseBackupRef(launch.restore_backup)) throw new InvalidLaunchError('restore_backup', `restore_backup ${quote(launch.restore_backup)} is not "<instance>/<backupId>"`);
    if (typeof launch.restore_sha256 !== 'string' || !SHA256_HEX.test(launch.restore_sha256)) throw new InvalidLaunchError('restore_sha256', 'restore_sha256 must be exactly 64 hex characters');
    out.restore = { backup: launch.restore_backup, sha256: launch.restore_sha256.toLowerCase() };
  }
  if (launch.reuse_dir_of) {
    if (!isProcIdOf(instance, launch.reuse_dir_of) || launch.reuse_dir_of === taskId) throw new InvalidLaunchError('reuse_dir_of', `reuse_dir_of ${quote(launch.reuse_dir_of)} is not another proc of ${instance}`);
    out.reuseDirOf = launch.reuse_dir_of;
  }
  return out;
}

/** The binary a LAUNCH names must be one the agent offers: a scheduler may not run any file it likes. */
function binaryOf(wanted: unknown, offered: readonly string[]): string {
  if (wanted === undefined || wanted === null || wanted === '') return offered[0] ?? 'redis-server';
  if (typeof wanted !== 'string' || !offered.includes(wanted)) {
    throw new InvalidLaunchError('redis_server', `redis_server ${quote(wanted)} is not one of this agent's binaries (${offered.join(', ')})`);
  }
  return wanted;
}

function roleOf(role: unknown): 'master' | 'replica' {
  if (role === pb.RedisLaunch.Role.MASTER) return 'master';
  if (role === pb.RedisLaunch.Role.SLAVE) return 'replica';
  throw new InvalidLaunchError('role', `role ${quote(role)} is neither MASTER nor SLAVE`);
}

function masterOf(launch: redfleet.v1.IRedisLaunch): { ip: string; port: number } {
  const ip = launch.master_ip;
  if (typeof ip !== 'string' || isIP(ip) === 0) throw new InvalidLaunchError('master_ip', `master_ip ${quote(ip)} is not an IP address`);
  return { ip, port: whole(launch.master_port, 'master_port', 1, 65535) };
}

function whole(value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidLaunchError(field, `${field} must be a whole number from ${min} to ${max}, got ${quote(value)}`);
  }
  return value;
}

function optional(value: unknown, field: string, bounds: { min: number; max: number }, fallback: number): number {
  if (value === undefined || value === null) return fallback;
  return whole(value, field, bounds.min, bounds.max);
}

/** A value for an error message: JSON (so a newline shows as \n), cut short. */
function quote(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
