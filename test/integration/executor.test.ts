import { expect } from 'chai';
import { mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, existsSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { connect as connectTcp } from 'node:net';
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { LocalFleet, pidAlive } from '../harness/local-fleet.js';
import { startEtcdServer, type EtcdServer } from '../../src/devtools/etcd-server.js';
import { RedFleetAgent } from '../../src/executor/agent.js';
import { RedisProcess, type ProcExit } from '../../src/executor/redis-process.js';
import { createLogger } from '../../src/logger.js';
import { removeAbandonedCgroups, RSS_MARGIN_MB, memoryCeilingBytes } from '../../src/executor/cgroup.js';
import { eventKey, schedulerProof, sha256Hex } from '../../src/store/secrets.js';
import { sealEvent } from '../../src/proto/sealed-event.js';
import { encodeFrame } from '../../src/proto/recordio.js';
import { pb } from '../../src/proto/messages.js';
import type { redfleet } from '../../src/proto/redfleet.js';
import { freePort } from '../../src/net.js';
import { setTimeout as sleep } from 'node:timers/promises';

const MB = 1024 * 1024;

/** Every file and directory under `dir` (recursive). */
function walk(dir: string): string[] {
  const out: string[] = [];
  let entries: string[] = [];
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const entry of entries) {
    const path = join(dir, entry);
    out.push(path);
    try {
      if (statSync(path).isDirectory()) out.push(...walk(path));
    } catch {
      // removed meanwhile
    }
  }
  return out;
}

/** The redis-server of this fleet listening on `port` (its title is "redis-server ip:port"). */
function pidOfPort(fleet: LocalFleet, port: number): number {
  const pid = fleet.redisPids().find((p) => readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(`:${port}`));
  if (!pid) throw new Error(`no redis-server on port ${port}`);
  return pid;
}

function rssBytes(pid: number): number {
  try {
    const kb = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return Number(kb ?? 0) * 1024;
  } catch {
    return 0;
  }
}

/** Samples a process's RSS every few ms until stopped; returns the highest seen. */
function watchRss(pid: number): { stop(): number } {
  let max = rssBytes(pid);
  const timer = setInterval(() => { max = Math.max(max, rssBytes(pid)); }, 5);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(max, rssBytes(pid));
    },
  };
}

describe('executor: tenant memory and tenant data on disk', function () {
  let fleet: LocalFleet;

  before(async () => {
    fleet = await LocalFleet.start({ agents: 2 });
  });

  after(async () => {
    await fleet?.stop();
    removeAbandonedCgroups();
  });

  it('a replica syncs in memory: no RDB file ever, dirs 0700 and files 0600, and a kill -9\'d proc leaves no directory', async () => {
    const agentsDir = join(fleet.dir, 'agents');
    const rdbSeen = new Set<string>();
    const scan = setInterval(() => {
      for (const path of walk(agentsDir)) if (/\.rdb$/.test(path)) rdbSeen.add(path);
    }, 5);
    try {
      const res = await fleet.api('POST', '/v1/CREATE/disk1/64/1/1');
      expect(res.status).to.equal(201);
      const password = res.headers.get('x-redis-password') ?? '';
      await fleet.waitForStatus('disk1', 'RUNNING');
      const status = (await fleet.api('GET', '/v1/STATUS/disk1')).json;
      const master = new Redis({ port: Number(status.Master.Port), password, lazyConnect: true, maxRetriesPerRequest: 1 });
      try {
        await master.connect();
        await master.set('tenant-data', 'x'.repeat(100_000));
        expect(await master.wait(1, 2000)).to.equal(1);
      } finally {
        master.disconnect();
      }
      await sleep(200);
    } finally {
      clearInterval(scan);
    }
    expect([...rdbSeen], 'RDB files written during the sync').to.deep.equal([]);

    for (const agent of ['agent1', 'agent2']) {
      const workDir = join(agentsDir, agent);
      expect(statSync(workDir).mode & 0o777, workDir).to.equal(0o700);
      for (const path of walk(workDir)) {
        const stat = statSync(path);
        expect(stat.mode & 0o777, path).to.equal(stat.isDirectory() ? 0o700 : 0o600);
      }
    }

    const status = (await fleet.api('GET', '/v1/STATUS/disk1')).json;
    const replicaPid = pidOfPort(fleet, Number(status.Slaves[0].Port));
    const replicaDir = readlinkSync(`/proc/${replicaPid}/cwd`);
    expect(existsSync(join(replicaDir, 'redis.conf'))).to.equal(true);
    process.kill(replicaPid, 'SIGKILL');
    await fleet.waitFor(() => !existsSync(replicaDir), 5000, 'the crashed proc\'s directory to be removed');
    // The directory goes first, then the agent logs its tail: wait for the line, do not race it.
    await fleet.waitFor(() => (fleet.log('agent1') + fleet.log('agent2')).includes('redis-server log tail'), 5000, 'the last log lines kept in the agent log');
  });

  it(`keeps a 64 MB proc under 2 x capacity + ${RSS_MARGIN_MB} MB: a client that never reads, and a Lua function that hoards strings`, async () => {
    const ceiling = (2 * 64 + RSS_MARGIN_MB) * MB;
    const res = await fleet.api('POST', '/v1/CREATE/mem1/64/1/0');
    expect(res.status).to.equal(201);
    const password = res.headers.get('x-redis-password') ?? '';
    await fleet.waitForStatus('mem1', 'RUNNING');
    const port = Number((await fleet.api('GET', '/v1/STATUS/mem1')).json.Master.Port);
    const pid = pidOfPort(fleet, port);
    const tenant = new Redis({ port, password, lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
    tenant.on('error', () => undefined);
    await tenant.connect();
    await tenant.set('big', 'x'.repeat(8 * MB));

    // 1. Forty GETs of an 8 MB value from a client that never reads a reply (320 MB of replies).
    let rss = watchRss(pid);
    const slow = connectTcp({ host: '127.0.0.1', port });
    slow.on('error', () => undefined);
    let cutOff = false;
    slow.on('close', () => { cutOff = true; });
    slow.pause();
    slow.write(`AUTH ${password}\r\n${'GET big\r\n'.repeat(40)}`);
    // The client reads nothing, so it learns of the disconnect only when a write of its own is
    // refused (the server answers it with a reset): it keeps sending PINGs until then.
    await fleet.waitFor(() => {
      if (!cutOff && !slow.destroyed) slow.write('PING\r\n');
      return cutOff;
    }, 15_000, 'redis-server to cut off the client that never reads');
    const afterReplies = rss.stop();
    expect(afterReplies, `RSS ${Math.round(afterReplies / MB)} MB with unread replies`).to.be.below(ceiling);
    expect(pidAlive(pid), 'the proc survives: the client is cut off, not the server').to.equal(true);
    expect(await tenant.ping()).to.equal('PONG');

    // 2. A FUNCTION whose library keeps every string it makes: Lua's heap is outside maxmemory.
    rss = watchRss(pid);
    const library = [
      '#!lua name=hoard',
      'local kept = {}',
      "redis.register_function('hoard', function(keys, args)",
      "  local chunk = string.rep('y', 8 * 1024 * 1024)",
      // Each string is new (Lua interns strings: the same content would be stored once).
      '  for i = 1, 4 do kept[#kept + 1] = chunk .. #kept end',
      '  return #kept',
      'end)',
    ].join('\n');
    expect(await tenant.call('FUNCTION', 'LOAD', library)).to.equal('hoard');
    let kept = 0;
    let lastError = '';
    for (let i = 0; i < 12 && pidAlive(pid); i++) {
      kept = Number(await tenant.call('FCALL', 'hoard', '0').catch((err: Error) => { lastError = err.message; return kept; }));
    }
    expect(kept, `the function ran (${lastError})`).to.be.at.least(4);
    const afterLua = rss.stop();
    tenant.disconnect();
    expect(afterLua, `RSS ${Math.round(afterLua / MB)} MB with a hoarding function`).to.be.below(ceiling);
    // Where the node gave the proc a cgroup, the kernel ended it at the ceiling, and the agent says so.
    if (!pidAlive(pid) && /procs get a memory cgroup/.test(fleet.log('agent1') + fleet.log('agent2'))) {
      await fleet.waitFor(() => /memory ceiling/.test(fleet.log('agent1') + fleet.log('agent2')), 5000, 'the agent to report the memory ceiling');
    }
  });
});

describe('executor: the memory ceiling on a node without cgroups', function () {
  it('kills a proc whose Lua heap passes 2 x capacity + 48 MB, and says why', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'redfleet-nocgroup-'));
    const port = await freePort();
    const redis = new RedisProcess({
      procId: `hog::${randomUUID()}`, redisServer: 'redis-server', log: createLogger('test'), ip: '127.0.0.1', port,
      dir: join(dir, 'proc'), capacityMb: 16, passwordSha256: sha256Hex('tenant-pw'), frameworkSecret: 'framework-secret',
      replicaPriority: 100, minReplicasToWrite: 0, minReplicasMaxLag: 10, maxClients: 0, memoryCeilingBytes: memoryCeilingBytes(16),
    });
    const tenant = new Redis({ port, password: 'tenant-pw', lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
    tenant.on('error', () => undefined);
    try {
      const exited = new Promise<ProcExit>((r) => redis.once('exit', r));
      await redis.start();
      await tenant.connect();
      await tenant.call('FUNCTION', 'LOAD', "#!lua name=hog\nlocal kept = {}\nredis.register_function('hog', function() local c = string.rep('z', 8 * 1024 * 1024) for i = 1, 4 do kept[#kept + 1] = c .. #kept end return #kept end)");
      for (let i = 0; i < 12 && !redis.exited; i++) {
        await tenant.call('FCALL', 'hog', '0').catch(() => undefined);
        await sleep(100);
      }
      const exit = await Promise.race([exited, sleep(3000, undefined)]);
      expect(exit?.reason, 'the proc was ended over its ceiling').to.match(/memory ceiling/);
      expect(exit?.requested).to.equal(false);
    } finally {
      tenant.disconnect();
      await redis.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('executor: launch failures', function () {
  let fleet: LocalFleet;

  before(async () => {
    fleet = await LocalFleet.start({ agents: 1, agent: { redisServer: '/nonexistent/redis-server' } });
  });

  after(async () => {
    await fleet?.stop();
  });

  it('RedisProcess: a server that never started emits exit once, and stop() returns at once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'redfleet-nobin-'));
    try {
      const redis = new RedisProcess({
        procId: `nobin::${randomUUID()}`, redisServer: '/nonexistent/redis-server', log: createLogger('test'), ip: '127.0.0.1', port: await freePort(),
        dir: join(dir, 'proc'), capacityMb: 16, passwordSha256: 'a'.repeat(64), frameworkSecret: 's', replicaPriority: 100, minReplicasToWrite: 0, minReplicasMaxLag: 10, maxClients: 0,
      });
      const exits: ProcExit[] = [];
      redis.on('exit', (e: ProcExit) => exits.push(e));
      let error = '';
      await redis.start().catch((err: Error) => { error = err.message; });
      expect(error).to.contain('not found at /nonexistent/redis-server (ENOENT)');
      const started = Date.now();
      await redis.stop();
      expect(Date.now() - started).to.be.below(100);
      expect(exits).to.have.length(1);
      expect(exits[0]).to.include({ requested: false });
      expect(existsSync(join(dir, 'proc')), 'nothing written').to.equal(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reports a missing redis-server binary as FAILED with ENOENT, and the agent still stops at once', async () => {
    expect((await fleet.api('POST', '/v1/CREATE/nobin/64/1/0')).status).to.equal(201);
    const line = await fleet.waitFor(
      () => fleet.log('agent1').split('\n').find((l) => l.includes('TASK_FAILED') && l.includes('not found at /nonexistent/redis-server (ENOENT)')),
      10_000,
      'a FAILED status naming the missing binary',
    );
    expect(line).not.to.contain('stopped on request');
    await fleet.waitFor(() => /proc state.*ENOENT|ENOENT.*proc state/.test(fleet.log('scheduler')), 5000, 'the scheduler to record the reason');
    expect(fleet.log('agent1')).not.to.match(/TASK_KILLED/);
    const started = Date.now();
    await fleet.stopAgent('agent1', 'SIGTERM');
    expect(Date.now() - started, 'agent stop time (ms)').to.be.below(5000);
  });
});

/**
 * A scheduler that holds the fleet key but sends LAUNCHes no real scheduler would (a compromised
 * or buggy one): it speaks the real session protocol (challenge, proof, sealed frames), so the
 * only thing between its LAUNCH fields and redis.conf is the agent's own check.
 */
async function fakeScheduler(fleetKey: string, launches: redfleet.v1.ITaskInfo[]): Promise<{ url: string; statuses: redfleet.v1.ITaskStatus[]; server: Server; streams: ServerResponse[] }> {
  const statuses: redfleet.v1.ITaskStatus[] = [];
  const streams: ServerResponse[] = [];
  const nonce = 'fake-scheduler-nonce';
  const server = createServer((req, res) => {
    if (req.url === '/api/v1/agent/challenge') {
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ nonce, expiresInSeconds: 30 }));
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const call = pb.Call.decode(Buffer.concat(chunks));
      if (call.type === pb.Call.Type.UPDATE && call.update) {
        statuses.push(call.update.status);
        res.writeHead(202).end();
        return;
      }
      if (call.type !== pb.Call.Type.SUBSCRIBE) {
        res.writeHead(202).end();
        return;
      }
      const agentId = String(req.headers['x-redfleet-agent']);
      const clientNonce = String(req.headers['x-redfleet-client-nonce']);
      const session = 'fake-session';
      const key = eventKey(fleetKey, agentId, clientNonce, nonce, session);
      res.writeHead(200, { 'Content-Type': 'application/recordio' });
      streams.push(res);
      let seq = 0;
      const send = (event: redfleet.v1.IEvent) => res.write(encodeFrame(sealEvent(key, ++seq, event)));
      send({
        type: pb.Event.Type.SUBSCRIBED,
        subscribed: { agent_id: { value: agentId }, framework_id: { value: 'fake' }, heartbeat_interval_seconds: 5, session, proof: schedulerProof(fleetKey, agentId, clientNonce, nonce, session) },
      });
      for (const task of launches) send({ type: pb.Event.Type.LAUNCH, launch: { task } });
    });
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${port}`, statuses, server, streams };
}

describe('executor: a forged LAUNCH', function () {
  let etcd: EtcdServer | undefined;
  let agent: RedFleetAgent | undefined;
  let scheduler: Awaited<ReturnType<typeof fakeScheduler>> | undefined;
  let dir = '';

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'redfleet-forged-'));
  });

  after(async () => {
    for (const s of scheduler?.streams ?? []) s.destroy();
    await agent?.stop();
    scheduler?.server.close();
    await etcd?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('never lets a newline in password_sha256 reach redis.conf: TASK_FAILED, and no file or process', async () => {
    etcd = await startEtcdServer(join(dir, 'etcd'));
    const basePort = await freePort();
    const task = (instance: string, port: number, passwordSha256: string): redfleet.v1.ITaskInfo => {
      const id = `${instance}::${randomUUID()}`;
      return {
        name: 'redis', task_id: { value: id }, agent_id: { value: 'forged-test' },
        data: pb.RedisLaunch.encode({ instance, proc_id: id, role: pb.RedisLaunch.Role.MASTER, port, capacity_mb: 16, password_sha256: passwordSha256 }).finish(),
      };
    };
    const backdoor = task('victim', basePort, `${'a'.repeat(64)}\nuser backdoor on nopass ~* &* +@all`);
    const outOfRange = task('victim', basePort + 100, 'b'.repeat(64));
    const fleetKey = 'k'.repeat(43);
    scheduler = await fakeScheduler(fleetKey, [backdoor, outOfRange]);
    const workDir = join(dir, 'work');
    agent = new RedFleetAgent({
      schedulerUrl: scheduler.url, etcd: etcd.url, prefix: '/MrRedis', id: 'forged-test', ip: '127.0.0.1', cpus: 1, mem: 256,
      ports: { begin: basePort, end: basePort }, workDir, redisServer: 'redis-server', fleetKey,
    });
    await agent.start();
    const failed = (id: string) => scheduler!.statuses.find((s) => s.task_id.value === id && s.state === pb.TaskState.TASK_FAILED);
    await waitUntil(() => failed(backdoor.task_id.value) && failed(outOfRange.task_id.value), 10_000);
    expect(failed(backdoor.task_id.value)!.message).to.match(/password_sha256/);
    expect(failed(outOfRange.task_id.value)!.message).to.match(/port/);
    expect(scheduler.statuses.filter((s) => s.state === pb.TaskState.TASK_RUNNING)).to.deep.equal([]);
    expect(walk(workDir), 'nothing written for a refused LAUNCH').to.deep.equal([]);
    expect(await portListening(basePort), 'no redis-server started').to.equal(false);
  });
});

/** A bounded wait for a condition (no fleet harness here). */
async function waitUntil(probe: () => unknown, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(25);
  }
}

function portListening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connectTcp({ host: '127.0.0.1', port });
    sock.once('connect', () => { sock.destroy(); resolve(true); });
    sock.once('error', () => resolve(false));
  });
}
