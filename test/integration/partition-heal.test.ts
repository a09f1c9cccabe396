import { expect } from 'chai';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';
import { Redis } from 'ioredis';
import { startFleetOnTestHosts } from '../harness/netns-fleet.js';
import { LocalFleet } from '../harness/local-fleet.js';
import { TestNetwork } from '../harness/netns.js';
import { roles } from '../harness/roles.js';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Issue 7 item 20: agents on test hosts in network namespaces, a WAIT 1 writer, and the two
 * partitions that were seen to go wrong:
 * 1. the master's host cut off entirely, for longer than the agent timeout;
 * 2. the master's host cut off from the scheduler and etcd only, while its replicas and a client
 *    beside them still reach it.
 * After each heal: no acknowledged write lost, exactly one master within 2 s, the instance
 * RUNNING within 5 s; case 1 declares the agent lost on time, case 2 does not fail over.
 */
const ADMIN = 'partition-heal-admin-token-0123456';
const auth = { Authorization: `Bearer ${ADMIN}` };
const AGENT_TIMEOUT_S = 4;
const ROOT = resolve(fileURLToPath(new URL('../../..', import.meta.url)));

interface ProcView { id: string; ip: string; port: number; state: string; agent: string }

/**
 * A writer that runs in a test host's namespace (so it reaches the master the way a client beside
 * the replicas would): SET w:<n>, then WAIT 1 100; prints each acknowledged n. Bounded in time.
 */
function writerIn(ns: string, target: { ip: string; port: number }, password: string, ms: number): { child: ChildProcess; acked: Set<number>; done: Promise<void> } {
  const script = `
    const { Redis } = require('ioredis');
    const r = new Redis({ host: ${JSON.stringify(target.ip)}, port: ${target.port}, password: ${JSON.stringify(password)}, maxRetriesPerRequest: 0, commandTimeout: 500, retryStrategy: () => 50 });
    r.on('error', () => {});
    const until = Date.now() + ${ms};
    (async () => {
      for (let n = 0; Date.now() < until; n++) {
        try {
          await r.set('w:' + n, String(n));
          if ((await r.wait(1, 100)) >= 1) process.stdout.write('ACK ' + n + '\\n');
        } catch { await sleep(20); }
      }
      r.disconnect();
    })();`;
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'ignore'] });
  const acked = new Set<number>();
  let rest = '';
  child.stdout!.on('data', (d: Buffer) => {
    const lines = (rest + d.toString()).split('\n');
    rest = lines.pop() ?? '';
    for (const l of lines) if (l.startsWith('ACK ')) acked.add(Number(l.slice(4)));
  });
  const done = new Promise<void>((r) => child.once('exit', () => r()));
  return { child, acked, done };
}

/** The same writer in this process, through the Sentinel-compatible endpoint, as clients run. */
function sentinelWriter(sentinelPort: number, name: string, password: string): { acked: Set<number>; stop: () => Promise<void> } {
  const r = new Redis({ sentinels: [{ host: '127.0.0.1', port: sentinelPort }], name, password, maxRetriesPerRequest: 0, commandTimeout: 500, retryStrategy: () => 50, sentinelRetryStrategy: () => 50 });
  r.on('error', () => undefined);
  const acked = new Set<number>();
  let running = true;
  const loop = (async () => {
    for (let n = 0; running; n++) {
      try {
        await r.set(`w:${n}`, String(n));
        if ((await r.wait(1, 100)) >= 1) acked.add(n);
      } catch {
        await sleep(20);
      }
    }
  })();
  return { acked, stop: async () => { running = false; await loop; r.disconnect(); } };
}

/** Reads every acknowledged key back from the master; returns the ones missing. */
async function missing(master: { ip: string; port: number }, password: string, acked: Set<number>): Promise<number[]> {
  const r = new Redis({ host: master.ip, port: master.port, password, lazyConnect: true });
  await r.connect();
  try {
    const keys = [...acked];
    const values = keys.length ? await r.mget(...keys.map((n) => `w:${n}`)) : [];
    return keys.filter((n, i) => values[i] !== String(n));
  } finally {
    r.disconnect();
  }
}

describe('network partition and heal (issue 7 item 20)', function () {
  this.timeout(120_000);
  let net: TestNetwork;
  let fleet: LocalFleet;

  before(async () => {
    ({ net, fleet } = await startFleetOnTestHosts(5, ADMIN, ['--agent-timeout', String(AGENT_TIMEOUT_S)]));
  });

  after(async () => {
    await fleet?.stop();
    net?.destroy();
  });

  const instance = async (name: string) => (await fleet.api('GET', `/api/instances/${name}`, undefined, auth)).json;

  /** After a heal: exactly one master among every proc the instance ever had, within 2 s. */
  async function oneMasterWithin(procs: ProcView[], password: string, ms: number): Promise<number> {
    const t0 = Date.now();
    await fleet.waitFor(async () => (await roles(procs, password)).filter((x) => x === 'master').length === 1, ms, 'exactly one master');
    return Date.now() - t0;
  }

  it('case 1: the master\'s host cut off entirely, longer than the agent timeout: lost on time, one master and RUNNING soon after the heal, no acknowledged write lost', async () => {
    const res = await fleet.api('POST', '/api/instances', { name: 'cut1', capacityMb: 16, replicas: 2 }, auth);
    expect(res.status).to.equal(202);
    const password = res.json.password as string;
    const before = await fleet.waitForStatus('cut1', 'RUNNING');
    const old = before.master as ProcView;
    const writer = sentinelWriter(fleet.sentinelPort, 'cut1', password);
    await fleet.waitFor(() => writer.acked.size > 20, 10_000, 'acknowledged writes before the cut');

    const cutAt = Date.now();
    net.partition(old.agent);
    let healAt = 0;
    try {
      await sleep((AGENT_TIMEOUT_S + 4) * 1000);
    } finally {
      net.heal(old.agent);
      healAt = Date.now();
    }
    const lostLine = fleet.log('scheduler').split('\n').find((l) => l.includes('"agent lost') && l.includes(`"agent":"${old.agent}"`));
    expect(lostLine, 'the cut-off agent was declared lost').to.be.a('string');
    const lostAfterMs = Date.parse(JSON.parse(lostLine!).timestamp as string) - cutAt;
    console.log(`      agent lost ${lostAfterMs} ms after the cut (timeout ${AGENT_TIMEOUT_S * 1000} ms)`);
    expect(lostAfterMs, 'agent lost within the agent timeout + 1 s of the cut').to.be.below(AGENT_TIMEOUT_S * 1000 + 1000);

    const everyProc = (await instance('cut1')).procs as ProcView[];
    const all = [...everyProc, ...(everyProc.some((p) => p.id === old.id) ? [] : [old])];
    const oneMs = await oneMasterWithin(all, password, 2000);
    const running = await fleet.waitFor(async () => {
      const i = await instance('cut1');
      return i.status === 'RUNNING' && i.master && i.master.id !== old.id ? i : undefined;
    }, 5000, 'the instance RUNNING within 5 s of the heal');
    console.log(`      after the heal: one master in ${oneMs} ms, RUNNING in ${Date.now() - healAt} ms`);
    expect(running.epoch).to.equal(before.epoch + 1);

    await sleep(500);
    await writer.stop();
    expect(writer.acked.size).to.be.greaterThan(20);
    expect(await missing(running.master, password, writer.acked), 'acknowledged writes missing').to.deep.equal([]);
    expect(await roles([old], password)).to.deep.equal(['unreachable'], 'the old master is gone');
  });

  it('case 2: the master\'s host cut off from the scheduler and etcd only: no failover while its replicas hear it, one master, RUNNING, no acknowledged write lost', async () => {
    const res = await fleet.api('POST', '/api/instances', { name: 'cut2', capacityMb: 16, replicas: 2 }, auth);
    expect(res.status).to.equal(202);
    const password = res.json.password as string;
    const before = await fleet.waitForStatus('cut2', 'RUNNING');
    const old = before.master as ProcView;
    // The client runs beside a replica, on a host the cut does not touch.
    const beside = (before.slaves as ProcView[])[0].agent;
    const writer = writerIn(net.namespaceOf(beside), old, password, 14_000);
    await fleet.waitFor(() => writer.acked.size > 20, 10_000, 'acknowledged writes before the cut');

    const ns = net.namespaceOf(old.agent);
    const route = (verb: string) => execFileSync('ip', ['-n', ns, 'route', verb, 'blackhole', `${net.hostIp}/32`], { stdio: 'ignore' });
    route('add');
    const failovers: string[] = [];
    let healAt = 0;
    try {
      const until = Date.now() + 8000;
      while (Date.now() < until) {
        const i = await instance('cut2');
        if (i.epoch !== before.epoch || (i.master && i.master.id !== old.id)) failovers.push(`epoch ${i.epoch}, master ${i.master?.id}`);
        await sleep(250);
      }
    } finally {
      route('del');
      healAt = Date.now();
    }
    expect(failovers, 'no failover while the replicas hear the master').to.deep.equal([]);
    const procs = (await instance('cut2')).procs as ProcView[];
    const oneMs = await oneMasterWithin(procs, password, 2000);
    const running = await fleet.waitFor(async () => {
      const i = await instance('cut2');
      return i.status === 'RUNNING' ? i : undefined;
    }, 5000, 'the instance RUNNING within 5 s of the heal');
    console.log(`      after the heal: one master in ${oneMs} ms, RUNNING in ${Date.now() - healAt} ms; ${writer.acked.size} writes acknowledged`);
    expect(running.master.id).to.equal(old.id, 'the same master serves on');
    expect(running.epoch).to.equal(before.epoch);

    await writer.done;
    expect(writer.acked.size).to.be.greaterThan(20);
    expect(await missing(running.master, password, writer.acked), 'acknowledged writes missing').to.deep.equal([]);
  });
});
