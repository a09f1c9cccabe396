import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { childGone, stopChild } from '../../src/devtools/child-process.js';

/** A node child that ignores SIGTERM and says so once its handler is in place. */
async function stubborn(): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['-e', "process.on('SIGTERM', () => {}); console.log('ready'); setInterval(() => {}, 1000);"], { stdio: ['ignore', 'pipe', 'ignore'] });
  await once(child.stdout!, 'data');
  return child;
}

describe('stopChild (src/devtools/child-process.ts)', () => {
  it('resolves once a child that obeys the signal has exited', async () => {
    const child = spawn('sleep', ['30']);
    await stopChild(child, 'SIGTERM', 5000);
    expect(child.signalCode).to.equal('SIGTERM');
    expect(childGone(child)).to.equal(true);
  });

  it('sends SIGKILL after the grace period to a child that ignores the signal', async () => {
    const child = await stubborn();
    const t0 = performance.now();
    await stopChild(child, 'SIGTERM', 200);
    expect(child.signalCode).to.equal('SIGKILL');
    expect(performance.now() - t0).to.be.at.least(150);
  });

  it('resolves at once for a child that has exited or never started', async () => {
    const done = spawn('true');
    await once(done, 'exit');
    await stopChild(done, 'SIGTERM', 60_000);
    const never = spawn('/nonexistent/redfleet-no-such-binary');
    never.on('error', () => undefined);
    expect(childGone(never)).to.equal(true);
    await stopChild(never, 'SIGTERM', 60_000);
  });
});
