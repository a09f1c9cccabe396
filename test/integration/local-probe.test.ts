import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { RedisProcess } from '../../src/executor/redis-process.js';
import { LocalProbe, type ProcHealth, type ProbeTarget } from '../../src/executor/local-probe.js';
import { createLogger } from '../../src/logger.js';
import { FRAMEWORK_USER, sha256Hex } from '../../src/store/secrets.js';
import { freePort } from '../../src/net.js';

const SECRET = 'framework-secret';

/** Polls `cond` every 10 ms until it holds; fails after `ms` naming `what`. */
async function until<T>(cond: () => T | undefined | false, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/**
 * The agent's first-line failure detection against a real redis-server: a frozen proc is told
 * silent at once and then with a growing silence, answering again once thawed; a busy script is
 * told busy. Bounds are generous (a loaded 2-core machine); no timing is asserted tightly.
 */
describe('executor: local PING probe (first-line failure detection)', function () {
  this.timeout(60_000);
  let dir: string;
  let redis: RedisProcess;
  let target: ProbeTarget;
  let admin: Redis;
  const procId = `probe::${randomUUID()}`;
  const log = createLogger('test');

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'redfleet-probe-'));
    const port = await freePort();
    redis = new RedisProcess({
      procId, redisServer: 'redis-server', log, ip: '127.0.0.1', port, dir: join(dir, 'proc'), capacityMb: 16,
      passwordSha256: sha256Hex('tenant-pw'), frameworkSecret: SECRET, replicaPriority: 100, minReplicasToWrite: 0, minReplicasMaxLag: 10, maxClients: 0,
    });
    await redis.start();
    target = { procId, ip: '127.0.0.1', port, secret: SECRET };
    admin = new Redis({ port, username: FRAMEWORK_USER, password: SECRET, maxRetriesPerRequest: 1 });
    admin.on('error', () => undefined);
  });

  after(async () => {
    if (redis?.pid) process.kill(redis.pid, 'SIGCONT');
    admin?.disconnect();
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A started probe of the proc, and what it told, with the time it told it. */
  function probe(targets: () => ProbeTarget[] = () => [target]): { probe: LocalProbe; told: { at: number; health: ProcHealth }[] } {
    const told: { at: number; health: ProcHealth }[] = [];
    const p = new LocalProbe(targets, log, { onChange: (id, health) => { if (id === procId) told.push({ at: Date.now(), health }); } });
    p.start();
    return { probe: p, told };
  }

  const probeClients = async (): Promise<number> => ((await admin.call('CLIENT', 'LIST')) as string).split('\n').filter((l) => l.includes('name=redfleet-agent-probe')).length;

  it('tells nothing while the proc answers, and keeps one connection of its own', async () => {
    const { probe: p, told } = probe();
    try {
      await sleep(1000);
      expect(told).to.deep.equal([]);
      expect(p.snapshot().get(procId)).to.deep.equal({ silentMs: 0, busy: false });
      expect(await probeClients()).to.equal(1);
    } finally {
      p.stop();
    }
  });

  it('a SIGSTOPped redis-server is told silent at once, with a growing silence, and answering (0) after SIGCONT', async () => {
    const { probe: p, told } = probe();
    try {
      await sleep(500);
      const stoppedAt = Date.now();
      process.kill(redis.pid, 'SIGSTOP');
      const first = await until(() => told[0], 3000, 'the first silent report');
      // The first missed PING goes out within 200 ms of the stop; it is told within a check
      // (50 ms) of reaching 200 ms. Generous bounds for a loaded machine.
      expect(first.health.silentMs).to.be.within(200, 600);
      expect(first.at - stoppedAt).to.be.below(1500);
      await sleep(1000);
      const silent = told.map((t) => t.health.silentMs);
      expect(silent.length, 'told again every 200 ms or so while silent').to.be.at.least(3);
      expect(silent.at(-1), 'the silence grows').to.be.above(silent[0] + 500);
      expect(p.snapshot().get(procId)?.silentMs).to.be.at.least(1000);
      const count = told.length;
      process.kill(redis.pid, 'SIGCONT');
      const back = await until(() => told.slice(count).find((t) => t.health.silentMs === 0), 3000, 'the answering report');
      expect(back.health).to.deep.equal({ silentMs: 0, busy: false });
      await sleep(500);
      // A silent report may still go out between the SIGCONT and the PONG; after the answering
      // report, none may.
      expect(told.slice(told.indexOf(back) + 1).filter((t) => t.health.silentMs > 0), 'nothing silent after it answered').to.deep.equal([]);
      expect(p.snapshot().get(procId)).to.deep.equal({ silentMs: 0, busy: false });
    } finally {
      process.kill(redis.pid, 'SIGCONT');
      p.stop();
    }
  });

  it('a busy Lua script is told busy, and answering once it is killed', async () => {
    await admin.call('CONFIG', 'SET', 'lua-time-limit', '100');
    const tenant = new Redis({ port: target.port, password: 'tenant-pw', maxRetriesPerRequest: 0 });
    tenant.on('error', () => undefined);
    const { probe: p, told } = probe();
    try {
      await admin.ping();
      await sleep(300);
      const script = tenant.eval('while true do end', 0).catch((err: Error) => err.message);
      const busy = await until(() => told.find((t) => t.health.busy), 3000, 'a busy report');
      expect(busy.health.busy).to.equal(true);
      expect(p.snapshot().get(procId)?.busy).to.equal(true);
      // Over a link opened before the script: a new one's handshake would get -BUSY.
      await admin.call('SCRIPT', 'KILL');
      expect(await script).to.match(/killed/i);
      await until(() => told.find((t) => t.at >= busy.at && !t.health.busy && t.health.silentMs === 0), 3000, 'the answering report');
      expect(p.snapshot().get(procId)).to.deep.equal({ silentMs: 0, busy: false });
    } finally {
      await admin.call('SCRIPT', 'KILL').catch(() => undefined);
      tenant.disconnect();
      p.stop();
    }
  });

  it('closes the connection of a proc that is no longer a target, and all of them on stop', async () => {
    let targets = [target];
    const { probe: p } = probe(() => targets);
    try {
      await until(() => p.snapshot().size === 1, 2000, 'the proc to be probed');
      await sleep(300);
      expect(await probeClients()).to.equal(1);
      targets = [];
      await sleep(300);
      expect(p.snapshot().size).to.equal(0);
      expect(await probeClients()).to.equal(0);
      targets = [target];
      await sleep(300);
      expect(await probeClients()).to.equal(1);
    } finally {
      p.stop();
    }
    await sleep(200);
    expect(await probeClients()).to.equal(0);
  });
});
