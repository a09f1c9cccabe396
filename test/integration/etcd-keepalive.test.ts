import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Etcd3, Watcher } from 'etcd3';
import { startEtcdServer, type EtcdServer } from '../../src/devtools/etcd-server.js';
import { connectEtcd } from '../../src/store/etcd.js';
import { TcpCutter } from '../harness/tcp-cutter.js';
import { setTimeout as sleep } from 'node:timers/promises';

async function waitUntil(probe: () => unknown, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

describe('etcd client keepalive: a silent link is noticed, and a watch resumes at the heal', function () {
  let dir = '';
  let etcd: EtcdServer | undefined;
  let cutter: TcpCutter | undefined;
  let cutOff: Etcd3 | undefined;
  let direct: Etcd3 | undefined;
  let watcher: Watcher | undefined;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'redfleet-keepalive-'));
    etcd = await startEtcdServer(join(dir, 'etcd'));
  });

  after(async () => {
    cutter?.heal();
    await watcher?.cancel().catch(() => undefined);
    cutOff?.close();
    direct?.close();
    await cutter?.stop();
    await etcd?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('sees a SHUTDOWN written during an 8 s cut within 1 s of the heal, having noticed the cut within 4 s', async () => {
    cutter = await TcpCutter.start(Number(new URL(etcd!.url).port));
    cutOff = connectEtcd(`http://127.0.0.1:${cutter.port}`);
    direct = connectEtcd(etcd!.url);
    const key = '/MrRedis/Instances/keepalive/Procs/p/Msg';
    const seen: { value: string; at: number }[] = [];
    let disconnectedAt = 0;
    watcher = await cutOff.watch().key(key).create();
    watcher.on('put', (kv) => seen.push({ value: kv.value.toString(), at: Date.now() }));
    watcher.on('disconnected', () => { disconnectedAt ||= Date.now(); });

    await direct.put(key).value('MASTER');
    await waitUntil(() => seen.some((s) => s.value === 'MASTER'), 3000, 'the watch to work before the cut');

    const cutAt = Date.now();
    cutter.cut();
    await waitUntil(() => disconnectedAt > 0, 8000, 'the dead link to be noticed');
    expect(disconnectedAt - cutAt, 'ms from the cut until the watch knew').to.be.below(4000);
    await direct.put(key).value('SHUTDOWN');
    await sleep(Math.max(0, cutAt + 8000 - Date.now()));

    const healAt = Date.now();
    cutter.heal();
    await waitUntil(() => seen.some((s) => s.value === 'SHUTDOWN'), 5000, 'the SHUTDOWN after the heal');
    const shutdown = seen.find((s) => s.value === 'SHUTDOWN')!;
    expect(shutdown.at - healAt, 'ms from the heal until the SHUTDOWN arrived').to.be.below(1000);
  });
});
