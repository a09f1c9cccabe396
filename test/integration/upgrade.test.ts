import { expect } from 'chai';
import { copyFileSync, mkdirSync, mkdtempSync, readlinkSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalFleet } from '../harness/local-fleet.js';
import { AckedWriter } from '../harness/acked-writer.js';

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

const LIVE = ['STAGING', 'STARTING', 'RUNNING'];
const STOCK = '/usr/bin/redis-server';

/**
 * Rolling redis-server upgrade (issue 9, part 5) with two binary paths: the Debian binary and a
 * copy of it elsewhere (same basename, so it is still a redis-server to every tool). Every agent
 * offers both, the stock one first (the default). An upgrade to the copy must end with every proc
 * running the copy (/proc/<pid>/exe), in the order replicas, switchover, old master, with no
 * acknowledged write lost.
 */
describe('rolling upgrade of redis-server', function () {
  this.timeout(400_000);
  let fleet: LocalFleet;
  let binDir: string;
  let next: string;
  let password = '';
  const name = 'up1';

  before(async () => {
    binDir = mkdtempSync(join(tmpdir(), 'redfleet-bin-'));
    mkdirSync(join(binDir, 'next'));
    next = join(binDir, 'next', 'redis-server');
    copyFileSync(STOCK, next);
    // Three agents at distribution 1: each new replica goes in the stead of the proc it replaces.
    fleet = await LocalFleet.start({ agents: 3, agent: { redisServer: `${STOCK},${next}` } });
    const created = await fleet.api('POST', '/api/instances', { name, capacityMb: 32, replicas: 2 });
    expect(created.status).to.equal(202, created.text);
    password = created.json.password;
    await settled();
  });

  after(async () => {
    await fleet?.stop();
    if (binDir) rmSync(binDir, { recursive: true, force: true });
  });

  async function view(): Promise<Json> {
    return (await fleet.api('GET', `/api/instances/${name}`)).json;
  }

  async function settled(timeoutMs = 60_000): Promise<Json> {
    return fleet.waitFor(async () => {
      const i = await view();
      const live = i.procs.filter((p: Json) => LIVE.includes(p.state));
      const linked = i.slaves.filter((s: Json) => s.stats?.masterLinkStatus === 'up');
      return i.status === 'RUNNING' && i.master && live.length === 3 && i.slaves.length === 2 && linked.length === 2 && i.operation?.state !== 'running' ? i : undefined;
    }, timeoutMs, `${name} to settle with 1+2 procs`);
  }

  /** The file a pid runs. Debian's /usr/bin/redis-server is a symlink (to redis-check-rdb): compare real paths. */
  function exeOf(pid: number): string {
    return readlinkSync(`/proc/${pid}/exe`);
  }

  function real(path: string): string {
    return realpathSync(path);
  }

  it('shows the binaries each agent offers, and each proc its binary', async () => {
    const agents = (await fleet.api('GET', '/api/agents')).json;
    for (const a of agents) {
      expect(a.redisServers.map((b: Json) => b.path)).to.deep.equal([STOCK, next]);
      for (const b of a.redisServers) expect(b.version).to.match(/^[0-9]+\.[0-9]+\.[0-9]+/);
    }
    const inst = await view();
    for (const p of inst.procs) {
      expect(p.redisServer.path).to.equal(STOCK, 'the default binary');
      expect(exeOf(p.pid)).to.equal(real(STOCK));
    }
    expect(fleet.tree(`/MrRedis/Instances/${name}/Procs/${inst.master.id}/RedisServer`).get(`/MrRedis/Instances/${name}/Procs/${inst.master.id}/RedisServer`)).to.equal(STOCK);
  });

  it('refuses bad input by field, and a standalone instance with 409, writing nothing', async () => {
    const cases: [unknown, number, string][] = [
      [undefined, 400, 'body'],
      [[], 400, 'body'],
      [{ redisServer: 7 }, 400, 'redisServer'],
      [{ redisServer: '' }, 400, 'redisServer'],
      [{ redisServer: '/opt/nowhere/redis-server' }, 400, 'redisServer'],
      [{ redisServer: '9.9.9' }, 400, 'redisServer'],
      [{ redisServer: next, extra: 1 }, 400, 'extra'],
    ];
    for (const [body, status, field] of cases) {
      const res = await fleet.api('POST', `/api/instances/${name}/upgrade`, body);
      expect(res.status, JSON.stringify(body)).to.equal(status);
      expect(res.json.error.field, JSON.stringify(body)).to.equal(field);
    }
    expect((await view()).operation).to.equal(null, 'no operation recorded');
    const missing = await fleet.api('POST', '/api/instances/nosuch/upgrade', { redisServer: next });
    expect(missing.status).to.equal(404);
    const solo = await fleet.api('POST', '/api/instances', { name: 'solo', capacityMb: 16, replicas: 0 });
    expect(solo.status).to.equal(202, solo.text);
    await fleet.waitForStatus('solo', 'RUNNING', 60_000);
    const refused = await fleet.api('POST', '/api/instances/solo/upgrade', { redisServer: next });
    expect(refused.status).to.equal(409, refused.text);
    expect(refused.json.error.message).to.match(/standalone/);
    expect((await fleet.api('GET', '/api/instances/solo')).json.operation).to.equal(null);
    await fleet.api('DELETE', '/api/instances/solo');
  });

  it('upgrades to the copy with writes running: replicas first, then the switchover, the old master last; zero loss', async () => {
    const before = await settled();
    const oldMaster = before.master.id;
    const writer = new AckedWriter(fleet.sentinelPort, name, password);
    writer.start('upgrade:');
    try {
      await writer.waitForAcks(100);
      const out = await fleet.cli(['upgrade', '--redis-server', next, name, '--wait', '--timeout', '300']);
      expect(out.code).to.equal(0, `${out.stdout}\n${out.stderr}`);
      expect(out.stdout).to.match(/upgrade: replacing replica/);
      await writer.waitForAcks(100);
      const after = await settled();
      await writer.stop();
      const live = after.procs.filter((p: Json) => LIVE.includes(p.state));
      for (const p of live) {
        expect(p.redisServer.path, p.id).to.equal(next);
        expect(exeOf(p.pid), `/proc/${p.pid}/exe of ${p.id}`).to.equal(real(next));
      }
      expect(live.map((p: Json) => p.id)).to.not.include(oldMaster, 'the old master is retired');
      const steps: string[] = after.operation.data.steps;
      expect(after.operation).to.include({ kind: 'upgrade', state: 'done' });
      const kinds = steps.map((s) => s.split(' ')[0] + (s.includes('old master') ? '-old-master' : ''));
      expect(kinds).to.deep.equal(['replacing', 'replacing', 'adding', 'switching', 'retiring-old-master'], steps.join('\n'));
      expect(steps[4]).to.include(oldMaster);
      expect(writer.acked.size).to.be.greaterThan(200);
      expect(await writer.missingOn(after.master, password), writer.errors.slice(-3).join(' | ')).to.deep.equal([]);
      // The instance keeps the binary: a replica lost later is replaced on it too.
      expect(after.redisServer).to.equal(next);
      const victim = after.slaves[0];
      process.kill(victim.pid, 'SIGKILL');
      const healed = await fleet.waitFor(async () => {
        const i = await view();
        const fresh = i.slaves.find((r: Json) => r.id !== victim.id && !live.some((p: Json) => p.id === r.id));
        return fresh && i.status === 'RUNNING' && i.slaves.length === 2 ? fresh : undefined;
      }, 60_000, 'the killed replica to be replaced');
      expect(healed.redisServer.path).to.equal(next);
      expect(exeOf(healed.pid)).to.equal(real(next));
    } finally {
      await writer.stop();
    }
  });

  it('resumes after a scheduler restart mid-upgrade and finishes the sequence', async () => {
    const before = await settled();
    // Back to the stock binary after the test above; onto the copy when run alone.
    const target = before.master.redisServer.path === STOCK ? next : STOCK;
    const res = await fleet.api('POST', `/api/instances/${name}/upgrade`, { redisServer: target });
    expect(res.status).to.equal(202, res.text);
    await fleet.waitFor(async () => ((await view()).operation?.data?.steps ?? []).length >= 1, 30_000, 'the first step');
    await fleet.killScheduler('SIGKILL');
    await fleet.startScheduler();
    const done = await fleet.waitFor(async () => {
      const i = await view();
      return i.operation?.state === 'done' || i.operation?.state === 'failed' ? i : undefined;
    }, 240_000, 'the resumed upgrade to end');
    expect(done.operation.state).to.equal('done', done.operation.error);
    expect(fleet.log('scheduler')).to.match(/resuming an operation/, 'the next scheduler went on with it');
    const kinds = (done.operation.data.steps as string[]).map((s) => s.split(' ')[0]);
    expect(kinds.indexOf('switching'), kinds.join(',')).to.be.greaterThan(kinds.lastIndexOf('replacing'));
    expect(kinds[kinds.length - 1]).to.equal('retiring');
    const after = await settled();
    for (const p of after.procs.filter((q: Json) => LIVE.includes(q.state))) expect(exeOf(p.pid), p.id).to.equal(real(target));
  });
});
