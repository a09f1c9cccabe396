import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Etcd3 } from 'etcd3';
import { startEtcdServer, type EtcdServer } from '../../src/devtools/etcd-server.js';
import { connectEtcd } from '../../src/store/etcd.js';
import { FleetStore } from '../../src/store/fleet-store.js';
import { OperationStore } from '../../src/store/operation-store.js';
import { InstanceType } from '../../src/domain/model.js';
import { OperationState, type Operation } from '../../src/domain/operation.js';
import { Operations } from '../../src/scheduler/operations.js';
import { createLogger } from '../../src/logger.js';

describe('operation records (real etcd)', function () {
  this.timeout(30_000);
  let dir: string;
  let etcd: EtcdServer;
  let client: Etcd3;
  let store: FleetStore;
  const log = createLogger('test');
  log.silent = true;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'redfleet-ops-'));
    etcd = await startEtcdServer(join(dir, 'etcd'));
    client = connectEtcd(etcd.url);
    store = new FleetStore(client, '/MrRedis');
    await store.start();
    await store.createInstance({ name: 'o1', type: InstanceType.MasterReplica, capacity: 64, expSlaves: 1, dValue: 1, placement: 'spread', passwordHash: 'ab' });
  });

  after(async () => {
    await store?.stop();
    client?.close();
    await etcd?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const op = (id: string): Operation => ({ id, kind: 'resize', state: OperationState.Running, step: 'starting', params: { capacityMb: 128 }, data: {}, startedAt: '', updatedAt: '' });

  it('lets one operation run at a time, and keeps steps and checkpoints in etcd', async () => {
    const records = new OperationStore(store);
    const a = op('a');
    expect(await records.begin('o1', a)).to.equal(true);
    expect(await records.begin('o1', op('b'))).to.equal(false, 'a second operation while one runs');
    expect(await records.progress('o1', a, 'growing', { done: ['p1'] })).to.equal(true);
    const stored = JSON.parse((await client.get('/MrRedis/Instances/o1/Operation').string())!);
    expect(stored).to.include({ id: 'a', state: 'running', step: 'growing' });
    expect(stored.data).to.deep.equal({ done: ['p1'] });
    expect(await records.progress('o1', op('zzz'), 'not mine')).to.equal(false, 'only the recorded operation moves on');
    expect(await records.finish('o1', a, OperationState.Done)).to.equal(true);
    expect(store.instance('o1')?.operation).to.include({ id: 'a', state: 'done' });
    expect(await records.finish('o1', a, OperationState.Failed, 'late')).to.equal(false, 'an ended operation stays ended');
    expect(await records.begin('o1', op('c'))).to.equal(true, 'the next one may start once the last ended');
    expect(await records.finish('o1', op('c'), OperationState.Failed, 'why')).to.equal(true);
  });

  it('runs a handler, refuses a second start with 409, and a new term resumes from the checkpoint', async () => {
    const first = new Operations(store, log);
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    first.register({
      kind: 'scale',
      run: async (_name, _op, progress) => {
        await progress('step one', { reached: 1 });
        await gate;
        await progress('step two', { reached: 2 });
      },
    });
    const started = await first.start('o1', 'scale', { replicas: 2 });
    await sleep(200);
    let refused: unknown;
    try {
      await first.start('o1', 'scale', { replicas: 3 });
    } catch (err) {
      refused = err;
    }
    expect(refused).to.have.property('status', 409);
    // The term ends while the handler waits: its next step is refused and the record stays running.
    const stopping = first.stop();
    release();
    await stopping;
    expect(store.instance('o1')?.operation).to.include({ id: started.id, state: 'running', step: 'step one' });
    const second = new Operations(store, log);
    const seen: unknown[] = [];
    second.register({
      kind: 'scale',
      run: async (_name, resumed, progress) => {
        seen.push(resumed.data.reached);
        await progress('step two', { reached: 2 });
      },
    });
    second.resumeAll();
    for (let i = 0; i < 50 && store.instance('o1')?.operation?.state === 'running'; i++) await sleep(50);
    expect(seen).to.deep.equal([1]);
    expect(store.instance('o1')?.operation).to.include({ id: started.id, state: 'done', step: 'step two' });
    await second.stop();
  });

  it('records a handler failure with its message', async () => {
    const ops = new Operations(store, log);
    ops.register({ kind: 'resize', run: async () => { throw new Error('no room on agent9'); } });
    const started = await ops.start('o1', 'resize', {});
    for (let i = 0; i < 50 && store.instance('o1')?.operation?.state === 'running'; i++) await sleep(50);
    expect(store.instance('o1')?.operation).to.include({ id: started.id, state: 'failed', error: 'no room on agent9' });
    await ops.stop();
  });
});
