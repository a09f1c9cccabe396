import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startEtcdServer, type EtcdServer } from '../../src/devtools/etcd-server.js';
import { connectEtcd } from '../../src/store/etcd.js';
import { AgentStore, type AgentRecord } from '../../src/store/agent-store.js';
import type { Logger } from '../../src/logger.js';

/** A logger that keeps its warnings and errors. */
function keptLog(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const keep = (msg: string) => lines.push(msg);
  return { lines, warn: keep, error: keep, info: () => undefined, debug: () => undefined } as unknown as Logger & { lines: string[] };
}

const record = (): AgentRecord => ({ id: 'reg1', hostname: 'h', ip: '127.0.0.1', scheduler: 'http://127.0.0.1:1', resources: { cpus: 1, mem: 64, ports: '7000-7001' }, startedAt: new Date().toISOString() });

/**
 * An agent's registration (/MrRedis/Agents/<id> on a lease): lost with etcd, it is made again
 * with a backoff, not in a loop as fast as etcd refuses (issue 11: simulated agents re-registered
 * 14,000 times in five minutes on a loaded etcd), and it is back once etcd is.
 */
describe('agent registration: a lost lease is registered again, backed off', function () {
  this.timeout(60_000);
  let dir = '';
  let etcd: EtcdServer | undefined;
  let store: AgentStore | undefined;
  let wanted = true;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'redfleet-registration-'));
  });

  after(async () => {
    wanted = false;
    await store?.close().catch(() => undefined);
    await etcd?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('tries a few times a second at most while etcd is gone, and registers again once it is back', async () => {
    etcd = await startEtcdServer(join(dir, 'etcd'));
    const port = Number(new URL(etcd.url).port);
    const log = keptLog();
    // A 1 s lease (10 s in the agent): the client gives it up 2 s after etcd is gone.
    store = new AgentStore(etcd.url, '/MrRedis', log, 1);
    store.open();
    await store.register(record, () => wanted);
    const check = connectEtcd(etcd.url);
    try {
      expect(await check.get('/MrRedis/Agents/reg1').string()).to.include('"reg1"');
    } finally {
      check.close();
    }

    await etcd.stop();
    etcd = undefined;
    // Lost after 2 x its TTL without a keepalive; then each grant fails at once, for 4 s.
    await sleep(6_000);
    const attempts = log.lines.filter((l) => /lease lost/.test(l)).length;
    expect(attempts, 'lost and registered again at least once').to.be.at.least(2);
    expect(attempts, 'backed off: 250 ms doubling up to 5 s').to.be.at.most(6);

    etcd = await startEtcdServer(join(dir, 'etcd'), { clientPort: port });
    const again = connectEtcd(etcd.url);
    try {
      const deadline = Date.now() + 15_000;
      let value: string | null = null;
      while (Date.now() < deadline && !(value = await again.get('/MrRedis/Agents/reg1').string().catch(() => null))) await sleep(100);
      expect(value, 'registered again after etcd came back').to.include('"reg1"');
    } finally {
      again.close();
    }
  });
});
