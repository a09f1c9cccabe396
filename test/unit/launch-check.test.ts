import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { checkLaunch, type LaunchLimits } from '../../src/executor/launch-check.js';
import { renderRedisConfig } from '../../src/executor/redis-config.js';
import { memoryCeilingBytes } from '../../src/executor/cgroup.js';
import { InvalidLaunchError } from '../../src/errors.js';
import { pb } from '../../src/proto/messages.js';
import type { redfleet } from '../../src/proto/redfleet.js';

const BINARIES = ['/usr/bin/redis-server', '/opt/redis-next/redis-server'];
const limits: LaunchLimits = { ports: { begin: 7000, end: 7009 }, memMb: 1024, portsInUse: new Set([7005]), redisServers: BINARIES };
const HASH = 'ab'.repeat(32);

function replicaLaunch(overrides: Partial<redfleet.v1.IRedisLaunch> = {}): { taskId: string; launch: redfleet.v1.RedisLaunch } {
  const taskId = `cache-1::${randomUUID()}`;
  const fields: redfleet.v1.IRedisLaunch = {
    instance: 'cache-1', proc_id: taskId, role: pb.RedisLaunch.Role.SLAVE, port: 7001, capacity_mb: 64,
    master_ip: '10.0.0.5', master_port: 7002, password_sha256: HASH, min_replicas_to_write: 1, min_replicas_max_lag: 10, max_clients: 50,
    ...overrides,
  };
  // Through the wire format, as the agent gets it.
  return { taskId, launch: pb.RedisLaunch.decode(pb.RedisLaunch.encode(fields).finish()) };
}

function refusal(taskId: string, launch: redfleet.v1.IRedisLaunch): InvalidLaunchError {
  try {
    checkLaunch(taskId, launch, limits);
  } catch (err) {
    expect(err).to.be.instanceOf(InvalidLaunchError);
    return err as InvalidLaunchError;
  }
  throw new Error(`LAUNCH accepted: ${JSON.stringify(launch)}`);
}

describe('LAUNCH check (agent side)', () => {
  it('accepts what the scheduler sends, with defaults filled in', () => {
    const { taskId, launch } = replicaLaunch();
    const checked = checkLaunch(taskId, launch, limits);
    expect(checked).to.include({ instance: 'cache-1', procId: taskId, role: 'replica', port: 7001, capacityMb: 64, passwordSha256: HASH, replicaPriority: 100, maxClients: 50 });
    expect(checked.master).to.deep.equal({ ip: '10.0.0.5', port: 7002 });
    const master = replicaLaunch({ role: pb.RedisLaunch.Role.MASTER, master_ip: undefined, master_port: undefined });
    expect(checkLaunch(master.taskId, master.launch, limits).master).to.equal(undefined);
  });

  it('runs the binary the LAUNCH names only when the agent offers it, else its default', () => {
    const plain = replicaLaunch();
    expect(checkLaunch(plain.taskId, plain.launch, limits).redisServer).to.equal(BINARIES[0]);
    const next = replicaLaunch({ redis_server: BINARIES[1] });
    expect(checkLaunch(next.taskId, next.launch, limits).redisServer).to.equal(BINARIES[1]);
    for (const bad of ['/bin/sh', '/opt/redis-next/redis-server\n', 'redis-server']) {
      const { taskId, launch } = replicaLaunch({ redis_server: bad });
      expect(refusal(taskId, launch).field, bad).to.equal('redis_server');
    }
  });

  it('refuses a password hash that is not exactly 64 hex characters (a newline would add redis.conf lines)', () => {
    const backdoor = `${HASH}\nuser backdoor on nopass ~* &* +@all`;
    for (const bad of [backdoor, HASH.slice(1), `${HASH}0`, 'zz'.repeat(32), `${HASH.slice(2)} #`, '']) {
      const { taskId, launch } = replicaLaunch({ password_sha256: bad });
      expect(refusal(taskId, launch).field, JSON.stringify(bad)).to.equal('password_sha256');
    }
  });

  it('refuses a port outside the agent range or already in use', () => {
    for (const port of [6999, 7010, 0, 65535, 7005]) {
      const { taskId, launch } = replicaLaunch({ port });
      expect(refusal(taskId, launch).field, String(port)).to.equal('port');
    }
  });

  it('refuses instance names and proc ids that do not follow the name rules', () => {
    for (const instance of ['Cache', '-a', 'a\nb', '../etc', 'a'.repeat(64), '']) {
      const taskId = `${instance}::${randomUUID()}`;
      const { launch } = replicaLaunch({ instance, proc_id: taskId });
      expect(refusal(taskId, launch).field, JSON.stringify(instance)).to.equal('instance');
    }
    const { taskId, launch } = replicaLaunch();
    for (const badId of ['cache-1::not-a-uuid', `other::${randomUUID()}`, `cache-1::${randomUUID()}/..`, `cache-1::${randomUUID().toUpperCase()}`, `cache-1::${randomUUID()}\n`]) {
      expect(refusal(badId, { ...launch, proc_id: badId }).field, badId).to.equal('task_id');
    }
    expect(refusal(taskId, { ...launch, proc_id: `cache-1::${randomUUID()}` }).field).to.equal('proc_id');
  });

  it('keeps numbers within their limits', () => {
    const cases: [Partial<redfleet.v1.IRedisLaunch>, string][] = [
      [{ capacity_mb: 0 }, 'capacity_mb'],
      [{ capacity_mb: 1025 }, 'capacity_mb'],
      [{ replica_priority: 1001 }, 'replica_priority'],
      [{ min_replicas_to_write: 17 }, 'min_replicas_to_write'],
      [{ min_replicas_max_lag: 3601 }, 'min_replicas_max_lag'],
      [{ max_clients: 100_001 }, 'max_clients'],
      [{ master_port: 0 }, 'master_port'],
      [{ master_port: 70000 }, 'master_port'],
      [{ master_ip: 'example.com' }, 'master_ip'],
      [{ master_ip: '10.0.0.5\nuser x on' }, 'master_ip'],
      [{ master_ip: '' }, 'master_ip'],
    ];
    for (const [override, field] of cases) {
      const { taskId, launch } = replicaLaunch(override);
      expect(refusal(taskId, launch).field, JSON.stringify(override)).to.equal(field);
    }
    // An unknown role does not survive decoding; checked anyway for callers that build one.
    const { taskId, launch } = replicaLaunch();
    expect(refusal(taskId, { ...launch, role: 7 as redfleet.v1.RedisLaunch.Role }).field).to.equal('role');
  });
});

describe('redis.conf limits', () => {
  const conf = renderRedisConfig({
    ip: '127.0.0.1', port: 7001, dir: '/tmp/x', capacityMb: 64, passwordSha256: HASH, frameworkSecret: 's',
    replicaPriority: 100, minReplicasToWrite: 0, minReplicasMaxLag: 10, maxClients: 0,
  });

  it('caps client buffers and loads replication in memory', () => {
    expect(conf).to.match(/^client-output-buffer-limit normal 16mb 8mb 30$/m);
    expect(conf).to.match(/^client-output-buffer-limit pubsub 16mb 8mb 30$/m);
    expect(conf).to.match(/^client-query-buffer-limit 64mb$/m);
    expect(conf).to.match(/^repl-diskless-load swapdb$/m);
    expect(conf).to.match(/^save ""$/m);
  });

  it('sets the hard ceiling at twice the capacity plus a fixed margin', () => {
    expect(memoryCeilingBytes(64)).to.equal((2 * 64 + 48) * 1024 * 1024);
  });
});
