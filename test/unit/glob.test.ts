import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { Glob, globMatch } from '../../src/sentinel/glob.js';
import { freePort } from '../../src/net.js';
import { GLOB_CASES } from './glob-cases.js';


describe('Redis glob matching (PSUBSCRIBE patterns)', () => {
  for (const [pattern, subject, expected] of GLOB_CASES) {
    it(`${JSON.stringify(pattern)} ${expected ? 'matches' : 'does not match'} ${JSON.stringify(subject)}`, () => {
      expect(globMatch(pattern, subject)).to.equal(expected);
    });
  }

  it('matches 100-star patterns against 1,000 channels in under 1 ms each', () => {
    const patterns = [
      `${'*'.repeat(100)}Z`,
      `${'*?'.repeat(100)}Z`,
      `${'*a'.repeat(100)}Z`,
      `${'*[a-z]'.repeat(40)}Z`,
    ].map((p) => new Glob(p));
    const channels = Array.from({ length: 1000 }, (_, i) => `+switch-master-${'a'.repeat(i % 200)}-${i}`);
    // One untimed pass lets the JIT compile the matcher first.
    for (const channel of channels) for (const glob of patterns) glob.matches(channel);
    // A match's time is the fastest of three tries when the first is slow: on a shared machine a
    // single reading can include a preemption or a GC pause, but a slow matcher is slow every time.
    const timeOf = (glob: Glob, bytes: Buffer): number => {
      let best = Infinity;
      for (let attempt = 0; attempt < 3 && best >= 1; attempt++) {
        const t0 = process.hrtime.bigint();
        glob.matches(bytes);
        best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e6);
      }
      return best;
    };
    let worst = 0;
    let matched = 0;
    for (const channel of channels) {
      const bytes = Buffer.from(channel);
      for (const glob of patterns) {
        if (glob.matches(bytes)) matched++;
        worst = Math.max(worst, timeOf(glob, bytes));
      }
    }
    expect(matched).to.equal(0);
    expect(worst, `slowest match ${worst.toFixed(3)} ms`).to.be.below(1);
  });

  describe('against a real redis-server', () => {
    let server: ChildProcess | undefined;
    let dir = '';
    let port = 0;

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'glob-redis-'));
      port = await freePort();
      server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
    });

    after(async () => {
      if (server && server.exitCode === null) {
        const exited = new Promise((r) => server?.once('exit', r));
        server.kill('SIGKILL');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    });

    it('agrees with PSUBSCRIBE / PUBLISH on every row of the table', async () => {
      const sub = new Redis({ port, retryStrategy: (n) => (n < 50 ? 50 : null) });
      const pub = new Redis({ port, retryStrategy: (n) => (n < 50 ? 50 : null) });
      try {
        const disagree: string[] = [];
        for (const [pattern, subject] of GLOB_CASES) {
          await sub.psubscribe(pattern);
          const receivers = await pub.publish(subject, 'x');
          await sub.punsubscribe(pattern);
          if ((receivers === 1) !== globMatch(pattern, subject)) disagree.push(`${JSON.stringify(pattern)} vs ${JSON.stringify(subject)}: redis says ${receivers === 1}`);
        }
        expect(disagree).to.deep.equal([]);
      } finally {
        sub.disconnect();
        pub.disconnect();
      }
    });
  });
});
