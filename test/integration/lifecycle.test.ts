import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { CLI, LocalFleet, killAndWait } from '../harness/local-fleet.js';
import { fleetKeyFingerprint, verifyFleetKey } from '../../src/store/fingerprint.js';
import { loadFleetKey } from '../../src/store/secrets.js';
import { startEtcdServer, type EtcdServer } from '../../src/devtools/etcd-server.js';
import { connectEtcd } from '../../src/store/etcd.js';
import { FleetKeyError } from '../../src/errors.js';
import { setTimeout as sleep } from 'node:timers/promises';

/** SENTINEL get-master-addr-by-name against one scheduler's endpoint, as "ip:port". */
async function masterAt(sentinelPort: number, name: string): Promise<string> {
  const sentinel = new Redis({ port: sentinelPort, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  sentinel.on('error', () => undefined);
  try {
    await sentinel.connect();
    const addr = (await sentinel.call('SENTINEL', 'get-master-addr-by-name', name)) as string[] | null;
    return addr ? `${addr[0]}:${addr[1]}` : '';
  } finally {
    sentinel.disconnect();
  }
}

/** Runs the CLI until it exits (killed after `timeoutMs`: a scheduler that does not exit fails the test). */
function runCli(args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child: ChildProcess = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

function withoutEtcdEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.REDFLEET_ETCD;
  return env;
}

describe('scheduler lifecycle: an etcd outage (issue 7 #14)', function () {
  this.timeout(90_000);
  let fleet: LocalFleet;
  let etcdPid = 0;
  let frozen = false;

  before(async () => {
    fleet = await LocalFleet.start({ agents: 3 });
    etcdPid = fleet.etcd.child.pid!;
  });

  after(async () => {
    if (frozen) process.kill(etcdPid, 'SIGCONT');
    await fleet?.stop();
  });

  it('stands down while etcd is frozen, leads again within 5 s of its return, restarts no redis-server and fails over after', async () => {
    const created = await fleet.api('POST', '/api/instances', { name: 'outage', capacityMb: 32, replicas: 2 });
    expect(created.status).to.equal(202);
    const inst = await fleet.waitForStatus('outage', 'RUNNING');
    const pidsBefore = fleet.redisPids().sort();
    const client = new Redis({ host: inst.master.ip, port: inst.master.port, password: created.json.password, maxRetriesPerRequest: 1, commandTimeout: 1000 });
    client.on('error', () => undefined);
    try {
      await client.set('before-the-outage', 'kept');

      process.kill(etcdPid, 'SIGSTOP');
      frozen = true;
      const frozenAt = Date.now();
      // It stops acting once its lease can no longer be vouched for, while etcd is still gone.
      await fleet.waitFor(async () => (await fleet.api('GET', '/healthz')).json.leader === false, 13_000, 'the scheduler to stand down');
      // Standing by, it still serves reads from its cache; the data plane keeps serving.
      expect((await fleet.api('GET', '/api/instances/outage')).json.master.id).to.equal(inst.master.id);
      expect(await client.get('before-the-outage')).to.equal('kept');
      await sleep(Math.max(0, 15_000 - (Date.now() - frozenAt)));
      process.kill(etcdPid, 'SIGCONT');
      frozen = false;
      const back = Date.now();

      await fleet.waitFor(async () => (await fleet.api('GET', '/healthz')).json.leader === true, 5_000, 'a leader within 5 s of etcd\'s return');
      expect(Date.now() - back).to.be.below(5_000);
      expect(fleet.scheduler!.exitCode, 'the scheduler must not exit').to.equal(null);
      expect((await fleet.api('GET', '/api/instances/outage')).status).to.equal(200);
      const again = await fleet.api('POST', '/api/instances', { name: 'after-outage', capacityMb: 16, replicas: 0 });
      expect(again.status, again.text).to.equal(202);

      // The agents find the new term and keep their procs: nothing is written off or restarted.
      await fleet.waitFor(async () => (await fleet.api('GET', '/healthz')).json.agents === 3, 10_000, 'the agents to resubscribe');
      await fleet.waitForStatus('after-outage', 'RUNNING');
      const outage = (await fleet.api('GET', '/api/instances/outage')).json;
      expect(outage.status).to.equal('RUNNING');
      expect(outage.procs.map((p: { pid: number }) => p.pid).sort()).to.deep.equal(inst.procs.map((p: { pid: number }) => p.pid).sort());
      const pidsNow = fleet.redisPids();
      expect(pidsBefore.every((pid) => pidsNow.includes(pid)), 'no redis-server restarted').to.equal(true);

      // And it acts again: a master killed now is failed over.
      process.kill(inst.master.pid, 'SIGKILL');
      const promoted = await fleet.waitFor(async () => {
        const i = (await fleet.api('GET', '/api/instances/outage')).json;
        return i.master && i.master.id !== inst.master.id && i.master.state === 'RUNNING' ? i.master : undefined;
      }, 15_000, 'a failover of the killed master');
      expect(await masterAt(fleet.sentinelPort, 'outage')).to.equal(`${promoted.ip}:${promoted.port}`);
    } finally {
      client.disconnect();
    }
  });
});

describe('scheduler lifecycle: standbys and the fleet key (issue 7 #21, #22, #23)', function () {
  this.timeout(90_000);
  let fleet: LocalFleet;
  let standby: { child: ChildProcess; apiUrl: string; sentinelPort: number } | undefined;
  let strangers = '';

  before(async () => {
    strangers = mkdtempSync(join(tmpdir(), 'redfleet-stranger-'));
    fleet = await LocalFleet.start({ agents: 3 });
  });

  after(async () => {
    if (standby) await killAndWait(standby.child, 'SIGKILL');
    await fleet?.stop();
    if (strangers) rmSync(strangers, { recursive: true, force: true });
  });

  it('keeps only the fleet key\'s fingerprint in etcd, never the key', () => {
    const key = loadFleetKey(fleet.fleetKeyPath, false).key;
    const stored = fleet.etcdctl('get', '--print-value-only', '/MrRedis/Config/FleetKeyFingerprint').trim();
    expect(stored).to.equal(fleetKeyFingerprint(key));
    expect(fleet.etcdctl('get', '--prefix', '/MrRedis/')).not.to.include(key);
  });

  it('refuses to start a scheduler with another fleet key, or with none where the fleet has one (exit 2), and leaves the fleet untouched', async () => {
    const created = await fleet.api('POST', '/api/instances', { name: 'guarded', capacityMb: 16, replicas: 1 });
    expect(created.status).to.equal(202);
    await fleet.waitForStatus('guarded', 'RUNNING');
    const otherKey = join(strangers, 'other.key');
    writeFileSync(otherKey, 'a-completely-different-fleet-key-0123456789\n', { mode: 0o600 });
    const base = ['scheduler', '--etcd', fleet.etcd.url, '--api', '127.0.0.1:0', '--sentinel', '127.0.0.1:0', '--id', 'stranger'];

    const wrong = await runCli([...base, '--fleet-key', otherKey], process.env, 20_000);
    expect(wrong.code, wrong.stderr).to.equal(2);
    expect(wrong.stderr).to.match(/fleet key does not match/);

    const missingKey = join(strangers, 'none', 'fleet.key');
    const missing = await runCli([...base, '--fleet-key', missingKey], process.env, 20_000);
    expect(missing.code, missing.stderr).to.equal(2);
    expect(missing.stderr).to.match(/copy the fleet key file/);
    expect(missing.stderr.trim().split('\n')).to.have.length(1);
    expect(existsSync(missingKey), 'no key is invented for a fleet that has one').to.equal(false);

    const health = (await fleet.api('GET', '/healthz')).json;
    expect(health.leader).to.equal(true);
    expect(health.agents).to.equal(3);
    const inst = (await fleet.api('GET', '/api/instances/guarded')).json;
    expect(inst.status).to.equal('RUNNING');
    expect(inst.procs.every((p: { state: string }) => p.state === 'RUNNING')).to.equal(true);
    expect(fleet.etcdctl('get', '--prefix', '--print-value-only', '/MrRedis/Config/election/')).not.to.include('stranger');
  });

  it('refuses to run without --etcd (exit 2, one line)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'redfleet-noetcd-'));
    try {
      const out = await runCli(['scheduler', '--fleet-key', join(dir, 'fleet.key'), '--api', '127.0.0.1:0', '--sentinel', '127.0.0.1:0'], withoutEtcdEnv(), 10_000);
      expect(out.code, out.stderr).to.equal(2);
      expect(out.stderr.trim().split('\n')).to.have.length(1);
      expect(out.stderr).to.match(/--etcd/);
      expect(existsSync(join(dir, 'fleet.key'))).to.equal(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses an --agent-heartbeat outside 1..60 whole seconds (exit 2, naming the flag)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'redfleet-heartbeat-'));
    try {
      const bad = ['0', '61', '1.5', 'soon'];
      const outs = await Promise.all(bad.map((seconds) => runCli(['scheduler', '--etcd', 'http://127.0.0.1:9', '--agent-heartbeat', seconds, '--fleet-key', join(dir, 'fleet.key'), '--api', '127.0.0.1:0', '--sentinel', '127.0.0.1:0'], withoutEtcdEnv(), 10_000)));
      for (const [i, out] of outs.entries()) {
        expect(out.code, `${bad[i]}: ${out.stderr}`).to.equal(2);
        expect(out.stderr).to.match(/--agent-heartbeat/);
      }
      expect(existsSync(join(dir, 'fleet.key'))).to.equal(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('serves the Sentinel endpoint and reads from a standby, refuses its writes with the leader\'s address, and keeps clients working when the leader dies', async () => {
    const created = await fleet.api('POST', '/api/instances', { name: 'both', capacityMb: 16, replicas: 2 });
    expect(created.status).to.equal(202);
    const inst = await fleet.waitForStatus('both', 'RUNNING');
    standby = await fleet.startStandby('standby-scheduler');
    const sb = standby;

    const health = (await fleet.apiAt(sb.apiUrl, 'GET', '/healthz')).json;
    expect(health.leader).to.equal(false);
    expect(health.leaderApi).to.equal(fleet.apiUrl);
    expect((await fleet.apiAt(sb.apiUrl, 'GET', '/api/instances/both')).json.master.id).to.equal(inst.master.id);
    expect((await fleet.apiAt(sb.apiUrl, 'GET', '/v1/STATUS/both')).status).to.equal(200);
    // Agents as etcd registers them; their streams are with the leader, not here.
    const agents = (await fleet.apiAt(sb.apiUrl, 'GET', '/api/agents')).json as { id: string; connected: boolean; tasks: string[] }[];
    expect(agents.map((a) => a.id)).to.deep.equal(['agent1', 'agent2', 'agent3']);
    expect(agents.every((a) => !a.connected)).to.equal(true);
    expect(agents.flatMap((a) => a.tasks)).to.include.members(inst.procs.map((p: { id: string }) => p.id));
    const leaderSays = await masterAt(fleet.sentinelPort, 'both');
    expect(leaderSays).to.equal(`${inst.master.ip}:${inst.master.port}`);
    expect(await masterAt(sb.sentinelPort, 'both')).to.equal(leaderSays);

    for (const [method, path, body] of [['POST', '/api/instances', { name: 'nope', capacityMb: 16, replicas: 0 }], ['DELETE', '/api/instances/both', undefined], ['POST', '/v1/CREATE/nope/16/1/0', undefined]] as const) {
      const refused = await fleet.apiAt(sb.apiUrl, method, path, body);
      expect(refused.status, `${method} ${path}`).to.equal(503);
      expect(refused.json.error.code).to.equal('NOT_LEADER');
      expect(refused.json.error.leader).to.equal(fleet.apiUrl);
      expect(refused.json.error.message).to.include(`the leader is at ${fleet.apiUrl}`);
      expect(refused.headers.get('x-redfleet-leader')).to.equal(fleet.apiUrl);
    }
    const agentCall = await fetch(`${sb.apiUrl}/api/v1/agent`, { method: 'POST', body: new Uint8Array(0) });
    expect(agentCall.status).to.equal(503);
    expect(fleet.tree('/MrRedis/Instances/nope/').size).to.equal(0);

    // After a failover the standby, from its own watched store, names the same new master.
    process.kill(inst.master.pid, 'SIGKILL');
    const moved = await fleet.waitFor(async () => {
      const now = await masterAt(fleet.sentinelPort, 'both');
      return now && now !== leaderSays ? now : undefined;
    }, 15_000, 'the leader to fail over');
    await fleet.waitFor(async () => (await masterAt(sb.sentinelPort, 'both')) === moved, 3_000, 'the standby to name the new master');
    await fleet.waitFor(async () => {
      const i = (await fleet.api('GET', '/api/instances/both')).json;
      return i.status === 'RUNNING' && i.slaves.length === 2 && i.slaves.every((s: { state: string }) => s.state === 'RUNNING');
    }, 20_000, 'the instance whole again');

    // A client that lists every scheduler as a sentinel survives the leader's death.
    const client = new Redis({
      sentinels: [{ host: '127.0.0.1', port: fleet.sentinelPort }, { host: '127.0.0.1', port: sb.sentinelPort }],
      name: 'both',
      password: created.json.password,
      commandTimeout: 500,
      maxRetriesPerRequest: 1,
      retryStrategy: () => 50,
      sentinelRetryStrategy: () => 50,
    });
    client.on('error', () => undefined);
    try {
      await fleet.waitFor(async () => (await client.set('k0', 'v')) === 'OK', 5_000, 'a first write');
      await fleet.killScheduler('SIGKILL');
      // Force a fresh discovery: the first sentinel listed is gone now.
      client.disconnect(true);
      let written = 0;
      await fleet.waitFor(async () => {
        await client.set(`k${++written}`, 'v');
        return written >= 20;
      }, 10_000, 'writes through the surviving sentinel');
      expect(await client.get('k0')).to.equal('v');
      expect(client.status).to.equal('ready');
      // The standby takes over once the dead leader's lease lapses.
      await fleet.waitFor(async () => (await fleet.apiAt(sb.apiUrl, 'GET', '/healthz')).json.leader === true, 12_000, 'the standby to lead');
      const lead = await fleet.apiAt(sb.apiUrl, 'POST', '/api/instances', { name: 'after', capacityMb: 16, replicas: 0 });
      expect(lead.status, lead.text).to.equal(202);
    } finally {
      client.disconnect();
    }
  });
});

describe('fleet-key fingerprint in etcd (issue 7 #21)', function () {
  this.timeout(30_000);
  let dir = '';
  let etcd: EtcdServer | undefined;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'redfleet-fingerprint-'));
    etcd = await startEtcdServer(join(dir, 'etcd'));
  });

  after(async () => {
    await etcd?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('is written once for a fresh fleet, matches its key, refuses another, and follows a rotation', async () => {
    const client = connectEtcd(etcd!.url);
    try {
      const prefix = '/Fingerprint';
      expect(await verifyFleetKey(client, prefix, 'first-key-0123456789abcdef')).to.equal('written');
      expect(await verifyFleetKey(client, prefix, 'first-key-0123456789abcdef')).to.equal('matched');
      let refused: unknown;
      await verifyFleetKey(client, prefix, 'stranger-key-0123456789abcdef').catch((err) => { refused = err; });
      expect(refused).to.be.instanceOf(FleetKeyError);
      expect((refused as FleetKeyError).code).to.equal('FLEET_KEY_MISMATCH');
      expect(await client.get(`${prefix}/Config/FleetKeyFingerprint`).string()).to.equal(fleetKeyFingerprint('first-key-0123456789abcdef'));
      // A rotation: the previous key's fingerprint is accepted once and replaced by the new key's.
      expect(await verifyFleetKey(client, prefix, 'second-key-0123456789abcdef', 'first-key-0123456789abcdef')).to.equal('rotated');
      expect(await client.get(`${prefix}/Config/FleetKeyFingerprint`).string()).to.equal(fleetKeyFingerprint('second-key-0123456789abcdef'));
      await verifyFleetKey(client, prefix, 'first-key-0123456789abcdef').then(() => expect.fail('the old key must no longer match'), (err) => expect(err).to.be.instanceOf(FleetKeyError));
    } finally {
      client.close();
    }
  });
});
