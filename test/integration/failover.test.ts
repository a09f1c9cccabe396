import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { frameworkSecret } from '../../src/store/secrets.js';
import { LocalFleet, pidAlive as alive } from '../harness/local-fleet.js';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * A client that finds the master only through the Sentinel-compatible endpoint, writes without
 * pause, and follows each write with WAIT 1 100: a write counts as acknowledged when at least
 * one replica has it. Every acknowledged write must survive any failover.
 */
class Writer {
  readonly acked: string[] = [];
  errors = 0;
  writes = 0;
  private stopped = false;
  private loop?: Promise<void>;
  readonly redis: Redis;

  constructor(sentinelPort: number, name: string, password: string) {
    this.redis = new Redis({
      sentinels: [{ host: '127.0.0.1', port: sentinelPort }],
      name,
      password,
      // Plain ioredis, as an existing application has it: no failoverDetector. A client follows a
      // failover because RedFleet closes the old master's connections (it dies, or is fenced and
      // shut down) and the reconnect asks the endpoint again. (ioredis's failoverDetector can end
      // a client for good when +switch-master lands during a reconnect: docs/BENCHMARKS.md.)
      commandTimeout: 500,
      maxRetriesPerRequest: 1,
      retryStrategy: () => 50,
      sentinelRetryStrategy: () => 50,
    });
    this.redis.on('error', () => undefined);
  }

  start(): void {
    this.loop = (async () => {
      const deadline = Date.now() + 90_000;
      for (let i = 0; !this.stopped && i < 1_000_000 && Date.now() < deadline; i++) {
        const key = `w:${i}`;
        try {
          await this.redis.set(key, String(i));
          this.writes++;
          if ((await this.redis.wait(1, 100)) >= 1) this.acked.push(key);
        } catch {
          this.errors++;
          await sleep(20);
        }
      }
    })();
  }

  /** Resolves once `n` more writes were acknowledged. */
  async progress(n: number, timeoutMs: number): Promise<void> {
    const target = this.acked.length + n;
    const deadline = Date.now() + timeoutMs;
    while (this.acked.length < target) {
      if (Date.now() > deadline) throw new Error(`writes did not resume: ${this.acked.length}/${target} acknowledged, ${this.errors} errors`);
      await sleep(20);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  /** Checks every acknowledged write on the current master; returns how many were missing. */
  async missing(master: { ip: string; port: number }, password: string): Promise<string[]> {
    const r = new Redis({ host: master.ip, port: master.port, password, lazyConnect: true });
    await r.connect();
    try {
      const lost: string[] = [];
      for (let i = 0; i < this.acked.length; i += 500) {
        const keys = this.acked.slice(i, i + 500);
        const values = await r.mget(...keys);
        values.forEach((v, j) => { if (v === null) lost.push(keys[j]); });
      }
      return lost;
    } finally {
      r.disconnect();
    }
  }
}

function sentinelAddr(fleet: LocalFleet, name: string): string {
  const out = spawnSync('redis-cli', ['-p', String(fleet.sentinelPort), '--raw', 'SENTINEL', 'get-master-addr-by-name', name], { encoding: 'utf8' });
  return out.stdout.trim().split('\n').filter(Boolean).join(':');
}

/** Acceptance 7: the Sentinel endpoint and GET /v1/STATUS name the same master. */
async function expectSameMaster(fleet: LocalFleet, name: string): Promise<string> {
  const status = (await fleet.api('GET', `/v1/STATUS/${name}`)).json;
  const viaSentinel = sentinelAddr(fleet, name);
  const viaStatus = status.Master ? `${status.Master.IP}:${status.Master.Port}` : '';
  expect(viaSentinel, 'SENTINEL get-master-addr-by-name vs /v1/STATUS').to.equal(viaStatus);
  return viaStatus;
}

async function whole(fleet: LocalFleet, name: string, replicas: number, timeoutMs = 20_000): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  return fleet.waitFor(async () => {
    const i = (await fleet.api('GET', `/api/instances/${name}`)).json;
    const live = i.procs.filter((p: { state: string }) => ['STAGING', 'STARTING', 'RUNNING'].includes(p.state));
    return i.status === 'RUNNING' && i.master && i.slaves.length === replicas && live.length === replicas + 1 ? i : undefined;
  }, timeoutMs, `${name} to be whole with ${replicas} replicas`);
}

/** Roles the instance's live redis-servers report: exactly one must be master. */
async function roles(inst: { procs: { ip: string; port: number; state: string }[] }, password: string): Promise<string[]> {
  const out: string[] = [];
  for (const p of inst.procs.filter((x) => x.state === 'RUNNING')) {
    const r = new Redis({ host: p.ip, port: p.port, password, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 500 });
    try {
      await r.connect();
      out.push(((await r.role()) as string[])[0]);
    } catch {
      out.push('unreachable');
    } finally {
      r.disconnect();
    }
  }
  return out;
}

describe('failover', function () {
  this.timeout(120_000);
  let fleet: LocalFleet;

  beforeEach(async () => {
    fleet = await LocalFleet.start({ agents: 4, schedulerArgs: ['--agent-timeout', '3'] });
  });

  afterEach(async () => {
    await fleet?.stop();
  });

  async function create(name: string, replicas: number): Promise<{ password: string; inst: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
    const res = await fleet.api('POST', '/api/instances', { name, capacityMb: 32, replicas });
    expect(res.status).to.equal(202);
    const inst = await fleet.waitForStatus(name, 'RUNNING');
    return { password: res.json.password, inst };
  }

  it('master killed (kill -9): writes resume on a promoted replica, nothing acknowledged is lost, 1+2 again', async () => {
    const { password, inst } = await create('cache1', 2);
    expect(await expectSameMaster(fleet, 'cache1')).to.equal(`${inst.master.ip}:${inst.master.port}`);
    const writer = new Writer(fleet.sentinelPort, 'cache1', password);
    writer.start();
    try {
      await writer.progress(50, 10_000);
      process.kill(inst.master.pid, 'SIGKILL');
      await writer.progress(50, 15_000);
      const after = await whole(fleet, 'cache1', 2);
      expect(after.master.id).not.to.equal(inst.master.id);
      expect(inst.slaves.map((s: { id: string }) => s.id)).to.include(after.master.id, 'a replica was promoted');
      expect(after.epoch).to.equal(inst.epoch + 1);
      await writer.stop();
      expect(await writer.missing(after.master, password)).to.deep.equal([]);
      expect(await expectSameMaster(fleet, 'cache1')).to.equal(`${after.master.ip}:${after.master.port}`);
      expect((await roles(after, password)).sort()).to.deep.equal(['master', 'slave', 'slave']);
      // The scheduler keeps no link to a replica: the promoted one gets its busy-script threshold
      // (half of the default 1 s down-after; Redis's own default is 5 s) with its promotion.
      const key = readFileSync(fleet.fleetKeyPath, 'utf8').trim();
      const framework = new Redis({ host: after.master.ip, port: after.master.port, username: 'redfleet', password: frameworkSecret(key, 'cache1'), maxRetriesPerRequest: 0 });
      try {
        expect(await framework.config('GET', 'lua-time-limit')).to.deep.equal(['lua-time-limit', '500']);
      } finally {
        framework.disconnect();
      }
      // The failover log line names both procs by id and by address, so it reads without a lookup.
      const line = fleet.log('scheduler').split('\n').map((l) => { try { return JSON.parse(l); } catch { return {}; } })
        .find((l) => l.message === 'failover' && l.instance === 'cache1');
      expect(line, 'a failover log line').to.not.equal(undefined);
      expect(line).to.include({ from: inst.master.id, fromAddress: `${inst.master.ip}:${inst.master.port}`, to: after.master.id, toAddress: `${after.master.ip}:${after.master.port}` });
      // The history the API and the dashboard show, written with the failover itself.
      expect(after.failovers).to.have.length(1);
      expect(after.failovers[0]).to.include({ epoch: after.epoch, planned: false, from: inst.master.id, to: after.master.id, toAddress: `${after.master.ip}:${after.master.port}` });
      expect(after.failovers[0].cause).to.be.a('string').and.not.equal('');
      expect(JSON.parse(fleet.tree('/MrRedis/Instances/cache1/Failovers').get('/MrRedis/Instances/cache1/Failovers') as string)).to.have.length(1);
    } finally {
      await writer.stop();
      writer.redis.disconnect();
    }
  });

  it('master frozen (SIGSTOP 5 s): exactly one failover, the old master is fenced and shut down', async () => {
    const { password, inst } = await create('frozen', 2);
    const writer = new Writer(fleet.sentinelPort, 'frozen', password);
    writer.start();
    try {
      await writer.progress(50, 10_000);
      process.kill(inst.master.pid, 'SIGSTOP');
      await writer.progress(20, 15_000);
      const during = (await fleet.api('GET', '/api/instances/frozen')).json;
      expect(during.master.id).not.to.equal(inst.master.id);
      expect(await expectSameMaster(fleet, 'frozen')).to.equal(`${during.master.ip}:${during.master.port}`);
      await sleep(Math.max(0, 5000));
      if (alive(inst.master.pid)) process.kill(inst.master.pid, 'SIGCONT');
      await fleet.waitFor(() => !alive(inst.master.pid), 5000, 'the old master to be shut down');
      const after = await whole(fleet, 'frozen', 2);
      expect(after.epoch).to.equal(inst.epoch + 1, 'exactly one failover');
      expect(after.master.id).to.equal(during.master.id);
      await writer.stop();
      expect(await writer.missing(after.master, password)).to.deep.equal([]);
      expect((await roles(after, password)).filter((r) => r === 'master')).to.have.length(1);
      expect(await expectSameMaster(fleet, 'frozen')).to.equal(`${after.master.ip}:${after.master.port}`);
      const flags = spawnSync('redis-cli', ['-p', String(fleet.sentinelPort), '--raw', 'SENTINEL', 'master', 'frozen'], { encoding: 'utf8' }).stdout.split('\n');
      expect(flags[flags.indexOf('flags') + 1]).to.equal('master', 'no s_down/o_down once the failover is done');
    } finally {
      if (alive(inst.master.pid)) process.kill(inst.master.pid, 'SIGCONT');
      await writer.stop();
      writer.redis.disconnect();
    }
  });

  it('node lost (agent and redis-server killed): failover, and nothing it ran is master when it returns', async () => {
    const { password, inst } = await create('nodeloss', 2);
    const agentId = inst.master.agent;
    await fleet.stopAgent(agentId, 'SIGKILL');
    process.kill(inst.master.pid, 'SIGKILL');
    const promoted = await fleet.waitFor(async () => {
      const i = (await fleet.api('GET', '/api/instances/nodeloss')).json;
      return i.master && i.master.id !== inst.master.id ? i : undefined;
    }, 10_000, 'a promotion');
    expect(await expectSameMaster(fleet, 'nodeloss')).to.equal(`${promoted.master.ip}:${promoted.master.port}`);
    await fleet.startAgent(agentId);
    const after = await whole(fleet, 'nodeloss', 2);
    expect(after.master.agent).not.to.equal(agentId);
    // The old master's proc is gone from the tree or ended (LOST), never live again.
    const oldProc = after.procs.find((p: { id: string }) => p.id === inst.master.id);
    expect(oldProc === undefined || !['STAGING', 'STARTING', 'RUNNING'].includes(oldProc.state), JSON.stringify(oldProc)).to.equal(true);
    expect((await roles(after, password)).filter((r) => r === 'master')).to.have.length(1);
    expect(after.epoch).to.equal(inst.epoch + 1);
  });

  it('replica killed: replaced, the count restored, the master undisturbed', async () => {
    const { inst } = await create('replica', 2);
    process.kill(inst.slaves[0].pid, 'SIGKILL');
    const after = await fleet.waitFor(async () => {
      const i = (await fleet.api('GET', '/api/instances/replica')).json;
      return i.status === 'RUNNING' && i.slaves.length === 2 && !i.slaves.some((s: { id: string }) => s.id === inst.slaves[0].id) ? i : undefined;
    }, 15_000, 'a replacement replica');
    expect(after.master.id).to.equal(inst.master.id);
    expect(after.master.pid).to.equal(inst.master.pid);
    expect(after.epoch).to.equal(inst.epoch);
    expect(await expectSameMaster(fleet, 'replica')).to.equal(`${inst.master.ip}:${inst.master.port}`);
  });

  it('new master killed mid-failover: converges to one master with every replica', async () => {
    const { password, inst } = await create('midway', 2);
    // Kill the master, then the promoted replica as soon as it is named.
    process.kill(inst.master.pid, 'SIGKILL');
    const first = await fleet.waitFor(async () => {
      const i = (await fleet.api('GET', '/api/instances/midway')).json;
      const named = i.procs.find((p: { id: string; role: string }) => p.id !== inst.master.id && p.role === 'master');
      return named ?? undefined;
    }, 10_000, 'the first promotion');
    process.kill(first.pid, 'SIGKILL');
    const after = await whole(fleet, 'midway', 2, 30_000);
    expect(after.master.id).not.to.equal(first.id);
    expect(after.master.id).not.to.equal(inst.master.id);
    expect((await roles(after, password)).sort()).to.deep.equal(['master', 'slave', 'slave']);
    expect(await expectSameMaster(fleet, 'midway')).to.equal(`${after.master.ip}:${after.master.port}`);
  });

  it('no eligible replica (priority 0): no promotion, DEGRADED, and the status says why', async () => {
    const { inst } = await create('noprom', 2);
    // The framework user may set replica-priority; derive its secret the way agents do.
    const key = readFileSync(fleet.fleetKeyPath, 'utf8').trim();
    for (const s of inst.slaves) {
      const r = new Redis({ host: s.ip, port: s.port, username: 'redfleet', password: frameworkSecret(key, 'noprom'), lazyConnect: true });
      await r.connect();
      await r.config('SET', 'replica-priority', '0');
      r.disconnect();
    }
    process.kill(inst.master.pid, 'SIGKILL');
    const stuck = await fleet.waitFor(async () => {
      const i = (await fleet.api('GET', '/api/instances/noprom')).json;
      // Under load a first attempt may find a replica slow to answer; a later one names the priority.
      return i.status === 'DEGRADED' && /no eligible replica/.test(i.reason) && /priority 0/.test(i.reason) ? i : undefined;
    }, 10_000, 'DEGRADED with the reason');
    expect(stuck.reason).to.match(/priority 0/);
    expect(stuck.epoch).to.equal(inst.epoch, 'no promotion happened');
    expect(fleet.log('scheduler')).to.match(/"message":"failover impossible"/);
  });

  it('standalone proc dies: a fresh proc replaces it and the status reports the data loss', async () => {
    const { password, inst } = await create('solo', 0);
    process.kill(inst.master.pid, 'SIGKILL');
    const after = await fleet.waitFor(async () => {
      const i = (await fleet.api('GET', '/api/instances/solo')).json;
      return i.status === 'RUNNING' && i.master && i.master.id !== inst.master.id ? i : undefined;
    }, 15_000, 'a fresh proc');
    expect(after.dataLost).to.match(/restarted empty/);
    const status = await fleet.cli(['status', 'solo']);
    expect(status.stdout).to.match(/data lost/);
    const r = new Redis({ host: after.master.ip, port: after.master.port, password, lazyConnect: true });
    await r.connect();
    expect(await r.ping()).to.equal('PONG');
    r.disconnect();
    expect(await expectSameMaster(fleet, 'solo')).to.equal(`${after.master.ip}:${after.master.port}`);
  });
});

describe('Sentinel-compatible endpoint', function () {
  this.timeout(60_000);
  let fleet: LocalFleet;
  let inst: any; // eslint-disable-line @typescript-eslint/no-explicit-any

  before(async () => {
    fleet = await LocalFleet.start({ agents: 3 });
    await fleet.api('POST', '/api/instances', { name: 'cache1', capacityMb: 32, replicas: 2 });
    inst = await fleet.waitForStatus('cache1', 'RUNNING');
  });

  after(async () => {
    await fleet?.stop();
  });

  const cli = (...args: string[]) => spawnSync('redis-cli', ['-p', String(fleet.sentinelPort), ...args], { encoding: 'utf8' }).stdout;

  it('answers PING, ROLE, INFO and SENTINEL myid / sentinels', () => {
    expect(cli('PING').trim()).to.equal('PONG');
    expect(cli('--raw', 'ROLE').trim().split('\n')).to.deep.equal(['sentinel', 'cache1']);
    expect(cli('INFO')).to.match(/redis_mode:sentinel/).and.match(/master0:name=cache1,status=ok,address=127\.0\.0\.1:\d+,slaves=2,sentinels=1/);
    expect(cli('--raw', 'SENTINEL', 'myid').trim()).to.match(/^[0-9a-f]{40}$/);
    expect(cli('SENTINEL', 'sentinels', 'cache1').trim()).to.equal('');
  });

  it('lists masters and replicas with Sentinel field names', () => {
    const fields = (text: string) => {
      const lines = text.trim().split('\n');
      const out = new Map<string, string>();
      for (let i = 0; i + 1 < lines.length; i += 2) out.set(lines[i], lines[i + 1]);
      return out;
    };
    const master = fields(cli('--raw', 'SENTINEL', 'master', 'cache1'));
    expect(master.get('name')).to.equal('cache1');
    expect(master.get('ip')).to.equal(inst.master.ip);
    expect(master.get('port')).to.equal(String(inst.master.port));
    expect(master.get('flags')).to.equal('master');
    expect(master.get('num-slaves')).to.equal('2');
    expect(master.get('num-other-sentinels')).to.equal('0');
    expect(master.get('quorum')).to.equal('1');
    expect(master.get('down-after-milliseconds')).to.equal('1000');
    expect(master.get('runid')).to.match(/^[0-9a-f]{40}$/);
    const masters = cli('--raw', 'SENTINEL', 'masters');
    expect(masters).to.contain('cache1');
    const replicas = cli('--raw', 'SENTINEL', 'replicas', 'cache1');
    expect(replicas.match(/^master-link-status$/gm)).to.have.length(2);
    expect(replicas).to.contain(`${inst.slaves[0].ip}:${inst.slaves[0].port}`);
    expect(cli('--raw', 'SENTINEL', 'slaves', 'cache1')).to.equal(replicas);
  });

  it('gives a null reply for an unknown name and errors for unknown commands', () => {
    expect(cli('--no-raw', 'SENTINEL', 'get-master-addr-by-name', 'nosuch').trim()).to.equal('(nil)');
    expect(cli('SENTINEL', 'master', 'nosuch')).to.match(/No such master/);
    expect(cli('FLUSHALL')).to.match(/unknown command/);
  });

  it('speaks RESP3 after HELLO 3', () => {
    const out = cli('--no-raw', '-3', 'HELLO', '3');
    expect(out).to.match(/proto/).and.match(/sentinel/);
    expect(cli('--no-raw', '-3', 'SENTINEL', 'get-master-addr-by-name', 'nosuch').trim()).to.equal('(nil)');
    expect(cli('--no-raw', '-3', 'SENTINEL', 'master', 'cache1')).to.match(/1# "name" => "cache1"/);
  });

  it('publishes +switch-master to subscribers on a failover, and ioredis follows it', async () => {
    const sub = new Redis({ host: '127.0.0.1', port: fleet.sentinelPort });
    const events: string[] = [];
    sub.on('message', (channel: string, message: string) => events.push(`${channel} ${message}`));
    sub.on('pmessage', (_p: string, channel: string, message: string) => events.push(`p ${channel} ${message}`));
    await sub.subscribe('+switch-master', '+try-failover');
    await sub.psubscribe('+s*');
    try {
      process.kill(inst.master.pid, 'SIGKILL');
      const line = await fleet.waitFor(() => events.find((e) => e.startsWith('+switch-master ')), 10_000, '+switch-master');
      const after = (await fleet.api('GET', '/api/instances/cache1')).json;
      expect(line).to.equal(`+switch-master cache1 ${inst.master.ip} ${inst.master.port} ${after.master.ip} ${after.master.port}`);
      expect(events.some((e) => e.startsWith('+try-failover master cache1'))).to.equal(true);
      expect(events.some((e) => e.startsWith('p +switch-master cache1'))).to.equal(true);
      expect(await expectSameMaster(fleet, 'cache1')).to.equal(`${after.master.ip}:${after.master.port}`);
    } finally {
      sub.disconnect();
    }
  });

  it('survives garbage, huge lengths and slow clients', async () => {
    const { createConnection } = await import('node:net');
    const send = (bytes: Buffer | string) => new Promise<string>((resolve) => {
      const s = createConnection({ host: '127.0.0.1', port: fleet.sentinelPort }, () => s.write(bytes));
      let out = '';
      s.on('data', (d) => { out += d.toString(); });
      s.on('close', () => resolve(out));
      s.on('error', () => resolve(out));
      setTimeout(() => s.destroy(), 500);
    });
    expect(await send('*1\r\n$2147483647\r\n')).to.match(/Protocol error/);
    expect(await send(Buffer.from([0x2a, 0xff, 0x00, 0x0d, 0x0a]))).to.match(/Protocol error/);
    // A client that never reads: the server keeps serving others, and disconnects it once its
    // unread replies pass the endpoint's limit. It reads nothing, so it learns of that only when
    // a write of its own is refused: it keeps asking until then.
    const slow = createConnection({ host: '127.0.0.1', port: fleet.sentinelPort });
    let cutOff = false;
    slow.on('error', () => undefined);
    slow.on('close', () => { cutOff = true; });
    slow.pause();
    slow.write('SENTINEL masters\r\n'.repeat(2000));
    expect(cli('PING').trim()).to.equal('PONG');
    await fleet.waitFor(() => {
      if (!cutOff && !slow.destroyed) slow.write('SENTINEL masters\r\n'.repeat(500));
      return cutOff;
    }, 15_000, 'the endpoint to disconnect the client that never reads');
    expect(cli('PING').trim()).to.equal('PONG');
  });
});
