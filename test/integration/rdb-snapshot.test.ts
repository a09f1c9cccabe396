import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { rdbSnapshot } from '../../src/scheduler/rdb-snapshot.js';
import { portOpen } from '../../src/executor/redis-process.js';

/**
 * The replication-protocol snapshot (issue 9 part 6) against real redis-servers, in both forms a
 * server sends: `$<length>` (disk-based sync) and `$EOF:<mark>` (diskless). The payload is
 * checked by loading it into a fresh redis-server.
 */
describe('RDB snapshot over the replication protocol', function () {
  this.timeout(60_000);
  const dir = mkdtempSync(join(tmpdir(), 'redfleet-rdb-'));
  const children: ChildProcess[] = [];

  after(() => {
    for (const c of children) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  function freePort(): Promise<number> {
    return new Promise((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const port = (s.address() as { port: number }).port;
        s.close(() => resolve(port));
      });
    });
  }

  /** A redis-server in its own directory (which may already hold a dump.rdb to load). */
  async function server(name: string, args: string[]): Promise<number> {
    const port = await freePort();
    const d = join(dir, name);
    mkdirSync(d, { recursive: true });
    const child = spawn('/usr/bin/redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--dir', d, ...args], { stdio: 'ignore' });
    children.push(child);
    for (let i = 0; i < 200; i++) {
      if (await portOpen('127.0.0.1', port)) return port;
      await sleep(25);
    }
    throw new Error(`redis-server ${name} did not start`);
  }

  for (const diskless of ['no', 'yes']) {
    it(`streams the whole dataset (repl-diskless-sync ${diskless})`, async () => {
      const user = ['--user', 'redfleet', 'on', '>s3cret', '~*', '&*', '+@all', '--user', 'default', 'off'];
      const port = await server(`src-${diskless}`, ['--repl-diskless-sync', diskless, '--repl-diskless-sync-delay', '0', ...user]);
      const src = new Redis({ port, username: 'redfleet', password: 's3cret' });
      const pipe = src.pipeline();
      for (let i = 0; i < 20_000; i++) pipe.set(`key:${i}`, `value-${i}-${'x'.repeat(i % 50)}`);
      await pipe.exec();
      src.disconnect();
      const stream = await rdbSnapshot({ host: '127.0.0.1', port, user: 'redfleet', password: 's3cret', idleTimeoutMs: 10_000 });
      const chunks: Buffer[] = [];
      for await (const c of stream) chunks.push(c as Buffer);
      const rdb = Buffer.concat(chunks);
      expect(rdb.subarray(0, 5).toString()).to.equal('REDIS');
      mkdirSync(join(dir, `load-${diskless}`), { recursive: true });
      writeFileSync(join(dir, `load-${diskless}`, 'dump.rdb'), rdb);
      const loadPort = await server(`load-${diskless}`, []);
      const loaded = new Redis({ port: loadPort });
      expect(await loaded.dbsize()).to.equal(20_000);
      expect(await loaded.get('key:19999')).to.equal(`value-19999-${'x'.repeat(19999 % 50)}`);
      loaded.disconnect();
    });
  }

  it('refuses with the server\'s reason when AUTH fails', async () => {
    const port = await server('auth', ['--user', 'redfleet', 'on', '>right', '~*', '+@all']);
    const err = await rdbSnapshot({ host: '127.0.0.1', port, user: 'redfleet', password: 'wrong', idleTimeoutMs: 5000 }).then(() => undefined, (e: Error) => e);
    expect(err?.message).to.match(/^AUTH refused: WRONGPASS/);
  });
});
