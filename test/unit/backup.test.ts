import { expect } from 'chai';
import { backupDue, backupIdAt, backupsBeyond, backupTime, parseBackupRef, parseBackupSchedule, type Backup } from '../../src/domain/backup.js';
import { validateCreateBody } from '../../src/api/validate.js';
import { validateBackupId, validateBackupPatch } from '../../src/api/backup-input.js';
import { InvalidInputError } from '../../src/errors.js';
import { persistenceLines, renderRedisConfig } from '../../src/executor/redis-config.js';
import { checkLaunch } from '../../src/executor/launch-check.js';
import { pb } from '../../src/proto/messages.js';
import { ProcData, procDirName } from '../../src/executor/proc-data.js';
import { createLogger } from '../../src/logger.js';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const MINUTE = 60_000;

describe('backups: ids, refs, schedule due logic (issue 9 part 6)', () => {
  it('names a backup by its UTC time, sortable, with no path characters', () => {
    const at = new Date('2026-11-30T00:16:11.123Z');
    expect(backupIdAt(at)).to.equal('20261130T001611123Z');
    expect(backupTime('20261130T001611123Z').toISOString()).to.equal(at.toISOString());
    expect(parseBackupRef('cache1/20261130T001611123Z')).to.deep.equal({ instance: 'cache1', id: '20261130T001611123Z' });
    for (const bad of ['cache1', 'cache1/', '/20261130T001611123Z', '../x/20261130T001611123Z', 'a/b/20261130T001611123Z', 'Cache/20261130T001611123Z', 'c/20261130T001611123Z.rdb', 'c/..', 7, null]) {
      expect(parseBackupRef(bad), String(bad)).to.equal(undefined);
    }
    expect(validateBackupId('20261130T001611123Z')).to.equal('20261130T001611123Z');
    for (const bad of ['..', '../fleet.key', '20261130T001611123Z/x', '', 'x']) expect(() => validateBackupId(bad), bad).to.throw(InvalidInputError).with.property('field', 'id');
  });

  it('is due when there is no backup yet or the newest is everyMinutes old', () => {
    const s = { everyMinutes: 60, keep: 3 };
    const now = new Date('2026-11-30T12:00:00Z');
    expect(backupDue(s, undefined, now)).to.equal(true);
    expect(backupDue(s, new Date(now.getTime() - 59 * MINUTE), now)).to.equal(false);
    expect(backupDue(s, new Date(now.getTime() - 60 * MINUTE), now)).to.equal(true);
    expect(backupDue(s, new Date(now.getTime() - 61 * MINUTE), now)).to.equal(true);
    expect(backupDue(s, new Date(now.getTime() - 2000), now, 1000)).to.equal(false);
    expect(backupDue({ everyMinutes: 1, keep: 1 }, new Date(now.getTime() - 1000), now, 1000)).to.equal(true);
    expect(backupDue(s, new Date(NaN), now)).to.equal(true);
  });

  it('deletes all but the newest keep', () => {
    const b = (id: string): Backup => ({ id, instance: 'c', createdAt: backupTime(id).toISOString(), bytes: 1, sha256: '0'.repeat(64) });
    const list = [b('20261130T000000000Z'), b('20261130T020000000Z'), b('20261130T010000000Z')];
    expect(backupsBeyond(list, 2).map((x) => x.id)).to.deep.equal(['20261130T000000000Z']);
    expect(backupsBeyond(list, 3)).to.deep.equal([]);
    expect(backupsBeyond(list, 1).map((x) => x.id)).to.deep.equal(['20261130T010000000Z', '20261130T000000000Z']);
  });

  it('reads the BackupSchedule key and ignores what is not a schedule', () => {
    expect(parseBackupSchedule('{"everyMinutes":5,"keep":2}')).to.deep.equal({ everyMinutes: 5, keep: 2 });
    for (const bad of ['', '{}', 'x', '{"everyMinutes":0,"keep":2}', '{"everyMinutes":5}', undefined]) expect(parseBackupSchedule(bad)).to.equal(undefined);
  });

  it('validates persistence, backup and restoreFrom in a create, and a backup PATCH', () => {
    expect(validateCreateBody({ name: 'c', capacityMb: 64 }, 1024).persistence).to.equal('none');
    expect(validateCreateBody({ name: 'c', capacityMb: 64, persistence: 'aof', backup: { everyMinutes: 5, keep: 2 }, restoreFrom: 'a/20261130T001611123Z' }, 1024))
      .to.include({ persistence: 'aof', restoreFrom: 'a/20261130T001611123Z' });
    expect(() => validateCreateBody({ name: 'c', capacityMb: 64, persistence: 'disk' }, 1024)).to.throw(InvalidInputError).with.property('field', 'persistence');
    expect(() => validateCreateBody({ name: 'c', capacityMb: 64, restoreFrom: 'a' }, 1024)).to.throw(InvalidInputError).with.property('field', 'restoreFrom');
    expect(() => validateCreateBody({ name: 'c', capacityMb: 64, backup: { everyMinutes: 5, keep: 0 } }, 1024)).to.throw(InvalidInputError).with.property('field', 'backup.keep');
    expect(validateBackupPatch({ backup: null })).to.equal(null);
    expect(validateBackupPatch({ backup: { everyMinutes: 1, keep: 1 } })).to.deep.equal({ everyMinutes: 1, keep: 1 });
    expect(() => validateBackupPatch({ backup: null, capacityMb: 5 })).to.throw(InvalidInputError).with.property('field', 'capacityMb');
  });
});

describe('persistence in redis.conf and in a LAUNCH (issue 9 part 6)', () => {
  const base = { ip: '127.0.0.1', port: 7000, dir: '/tmp/p', capacityMb: 64, passwordSha256: 'a'.repeat(64), frameworkSecret: 's', replicaPriority: 100, minReplicasToWrite: 0, minReplicasMaxLag: 10, maxClients: 0 };

  it('writes save rules for rdb, an everysec AOF for aof, nothing for none', () => {
    expect(persistenceLines('none', false)).to.deep.equal(['save ""', 'appendonly no']);
    expect(persistenceLines('rdb', false)).to.include('save 900 1 300 10 60 10000').and.include('appendonly no');
    expect(persistenceLines('aof', false)).to.include('appendonly yes').and.include('appendfsync everysec');
    // A seeded aof proc loads its dump.rdb first; the agent turns the AOF on after.
    expect(persistenceLines('aof', true)).to.include('appendonly no');
    expect(renderRedisConfig(base)).to.include('save ""\nappendonly no\n');
    expect(renderRedisConfig({ ...base, persistence: 'aof' })).to.include('appendonly yes\nappendfsync everysec\n');
  });

  it('checks the persistence, restore and reuse fields of a LAUNCH', () => {
    const id = 'c::0b6f3c5e-1c1e-4a5e-9f3e-2d1c0b9a8f7e';
    const other = 'c::1b6f3c5e-1c1e-4a5e-9f3e-2d1c0b9a8f7e';
    const limits = { ports: { begin: 7000, end: 7010 }, memMb: 1024, portsInUse: new Set<number>(), redisServers: ['redis-server'] };
    const launch = (extra: Record<string, unknown>) => pb.RedisLaunch.create({ instance: 'c', proc_id: id, role: pb.RedisLaunch.Role.MASTER, port: 7001, capacity_mb: 64, password_sha256: 'a'.repeat(64), ...extra });
    expect(checkLaunch(id, launch({}), limits).persistence).to.equal('none');
    const ok = checkLaunch(id, launch({ persistence: 'rdb', restore_backup: 'src/20261130T001611123Z', restore_sha256: 'B'.repeat(64), reuse_dir_of: other }), limits);
    expect(ok).to.deep.include({ persistence: 'rdb', restore: { backup: 'src/20261130T001611123Z', sha256: 'b'.repeat(64) }, reuseDirOf: other });
    const bad: [Record<string, unknown>, string][] = [
      [{ persistence: 'disk' }, 'persistence'],
      [{ restore_backup: '../x', restore_sha256: 'b'.repeat(64) }, 'restore_backup'],
      [{ restore_backup: 'src/20261130T001611123Z', restore_sha256: 'xyz' }, 'restore_sha256'],
      [{ reuse_dir_of: '../../etc' }, 'reuse_dir_of'],
      [{ reuse_dir_of: 'd::1b6f3c5e-1c1e-4a5e-9f3e-2d1c0b9a8f7e' }, 'reuse_dir_of'],
      [{ reuse_dir_of: id }, 'reuse_dir_of'],
    ];
    for (const [extra, field] of bad) expect(() => checkLaunch(id, launch(extra), limits), JSON.stringify(extra)).to.throw().with.property('field', field);
  });
});

describe('kept data of a crashed persistent proc (restart in place)', () => {
  const id = (n: number) => `c::${n}b6f3c5e-1c1e-4a5e-9f3e-2d1c0b9a8f7e`;
  const launch = (procId: string, reuseDirOf: string) => ({ instance: 'c', procId, role: 'master', port: 1, capacityMb: 1, passwordSha256: '', replicaPriority: 100, minReplicasToWrite: 0, minReplicasMaxLag: 0, maxClients: 0, persistence: 'aof', reuseDirOf, redisServer: 'redis-server' }) as const;

  it('moves a kept directory to the new proc, and refuses one it did not keep', async () => {
    const work = mkdtempSync(join(tmpdir(), 'redfleet-procdata-'));
    try {
      const data = new ProcData(work, createLogger('test'), () => undefined);
      const old = join(work, procDirName(id(1)));
      mkdirSync(old);
      writeFileSync(join(old, 'dump.rdb'), 'REDIS0010');
      // Not kept (a running proc's directory, say): never taken over.
      await data.prepare(join(work, procDirName(id(2))), launch(id(2), id(1))).then(() => expect.fail('reused a directory it did not keep'), (err: Error) => expect(err.message).to.match(/no kept data/));
      expect(existsSync(old)).to.equal(true);
      data.keep(old);
      const dir = join(work, procDirName(id(3)));
      await data.prepare(dir, launch(id(3), id(1)));
      expect(readFileSync(join(dir, 'dump.rdb'), 'utf8')).to.equal('REDIS0010');
      expect(existsSync(old)).to.equal(false);
      // Taken once only.
      await data.prepare(join(work, procDirName(id(4))), launch(id(4), id(1))).then(() => expect.fail('reused twice'), (err: Error) => expect(err.message).to.match(/no kept data/));
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
