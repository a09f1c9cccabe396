import { expect } from 'chai';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'node:http';
import { spawn, spawnSync } from 'node:child_process';
import { createConnection } from 'node:net';
import { Redis } from 'ioredis';
import { CLI, LocalFleet } from '../harness/local-fleet.js';
import { freePort } from '../../src/net.js';
import { createHash } from 'node:crypto';
import { randomToken, subscribeSignature } from '../../src/store/secrets.js';
import { ProtocolAgent } from '../harness/protocol-agent.js';
import { pb } from '../../src/proto/messages.js';

const ADMIN = 'admin-token-0123456789abcdef';
const auth = (token: string) => ({ Authorization: `Bearer ${token}` });

/** Every file under dir whose name ends in .log. */
function logFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...logFiles(path));
    else if (entry.endsWith('.log')) out.push(path);
  }
  return out;
}

/** Small seeded PRNG so that a failing fuzz run can be replayed. */
function prng(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >> 17;
    x ^= x << 5; x >>>= 0;
    return x / 0x100000000;
  };
}

/** POSTs JSON from a chosen local address (another loopback address is another client). */
function postFrom(localAddress: string, port: number, path: string, body: unknown, headers: Record<string, string>): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const data = Buffer.from(JSON.stringify(body));
    const req = request({ host: '127.0.0.1', port, path, method: 'POST', localAddress, headers: { 'Content-Type': 'application/json', 'Content-Length': String(data.length), ...headers } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => { text += d.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(data);
  });
}

function postRaw(port: number, path: string, body: Buffer, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'POST', headers: { 'Content-Length': String(body.length), ...headers } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
      res.destroy();
    });
    req.on('error', () => resolve(-1));
    req.end(body);
  });
}

// Each test creates the instances it works on, under its own names, so that any one of them
// passes alone (--grep) and in any order.
describe('security: tokens, instance keys, agent authentication, tenant ACL', function () {
  this.timeout(90_000);
  let fleet: LocalFleet;

  /** Creates `name` as an admin and returns its password and access key (once RUNNING if `running`). */
  async function createTenant(name: string, body: Record<string, unknown> = {}, running = true): Promise<{ password: string; accessKey: string }> {
    const res = await fleet.api('POST', '/api/instances', { name, capacityMb: 16, ...body }, auth(ADMIN));
    expect(res.status, res.text).to.equal(202);
    expect(res.json.accessKey).to.match(/^[A-Za-z0-9_-]{43,}$/);
    if (running) await fleet.waitForStatus(name, 'RUNNING');
    return { password: res.json.password, accessKey: res.json.accessKey };
  }

  before(async () => {
    fleet = await LocalFleet.start({ agents: 3, schedulerArgs: ['--api-token', ADMIN], adminToken: ADMIN });
  });

  after(async () => {
    await fleet?.stop();
  });

  it('answers 401 on admin routes with no token or a wrong one', async () => {
    for (const [method, path] of [['GET', '/api/instances'], ['GET', '/v1/STATUS/'], ['GET', '/api/agents'], ['POST', '/v1/CREATE/x/16/1/0'], ['DELETE', '/api/instances/other']]) {
      expect((await fleet.api(method, path)).status, `${method} ${path} without a token`).to.equal(401);
      const wrong = await fleet.api(method, path, undefined, auth('not-a-real-token-at-all'));
      expect(wrong.status, `${method} ${path} with a wrong token`).to.equal(401);
      expect(wrong.json.error.code).to.equal('UNAUTHENTICATED');
    }
    expect((await fleet.api('GET', '/healthz')).status).to.equal(200);
    expect((await fleet.api('GET', '/api/instances', undefined, auth(ADMIN))).status).to.equal(200);
  });

  it('lets an instance key read, extend and delete its own instance only', async () => {
    const mine = await createTenant('keyholder', {}, false);
    await createTenant('neighbour', {}, false);
    const key = auth(mine.accessKey);
    expect((await fleet.api('GET', '/api/instances/keyholder', undefined, key)).status).to.equal(200);
    expect((await fleet.api('GET', '/v1/STATUS/keyholder', undefined, key)).status).to.equal(200);
    for (const [method, path] of [['GET', '/api/instances/neighbour'], ['GET', '/v1/STATUS/neighbour'], ['DELETE', '/api/instances/neighbour'], ['DELETE', '/v1/DELETE/neighbour'], ['GET', '/api/instances'], ['GET', '/api/agents'], ['POST', '/v1/CREATE/x/16/1/0']]) {
      const res = await fleet.api(method, path, undefined, key);
      expect(res.status, `${method} ${path}`).to.equal(403);
      expect(res.json.error.code).to.equal('FORBIDDEN');
    }
    const patched = await fleet.api('PATCH', '/api/instances/keyholder', { ttlSeconds: 3600 }, key);
    expect(patched.status).to.equal(200);
    expect(patched.json.ttlRemainingSeconds).to.be.within(3590, 3600);
    expect((await fleet.api('PATCH', '/api/instances/neighbour', { ttlSeconds: 60 }, key)).status).to.equal(403);
    expect((await fleet.api('GET', '/api/instances/neighbour', undefined, auth(ADMIN))).json.status, 'the neighbour is untouched').to.be.oneOf(['CREATING', 'RUNNING']);
    expect((await fleet.api('DELETE', '/api/instances/keyholder', undefined, key)).status).to.equal(202);
  });

  it('refuses agent calls without the fleet key', async () => {
    const headers = { 'Content-Type': 'application/x-protobuf' };
    const update = Buffer.from(pb.Call.encode({ type: pb.Call.Type.UPDATE, agent_id: { value: 'agent1' }, update: { status: { task_id: { value: 'tenant::x' }, state: pb.TaskState.TASK_FAILED } } }).finish());
    const unsigned = await ProtocolAgent.sign(fleet.apiUrl, 'intruder', 'x'.repeat(32), { hostname: '127.0.0.1' });
    expect(await postRaw(fleet.apiPort, '/api/v1/agent', unsigned.body, headers)).to.equal(401);
    expect(await postRaw(fleet.apiPort, '/api/v1/agent', unsigned.body, { ...headers, ...auth('forged') })).to.equal(401);
    // Signed with another fleet key: refused from the headers.
    expect(await postRaw(fleet.apiPort, '/api/v1/agent', unsigned.body, unsigned.headers)).to.equal(401);
    expect(await postRaw(fleet.apiPort, '/api/v1/agent', update, headers)).to.equal(401);
    expect(await postRaw(fleet.apiPort, '/api/v1/agent', update, { ...headers, Authorization: `RedFleet-Session ${randomToken(32)}` })).to.equal(401);
    const agents = (await fleet.api('GET', '/api/agents', undefined, auth(ADMIN))).json;
    expect(agents.map((a: { id: string }) => a.id)).not.to.include('intruder');
  });

  it('confines the tenant to data commands, and replication and failover still work', async () => {
    const mine = await createTenant('tenant', { capacityMb: 32, replicas: 2 });
    const inst = (await fleet.api('GET', '/api/instances/tenant', undefined, auth(ADMIN))).json;
    const r = new Redis({ host: inst.master.ip, port: inst.master.port, password: mine.password, lazyConnect: true, maxRetriesPerRequest: 0 });
    r.on('error', () => undefined);
    await r.connect();
    try {
      const refused = async (...cmd: string[]) => {
        const err = await r.call(cmd[0], ...cmd.slice(1)).then(() => null, (e: Error) => e);
        // Redis 7 refuses DEBUG before the ACL check unless enable-debug-command is set.
        expect(err?.message, cmd.join(' ')).to.match(cmd[0] === 'DEBUG' ? /NOPERM|DEBUG command not allowed/ : /NOPERM/);
      };
      await refused('CONFIG', 'SET', 'maxmemory', '0');
      await refused('REPLICAOF', '127.0.0.1', '1');
      await refused('SLAVEOF', 'NO', 'ONE');
      await refused('SHUTDOWN', 'NOSAVE');
      await refused('ACL', 'LIST');
      await refused('DEBUG', 'SLEEP', '0');
      await refused('MONITOR');
      await refused('MODULE', 'LIST');
      await refused('FAILOVER');
      await refused('BGSAVE');
      await refused('SYNC');
      expect(await r.set('a', '1')).to.equal('OK');
      expect(await r.get('a')).to.equal('1');
      expect(await r.hset('h', 'f', 'v')).to.equal(1);
      expect(await r.eval("return redis.call('GET', KEYS[1])", 1, 'a')).to.equal('1');
      const multi = await r.multi().incr('n').incr('n').exec();
      expect(multi?.map(([, v]) => v)).to.deep.equal([1, 2]);
      expect(await r.xadd('s', '*', 'k', 'v')).to.be.a('string');
      // Both replicas acknowledge the writes (WAIT returns as soon as they do; 5 s only bounds a loaded CI host).
      expect(await r.wait(2, 5000)).to.equal(2);
      expect(await r.info('replication')).to.match(/role:master/);
      expect(await r.call('ROLE')).to.be.an('array');
      const sub = r.duplicate();
      sub.on('error', () => undefined);
      await sub.subscribe('news');
      const got = new Promise<string>((resolve) => sub.on('message', (_c: string, m: string) => resolve(m)));
      await r.publish('news', 'hello');
      expect(await got).to.equal('hello');
      sub.disconnect();
    } finally {
      r.disconnect();
    }
    process.kill(inst.master.pid, 'SIGKILL');
    const after = await fleet.waitFor(async () => {
      const i = (await fleet.api('GET', '/api/instances/tenant', undefined, auth(ADMIN))).json;
      return i.status === 'RUNNING' && i.master && i.master.id !== inst.master.id && i.slaves.length === 2 ? i : undefined;
    }, 20_000, 'failover with the tenant ACL in place');
    const r2 = new Redis({ host: after.master.ip, port: after.master.port, password: mine.password, lazyConnect: true });
    await r2.connect();
    expect(await r2.get('a')).to.equal('1');
    r2.disconnect();
  });

  it('with no admin token, listens on loopback only and says so loudly', async () => {
    const port = await freePort();
    const child = spawn(process.execPath, [CLI, 'scheduler', '--etcd', fleet.etcd.url, '--prefix', '/OpenModeProbe', '--api', `0.0.0.0:${port}`,
      '--sentinel', `127.0.0.1:${await freePort()}`, '--fleet-key', fleet.fleetKeyPath, '--id', 'open-mode'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    child.stderr.on('data', (d: Buffer) => { log += d.toString(); });
    try {
      await fleet.waitFor(() => /scheduler started/.test(log), 10_000, 'the open-mode scheduler');
      expect(log).to.match(/"level":"error","message":"NO ADMIN TOKEN IS CONFIGURED: refusing to expose the API on 0\.0\.0\.0/);
      expect(log).to.match(/"api":"127\.0\.0\.1:\d+"/);
      const listening = spawnSync('ss', ['-ltnH', `sport = :${port}`], { encoding: 'utf8' }).stdout;
      expect(listening).to.contain(`127.0.0.1:${port}`);
      expect(listening).not.to.contain(`0.0.0.0:${port}`);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('keeps no clear password, access key or token in etcd or in any log', async () => {
    const mine = await createTenant('secretive', { replicas: 1 });
    // Use the secret: logs of a connection and an instance-key call are among those searched.
    const r = new Redis({ host: '127.0.0.1', port: (await fleet.waitForStatus('secretive', 'RUNNING')).master.port, password: mine.password, lazyConnect: true });
    await r.connect();
    expect(await r.set('k', 'v')).to.equal('OK');
    r.disconnect();
    expect((await fleet.api('GET', '/api/instances/secretive', undefined, auth(mine.accessKey))).status).to.equal(200);
    const everything = fleet.etcdctl('get', '--prefix', '/');
    const logs = logFiles(fleet.dir).map((f) => readFileSync(f, 'utf8')).join('\n');
    expect(logs.length).to.be.greaterThan(1000);
    const fleetKey = readFileSync(fleet.fleetKeyPath, 'utf8').trim();
    for (const [what, secret] of [['password', mine.password], ['access key', mine.accessKey], ['admin token', ADMIN], ['fleet key', fleetKey]]) {
      expect(everything.includes(secret), `${what} in etcd`).to.equal(false);
      expect(logs.includes(secret), `${what} in a log`).to.equal(false);
    }
  });
});

describe('throwaway instances: TTL and anonymous quota', function () {
  this.timeout(90_000);
  let fleet: LocalFleet;

  before(async () => {
    fleet = await LocalFleet.start({
      agents: 3,
      schedulerArgs: ['--api-token', ADMIN, '--anonymous', '--trusted-proxy', '127.0.0.1'],
      adminToken: ADMIN,
    });
  });

  after(async () => {
    await fleet?.stop();
  });

  it('deletes an instance with a 3 s TTL within 5 s, across a scheduler restart', async () => {
    // The free memory compared below must not move for other tests' instances still being placed.
    await fleet.waitFor(async () => (await fleet.api('GET', '/api/instances', undefined, auth(ADMIN))).json.every((i: { status: string }) => i.status !== 'CREATING'), 20_000, 'every other instance placed');
    const t0 = Date.now();
    const res = await fleet.api('POST', '/api/instances', { name: 'brief', capacityMb: 16, replicas: 1, ttlSeconds: 3 }, auth(ADMIN));
    expect(res.status).to.equal(202);
    expect(res.json.expiresAt).to.be.a('string');
    const running = await fleet.waitFor(async () => {
      const i = (await fleet.api('GET', '/api/instances/brief', undefined, auth(ADMIN))).json;
      return i.status === 'RUNNING' ? i : undefined;
    }, 3000, 'brief RUNNING');
    expect(fleet.etcdctl('get', '--print-value-only', '/MrRedis/Instances/brief/ExpiresAt').trim()).to.equal(res.json.expiresAt);
    const freeBefore = (await fleet.api('GET', '/api/agents', undefined, auth(ADMIN))).json.reduce((n: number, a: { free: { mem: number } }) => n + a.free.mem, 0);
    await fleet.killScheduler('SIGKILL');
    await fleet.startScheduler();
    await fleet.waitFor(async () => (await fleet.api('GET', '/api/instances/brief', undefined, auth(ADMIN))).json.status === 'DELETED', 5000 - (Date.now() - t0), 'brief DELETED within 5 s');
    expect(Date.now() - t0).to.be.below(5000);
    for (const p of running.procs) expect(() => process.kill(p.pid, 0), `pid ${p.pid}`).to.throw();
    await fleet.waitFor(async () => {
      const agents = (await fleet.api('GET', '/api/agents', undefined, auth(ADMIN))).json;
      return agents.filter((a: { connected: boolean }) => a.connected).length === 3
        && agents.reduce((n: number, a: { free: { mem: number } }) => n + a.free.mem, 0) === freeBefore + 32;
    }, 5000, 'the memory and ports back in the offers');
  });

  it('sets TTL from v1 {"TTL"} and the CLI, and PATCH extends it', async () => {
    expect((await fleet.api('POST', '/v1/CREATE/v1ttl/16/1/0', { TTL: 2 }, auth(ADMIN))).status).to.equal(201);
    const firstExpiry = Date.parse(fleet.etcdctl('get', '--print-value-only', '/MrRedis/Instances/v1ttl/ExpiresAt').trim());
    expect(firstExpiry - Date.now()).to.be.within(0, 2000, 'v1 {"TTL": 2} set a 2 s expiry');
    expect((await fleet.api('PATCH', '/api/instances/v1ttl', { ttlSeconds: 60 }, auth(ADMIN))).status).to.equal(200);
    // What is checked is an absence (no deletion at the first expiry), so this waits past it:
    // the first expiry and a second for the reaper to have acted on it, had it still stood.
    await fleet.waitFor(() => Date.now() > firstExpiry + 1000, 10_000, 'the first expiry to pass');
    const v1 = (await fleet.api('GET', '/api/instances/v1ttl', undefined, auth(ADMIN))).json;
    expect(v1.status).to.equal('RUNNING');
    expect(v1.ttlRemainingSeconds).to.be.within(50, 60);
    const out = await fleet.cli(['create', 'clittl', '--capacity', '16', '--ttl', '2h', '--token', ADMIN]);
    expect(out.code, out.stderr).to.equal(0);
    const status = await fleet.cli(['status', 'clittl', '--token', ADMIN]);
    expect(status.stdout).to.match(/expires: .*\(in 1h59m\)|expires: .*\(in 2h00m\)/);
    const bad = await fleet.api('PATCH', '/api/instances/clittl', { ttlSeconds: -5 }, auth(ADMIN));
    expect(bad.status).to.equal(400);
    expect(bad.json.error.message).to.contain('ttlSeconds');
  });

  it('gives anonymous callers 6 live instances per address, then 429 with when a slot frees', async () => {
    const from = (addr: string) => ({ 'X-Forwarded-For': addr });
    const keys: string[] = [];
    for (let i = 0; i < 6; i++) {
      const res = await fleet.api('POST', '/api/instances', { name: `anon-a${i}`, capacityMb: 8 }, from('192.0.2.10'));
      expect(res.status, `create ${i}`).to.equal(202);
      keys.push(res.json.accessKey);
      expect(res.json.ttlRemainingSeconds).to.be.within(12 * 3600 - 5, 12 * 3600);
    }
    const seventh = await fleet.api('POST', '/api/instances', { name: 'anon-a6', capacityMb: 8 }, from('192.0.2.10'));
    expect(seventh.status).to.equal(429);
    expect(seventh.json.error.code).to.equal('QUOTA_EXCEEDED');
    expect(seventh.json.error.message).to.match(/limit is 6/).and.match(/next slot frees at/);
    expect(fleet.etcdctl('get', '--prefix', '--keys-only', '/MrRedis/Instances/anon-a6/')).to.equal('');
    const other = await fleet.api('POST', '/api/instances', { name: 'anon-b0', capacityMb: 8 }, from('192.0.2.20'));
    expect(other.status).to.equal(202);
    // Anonymous limits: capacity, and admin routes stay closed.
    const big = await fleet.api('POST', '/api/instances', { name: 'anon-big', capacityMb: 512 }, from('192.0.2.30'));
    expect(big.status).to.equal(400);
    expect(big.json.error.message).to.match(/capacityMb must be at most 64/);
    expect((await fleet.api('GET', '/api/instances')).status).to.equal(401);
    // Deleting one with its access key frees a slot.
    expect((await fleet.api('DELETE', '/api/instances/anon-a0', undefined, auth(keys[0]))).status).to.equal(202);
    const freed = await fleet.api('POST', '/api/instances', { name: 'anon-a6', capacityMb: 8 }, from('192.0.2.10'));
    expect(freed.status, freed.text).to.equal(202);
    // The creator recorded is the address the trusted proxy (127.0.0.1) forwarded ...
    const creator = (name: string) => fleet.etcdctl('get', '--print-value-only', `/MrRedis/Instances/${name}/Creator`).trim();
    expect(creator('anon-b0')).to.equal('192.0.2.20');
    // ... but an untrusted peer (127.0.0.2 is loopback too, not the proxy) cannot claim another
    // address: its X-Forwarded-For is ignored and the quota counts against the peer itself.
    const direct = await postFrom('127.0.0.2', fleet.apiPort, '/api/instances', { name: 'anon-d0', capacityMb: 8 }, from('192.0.2.10'));
    expect(direct.status, direct.text).to.equal(202);
    expect(creator('anon-d0')).to.equal('127.0.0.2');
  });

  it('enforces maxclients on anonymous instances', async () => {
    const created = await fleet.api('POST', '/api/instances', { name: 'anon-m0', capacityMb: 8 }, { 'X-Forwarded-For': '192.0.2.50' });
    expect(created.status, created.text).to.equal(202);
    const inst = await fleet.waitForStatus('anon-m0', 'RUNNING', 10_000);
    const conf = readFileSync(join(fleet.dir, 'agents', inst.master.agent, inst.master.id.replace(/[^A-Za-z0-9_.-]/g, '_'), 'redis.conf'), 'utf8');
    expect(conf).to.match(/^maxclients 50$/m);
    const sockets = await Promise.all(Array.from({ length: 60 }, () => new Promise<{ reply: string; close: () => void }>((resolve) => {
      const s = createConnection({ host: inst.master.ip, port: inst.master.port }, () => s.write('PING\r\n'));
      let reply = '';
      s.on('data', (d) => { reply += d.toString(); resolve({ reply, close: () => s.destroy() }); });
      s.on('error', () => resolve({ reply: 'error', close: () => s.destroy() }));
    })));
    const refused = sockets.filter((x) => /max number of clients/.test(x.reply)).length;
    for (const x of sockets) x.close();
    expect(refused, 'connections past maxclients are refused').to.be.greaterThan(0);
    expect(sockets.length - refused).to.be.at.most(50);
  });
});

/** Runs `fn` over `items`, `n` at a time, in order of start. */
async function inBatches<T>(items: T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += n) await Promise.all(items.slice(i, i + n).map(fn));
}

describe('fuzz: hostile input on the REST API, the agent protocol and the Sentinel port', function () {
  this.timeout(120_000);
  let fleet: LocalFleet;

  before(async () => {
    fleet = await LocalFleet.start({ agents: 3 });
  });

  after(async () => {
    await fleet?.stop();
  });

  it('survives 5,000+ random and hostile inputs with no 5xx, no crash and nothing stray in etcd', async () => {
    const rand = prng(Number(process.env.FUZZ_SEED ?? 20261122));
    const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)];
    const junk = (n: number) => Array.from({ length: n }, () => String.fromCharCode(Math.floor(rand() * 0x2000))).join('');
    const hostileStrings = ['', '..', '../../etc', 'a/b', '%2e%2e', 'A', '-x', 'x-', 'é', '\u0000', 'a'.repeat(64), 'a'.repeat(5000), '${x}', "'; DROP", '::', 'name::uuid', ' ', '%00', '\\', '😀'];
    const numbers = ['0', '-1', '1.5', '1e9', '0x10', 'NaN', 'Infinity', '99999999999999999999', '', ' 1', '17', '65', '1'];
    const segment = () => encodeURIComponent(rand() < 0.5 ? pick(hostileStrings) : junk(Math.floor(rand() * 12)));
    const numberSeg = () => encodeURIComponent(rand() < 0.8 ? pick(numbers) : junk(3));
    const jsonValue = (): unknown => pick<() => unknown>([
      () => pick(hostileStrings), () => rand() * 1e6 - 5e5, () => Math.floor(rand() * 40) - 5, () => null, () => true,
      () => [], () => ({}), () => ({ nested: { deep: [1, 2, 3] } }), () => junk(20), () => -0, () => 1e308,
    ])();
    const validCreate = () => JSON.stringify({ name: `ok${Math.floor(rand() * 1e9)}`, capacityMb: 1 + Math.floor(rand() * 8), replicas: Math.floor(rand() * 2) });
    const body = (): string => rand() < 0.06 ? validCreate() : pick<() => string>([
      () => JSON.stringify({ name: pick(hostileStrings), capacityMb: jsonValue(), replicas: jsonValue() }),
      () => JSON.stringify({ name: `fz${Math.floor(rand() * 1e6)}`, capacityMb: jsonValue(), replicas: jsonValue(), distribution: jsonValue(), ttlSeconds: jsonValue() }),
      () => JSON.stringify({ name: 'x', capacityMb: 16, [junk(5)]: 1 }),
      () => JSON.stringify(jsonValue()),
      () => junk(Math.floor(rand() * 200)),
      () => '{"name":',
      () => `{"name":"big","pad":"${'x'.repeat(70 * 1024)}"}`,
      () => JSON.stringify({ Distribution: jsonValue(), TTL: jsonValue() }),
      () => JSON.stringify({ ttlSeconds: jsonValue() }),
      () => '[]',
    ])();
    const routes = [
      () => ['POST', `/v1/CREATE/${segment()}/${numberSeg()}/${numberSeg()}/${numberSeg()}`],
      () => ['GET', `/v1/STATUS/${segment()}`],
      () => ['DELETE', `/v1/DELETE/${segment()}`],
      () => ['POST', '/api/instances'],
      () => ['GET', `/api/instances/${segment()}`],
      () => ['PATCH', `/api/instances/${segment()}`],
      () => ['DELETE', `/api/instances/${segment()}`],
      () => [pick(['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']), `/${segment()}/${segment()}`],
      () => ['GET', `/api/agents?${segment()}`],
    ];
    const accepted = new Set<string>();
    const statuses = new Map<number, number>();
    let restInputs = 0;
    // The inputs are drawn in order from the seeded generator, then sent eight at a time.
    const restCases = Array.from({ length: 3000 }, () => {
      const [method, path] = pick(routes)();
      const withBody = method === 'POST' || method === 'PATCH' || method === 'PUT';
      return { method, path, body: withBody && rand() < 0.9 ? body() : undefined };
    });
    await inBatches(restCases, 8, async ({ method, path, body: sent }) => {
      const res = await fetch(`${fleet.apiUrl}${path}`, { method, body: sent, headers: { 'Content-Type': 'application/json' } }).catch(() => undefined);
      restInputs++;
      expect(res, `${method} ${path}`).to.not.equal(undefined);
      const status = res!.status;
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
      const text = await res!.text();
      expect(status, `${method} ${path} -> ${text.slice(0, 200)}`).to.be.below(500);
      if ((status === 201 || status === 202) && method === 'POST') {
        const name = path.startsWith('/v1/CREATE/') ? decodeURIComponent(path.split('/')[3]) : JSON.parse(text).name;
        accepted.add(name);
      }
    });

    // The agent protocol: random bytes, truncated and oversize frames, with no credentials, a
    // made-up session, or a SUBSCRIBE correctly signed over the garbage (so that it is parsed).
    const key = readFileSync(fleet.fleetKeyPath, 'utf8').trim();
    const valid = Buffer.from(pb.Call.encode({ type: pb.Call.Type.UPDATE, agent_id: { value: 'fuzzer' }, update: { status: { task_id: { value: 'nosuch::task' }, state: pb.TaskState.TASK_RUNNING } } }).finish());
    let agentInputs = 0;
    for (let i = 0; i < 1200; i++) {
      const len = Math.floor(rand() * 300);
      let bytes = Buffer.from(Array.from({ length: len }, () => Math.floor(rand() * 256)));
      if (i % 5 === 0) bytes = valid.subarray(0, Math.floor(rand() * valid.length));
      if (i % 7 === 0) bytes = Buffer.concat([valid, bytes]);
      if (i === 1) bytes = Buffer.alloc(1024 * 1024 + 10, 0x08);
      const headers: Record<string, string> = { 'Content-Type': 'application/x-protobuf' };
      const mode = rand();
      if (mode < 0.35) headers.Authorization = `RedFleet-Session ${randomToken(32)}`;
      else if (mode < 0.7 || i === 1) {
        const nonce = await ProtocolAgent.challenge(fleet.apiUrl);
        const clientNonce = randomToken();
        const sha = createHash('sha256').update(bytes).digest('hex');
        Object.assign(headers, { Authorization: `RedFleet-HMAC ${subscribeSignature(key, 'fuzzer', nonce, clientNonce, sha)}`, 'X-RedFleet-Agent': 'fuzzer', 'X-RedFleet-Nonce': nonce, 'X-RedFleet-Client-Nonce': clientNonce, 'X-RedFleet-Body-Sha256': sha });
      }
      const status = await postRaw(fleet.apiPort, '/api/v1/agent', bytes, headers);
      agentInputs++;
      expect(status, `agent call #${i}`).to.be.within(200, 499);
    }

    // The Sentinel port: garbage, huge lengths, half commands.
    let sentinelInputs = 0;
    const sentinelPayloads = [
      () => Buffer.from(Array.from({ length: Math.floor(rand() * 200) }, () => Math.floor(rand() * 256))),
      () => Buffer.from(`*1\r\n$${Math.floor(rand() * 1e10)}\r\n`),
      () => Buffer.from(`*${Math.floor(rand() * 1e9)}\r\n`),
      () => Buffer.from(`*3\r\n$8\r\nSENTINEL\r\n$${Math.floor(rand() * 30)}\r\n${junk(10)}\r\n`),
      () => Buffer.from(`SENTINEL ${pick(['masters', 'master', 'replicas', 'get-master-addr-by-name', junk(4)])} ${pick(hostileStrings)}\r\n`),
      () => Buffer.from(`HELLO ${pick(['2', '3', '4', 'x', ''])}\r\nSUBSCRIBE ${junk(3)}\r\nPING\r\n`),
    ];
    const payloads = Array.from({ length: 900 }, () => pick(sentinelPayloads)());
    await inBatches(payloads, 10, async (payload) => {
      await new Promise<void>((resolve) => {
        const s = createConnection({ host: '127.0.0.1', port: fleet.sentinelPort }, () => s.write(payload));
        s.on('data', () => undefined);
        s.on('error', () => resolve());
        s.on('close', () => resolve());
        setTimeout(() => s.destroy(), 30);
      });
      sentinelInputs++;
    });

    const total = restInputs + agentInputs + sentinelInputs;
    expect(total).to.be.at.least(5000);
    expect(fleet.scheduler?.exitCode).to.equal(null, 'the scheduler is still running');
    expect((await fleet.api('GET', '/healthz')).json).to.include({ ok: true, agents: 3 });
    const ping = await new Promise<string>((resolve) => {
      const s = createConnection({ host: '127.0.0.1', port: fleet.sentinelPort }, () => s.write('PING\r\n'));
      s.on('data', (d) => { resolve(d.toString()); s.destroy(); });
    });
    expect(ping).to.equal('+PONG\r\n');
    const inEtcd = new Set(fleet.etcdctl('get', '--prefix', '--keys-only', '/MrRedis/Instances/').split('\n').filter(Boolean).map((k) => k.split('/')[3]));
    expect(accepted.size).to.be.greaterThan(5, 'some valid creates were mixed in');
    expect([...inEtcd].sort()).to.deep.equal([...accepted].sort(), 'etcd holds only what accepted requests wrote');
    console.log(`      fuzz: ${restInputs} REST, ${agentInputs} agent-protocol, ${sentinelInputs} Sentinel inputs; statuses ${JSON.stringify(Object.fromEntries(statuses))}; ${accepted.size} creates accepted`);
  });
});
