import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { startEtcdServer, type EtcdServer } from '../../src/devtools/etcd-server.js';
import { connectEtcd, timeEtcdRequests } from '../../src/store/etcd.js';
import { FleetStore } from '../../src/store/fleet-store.js';
import { readTree, type TreeKV, type TreePaging } from '../../src/store/tree-read.js';
import { AgentStore } from '../../src/store/agent-store.js';
import { createLogger } from '../../src/logger.js';
import { InstanceType, ProcType } from '../../src/domain/model.js';

/** Pages of exactly `keys` keys. */
const fixed = (keys: number, windowKeys = 1000): TreePaging => ({ firstKeys: keys, maxKeys: keys, pageBytes: 1 << 20, windowKeys });

/** Every key readTree hands over, collected, with the page sizes seen and how often it began. */
async function collect(client: Etcd3, prefix: string, paging: TreePaging, via: 'grpc' | 'etcd3' = 'grpc'): Promise<{ kvs: TreeKV[]; revision: string; keys: number; sizes: number[]; begins: number; via: string; windows: number; bounds: string[] }> {
  const out = { kvs: [] as TreeKV[], sizes: [] as number[], begins: 0 };
  const res = await readTree(client, prefix, { begin: () => { out.begins++; out.kvs = []; }, page: (kvs) => { out.sizes.push(kvs.length); out.kvs.push(...kvs); } }, paging, via);
  return { ...out, ...res };
}

describe('FleetStore (real etcd)', function () {
  this.timeout(30_000);
  let dir: string;
  let etcd: EtcdServer;
  let client: Etcd3;
  let store: FleetStore;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'redfleet-store-'));
    etcd = await startEtcdServer(join(dir, 'etcd'));
    client = connectEtcd(etcd.url);
    store = new FleetStore(client, '/MrRedis');
    await store.start();
  });

  after(async () => {
    await store?.stop();
    client?.close();
    await etcd?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const spec = { name: 'c1', type: InstanceType.MasterReplica, capacity: 64, expSlaves: 2, dValue: 1, placement: 'spread' as const, passwordHash: 'ab' };

  it('reads a tree in pages of one revision, every key once, in order, nothing beyond the prefix', async () => {
    const keys = Array.from({ length: 25 }, (_, i) => `/PagedTree/k${String(i).padStart(2, '0')}`);
    for (const k of keys) await client.put(k).value(k.toUpperCase());
    await client.put('/PagedTreeNot').value('outside');
    await client.put('/PagedTreX').value('outside');
    const paged = await collect(client, '/PagedTree/', fixed(7));
    expect(paged.kvs.map((kv) => kv.key.toString())).to.deep.equal(keys);
    expect(paged.sizes).to.deep.equal([7, 7, 7, 4], 'handed over page by page');
    expect(paged).to.include({ keys: 25, pages: 4, begins: 1 });
    expect(paged.kvs.every((kv) => kv.value.toString() === kv.key.toString().toUpperCase())).to.equal(true);
    expect(paged.via, 'the lean gRPC reader, not the etcd3 client').to.equal(etcd.url);
    // The etcd3 client's read (the fallback) hands over the same keys, values and pages.
    const fallback = await collect(client, '/PagedTree/', fixed(7), 'etcd3');
    expect(fallback.via).to.equal('etcd3');
    expect(fallback.kvs).to.deep.equal(paged.kvs);
    expect(fallback.sizes).to.deep.equal(paged.sizes);
    expect(fallback.revision).to.equal(paged.revision);
    // The snapshot's revision is the one the cache then watches from: a later write is newer.
    await client.put('/PagedTree/k99').value('later');
    const again = await collect(client, '/PagedTree/', fixed(7));
    expect(Number(again.revision)).to.be.greaterThan(Number(paged.revision));
    expect(again.kvs).to.have.length(26);
    await client.delete().prefix('/PagedTre');
  });

  it('reads windows side by side when given bounds: the same keys at one revision, and notes the next read\'s bounds', async () => {
    const keys = Array.from({ length: 40 }, (_, i) => `/Windowed/k${String(i).padStart(2, '0')}`);
    for (const k of keys) await client.put(k).value(k.toUpperCase());
    const whole = await collect(client, '/Windowed/', fixed(7, 10));
    expect(whole.bounds, 'every 10th key read').to.deep.equal(['/Windowed/k09', '/Windowed/k19', '/Windowed/k29', '/Windowed/k39']);
    expect(whole.windows).to.equal(1);
    for (const via of ['grpc', 'etcd3'] as const) {
      // Bounds from an earlier read, with junk a stale or hand-edited hint may hold: out of order,
      // outside the range, repeated. They only cut the range; every key is read once.
      const bounds = ['/Windowed/k15', '/Windowed/k05', '/Windowed/k15', '/Elsewhere', '/Windowed/k30', '/Windowed0'];
      const out = { kvs: [] as TreeKV[], begins: 0 };
      const res = await readTree(client, '/Windowed/', { begin: () => { out.begins++; out.kvs = []; }, page: (kvs) => out.kvs.push(...kvs) }, fixed(4, 10), via, bounds);
      expect(res.windows, via).to.equal(3);
      expect(out.kvs.map((kv) => kv.key).sort(), via).to.deep.equal(keys);
      expect(out.kvs.every((kv) => kv.value === kv.key.toUpperCase())).to.equal(true);
      expect(res).to.include({ keys: 40, revision: whole.revision });
      expect(res.bounds, 'every 10th key of each window, in window order').to.deep.equal(['/Windowed/k09', '/Windowed/k24', '/Windowed/k39']);
    }
    await client.delete().prefix('/Windowed/');
  });

  it('sizes the pages after the first by the bytes per key read so far', async () => {
    // 10-byte keys, 106-byte values, 24 bytes of overhead a key: 1,400 bytes hold 10 keys.
    for (let i = 0; i < 25; i++) await client.put(`/Sized/k${String(i).padStart(2, '0')}`).value('x'.repeat(106));
    const read = await collect(client, '/Sized/', { firstKeys: 2, maxKeys: 100, pageBytes: 1400, windowKeys: 1000 });
    expect(read.sizes).to.deep.equal([2, 10, 10, 3]);
    expect(read.kvs).to.have.length(25);
    await client.delete().prefix('/Sized/');
  });

  it('reads every page at the first page\'s revision: a write made while it reads is not in it', async () => {
    for (let i = 0; i < 30; i++) await client.put(`/PinnedTree/k${String(i).padStart(2, '0')}`).value('v');
    const writes: Promise<unknown>[] = [];
    const pages: string[][] = [];
    const res = await readTree(client, '/PinnedTree/', {
      begin: () => undefined,
      // The next page is already asked for when a page is handed over; later pages see nothing newer.
      page: (kvs) => {
        pages.push(kvs.map((kv) => kv.key.toString()));
        if (pages.length === 1) writes.push(client.put('/PinnedTree/k29x').value('late').exec(), client.delete().key('/PinnedTree/k28').exec());
      },
    }, fixed(2));
    await Promise.all(writes);
    expect(pages).to.have.length(15);
    expect(pages.flat()).to.include('/PinnedTree/k28').and.not.include('/PinnedTree/k29x');
    expect(res.keys).to.equal(30);
    await client.delete().prefix('/PinnedTree/');
  });

  it('writes an agent\'s Stats batch in one revision, and skips only a proc deleted meanwhile', async () => {
    const agent = new AgentStore(etcd.url, '/StatsBatch', createLogger('test'));
    agent.open(client);
    const stats = (n: number) => ({ usedMemory: n, connectedClients: 1 }) as never;
    const ids = Array.from({ length: 60 }, (_, i) => `b1::p${i}`);
    for (const id of ids) await client.put(`/StatsBatch/Instances/b1/Procs/${id}/Instance`).value('b1');
    const before = (await client.get('/StatsBatch/none').exec()).header.revision;
    const written = await agent.writeStatsBatch(ids.map((procId, i) => ({ instance: 'b1', procId, stats: stats(i) })));
    const after = (await client.get('/StatsBatch/none').exec()).header.revision;
    expect(written.size).to.equal(60);
    expect(Number(after) - Number(before), 'one revision per 50 procs').to.equal(2);
    expect(await client.get(`/StatsBatch/Instances/b1/Procs/${ids[59]}/MemUsed`).string()).to.equal('59');
    // A proc deleted between its INFO and the write: the batch falls back to one write per proc.
    await client.delete().prefix(`/StatsBatch/Instances/b1/Procs/${ids[3]}/`);
    const again = await agent.writeStatsBatch(ids.slice(0, 10).map((procId) => ({ instance: 'b1', procId, stats: stats(7) })));
    expect([...again].sort()).to.deep.equal(ids.slice(0, 10).filter((id) => id !== ids[3]).sort());
    expect(await client.get(`/StatsBatch/Instances/b1/Procs/${ids[3]}/Stats`).string()).to.equal(null, 'no Stats resurrects a deleted proc');
    await client.delete().prefix('/StatsBatch/');
  });

  it('creates an instance once, and reads its own write at once from memory', async () => {
    expect(await store.createInstance(spec)).to.equal(true);
    expect(store.instance('c1')).to.include({ status: 'CREATING', capacity: 64, expSlaves: 2, type: 'MS' });
    expect(await store.createInstance(spec)).to.equal(false, 'a live name is refused');
  });

  it('never lets a status derived from an older view overwrite a newer one', async () => {
    expect(await store.setInstance('c1', { Status: 'RUNNING' }, 'CREATING')).to.equal(true);
    expect(await store.markDeleting('c1')).to.equal('RUNNING');
    expect(await store.setInstance('c1', { Status: 'RUNNING', Reason: '' }, 'RUNNING')).to.equal(false);
    expect(store.instance('c1')?.status).to.equal('DELETING');
    expect((await client.get('/MrRedis/Instances/c1/Status').string())).to.equal('DELETING');
  });

  it('reuses the name of a DELETED instance, clearing its old procs', async () => {
    await store.addProcs('c1', [{ id: 'c1::p1', instance: 'c1', nodename: 'n', capacity: 64, ip: '127.0.0.1', port: 7000, type: ProcType.Master, slaveOf: '', agentId: 'a1' }]);
    expect(await store.setInstance('c1', { Status: 'DELETED' }, 'DELETING')).to.equal(true);
    expect(await store.createInstance({ ...spec, capacity: 32 })).to.equal(true);
    const inst = store.instance('c1')!;
    expect(inst).to.include({ status: 'CREATING', capacity: 32 });
    expect(inst.procs).to.deep.equal([]);
  });

  it('creates a fresh name in one etcd request, and clears a tree that holds only strays', async () => {
    const requests: string[] = [];
    expect(timeEtcdRequests(store.etcd, (op) => requests.push(op))).to.equal(true);
    expect(await store.createInstance({ ...spec, name: 'c' })).to.equal(true);
    expect(requests, 'no read before the write').to.deep.equal(['txn']);
    expect(store.instance('c')).to.include({ status: 'CREATING' });
    // 'c' is a prefix of 'c1', 'c2': their trees are not under c/ and do not count.
    await client.put('/MrRedis/Instances/c2/Procs/c2::old/Stats').value('late');
    expect(await store.createInstance({ ...spec, name: 'c2' })).to.equal(true);
    expect(await client.get('/MrRedis/Instances/c2/Procs/c2::old/Stats').string()).to.equal(null, 'a stray of an earlier tree is deleted');
    expect(store.instance('c2')?.procs).to.deep.equal([]);
    for (const name of ['c', 'c2']) await client.delete().prefix(`/MrRedis/Instances/${name}/`);
  });

  it('indexes instances by the agents their procs are on, through placement, a move by etcdctl and removal', async () => {
    const proc = (id: string, agentId: string) => ({ id, instance: 'c1', nodename: 'n', capacity: 32, ip: '127.0.0.1', port: 7001, type: ProcType.Replica, slaveOf: '', agentId });
    await store.addProcs('c1', [proc('c1::q1', 'agentX'), proc('c1::q2', 'agentX'), proc('c1::q3', 'agentY')]);
    const on = (agent: string) => store.instancesOnAgent(agent).map((i) => i.name);
    expect(on('agentX')).to.deep.equal(['c1']);
    expect(on('agentY')).to.deep.equal(['c1']);
    const moved = await client.put('/MrRedis/Instances/c1/Procs/c1::q3/SID').value('agentZ');
    await store.caughtUp(moved.header.revision);
    expect(on('agentY')).to.deep.equal([]);
    expect(on('agentZ')).to.deep.equal(['c1']);
    await store.removeProcs('c1', ['c1::q1']);
    expect(on('agentX'), 'one proc of c1 is still on agentX').to.deep.equal(['c1']);
    await store.removeProcs('c1', ['c1::q2', 'c1::q3']);
    expect(on('agentX')).to.deep.equal([]);
    expect(on('agentZ')).to.deep.equal([]);
  });

  it('keeps the cache current from the watch for writes made by others', async () => {
    await client.put('/MrRedis/Instances/c1/Reason').value('written by etcdctl');
    const res = await client.put('/MrRedis/Instances/c1/DValue').value('2');
    await store.caughtUp(res.header.revision);
    expect(store.instance('c1')).to.include({ reason: 'written by etcdctl', dValue: 2 });
  });
});
