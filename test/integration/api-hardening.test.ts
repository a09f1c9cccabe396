import { loadFleetKey } from '../../src/store/secrets.js';
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, LocalFleet } from '../harness/local-fleet.js';
import { freePort } from '../../src/net.js';
import { setTimeout as sleep } from 'node:timers/promises';

const ADMIN = 'admin-token-for-api-hardening-tests';

/** Runs the CLI with no API around it (for commands that fail before reaching one). */
function runCli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolvePromise) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, REDFLEET_LOG_LEVEL: 'info', ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('exit', (code) => resolvePromise({ code, stdout, stderr }));
  });
}

describe('API hardening: placement admission, strict JSON, anonymous quota, aborted bodies', function () {
  this.timeout(60_000);
  let fleet: LocalFleet;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'redfleet-api-'));
    const tokenFile = join(dir, 'tokens');
    writeFileSync(tokenFile, `${ADMIN}\n`, { mode: 0o600 });
    fleet = await LocalFleet.start({
      agents: 3,
      adminToken: ADMIN,
      schedulerArgs: ['--api-token-file', tokenFile, '--anonymous', '--anonymous-per-client', '1', '--anonymous-ttl', '1h', '--trusted-proxy', '127.0.0.1'],
    });
  });

  after(async () => {
    await fleet?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const admin = { Authorization: `Bearer ${ADMIN}` };

  it('refuses with 409 and the numbers a create the fleet can never hold, and writes nothing', async () => {
    const out = await fleet.cli(['create', 'huge', '--capacity', '900', '--replicas', '5']);
    expect(out.code, out.stderr).to.equal(1);
    expect(out.stderr).to.match(/NEVER_PLACEABLE/).and.match(/6 procs/).and.match(/3 connected agent/);
    const res = await fleet.api('POST', '/api/instances', { name: 'huge', capacityMb: 2048 }, admin);
    expect(res.status).to.equal(409);
    expect(res.json.error).to.include({ code: 'NEVER_PLACEABLE', field: 'capacityMb' });
    expect(res.json.error.message).to.match(/2048/).and.match(/1024 MB/);
    expect(fleet.etcdctl('get', '--prefix', '--keys-only', '/MrRedis/Instances/huge').trim()).to.equal('');
  });

  it('create --wait --timeout gives up on what cannot be placed now, exits non-zero and says why', async () => {
    // 64 MB on each agent leaves 960 MB free: 1000 MB fits an empty agent but none today.
    const first = await fleet.cli(['create', 'filler', '--capacity', '64', '--replicas', '2']);
    expect(first.code, first.stderr).to.equal(0);
    await fleet.waitForStatus('filler', 'RUNNING');
    const started = Date.now();
    const out = await fleet.cli(['create', 'roomless', '--capacity', '1000', '--wait', '--timeout', '2']);
    expect(out.code).to.equal(1);
    expect(Date.now() - started).to.be.below(15_000);
    expect(out.stderr).to.match(/gave up waiting for instance roomless after 2 s: it is CREATING, /);
    expect(out.stderr).to.match(/1000 MB/);
    const status = (await fleet.api('GET', '/api/instances/roomless', undefined, admin)).json;
    expect(status.reason).to.match(/1000 MB/);
    expect((await fleet.cli(['delete', 'roomless', '--wait', '--timeout', '20'])).code).to.equal(0);
  });

  it('takes numbers only as JSON integers, on create, PATCH and v1 CREATE', async () => {
    const post = (body: string) => fleet.api('POST', '/api/instances', body, admin);
    for (const capacity of ['"64"', '1e1', '16.0000000000000001', '64.0']) {
      const res = await post(`{"name":"strict","capacityMb":${capacity}}`);
      expect(res.status, capacity).to.equal(400);
      expect(res.json.error.field, capacity).to.equal('capacityMb');
    }
    const patch = await fleet.api('PATCH', '/api/instances/filler', '{"ttlSeconds":60.0}', admin);
    expect(patch.status).to.equal(400);
    expect(patch.json.error.field).to.equal('ttlSeconds');
    const v1 = await fleet.api('POST', '/v1/CREATE/strict/64/1/0', '{"Distribution":1e0}', admin);
    expect(v1.status).to.equal(400);
    expect(v1.json.error.field).to.equal('Distribution');
    expect(fleet.etcdctl('get', '--prefix', '--keys-only', '/MrRedis/Instances/strict').trim()).to.equal('');
  });

  it('counts anonymous creates per IPv6 /64, refuses a forwarded non-IP, and caps PATCH at createdAt + the anonymous TTL', async () => {
    const anon = (name: string, xff: string) => fleet.api('POST', '/api/instances', { name, capacityMb: 16 }, { 'X-Forwarded-For': xff });
    const mine = await anon('anon1', '2001:db8:1:2::1');
    expect(mine.status, mine.text).to.equal(202);
    const neighbour = await anon('anon2', '2001:db8:1:2::2');
    expect(neighbour.status, neighbour.text).to.equal(429);
    expect(neighbour.json.error.message).to.contain('2001:db8:1:2::/64');
    expect((await anon('anon3', '2001:db8:1:3::1')).status).to.equal(202);
    const forged = await anon('anon4', 'not-an-address');
    expect(forged.status).to.equal(400);
    expect(forged.json.error.field).to.equal('X-Forwarded-For');

    const key = { Authorization: `Bearer ${mine.json.accessKey}` };
    await sleep(20);
    const beyond = await fleet.api('PATCH', '/api/instances/anon1', { ttlSeconds: 3600 }, key);
    expect(beyond.status, beyond.text).to.equal(400);
    expect(beyond.json.error.field).to.equal('ttlSeconds');
    const shorter = await fleet.api('PATCH', '/api/instances/anon1', { ttlSeconds: 600 }, key);
    expect(shorter.status, shorter.text).to.equal(200);
    for (const name of ['anon1', 'anon3']) await fleet.api('DELETE', `/api/instances/${name}`, undefined, admin);
  });

  it('logs a client that aborts its body as one debug line, not an error with a stack', async () => {
    const before = fleet.log('scheduler').length;
    await new Promise<void>((resolvePromise, reject) => {
      const socket = connect(fleet.apiPort, '127.0.0.1', () => {
        socket.write(`POST /api/instances HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"name":"half`);
        setTimeout(() => {
          socket.destroy();
          resolvePromise();
        }, 100);
      });
      socket.on('error', reject);
    });
    // The server sees the reset and runs its error path; a following request proves it is done.
    await sleep(300);
    expect((await fleet.api('GET', '/healthz')).status).to.equal(200);
    const lines = fleet.log('scheduler').slice(before).split('\n').filter(Boolean);
    expect(lines.filter((l) => /"level":"error"/.test(l)), lines.join('\n')).to.deep.equal([]);
    // Every line is one JSON event: no raw stack printed around the structured log.
    expect(lines.filter((l) => !l.startsWith('{')), lines.join('\n')).to.deep.equal([]);
  });
});

describe('CLI papercuts', function () {
  this.timeout(60_000);

  it('exits 2 with the help on stderr when given no command', async () => {
    const out = await runCli([]);
    expect(out.code).to.equal(2);
    expect(out.stdout).to.equal('');
    expect(out.stderr).to.match(/redfleet create NAME/).and.match(/redfleet scheduler/);
  });

  it('lists every flag and its default in each command\'s --help', async () => {
    const expected: Record<string, RegExp[]> = {
      create: [/--capacity MB .*default 64/, /--replicas N .*default 0/, /--distribution N .*default 1/, /--placement .*default spread/, /--ttl/, /--wait/, /--timeout SECONDS .*default 120/, /--api URL .*127\.0\.0\.1:5656/, /--token/],
      status: [/--json/, /--api URL/, /--token/],
      list: [/--api URL/, /--token/],
      delete: [/--wait/, /--timeout SECONDS .*default 120/, /--api URL/],
      scheduler: [/--etcd URLS .*default/, /--agent-timeout SECONDS .*default 10/, /--api-token TOKEN/, /`ps`/, /--api-token-file/, /REDFLEET_API_TOKEN/, /--anonymous-per-client N .*default 6/],
      agent: [/--scheduler URL .*required/, /--mem MB .*default/, /--ports FIRST-LAST .*default 6380-6479/],
      dev: [/--agents N .*default 3/, /--api HOST:PORT .*127\.0\.0\.1:5656/, /--data DIR .*default/],
    };
    const outs = await Promise.all(Object.keys(expected).map((command) => runCli([command, '--help'])));
    for (const [i, [command, patterns]] of Object.entries(expected).entries()) {
      const out = outs[i];
      expect(out.code, command).to.equal(0);
      expect(out.stdout, command).to.match(new RegExp(`Usage: redfleet ${command}`));
      for (const p of patterns) expect(out.stdout, `${command}: ${p}`).to.match(p);
    }
  });

  it('wraps an unreachable etcd in a sentence that says what to check, and warns about --api-token on the command line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'redfleet-cli-'));
    try {
      const etcd = `http://127.0.0.1:${await freePort()}`;
      const scheduler = await runCli(['scheduler', '--etcd', etcd, '--api', `127.0.0.1:${await freePort()}`, '--sentinel', `127.0.0.1:${await freePort()}`,
        '--fleet-key', join(dir, 'fleet.key'), '--api-token', 'a-token-of-at-least-16-chars']);
      expect(scheduler.code).to.not.equal(0);
      expect(scheduler.stderr).to.match(/"level":"warn".*--api-token on the command line is visible/);
      const last = scheduler.stderr.trim().split('\n').pop() ?? '';
      expect(last).to.match(new RegExp(`^redfleet: lost or could not reach etcd at ${etcd}: check that etcd is running`));
      expect(last).not.to.match(/^redfleet: 14 UNAVAILABLE/);

      const proxy = await runCli(['scheduler', '--etcd', etcd, '--fleet-key', join(dir, 'fleet.key'), '--trusted-proxy', 'proxy.example']);
      expect(proxy.code).to.equal(2);
      expect(proxy.stderr).to.match(/--trusted-proxy must be an IP address, got 'proxy\.example'/);

      // The scheduler never reached etcd, so it made no key: the agent needs one of its own.
      loadFleetKey(join(dir, 'fleet.key'), true);
      const agent = await runCli(['agent', '--scheduler', 'http://127.0.0.1:1', '--etcd', etcd, '--id', 'lonely', '--fleet-key', join(dir, 'fleet.key'), '--work-dir', join(dir, 'work')]);
      expect(agent.code).to.not.equal(0);
      expect(agent.stderr.trim().split('\n').pop()).to.match(new RegExp(`^redfleet: lost or could not reach etcd at ${etcd}`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
