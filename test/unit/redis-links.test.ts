import { expect } from 'chai';
import { createServer, type Server, type Socket } from 'node:net';
import { RedisLinks } from '../../src/scheduler/redis-links.js';
import { ProcState, ProcType, type Proc } from '../../src/domain/model.js';
import { freePort } from '../../src/net.js';

function procAt(port: number): Proc {
  return { id: `c1::p${port}`, instance: 'c1', ip: '127.0.0.1', port, state: ProcState.Running, type: ProcType.Master } as Proc;
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
});
