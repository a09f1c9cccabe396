import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { CLI, LocalFleet } from '../harness/local-fleet.js';
import { freePort } from '../../src/net.js';
import { setTimeout as sleep } from 'node:timers/promises';

describe('redfleet CLI', function () {
  this.timeout(60_000);
  let fleet: LocalFleet;

  before(async () => {
    fleet = await LocalFleet.start({ agents: 3 });
  });

  after(async () => {
    await fleet?.stop();
  });

  it('create --wait shows progress, prints the password once, and ends RUNNING', async () => {
    const out = await fleet.cli(['create', 'cache1', '--capacity', '64', '--replicas', '2', '--wait']);
    expect(out.code, out.stderr).to.equal(0);
    expect(out.stdout).to.match(/instance cache1: CREATING/);
    expect(out.stdout).to.match(/procs running/);
    expect(out.stdout).to.match(/^RUNNING: 3 of 3 procs running$/m);
    const password = /password: +(\S+)/.exec(out.stdout)?.[1] ?? '';
    expect(out.stdout).to.match(/access key: +\S{43,}/);
    const inst = (await fleet.api('GET', '/api/instances/cache1')).json;
    const r = new Redis({ host: '127.0.0.1', port: inst.master.port, password, lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await r.connect();
      await r.set('k', 'v');
      expect(await r.wait(2, 2000)).to.equal(2);
    } finally {
      r.disconnect();
    }
  });

  it('status and list show the instance', async () => {
    const status = await fleet.cli(['status', 'cache1']);
    expect(status.code).to.equal(0);
    expect(status.stdout).to.match(/status: +RUNNING/);
    expect(status.stdout.match(/replica RUNNING/g)).to.have.length(2);
    const list = await fleet.cli(['list']);
    expect(list.stdout).to.match(/^cache1\tMS\tRUNNING\t64MB\t2\/2\t127\.0\.0\.1:\d+$/m);
  });

  it('delete --wait ends DELETED', async () => {
    const out = await fleet.cli(['delete', 'cache1', '--wait']);
    expect(out.code, out.stderr).to.equal(0);
    expect(out.stdout).to.match(/^DELETED/m);
  });

  it('exits non-zero with a one-line reason on bad flags and API errors', async () => {
    const cases: [string[], number, RegExp][] = [
      [['create'], 2, /exactly one NAME/],
      [['create', 'x', '--capacity', 'big'], 2, /--capacity/],
      [['create', 'x', '--bogus'], 2, /bogus/],
      [['create', 'x', '--ttl', 'soon'], 2, /--ttl/],
      [['nonsense'], 2, /unknown command/],
      [['agent', '--id', 'a'], 2, /--scheduler/],
      [['status', 'nosuch'], 1, /NOT_FOUND/],
      [['create', 'Bad!', '--capacity', '64'], 1, /INVALID_NAME/],
    ];
    // All at once: each is a node start of about a second, and they share nothing.
    const outs = await Promise.all(cases.map(([args]) => fleet.cli(args)));
    for (const [i, [args, code, pattern]] of cases.entries()) {
      const out = outs[i];
      expect(out.code, args.join(' ')).to.equal(code);
      expect(out.stderr.trim().split('\n'), args.join(' ')).to.have.length(1);
      expect(out.stderr, args.join(' ')).to.match(pattern);
    }
    const down = await fleet.cli(['list'], { REDFLEET_API: 'http://127.0.0.1:1' });
    expect(down.code).to.equal(1);
    expect(down.stderr).to.match(/cannot reach the RedFleet API/);
  });

  it('answers --help for every command', async () => {
    const cmds = ['dev', 'scheduler', 'agent', 'create', 'status', 'list', 'delete'];
    const outs = await Promise.all(cmds.map((cmd) => fleet.cli([cmd, '--help'])));
    for (const [i, cmd] of cmds.entries()) {
      const out = outs[i];
      expect(out.code, cmd).to.equal(0);
      expect(out.stdout, cmd).to.match(/redfleet/);
    }
  });
});

describe('redfleet dev (what npm start runs)', function () {
  this.timeout(60_000);

  function processesUnder(dir: string): number[] {
    const pids: number[] = [];
    for (const entry of readdirSync('/proc')) {
      if (!/^[0-9]+$/.test(entry)) continue;
      try {
        const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
        const cwd = readlinkSync(`/proc/${entry}/cwd`);
        if (cmd.includes(dir) || cwd.startsWith(dir)) pids.push(Number(entry));
      } catch {
        // gone
      }
    }
    return pids;
  }

  it('brings up etcd, a scheduler and three agents, serves a create, and stops clean on SIGINT', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'redfleet-dev-'));
    const apiPort = await freePort();
    const sentinelPort = await freePort();
    const child = spawn(process.execPath, [CLI, 'dev', '--data', dir, '--api', `127.0.0.1:${apiPort}`, '--sentinel', `127.0.0.1:${sentinelPort}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    try {
      const deadline = Date.now() + 20_000;
      while (!stdout.includes('Ctrl-C') && Date.now() < deadline) await sleep(50);
      expect(stdout).to.contain(`http://127.0.0.1:${apiPort}`);
      expect(stdout).to.contain(`127.0.0.1:${sentinelPort}`);
      expect(stdout).to.match(/CREATE\/cache1\/64\/1\/2/);
      // The API is not at the default address, so the banner's CLI example must say where it is.
      expect(stdout).to.match(new RegExp(`main\\.js create cache2 .*--api http://127\\.0\\.0\\.1:${apiPort}`));
      const api = `http://127.0.0.1:${apiPort}`;
      for (let i = 0; i < 100; i++) {
        const health = await (await fetch(`${api}/healthz`)).json() as { agents: number };
        if (health.agents === 3) break;
        await sleep(100);
      }
      const res = await fetch(`${api}/v1/CREATE/cache1/64/1/2`, { method: 'POST' });
      expect(res.status).to.equal(201);
      for (let i = 0; i < 100; i++) {
        const s = await (await fetch(`${api}/v1/STATUS/cache1`)).json() as { Status: string };
        if (s.Status === 'RUNNING') break;
        await sleep(100);
      }
      expect((await (await fetch(`${api}/v1/STATUS/cache1`)).json() as { Status: string }).Status).to.equal('RUNNING');
      const etcdctl = spawnSync('etcdctl', ['--endpoints', /etcd (http:\/\/\S+)/.exec(stdout)![1].replace(/,$/, ''), 'get', '--prefix', '--keys-only', '/MrRedis/Instances/cache1/Type'], { encoding: 'utf8' });
      expect(etcdctl.stdout.trim()).to.equal('/MrRedis/Instances/cache1/Type');
      expect(processesUnder(dir).length).to.be.greaterThan(5, 'etcd, scheduler, 3 agents, redis-servers');

      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      child.kill('SIGINT');
      expect(await exited).to.equal(0);
      expect(processesUnder(dir), 'no process of the dev fleet is left').to.deep.equal([]);
    } finally {
      child.kill('SIGKILL');
      for (const pid of processesUnder(dir)) {
        try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      }
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('stops the etcd it started when the scheduler cannot start, and names the log under --data', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'redfleet-dev-'));
    const apiPort = await freePort();
    // Something else holds the Sentinel port: the scheduler exits at start.
    const holder = createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const sentinelPort = (holder.address() as AddressInfo).port;
    const child = spawn(process.execPath, [CLI, 'dev', '--data', dir, '--api', `127.0.0.1:${apiPort}`, '--sentinel', `127.0.0.1:${sentinelPort}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    try {
      const [code] = await once(child, 'exit');
      expect(code).to.equal(1);
      expect(stderr).to.contain(`the scheduler exited at start; see ${join(dir, 'logs', 'scheduler.log')}`);
      expect(processesUnder(dir), 'no process of the dev fleet is left').to.deep.equal([]);
    } finally {
      child.kill('SIGKILL');
      for (const pid of processesUnder(dir)) {
        try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      }
      holder.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
