import { expect } from 'chai';
import { createServer, type Server } from 'node:http';
import { fetchChallenge } from '../../src/executor/session.js';

/** A scheduler stand-in that answers the challenge after `delayMs` (never, when undefined). */
async function slowScheduler(delayMs?: number): Promise<{ url: string; close: () => Promise<void> }> {
  const server: Server = createServer((req, res) => {
    req.resume();
    if (delayMs === undefined) return;
    setTimeout(() => res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ nonce: 'n'.repeat(32) })), delayMs);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** Issue 11: a busy scheduler's challenge timed out after 2 s, and its agents stayed away. */
describe('agent challenge: a scheduler that accepted the connection gets longer to answer', function () {
  this.timeout(20_000);

  it('waits past the connect timeout for a scheduler that is there but slow', async () => {
    const s = await slowScheduler(1500);
    try {
      expect(await fetchChallenge(s.url, { connectMs: 500, answerMs: 4000 })).to.equal('n'.repeat(32));
    } finally {
      await s.close();
    }
  });

  it('gives up after the answer timeout on one that never answers', async () => {
    const s = await slowScheduler();
    const started = Date.now();
    try {
      const err = await fetchChallenge(s.url, { connectMs: 500, answerMs: 1200 }).then(() => undefined, (e: Error) => e);
      expect(err?.message).to.match(/no challenge from the scheduler in time/);
      expect(Date.now() - started).to.be.within(1100, 3000);
    } finally {
      await s.close();
    }
  });
});
