import { expect } from 'chai';
import { createConnection } from 'node:net';
import { Redis } from 'ioredis';
import { LocalFleet, pidAlive } from '../harness/local-fleet.js';

/** A client to one proc with the tenant password; closed by the caller. */
function connect(port: number, password: string): Redis {
  const r = new Redis({ host: '127.0.0.1', port, password, lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  r.on('error', () => undefined);
  return r;
}

/** Sends one inline command on a fresh socket and returns the first reply line. */
function rawReply(port: number, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = createConnection({ host: '127.0.0.1', port }, () => sock.write(`${command}\r\n`));
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString();
      const nl = buf.indexOf('\r\n');
      if (nl >= 0) {
        sock.destroy();
        resolve(buf.slice(0, nl));
      }
    });
    sock.on('error', reject);
  });
}

/** A v1-created instance, RUNNING: its STATUS, its JSON view and the password it was created with. */
interface Created {
  password: string;
  status: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  inst: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** Creates `name` with v1 CREATE (1 master, `slaves` replicas) and waits until it is RUNNING. */
async function createRunning(fleet: LocalFleet, name: string, capacityMb = 64, slaves = 2): Promise<Created> {
  const res = await fleet.api('POST', `/v1/CREATE/${name}/${capacityMb}/1/${slaves}`);
  expect(res.status, res.text).to.equal(201);
  const inst = await fleet.waitForStatus(name, 'RUNNING', 10_000);
  const status = (await fleet.api('GET', `/v1/STATUS/${name}`)).json;
  return { password: res.headers.get('x-redis-password') ?? '', status, inst };
}

async function withRedis<T>(port: number, password: string, fn: (r: Redis) => Promise<T>): Promise<T> {
  const r = connect(port, password);
  try {
    await r.connect();
    return await fn(r);
  } finally {
    r.disconnect();
  }
}


// Every test creates the instances it works on, under its own name, so that any one of them
// passes alone (--grep) and in any order.
describe('core fleet (3 agents, real etcd and redis-server)', function () {
  this.timeout(60_000);
  let fleet: LocalFleet;

  before(async () => {
    // Each test's instances stay until the last test deletes them all: room for ~20 procs an agent.
    // A 5 s Stats heartbeat (the default is 20 s) lets the Stats test see one without a long wait.
    fleet = await LocalFleet.start({ agents: 3, agent: { ports: 30, args: ['--stats-heartbeat', '5'] } });
  });

  after(async () => {
    await fleet?.stop();
  });

  describe('v1 CREATE of 1 master + 2 slaves', () => {
    it('answers 201 at once, with the password in X-Redis-Password', async () => {
      const res = await fleet.api('POST', '/v1/CREATE/answered/64/1/2');
      expect(res.status).to.equal(201);
      expect(res.headers.get('x-redis-password') ?? '').to.match(/^[A-Za-z0-9_-]{43,}$/);
      const right = await fleet.api('GET', '/v1/STATUS/answered');
      expect(right.status).to.equal(200, 'a read right after the create sees it');
      expect(right.json.Status).to.be.oneOf(['CREATING', 'RUNNING']);
    });

    it('is RUNNING with one master and two slaves, each on a different agent', async () => {
      const { status, inst, password } = await createRunning(fleet, 'spread');
      expect(status).to.include({ Name: 'spread', Type: 'MS', Status: 'RUNNING', Capacity: 64 });
      expect(status.Master).to.include({ IP: '127.0.0.1', MemoryCapacity: 64 });
      expect(status.Slaves).to.have.length(2);
      const agents = inst.procs.map((p: { agent: string }) => p.agent);
      expect(new Set(agents).size).to.equal(3);
      expect(inst).not.to.have.property('password');
      expect(JSON.stringify(inst)).not.to.contain(password);
    });

    it('has both replicas linked (master_link_status:up) and maxmemory 64mb everywhere', async () => {
      const { status, password } = await createRunning(fleet, 'linked');
      const ports = [Number(status.Master.Port), ...status.Slaves.map((s: { Port: string }) => Number(s.Port))];
      for (const [i, port] of ports.entries()) {
        await withRedis(port, password, async (r) => {
          expect(await r.info('memory')).to.match(new RegExp(`maxmemory:${64 * 1024 * 1024}\r`));
          const info = await r.info('replication');
          if (i === 0) expect(info).to.match(/role:master/).and.match(/connected_slaves:2/);
          else expect(info).to.match(/role:slave/).and.match(/master_link_status:up/);
        });
      }
    });

    it('replicates a value SET on the master to both replicas, with the returned password', async () => {
      const { status, password } = await createRunning(fleet, 'replicated');
      await withRedis(Number(status.Master.Port), password, async (r) => {
        await r.set('greeting', 'hello');
        expect(await r.wait(2, 2000)).to.equal(2);
      });
      for (const s of status.Slaves) {
        expect(await withRedis(Number(s.Port), password, (r) => r.get('greeting'))).to.equal('hello');
      }
    });

    it('refuses clients without the password or with a wrong one', async () => {
      const { status, password } = await createRunning(fleet, 'guarded', 16, 0);
      const port = Number(status.Master.Port);
      expect(await rawReply(port, 'GET greeting')).to.match(/^-NOAUTH/);
      expect(await rawReply(port, 'AUTH wrong-password')).to.match(/^-WRONGPASS/);
      expect(await rawReply(port, `AUTH ${password}`)).to.equal('+OK');
    });
  });

  describe('the etcd tree', () => {
    it('holds plain values readable with etcdctl', async () => {
      const { password } = await createRunning(fleet, 'plain');
      const tree = fleet.tree('/MrRedis/Instances/plain/');
      const at = (k: string) => tree.get(`/MrRedis/Instances/plain/${k}`);
      expect(at('Type')).to.equal('MS');
      expect(at('Status')).to.equal('RUNNING');
      expect(at('Capacity')).to.equal('64');
      expect(at('Masters')).to.equal('1');
      expect(at('Slaves')).to.equal('2');
      expect(at('ExpSlaves')).to.equal('2');
      const mname = at('Mname')!;
      expect(mname).to.match(/^plain::[0-9a-f-]{36}$/);
      const snames = [...tree.keys()].filter((k) => k.includes('/Snames/'));
      expect(snames).to.have.length(2);
      const procIds = new Set([...tree.keys()].filter((k) => k.includes('/Procs/')).map((k) => k.split('/')[5]));
      expect(procIds.size).to.equal(3);
      for (const id of procIds) {
        const f = (k: string) => tree.get(`/MrRedis/Instances/plain/Procs/${id}/${k}`);
        expect(f('IP')).to.equal('127.0.0.1');
        expect(Number(f('Port'))).to.be.greaterThan(0);
        expect(f('Type')).to.equal(id === mname ? 'M' : 'S');
        expect(f('State')).to.equal('RUNNING');
        expect(Number(f('Pid'))).to.be.greaterThan(0);
        expect(f('Nodename')).to.be.a('string').and.not.equal('');
        expect(f('SID')).to.match(/^agent[123]$/);
      }
      const everything = fleet.etcdctl('get', '--prefix', '/');
      expect(everything).not.to.contain(password, 'no clear password in etcd');
    });

    it('gets every proc Stats written on change and at the heartbeat, and the API every-second stats from the agents', async () => {
      // Changed on purpose (issue 7 #12, issue 11): agents no longer rewrite Stats every second. An
      // idle proc writes at the heartbeat (--stats-heartbeat: 5 s in this fleet, 20 s by default),
      // a changed one sooner; the API's every-second stats come from the agents' REPORT calls
      // (see growth.test.ts for the write-rate checks).
      // Each is a wait for the write it names, bounded by a generous timeout, not a timed assertion.
      const { password, inst } = await createRunning(fleet, 'statty');
      const mname = inst.master.id;
      const key = `/MrRedis/Instances/statty/Procs/${mname}/Stats`;
      const statsNow = () => {
        const text = fleet.etcdctl('get', '--print-value-only', key).trim();
        return text ? JSON.parse(text) : undefined;
      };
      const first = await fleet.waitFor(statsNow, 3000, 'the first Stats');
      expect(first).to.include.keys('uptime', 'usedMemory', 'clients', 'role', 'replOffset', 'masterLinkStatus', 'updatedAt');
      expect(first.role).to.equal('master');
      // Idle: the heartbeat rewrites it (5 s, so 7 s is the heartbeat and a margin).
      const beat = await fleet.waitFor(() => {
        const s = statsNow();
        return s && s.updatedAt !== first.updatedAt ? s : undefined;
      }, 7000, 'a heartbeat Stats');
      // Changed: 8 MB more memory is news, written before the next heartbeat is due.
      await withRedis(inst.master.port, password, (r) => r.set('ballast', 'x'.repeat(8 * 1024 * 1024)));
      const changed = await fleet.waitFor(() => {
        const s = statsNow();
        return s && s.usedMemory > beat.usedMemory + 4 * 1024 * 1024 ? s : undefined;
      }, 7000, 'a Stats that shows the new memory');
      // Both times are the agent's own stamps: the change was written before the next heartbeat.
      expect(Date.parse(changed.updatedAt) - Date.parse(beat.updatedAt), 'a change is written before the heartbeat').to.be.within(1, 4999);
      // The API's stats come from the agents' REPORTs: they move on by themselves.
      const polledAt = async () => {
        const api = await fleet.api('GET', '/api/instances/statty');
        return Date.parse(api.json.procs.find((p: { id: string }) => p.id === mname).stats.updatedAt);
      };
      const seen = await polledAt();
      await fleet.waitFor(async () => (await polledAt()) > seen, 5000, 'the API stats to be reported again');
      const slave = [...fleet.tree('/MrRedis/Instances/statty/Snames/').keys()][0].split('/').pop();
      const slaveStats = await fleet.waitFor(() => {
        const text = fleet.etcdctl('get', '--print-value-only', `/MrRedis/Instances/statty/Procs/${slave}/Stats`).trim();
        return text ? JSON.parse(text) : undefined;
      }, 3000, 'the replica Stats');
      expect(slaveStats).to.include({ role: 'slave', masterLinkStatus: 'up' });
    });
  });

  describe('messages written with etcdctl into Msg', () => {
    const procKey = (name: string, id: string, f: string) => `/MrRedis/Instances/${name}/Procs/${id}/${f}`;
    const read = (name: string, id: string, f: string) => fleet.etcdctl('get', '--print-value-only', procKey(name, id, f)).replace(/\n$/, '');

    async function carriedOut(name: string, id: string, msg: string, check: () => Promise<boolean>): Promise<number> {
      const t0 = Date.now();
      fleet.etcdctl('put', procKey(name, id, 'Msg'), msg);
      await fleet.waitFor(check, 2000, `${msg} to be carried out`);
      const took = Date.now() - t0;
      await fleet.waitFor(() => read(name, id, 'Msg') === '', 2000, 'Msg to read "" again');
      return took;
    }

    it('MASTER promotes a replica and SLAVEOF points it back, each reset to ""', async () => {
      const { inst, password } = await createRunning(fleet, 'messaged');
      const replica = inst.slaves[0];
      // The agent disconnects a promoted node's clients, so each look uses a fresh connection.
      const role = () => withRedis(replica.port, password, async (r) => (await r.info('replication')).match(/role:(\w+)/)?.[1]);
      const t1 = await carriedOut('messaged', replica.id, 'MASTER', async () => (await role()) === 'master');
      expect(read('messaged', replica.id, 'Type')).to.equal('M');
      const t2 = await carriedOut('messaged', replica.id, `SLAVEOF ${inst.master.ip} ${inst.master.port}`, async () => (await role()) === 'slave');
      expect(read('messaged', replica.id, 'Type')).to.equal('S');
      expect(read('messaged', replica.id, 'SlaveOf')).to.equal(`${inst.master.ip}:${inst.master.port}`);
      // etcdctl itself takes a few ms to start; the budget is the acceptance's 100 ms plus that.
      expect(t1, 'MASTER latency (ms)').to.be.below(400);
      expect(t2, 'SLAVEOF latency (ms)').to.be.below(400);
      await fleet.waitFor(() => withRedis(replica.port, password, async (r) => /master_link_status:up/.test(await r.info('replication'))), 5000, 'the link to come back');
      const after = (await fleet.api('GET', '/api/instances/messaged')).json;
      expect(after.procs.filter((p: { state: string }) => p.state === 'RUNNING')).to.have.length(3, 'no extra replica was placed meanwhile');
    });

    it('SHUTDOWN stops the proc; the replica is replaced and the instance is whole again', async () => {
      const { inst } = await createRunning(fleet, 'shutdown');
      const victim = inst.slaves[0];
      const alive = () => pidAlive(victim.pid);
      expect(alive()).to.equal(true);
      await carriedOut('shutdown', victim.id, 'SHUTDOWN', async () => !alive());
      const back = await fleet.waitFor(async () => {
        const now = (await fleet.api('GET', '/api/instances/shutdown')).json;
        return now.status === 'RUNNING' && now.slaves.length === 2 && !now.slaves.some((s: { id: string }) => s.id === victim.id) ? now : undefined;
      }, 10_000, 'a replacement replica');
      expect(back.procs.find((p: { id: string }) => p.id === victim.id)?.state ?? 'KILLED').to.equal('KILLED');
      expect(back.master.id).to.equal(inst.master.id, 'the master is not disturbed');
    });
  });

  describe('standalone and JSON API', () => {
    it('v1 CREATE x/32/1/0 gives a standalone instance of Type S', async () => {
      expect((await fleet.api('POST', '/v1/CREATE/solo/32/1/0')).status).to.equal(201);
      await fleet.waitForStatus('solo', 'RUNNING');
      const s = (await fleet.api('GET', '/v1/STATUS/solo')).json;
      expect(s).to.include({ Type: 'S', Status: 'RUNNING', Capacity: 32 });
      expect(s.Slaves).to.deep.equal([]);
      expect(fleet.etcdctl('get', '--print-value-only', '/MrRedis/Instances/solo/Type').trim()).to.equal('S');
    });

    it('POST /api/instances answers 202 with the password once, and reaches RUNNING', async () => {
      const res = await fleet.api('POST', '/api/instances', { name: 'jsonapi', capacityMb: 48, replicas: 2 });
      expect(res.status).to.equal(202);
      expect(res.json.password).to.match(/^[A-Za-z0-9_-]{43,}$/);
      const inst = await fleet.waitForStatus('jsonapi', 'RUNNING');
      expect(inst.slaves).to.have.length(2);
      expect(inst).not.to.have.property('password');
      await withRedis(inst.master.port, res.json.password, async (r) => expect(await r.ping()).to.equal('PONG'));
    });

    it('lists instances (v1 and JSON) and agents, and answers /healthz', async () => {
      await createRunning(fleet, 'listed', 16, 1);
      await fleet.api('POST', '/api/instances', { name: 'listed-json', capacityMb: 16 });
      const v1 = (await fleet.api('GET', '/v1/STATUS/')).json;
      expect(v1.map((s: { Name: string }) => s.Name)).to.include.members(['listed', 'listed-json']);
      const list = (await fleet.api('GET', '/api/instances')).json;
      expect(list.map((i: { name: string }) => i.name).sort()).to.deep.equal(v1.map((s: { Name: string }) => s.Name).sort());
      const agents = (await fleet.api('GET', '/api/agents')).json;
      expect(agents.map((a: { id: string }) => a.id).sort()).to.deep.equal(['agent1', 'agent2', 'agent3']);
      expect((await fleet.api('GET', '/healthz')).json).to.include({ ok: true, agents: 3 });
    });

    it('pages GET /api/instances by name (limit, after, X-Next-After, Link) and filters by status', async () => {
      for (const name of ['page-a', 'page-b', 'page-c']) expect((await fleet.api('POST', '/api/instances', { name, capacityMb: 16 })).status).to.equal(202);
      await fleet.waitForStatus('page-a', 'RUNNING');
      const all = ((await fleet.api('GET', '/api/instances')).json as { name: string; status: string }[]).map((i) => i.name);
      expect(all).to.deep.equal([...all].sort(), 'the whole list, by name');
      expect(all.length).to.be.greaterThan(2);
      const seen: string[] = [];
      let after = '';
      for (let pages = 0; pages <= all.length; pages++) {
        const res = await fleet.api('GET', `/api/instances?limit=2${after ? `&after=${after}` : ''}`);
        expect(res.status, res.text).to.equal(200);
        seen.push(...res.json.map((i: { name: string }) => i.name));
        const next = res.headers.get('x-next-after');
        if (!next) break;
        expect(res.headers.get('link')).to.equal(`</api/instances?limit=2&after=${next}>; rel="next"`);
        after = next;
      }
      expect(seen).to.deep.equal(all);
      const running = (await fleet.api('GET', '/api/instances?status=RUNNING')).json as { status: string }[];
      expect(running.length).to.be.greaterThan(0);
      expect(running.every((i) => i.status === 'RUNNING')).to.equal(true);
      for (const [query, field] of [['limit=0', 'limit'], ['limit=1001', 'limit'], ['limit=x', 'limit'], ['after=Bad_Name', 'after'], ['status=ALIVE', 'status'], ['page=2', 'page'], ['limit=1&limit=2', 'limit']]) {
        const bad = await fleet.api('GET', `/api/instances?${query}`);
        expect(bad.status, query).to.equal(400);
        expect(bad.json.error.field, query).to.equal(field);
      }
    });

    it('rejects bad input with a 4xx naming the field, and writes nothing', async () => {
      await createRunning(fleet, 'taken', 16, 0);
      const keysOf = (name: string) => fleet.etcdctl('get', '--prefix', '--keys-only', `/MrRedis/Instances/${name}/`);
      const takenBefore = keysOf('taken');
      const cases: [string, string, unknown, number, string][] = [
        ['POST', '/v1/CREATE/bad/abc/1/2', undefined, 400, 'capacity'],
        ['POST', '/v1/CREATE/bad/64/1/-1', undefined, 400, 'slaves'],
        ['POST', '/v1/CREATE/bad/64/2/1', undefined, 400, 'masters'],
        ['POST', '/v1/CREATE/Bad_Name/64/1/1', undefined, 400, 'name'],
        ['POST', '/v1/CREATE/bad/999999/1/1', undefined, 409, 'capacity'],
        ['POST', '/api/instances', { name: 'bad', capacityMb: 'lots' }, 400, 'capacityMb'],
        ['POST', '/api/instances', { name: 'bad', capacityMb: 64, replicas: 99 }, 400, 'replicas'],
        ['POST', '/api/instances', { name: 'bad', capacityMb: 64, color: 'red' }, 400, 'color'],
        ['POST', '/api/instances', '{not json', 400, 'body'],
      ];
      for (const [method, path, body, code, field] of cases) {
        const res = await fleet.api(method, path, body);
        expect(res.status, `${method} ${path} ${JSON.stringify(body)}`).to.equal(code);
        expect(res.json.error.code).to.be.a('string');
        expect(res.json.error.message).to.contain(field);
      }
      expect((await fleet.api('GET', '/v1/STATUS/nosuch')).status).to.equal(404);
      expect((await fleet.api('DELETE', '/api/instances/nosuch')).status).to.equal(404);
      expect((await fleet.api('POST', '/api/instances', { name: 'taken', capacityMb: 64 })).status).to.equal(409);
      for (const name of ['bad', 'Bad_Name', 'nosuch']) expect(keysOf(name), name).to.equal('');
      expect(keysOf('taken')).to.equal(takenBefore, 'a refused create leaves the existing instance alone');
      expect(fleet.etcdctl('get', '--print-value-only', '/MrRedis/Instances/taken/Capacity').trim()).to.equal('16');
    });
  });

  describe('delete', () => {
    it('DELETE /v1/DELETE shuts every proc down, returns the resources to the offers, ends DELETED', async () => {
      const { inst } = await createRunning(fleet, 'deleted');
      const pids: number[] = inst.procs.filter((p: { state: string }) => p.state === 'RUNNING').map((p: { pid: number }) => p.pid);
      const agentsBefore = (await fleet.api('GET', '/api/agents')).json;
      const res = await fleet.api('DELETE', '/v1/DELETE/deleted');
      expect(res.status).to.equal(200);
      await fleet.waitForStatus('deleted', 'DELETED', 10_000);
      for (const pid of pids) expect(() => process.kill(pid, 0), `pid ${pid} is gone`).to.throw();
      const agentsAfter = (await fleet.api('GET', '/api/agents')).json;
      for (const a of agentsAfter) {
        const was = agentsBefore.find((b: { id: string }) => b.id === a.id);
        expect(a.free.mem).to.equal(was.free.mem + 64 * inst.procs.filter((p: { agent: string; state: string }) => p.agent === a.id && p.state === 'RUNNING').length);
        expect(a.tasks.some((t: string) => t.startsWith('deleted::'))).to.equal(false);
      }
      expect(fleet.etcdctl('get', '--print-value-only', '/MrRedis/Instances/deleted/Status').trim()).to.equal('DELETED');
      expect((await fleet.api('GET', '/v1/STATUS/deleted')).json).to.include({ Status: 'DELETED', Master: null });
    });

    it('DELETE /api/instances ends DELETED, and the name can be created again', async () => {
      expect((await fleet.api('POST', '/api/instances', { name: 'reborn', capacityMb: 16, replicas: 2 })).status).to.equal(202);
      await fleet.waitForStatus('reborn', 'RUNNING');
      expect((await fleet.api('DELETE', '/api/instances/reborn')).status).to.equal(202);
      await fleet.waitForStatus('reborn', 'DELETED', 10_000);
      const again = await fleet.api('POST', '/api/instances', { name: 'reborn', capacityMb: 16, replicas: 1 });
      expect(again.status).to.equal(202);
      const inst = await fleet.waitForStatus('reborn', 'RUNNING');
      expect(inst.procs).to.have.length(2, 'the old procs are gone from the tree');
    });

    it('leaves no redis-server behind after the last delete', async () => {
      await createRunning(fleet, 'lastone', 16, 1);
      const live = (await fleet.api('GET', '/api/instances')).json
        .filter((i: { status: string }) => i.status !== 'DELETED').map((i: { name: string }) => i.name);
      expect(live).to.include('lastone');
      for (const name of live) expect((await fleet.api('DELETE', `/api/instances/${name}`)).status, name).to.equal(202);
      for (const name of live) await fleet.waitForStatus(name, 'DELETED', 10_000);
      await fleet.waitFor(() => fleet.redisPids().length === 0, 5000, 'every redis-server to exit');
    });
  });
});
