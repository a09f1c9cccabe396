import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';

/**
 * The CLI's terminal paths (issue 10 part 5): `top` and `status --watch` redraw, `--wait` shows a
 * spinner on a terminal and plain lines otherwise. The terminal is a real pty (`script` from
 * util-linux); the API is a small HTTP server answering the routes these commands read with
 * fixed JSON in the API's shapes (the commands only read it), so no fleet is needed.
 */
const MAIN = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'main.js');
const HAS_SCRIPT = spawnSync('script', ['--version']).status === 0;

const AGENT = { id: 'agent1', hostname: 'h', ip: '127.0.0.1', connected: true, draining: false, tasks: ['p1'],
  total: { cpus: 2, mem: 1024, ports: [{ begin: 6380, end: 6389 }] }, free: { cpus: 1, mem: 960, ports: [{ begin: 6381, end: 6389 }] } };

function instance(status: string): Record<string, unknown> {
  return { name: 'db1', type: 'MS', status, capacityMb: 64, replicas: 0, slaves: [], epoch: 1, operation: null,
    master: status === 'RUNNING' ? { ip: '127.0.0.1', port: 6380 } : null,
    procs: [{ id: 'p1', role: 'master', state: status === 'RUNNING' ? 'RUNNING' : 'STARTING', ip: '127.0.0.1', port: 6380, agent: 'agent1', pid: 1,
      stats: status === 'RUNNING' ? { usedMemory: 2 * 1024 * 1024 } : null }] };
}

/** An API whose instance db1 is CREATING for the first `creatingFor` reads, then RUNNING. */
async function fakeApi(creatingFor: number): Promise<{ url: string; server: Server }> {
  let reads = 0;
  // A switchover whose GETs go through two steps, then done; opReads counts reads after the POST.
  let opReads = 0;
  const op = (n: number): Record<string, unknown> => {
    if (n === 0) opReads = 1;
    const step = n < 3 ? 'catching up' : 'promoting';
    return { id: 'op1', kind: 'switchover', state: n < 5 ? 'running' : 'done', step, startedAt: '2026-01-01T00:00:00Z' };
  };
  const server = createServer((req, res) => {
    res.setHeader('Content-Type', 'application/json');
    const send = (body: unknown, code = 200): void => void res.writeHead(code).end(JSON.stringify(body));
    if (req.url === '/api/agents') return send([AGENT]);
    if (req.url === '/api/instances' && req.method === 'POST') return send({ ...instance('CREATING'), password: 'pw', accessKey: 'ak' }, 201);
    const now = (): Record<string, unknown> => instance(reads++ < creatingFor ? 'CREATING' : 'RUNNING');
    if (req.url === '/api/instances/db1/failover') return send({ ...instance('RUNNING'), operation: op(0) }, 202);
    if (req.url === '/api/instances/db1' && opReads > 0) return send({ ...instance('RUNNING'), operation: op(opReads++) });
    if (req.url === '/api/instances') return send({ db1: now() });
    if (req.url === '/api/instances/db1') return send(now());
    send({ error: { code: 'NOT_FOUND', message: 'no such route', field: null } }, 404);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

/** Runs the CLI, under a pty when `tty`; resolves with its output once `until` holds of it (or it exits). */
function runCli(args: string[], tty: boolean, until: (out: string) => boolean, onReady: (child: ChildProcess) => void = () => {}): Promise<{ out: string; code: number | null }> {
  const quoted = [process.execPath, MAIN, ...args].map((a) => `'${a}'`).join(' ');
  // `script` runs the command through $SHELL -c; `exec` makes the CLI the pty's only foreground
  // process, so Ctrl-C reaches it alone. Without it dash (Debian's /bin/sh, and script's choice when
  // SHELL is unset, as under CI) stays in between and dies of the SIGINT itself, exiting 130.
  const child = tty ? spawn('script', ['-qfec', `exec ${quoted}`, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, SHELL: '/bin/sh' } })
    : spawn(process.execPath, [MAIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let ready = false;
  const seen = (chunk: Buffer): void => {
    out += chunk.toString();
    if (!ready && until(out)) { ready = true; onReady(child); }
  };
  child.stdout!.on('data', seen);
  child.stderr!.on('data', seen);
  return new Promise((ok) => child.on('close', (code) => ok({ out, code })));
}

const frames = (out: string, marker: string): number => out.split(marker).length - 1;

describe('CLI on a terminal and off it (top, status --watch, --wait)', function () {
  let api: { url: string; server: Server };
  afterEach(() => api?.server.close());

  it('top redraws the fleet table under a pty until Ctrl-C', async function () {
    if (!HAS_SCRIPT) { console.log('      (skipped: script from util-linux is not installed)'); return this.skip(); }
    api = await fakeApi(2);
    const { out, code } = await runCli(['top', '--api', api.url, '--interval', '0.1'], true,
      (o) => frames(o, 'Ctrl-C to quit') >= 3, (child) => child.stdin!.write('\x03'));
    expect(code).to.equal(0);
    expect(out).to.include('\x1b[H\x1b[2J');
    expect(out).to.match(/agent1 +connected +127\.0\.0\.1 +1\/2 +960\/1024 +9\/10 +1/);
    expect(out).to.match(/db1 +RUNNING +127\.0\.0\.1:6380 +0\/0 +2\.0\/64 MB/);
  });

  it('status --watch prints each change when not on a terminal, and stops on SIGINT', async () => {
    api = await fakeApi(1);
    const { out, code } = await runCli(['status', 'db1', '--watch', '--api', api.url], false,
      (o) => o.includes('status:    RUNNING'), (child) => child.kill('SIGINT'));
    expect(code).to.equal(0);
    expect(out).to.not.include('\x1b[');
    expect(out.indexOf('status:    CREATING')).to.be.lessThan(out.indexOf('status:    RUNNING'));
  });

  it('create --wait shows a spinner on a terminal, plain lines otherwise', async function () {
    if (!HAS_SCRIPT) return this.skip();
    api = await fakeApi(3);
    const tty = await runCli(['create', 'db1', '--wait', '--api', api.url], true, () => false);
    expect(tty.code).to.equal(0);
    expect(tty.out).to.match(/\r\x1b\[K[|/\\-] CREATING: 0 of 1 procs running/);
    expect(tty.out).to.include('RUNNING: 1 of 1 procs running');
    api.server.close();
    api = await fakeApi(3);
    const plain = await runCli(['create', 'db1', '--wait', '--api', api.url], false, () => false);
    expect(plain.code).to.equal(0);
    expect(plain.out).to.not.include('\x1b[');
    expect(plain.out).to.match(/^CREATING: 0 of 1 procs running\nRUNNING: 1 of 1 procs running$/m);
  });

  it('an operation\'s --wait (failover) shows a spinner with the current step under a pty', async function () {
    if (!HAS_SCRIPT) return this.skip();
    api = await fakeApi(0);
    const { out, code } = await runCli(['failover', 'db1', '--wait', '--api', api.url], true, () => false);
    expect(code).to.equal(0);
    expect(out).to.match(/\r\x1b\[K[|/\\-] switchover: catching up \(\d+ s\)/);
    expect(out).to.match(/\r\x1b\[K {2}switchover: catching up\r?\n/);
    expect(out).to.match(/\r\x1b\[K {2}switchover: done \(\d+ s\)/);
    expect(out).to.include('db1: master is now');
  });

  it('--output json prints the API JSON alone on stdout, for create, status, list and top --once', async () => {
    api = await fakeApi(0);
    for (const args of [['status', 'db1'], ['list'], ['top', '--once'], ['create', 'db1']]) {
      // Not spawnSync: the API answers from this process's event loop.
      const child = spawn(process.execPath, [MAIN, ...args, '--output', 'json', '--api', api.url], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => { stdout += c.toString(); });
      child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
      const code = await new Promise((ok) => child.on('close', ok));
      expect(code, `${args.join(' ')}: ${stderr}`).to.equal(0);
      expect(() => JSON.parse(stdout), args.join(' ')).to.not.throw();
    }
  });
});
