import { expect } from 'chai';
import { Redis } from 'ioredis';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { LocalFleet } from '../harness/local-fleet.js';
import { AckedWriter } from '../harness/acked-writer.js';

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

/** A schedule's minute, shortened for this test (REDFLEET_BACKUP_MINUTE_MS, docs/operations.md). */
const TEST_MINUTE_MS = 2000;

/**
 * Issue 9 part 6, backups: an RDB taken from a replica over the replication protocol while a
 * WAIT-1 writer runs (the master never forks), stored as <instance>/<id>.rdb with its SHA-256
 * (0700 directories, 0600 files), listed newest first, deleted; restored into a new instance that
 * has every key acknowledged before the backup when it turns RUNNING; scheduled backups; and bad
 * input refused with nothing written.
 */
describe('backups and restore (issue 9 part 6)', function () {
  this.timeout(240_000);
  let fleet: LocalFleet;
  let password = '';
  const writer: { w?: AckedWriter } = {};
  /** Keys acknowledged before the first backup was asked for, and that backup's id. */
  let ackedBefore = new Map<string, string>();
  let firstId = '';

  before(async () => {
    // Every scheduler of this fleet (also the one restarted below) gets the short minute.
    process.env.REDFLEET_BACKUP_MINUTE_MS = String(TEST_MINUTE_MS);
    fleet = await LocalFleet.start({ agents: 3 });
    const res = await fleet.api('POST', '/api/instances', { name: 'src', capacityMb: 32, replicas: 1 });
    expect(res.status).to.equal(202);
    password = res.json.password;
    await fleet.waitForStatus('src', 'RUNNING');
  });

  after(async () => {
    delete process.env.REDFLEET_BACKUP_MINUTE_MS;
    await writer.w?.stop();
    await fleet?.stop();
  });

  const backupDir = () => join(fleet.dir, 'backups');

  async function info(proc: { ip: string; port: number }, section: string): Promise<Record<string, string>> {
    const r = new Redis({ host: proc.ip, port: proc.port, password });
    try {
      const text = await r.info(section);
      return Object.fromEntries(text.split('\r\n').filter((l) => l.includes(':')).map((l) => l.split(':', 2) as [string, string]));
    } finally {
      r.disconnect();
    }
  }

  async function finished(name: string, opId: string): Promise<Json> {
    return fleet.waitFor(async () => {
      const op = (await fleet.api('GET', `/api/instances/${name}`)).json.operation;
      if (op?.id !== opId) throw new Error(`operation ${opId} replaced by ${JSON.stringify(op)}`);
      if (op.state === 'failed') throw new Error(`operation failed: ${op.error}`);
      return op.state === 'done' ? op : undefined;
    }, 60_000, `operation ${opId} to finish`);
  }

  it('takes an RDB from a replica while a WAIT 1 writer runs; the master does not fork', async () => {
    const w = new AckedWriter(fleet.sentinelPort, 'src', password);
    writer.w = w;
    w.start('acked:', 2);
    await w.waitForAcks(500, 30_000);
    const view = (await fleet.api('GET', '/api/instances/src')).json;
    const forksBefore = Number((await info(view.master, 'stats')).total_forks);
    ackedBefore = new Map(w.acked);
    const res = await fleet.api('POST', '/api/instances/src/backups');
    expect(res.status).to.equal(202);
    expect(res.json).to.include({ kind: 'backup', state: 'running' });
    const op = await finished('src', res.json.id);
    firstId = op.data.backupId;
    expect(op.data.source).to.equal(view.slaves[0].id);
    expect(op.step).to.match(/^stored backup /);
    expect(Number((await info(view.master, 'stats')).total_forks), 'master forks').to.equal(forksBefore);
    expect(Number((await info(view.slaves[0], 'stats')).total_forks), 'replica forks').to.be.greaterThan(0);
    const file = join(backupDir(), 'src', `${firstId}.rdb`);
    const bytes = readFileSync(file);
    expect(bytes.subarray(0, 5).toString()).to.equal('REDIS');
    const sha = createHash('sha256').update(bytes).digest('hex');
    expect(readFileSync(`${file}.sha256`, 'utf8').split(/\s+/)[0]).to.equal(sha);
    expect(op.data.sha256).to.equal(sha);
    for (const dir of [backupDir(), join(backupDir(), 'src')]) expect(statSync(dir).mode & 0o777, dir).to.equal(0o700);
    for (const f of [file, `${file}.sha256`]) expect(statSync(f).mode & 0o777, f).to.equal(0o600);
  });

  it('lists backups newest first with id, instance, createdAt, bytes, sha256; the CLI takes and lists them', async () => {
    const took = await fleet.cli(['backup', 'src', '--wait']);
    expect(took.code, took.stderr).to.equal(0);
    expect(took.stdout).to.match(/backup src\/[0-9]{8}T[0-9]{9}Z: [0-9]+ bytes, sha256 [0-9a-f]{64}/);
    const list = (await fleet.api('GET', '/api/instances/src/backups')).json;
    expect(list).to.have.length(2);
    expect(Object.keys(list[0]).sort()).to.deep.equal(['bytes', 'createdAt', 'id', 'instance', 'sha256']);
    expect(list[1].id).to.equal(firstId);
    expect(list[0].id > list[1].id).to.equal(true);
    expect(Date.parse(list[0].createdAt)).to.be.greaterThan(Date.parse(list[1].createdAt));
    expect(list[1]).to.include({ instance: 'src', bytes: statSync(join(backupDir(), 'src', `${firstId}.rdb`)).size });
    const listed = await fleet.cli(['backup', 'list', 'src']);
    expect(listed.stdout.trim().split('\n').map((l) => l.split('\t')[0])).to.deep.equal([list[0].id, list[1].id]);
  });

  it('restores a backup into a new instance that has every key acknowledged before the backup when it turns RUNNING', async () => {
    const res = await fleet.api('POST', '/api/instances', { name: 'copy', capacityMb: 32, replicas: 1, restoreFrom: `src/${firstId}` });
    expect(res.status, JSON.stringify(res.json)).to.equal(202);
    expect(res.json.restoredFrom).to.equal(`src/${firstId}`);
    const seen = (await fleet.api('GET', '/api/instances/copy')).json;
    expect(seen.operation).to.include({ kind: 'restore' });
    const view = await fleet.waitForStatus('copy', 'RUNNING');
    const r = new Redis({ host: view.master.ip, port: view.master.port, password: res.json.password });
    try {
      const keys = [...ackedBefore.keys()];
      const values = await r.mget(...keys);
      expect(keys.filter((k, i) => values[i] !== ackedBefore.get(k))).to.deep.equal([]);
    } finally {
      r.disconnect();
    }
    const op = await fleet.waitFor(async () => {
      const o = (await fleet.api('GET', '/api/instances/copy')).json.operation;
      return o?.state === 'done' ? o : undefined;
    }, 20_000, 'the restore operation to end');
    expect(op.kind).to.equal('restore');
    expect(fleet.log('agent1') + fleet.log('agent2') + fleet.log('agent3')).to.include('restored master seeded from a backup');
  });

  it('restores into an aof instance through the CLI: the RDB is loaded, then the AOF turned on', async () => {
    const out = await fleet.cli(['create', 'copy-aof', '--capacity', '32', '--persistence', 'aof', '--restore-from', `src/${firstId}`, '--wait']);
    expect(out.code, out.stderr).to.equal(0);
    const pass = /password: +(\S+)/.exec(out.stdout)![1];
    const view = (await fleet.api('GET', '/api/instances/copy-aof')).json;
    expect(view).to.include({ status: 'RUNNING', persistence: 'aof', restoredFrom: `src/${firstId}` });
    const r = new Redis({ host: view.master.ip, port: view.master.port, password: pass });
    try {
      const keys = [...ackedBefore.keys()];
      const values = await r.mget(...keys);
      expect(keys.filter((k, i) => values[i] !== ackedBefore.get(k))).to.deep.equal([]);
      expect((await r.info('persistence')).match(/aof_enabled:(\d)/)?.[1]).to.equal('1');
    } finally {
      r.disconnect();
    }
  });

  it('serves a backup to agents only within a session', async () => {
    const cases: Record<string, string>[] = [{}, { Authorization: 'RedFleet-Session forged-token-forged-token' }, { Authorization: 'Bearer x' }];
    for (const headers of cases) {
      const res = await fetch(`${fleet.apiUrl}/api/v1/agent/backup?ref=src/${firstId}`, { headers });
      expect(res.status, JSON.stringify(headers)).to.equal(401);
      expect((await res.arrayBuffer()).byteLength).to.be.lessThan(1000);
    }
  });

  it('loses no acknowledged write on the source while backups run', async () => {
    const w = writer.w!;
    await w.stop();
    const view = (await fleet.api('GET', '/api/instances/src')).json;
    expect(await w.missingOn(view.master, password)).to.deep.equal([]);
    expect(w.acked.size).to.be.greaterThan(ackedBefore.size);
  });

  it('deletes a backup (204), then 404; ids are validated', async () => {
    const list = (await fleet.api('GET', '/api/instances/src/backups')).json;
    const del = await fleet.api('DELETE', `/api/instances/src/backups/${list[0].id}`);
    expect(del.status).to.equal(204);
    expect((await fleet.api('GET', '/api/instances/src/backups')).json.map((b: Json) => b.id)).to.deep.equal([firstId]);
    const again = await fleet.api('DELETE', `/api/instances/src/backups/${list[0].id}`);
    expect(again.status).to.equal(404);
    expect(again.json.error).to.include({ code: 'BACKUP_NOT_FOUND', field: 'id' });
    for (const bad of ['..%2F..%2Ffleet.key', '20261130T001611123Z.rdb', 'x']) {
      const res = await fleet.api('DELETE', `/api/instances/src/backups/${bad}`);
      expect(res.status, bad).to.equal(400);
      expect(res.json.error).to.include({ code: 'INVALID_BACKUP_ID', field: 'id' });
    }
    expect(statSync(fleet.fleetKeyPath).isFile()).to.equal(true);
  });

  it('refuses bad restores and schedules with 4xx naming the field, writing nothing', async () => {
    const cases: [Record<string, unknown>, number, string, string][] = [
      [{ restoreFrom: 'src' }, 400, 'restoreFrom', 'INVALID_BACKUP_REF'],
      [{ restoreFrom: '../src/x' }, 400, 'restoreFrom', 'INVALID_BACKUP_REF'],
      [{ restoreFrom: 'src/20200101T000000000Z' }, 404, 'restoreFrom', 'BACKUP_NOT_FOUND'],
      [{ restoreFrom: 'nosuch/20200101T000000000Z' }, 404, 'restoreFrom', 'BACKUP_NOT_FOUND'],
      [{ backup: { everyMinutes: 0, keep: 1 } }, 400, 'backup.everyMinutes', 'OUT_OF_RANGE'],
      [{ backup: { everyMinutes: 5 } }, 400, 'backup.keep', 'INVALID_NUMBER'],
      [{ backup: { everyMinutes: 5, keep: 1, at: 3 } }, 400, 'backup.at', 'UNKNOWN_FIELD'],
      [{ backup: 'hourly' }, 400, 'backup', 'INVALID_BACKUP_SCHEDULE'],
    ];
    for (const [extra, status, field, code] of cases) {
      const res = await fleet.api('POST', '/api/instances', { name: 'badone', capacityMb: 16, ...extra });
      expect(res.status, JSON.stringify(extra)).to.equal(status);
      expect(res.json.error, JSON.stringify(extra)).to.include({ field, code });
    }
    // A damaged backup: its bytes no longer match the SHA-256 stored beside it.
    const file = join(backupDir(), 'src', `${firstId}.rdb`);
    const good = readFileSync(file);
    const bad = Buffer.from(good);
    bad[bad.length - 20] ^= 0xff;
    writeFileSync(file, bad);
    try {
      const res = await fleet.api('POST', '/api/instances', { name: 'badone', capacityMb: 16, restoreFrom: `src/${firstId}` });
      expect(res.status).to.equal(400);
      expect(res.json.error).to.include({ field: 'restoreFrom', code: 'BACKUP_CORRUPT' });
    } finally {
      writeFileSync(file, good);
    }
    expect(fleet.tree('/MrRedis/Instances/badone').size).to.equal(0);
  });

  it('takes a standalone instance\'s backup from its master; refuses unknown instances', async () => {
    const res = await fleet.api('POST', '/api/instances', { name: 'solo', capacityMb: 16 });
    const view = await fleet.waitForStatus('solo', 'RUNNING');
    const r = new Redis({ host: view.master.ip, port: view.master.port, password: res.json.password });
    await r.set('solo-key', 'v');
    r.disconnect();
    const op = await finished('solo', (await fleet.api('POST', '/api/instances/solo/backups')).json.id);
    expect(op.data.source).to.equal(view.master.id);
    expect((await fleet.api('GET', '/api/instances/solo/backups')).json).to.have.length(1);
    expect((await fleet.api('POST', '/api/instances/nosuch/backups')).status).to.equal(404);
  });

  it('runs scheduled backups, keeps the newest `keep`, and keeps the schedule across a scheduler restart', async () => {
    const res = await fleet.api('POST', '/api/instances', { name: 'sched', capacityMb: 16, replicas: 1, backup: { everyMinutes: 1, keep: 2 } });
    expect(res.status).to.equal(202);
    expect(res.json.backup).to.deep.equal({ everyMinutes: 1, keep: 2 });
    expect(JSON.parse(fleet.etcdctl('get', '--print-value-only', '/MrRedis/Instances/sched/BackupSchedule').trim())).to.deep.equal({ everyMinutes: 1, keep: 2 });
    await fleet.waitForStatus('sched', 'RUNNING');
    const ids = async () => ((await fleet.api('GET', '/api/instances/sched/backups')).json as Json[]).map((b) => b.id);
    const firstTwo = await fleet.waitFor(async () => ((await ids()).length >= 2 ? ids() : undefined), 60_000, 'two scheduled backups');
    await fleet.killScheduler();
    await fleet.startScheduler();
    expect((await fleet.api('GET', '/api/instances/sched')).json.backup).to.deep.equal({ everyMinutes: 1, keep: 2 });
    // Later backups replace the older ones: never more than keep (+ the one being taken).
    const later = await fleet.waitFor(async () => {
      const now = await ids();
      return now[0] > firstTwo[0] && !now.includes(firstTwo[1]) ? now : undefined;
    }, 60_000, 'newer scheduled backups to replace the old');
    expect(later.length).to.be.at.most(3);
    await sleep(TEST_MINUTE_MS);
    expect((await ids()).length).to.be.at.most(3);
    // PATCH changes the schedule; null removes it.
    const patched = await fleet.api('PATCH', '/api/instances/sched', { backup: { everyMinutes: 600, keep: 1 } });
    expect(patched.status).to.equal(200);
    expect(patched.json.backup).to.deep.equal({ everyMinutes: 600, keep: 1 });
    const badPatch = await fleet.api('PATCH', '/api/instances/sched', { backup: { everyMinutes: 1, keep: 1 }, ttlSeconds: 60 });
    expect(badPatch.status).to.equal(400);
    expect(badPatch.json.error.field).to.equal('ttlSeconds');
    const off = await fleet.api('PATCH', '/api/instances/sched', { backup: null });
    expect(off.json.backup).to.equal(null);
  });
});

/** Who may take, list, schedule and restore backups, on a fleet with an admin token and anonymous creates. */
describe('backups: access (issue 9 part 6)', function () {
  this.timeout(120_000);
  const ADMIN = 'backup-admin-token-0123456789';
  let fleet: LocalFleet;
  let tokenDir = '';
  const admin = { Authorization: `Bearer ${ADMIN}` };

  before(async () => {
    tokenDir = mkdtempSync(join(tmpdir(), 'redfleet-backup-access-'));
    writeFileSync(join(tokenDir, 'tokens'), `${ADMIN}\n`, { mode: 0o600 });
    fleet = await LocalFleet.start({ agents: 2, adminToken: ADMIN, schedulerArgs: ['--api-token-file', join(tokenDir, 'tokens'), '--anonymous'] });
  });

  after(async () => {
    await fleet?.stop();
    if (tokenDir) rmSync(tokenDir, { recursive: true, force: true });
  });

  it('lets an instance key back up its own instance, not schedule; anonymous callers neither restore nor schedule', async () => {
    const created = await fleet.api('POST', '/api/instances', { name: 'owned', capacityMb: 16 }, admin);
    expect(created.status).to.equal(202);
    await fleet.waitForStatus('owned', 'RUNNING');
    const key = { Authorization: `Bearer ${created.json.accessKey}` };
    const op = await fleet.api('POST', '/api/instances/owned/backups', undefined, key);
    expect(op.status).to.equal(202);
    await fleet.waitFor(async () => ((await fleet.api('GET', '/api/instances/owned/backups', undefined, key)).json as unknown[]).length === 1, 30_000, 'the backup');
    const sched = await fleet.api('PATCH', '/api/instances/owned', { backup: { everyMinutes: 1, keep: 1 } }, key);
    expect(sched.status).to.equal(403);
    expect((await fleet.api('GET', '/api/instances/owned/backups')).status).to.equal(401);
    const id = (await fleet.api('GET', '/api/instances/owned/backups', undefined, key)).json[0].id;
    for (const extra of [{ restoreFrom: `owned/${id}` }, { backup: { everyMinutes: 5, keep: 1 } }]) {
      const res = await fleet.api('POST', '/api/instances', { name: 'anon', capacityMb: 16, ...extra });
      expect(res.status, JSON.stringify(extra)).to.equal(400);
      expect(res.json.error.code).to.equal('NOT_ALLOWED');
    }
    expect(fleet.tree('/MrRedis/Instances/anon').size).to.equal(0);
    const anon = await fleet.api('POST', '/api/instances', { name: 'anon', capacityMb: 16 });
    expect(anon.status).to.equal(202);
    await fleet.waitForStatus('anon', 'RUNNING');
    const anonKey = { Authorization: `Bearer ${anon.json.accessKey}` };
    expect((await fleet.api('POST', '/api/instances/anon/backups', undefined, anonKey)).status).to.equal(403);
  });
});
