import { expect } from 'chai';
import { Redis } from 'ioredis';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { LocalFleet } from '../harness/local-fleet.js';
import { AckedWriter } from '../harness/acked-writer.js';
import { FRAMEWORK_USER, frameworkSecret } from '../../src/store/secrets.js';

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

/**
 * Issue 9 part 6, persistence: "none" | "rdb" | "aof" at create, applied in each proc's redis.conf,
 * data in the proc's directory (0700, files never readable by group or others), and a standalone
 * persistent instance whose redis-server dies restarted in place on its agent with its data.
 */
describe('persistence (issue 9 part 6)', function () {
  this.timeout(180_000);
  let fleet: LocalFleet;
  let fleetKey: string;

  before(async () => {
    fleet = await LocalFleet.start({ agents: 2 });
    fleetKey = readFileSync(fleet.fleetKeyPath, 'utf8').trim();
  });

  after(async () => {
    await fleet?.stop();
  });

  /** A connection to a proc as the framework user (the agents' and scheduler's own user). */
  function framework(name: string, proc: { ip: string; port: number }): Redis {
    const r = new Redis({ host: proc.ip, port: proc.port, username: FRAMEWORK_USER, password: frameworkSecret(fleetKey, name), lazyConnect: true });
    r.on('error', () => undefined);
    return r;
  }

  async function create(name: string, body: Record<string, unknown>): Promise<Json> {
    const res = await fleet.api('POST', '/api/instances', { name, capacityMb: 16, ...body });
    expect(res.status, JSON.stringify(res.json)).to.equal(202);
    const view = await fleet.waitForStatus(name, 'RUNNING');
    return { ...view, password: res.json.password };
  }

  async function config(r: Redis, key: string): Promise<string> {
    return ((await r.call('CONFIG', 'GET', key)) as string[])[1];
  }

  /** Every file and directory under `dir`, with its mode. */
  function modes(dir: string): { path: string; mode: number; isDir: boolean }[] {
    const out: { path: string; mode: number; isDir: boolean }[] = [];
    for (const entry of readdirSync(dir)) {
      const path = join(dir, entry);
      const st = statSync(path);
      out.push({ path, mode: st.mode & 0o777, isDir: st.isDirectory() });
      if (st.isDirectory()) out.push(...modes(path));
    }
    return out;
  }

  it('applies none, rdb and aof to redis.conf, records them in etcd, and keeps data owner-only', async () => {
    const expected: Record<string, { save: string; appendonly: string }> = {
      'p-none': { save: '', appendonly: 'no' },
      'p-rdb': { save: '900 1 300 10 60 10000', appendonly: 'no' },
      'p-aof': { save: '', appendonly: 'yes' },
    };
    for (const [name, want] of Object.entries(expected)) {
      const mode = name.slice(2);
      const view = await create(name, mode === 'none' ? {} : { persistence: mode });
      expect(view.persistence).to.equal(mode);
      expect(fleet.etcdctl('get', '--print-value-only', `/MrRedis/Instances/${name}/Persistence`).trim()).to.equal(mode);
      const r = framework(name, view.master);
      await r.connect();
      try {
        expect(await config(r, 'save')).to.equal(want.save);
        expect(await config(r, 'appendonly')).to.equal(want.appendonly);
        if (mode === 'aof') expect(await config(r, 'appendfsync')).to.equal('everysec');
        const tenant = new Redis({ host: view.master.ip, port: view.master.port, password: view.password });
        for (let i = 0; i < 100; i++) await tenant.set(`k${i}`, `v${i}`);
        tenant.disconnect();
        if (mode !== 'none') await r.call('SAVE');
        const dir = await config(r, 'dir');
        expect(dir.startsWith(fleet.dir), dir).to.equal(true);
        expect(statSync(dir).mode & 0o777, `${dir} mode`).to.equal(0o700);
        const files = modes(dir);
        const names = files.map((f) => f.path.slice(dir.length + 1));
        if (mode === 'rdb') expect(names).to.include('dump.rdb');
        if (mode === 'aof') expect(names).to.include('appendonlydir');
        if (mode === 'none') expect(names).not.to.include('dump.rdb');
        for (const f of files) expect(f.mode & 0o077, `${f.path} is ${f.mode.toString(8)}`).to.equal(0);
      } finally {
        r.disconnect();
      }
    }
  });

  for (const mode of ['rdb', 'aof'] as const) {
    it(`restarts a standalone ${mode} instance in place on its agent with its data when its redis-server is SIGKILLed`, async () => {
      const name = `inplace-${mode}`;
      const view = await create(name, { persistence: mode });
      const before = view.master;
      const writer = new AckedWriter(fleet.sentinelPort, name, view.password, false);
      writer.start(`${mode}:`, 2, 300);
      await writer.waitForAcks(300, 30_000);
      await writer.stop();
      // rdb keeps what its last snapshot holds: take one now (as the save rules would, later).
      if (mode === 'rdb') {
        const r = framework(name, before);
        await r.call('SAVE');
        r.disconnect();
      }
      process.kill(before.pid, 'SIGKILL');
      const after = await fleet.waitFor(async () => {
        const v = (await fleet.api('GET', `/api/instances/${name}`)).json;
        return v.status === 'RUNNING' && v.master && v.master.id !== before.id ? v : undefined;
      }, 30_000, 'the master to be restarted');
      expect(after.master.agent).to.equal(before.agent);
      expect(after.dataLost).to.equal(null);
      expect(await writer.missingOn(after.master, view.password)).to.deep.equal([]);
      expect(fleet.log('scheduler')).to.include('persistent master restarted in place with its data');
    });
  }

  it('refuses a bad persistence with 400 naming the field, writing nothing', async () => {
    for (const persistence of ['disk', 1, null, 'AOF']) {
      const res = await fleet.api('POST', '/api/instances', { name: 'bad-persist', capacityMb: 16, persistence });
      expect(res.status).to.equal(400);
      expect(res.json.error).to.include({ field: 'persistence', code: 'INVALID_PERSISTENCE' });
    }
    expect(fleet.tree('/MrRedis/Instances/bad-persist').size).to.equal(0);
  });
});
