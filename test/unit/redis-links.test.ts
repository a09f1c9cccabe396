import { expect } from 'chai';
import { createServer, type Server, type Socket } from 'node:net';
import { RECONNECTS_PER_SECOND, RedisLinks } from '../../src/scheduler/redis-links.js';
import { ProcState, ProcType, type Proc } from '../../src/domain/model.js';
import { freePort } from '../../src/net.js';

function procAt(port: number): Proc {
  return { id: `c1::p${port}`, instance: 'c1', ip: '127.0.0.1', port, state: ProcState.Running, type: ProcType.Master } as Proc;
}

/** A server that says +OK to every command (AUTH, then PING): enough for a link to be ready. */
async function okServer(): Promise<{ server: Server; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('data', (chunk) => s.write('+OK\r\n'.repeat(chunk.toString('latin1').match(/(^|\n)\*[0-9]+\r\n/g)?.length ?? 0)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, sockets };
}

describe('RedisLinks: the end of a link\'s first connect (real sockets on loopback)', () => {
  const links = new RedisLinks('fleet-key-for-tests');
  after(() => links.close());

  it('ends at once on a refused connect, and stays ended', async () => {
    const p = procAt(await freePort());
    expect(links.settled(p)).to.equal(false);
    const t0 = Date.now();
    await links.firstConnect(p);
    expect(Date.now() - t0, 'not waiting out a timer').to.be.below(2000);
    expect(links.settled(p)).to.equal(true);
    expect((await links.probe(p, 'PING')).reply, 'nothing answers').to.equal(undefined);
  });

  it('ends within about a second on a server that accepts and never answers', async () => {
    const sockets = new Set<Socket>();
    const server: Server = createServer((s) => { sockets.add(s); s.on('error', () => undefined); });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const p = procAt((server.address() as { port: number }).port);
      const t0 = Date.now();
      await links.firstConnect(p);
      expect(Date.now() - t0, 'bounded by the connect timeout').to.be.below(3000);
      expect(links.settled(p)).to.equal(true);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('keeps a link outside the kept and held ones until it has been idle for the linger', async () => {
    const { server, sockets } = await okServer();
    const mine = new RedisLinks('fleet-key-for-tests');
    try {
      const master = procAt((server.address() as { port: number }).port);
      const replica = { ...master, id: 'c1::replica', type: ProcType.Replica };
      expect((await mine.probe(master, 'PING')).reply).to.equal('OK');
      expect((await mine.probe(replica, 'PING')).reply, 'a link opened on demand').to.equal('OK');
      const held = { ...replica, id: 'c1::held' };
      expect((await mine.probe(held, 'PING')).reply).to.equal('OK');
      mine.hold(new Set([held.id]));
      const keep = new Set([master.id]);
      mine.retain(keep, 1000);
      expect(mine.has(replica), 'just used: it lingers').to.equal(true);
      await new Promise((r) => setTimeout(r, 600));
      expect((await mine.probe(replica, 'PING')).reply, 'used again within the linger').to.equal('OK');
      await new Promise((r) => setTimeout(r, 600));
      mine.retain(keep, 1000);
      expect(mine.has(replica), 'its last use 600 ms ago: still there').to.equal(true);
      await new Promise((r) => setTimeout(r, 600));
      mine.retain(keep, 1000);
      expect(mine.has(replica), 'idle past the linger: dropped').to.equal(false);
      expect(mine.has(master), 'a kept link stays, however idle').to.equal(true);
      expect(mine.has(held), 'a held link stays, however idle').to.equal(true);
      mine.hold(new Set());
      mine.retain(keep, 1000);
      expect([...mine.ids()], 'no longer held: dropped').to.deep.equal([master.id]);
    } finally {
      mine.close();
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('answers at once for a link whose connection closed, not after the command timeout', async () => {
    const { server, sockets } = await okServer();
    const slow = new RedisLinks('fleet-key-for-tests', 5000); // a command timeout far beyond the bound below
    try {
      const dropped: string[] = [];
      slow.dropped = (id) => dropped.push(id);
      const p = procAt((server.address() as { port: number }).port);
      const q = { ...p, id: 'c1::other' };
      await Promise.all([slow.firstConnect(p), slow.firstConnect(q)]);
      expect((await slow.probe(p, 'PING')).reply, 'the link is up').to.equal('OK');
      expect((await slow.probe(q, 'PING')).reply).to.equal('OK');
      slow.retain(new Set([p.id]), 0);
      await new Promise((r) => setTimeout(r, 100));
      expect(dropped, 'a link dropped here is not reported').to.deep.equal([]);
      await new Promise((resolve) => { server.close(resolve); for (const s of sockets) s.destroy(); });
      for (let i = 0; i < 50 && slow.get(p).status === 'ready'; i++) await new Promise((r) => setTimeout(r, 20));
      expect(dropped, 'the open link that closed is reported, once').to.deep.equal([p.id]);
      const t0 = Date.now();
      const { reply, error } = await slow.probe(p, 'PING');
      expect(reply).to.equal(undefined);
      expect(error, 'no reply, not an error reply').to.equal(undefined);
      expect(Date.now() - t0, 'not the 5 s command timeout').to.be.below(2500);
    } finally {
      slow.close();
      for (const s of sockets) s.destroy();
      server.close();
    }
  });

  it('retries a link that is down every 100 ms while few are, and within RECONNECTS_PER_SECOND together past that', async function () {
    this.timeout(20_000);
    const port = await freePort(); // nothing listens: every connect is refused
    const many = new RedisLinks('fleet-key-for-tests');
    const sockets = new Set<Socket>();
    const server: Server = createServer((s) => {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('data', (chunk) => s.write('+OK\r\n'.repeat(chunk.toString('latin1').match(/(^|\n)\*[0-9]+\r\n/g)?.length ?? 0)));
    });
    const delays: number[] = [];
    const open = (from: number, n: number): Proc[] => Array.from({ length: n }, (_, i) => {
      const p = { ...procAt(port), id: `c1::p${from + i}` };
      many.get(p).on('reconnecting', (ms: number) => delays.push(ms));
      return p;
    });
    const watch = async (ms: number): Promise<number[]> => {
      delays.length = 0;
      await new Promise((r) => setTimeout(r, ms));
      return [...delays];
    };
    try {
      const few = open(0, 3);
      await Promise.all(few.map((p) => many.firstConnect(p)));
      const fewDelays = await watch(500);
      expect(fewDelays.length, '3 links, each about every 100 ms').to.be.within(6, 20);
      expect(new Set(fewDelays)).to.deep.equal(new Set([100]));
      const lots = open(3, 1000);
      await Promise.all(lots.map((p) => many.firstConnect(p)));
      await watch(1000); // the first round, while the links went down one after another
      expect(many.downCount).to.equal(1003);
      const round = (1003 / RECONNECTS_PER_SECOND) * 1000;
      const lotsDelays = await watch(1500);
      expect(lotsDelays.length, 'links retried in the window').to.be.above(0.5 * RECONNECTS_PER_SECOND);
      expect(Math.min(...lotsDelays), 'no link retries faster than the budget allows').to.be.at.least(0.75 * round - 1);
      expect(Math.max(...lotsDelays)).to.be.at.most(1.25 * round + 1);
      expect(lotsDelays.length / 1.5, 'reconnects a second, about the budget').to.be.below(1.5 * RECONNECTS_PER_SECOND);
      expect((await many.probe(lots[0], 'PING')).reply, 'a link that is down fails at once').to.equal(undefined);
      // Links dropped, or moved to another address, while down are no longer counted as down.
      many.retain(new Set([...few, ...lots].slice(0, 600).map((p) => p.id)), 0);
      expect(many.downCount, 'the links dropped while down').to.equal(600);
      many.get({ ...lots[0], port: port + 1 });
      expect(many.downCount, 'a link moved to another address starts afresh').to.equal(599);
      many.retain(new Set([...few, ...lots].slice(0, 600).map((p) => p.id).filter((id) => id !== lots[0].id)), 0);
      // The procs come back: every link is heard again within a round or two.
      await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
      for (let i = 0; i < 100 && many.downCount > 0; i++) await new Promise((r) => setTimeout(r, 50));
      expect(many.downCount, 'every link up again').to.equal(0);
      expect((await many.probe(lots[500], 'PING')).reply).to.equal('OK');
    } finally {
      many.close();
      for (const s of sockets) s.destroy();
      server.close();
    }
  });
});
