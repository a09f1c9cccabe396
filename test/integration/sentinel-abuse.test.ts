import { expect } from 'chai';
import { createConnection, type Socket } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { LocalFleet } from '../harness/local-fleet.js';
import { setTimeout as sleep } from 'node:timers/promises';

/** A raw connection to the Sentinel port that collects everything the server sends. */
class RawClient {
  readonly socket: Socket;
  received = '';
  closed = false;
  private readonly ready: Promise<void>;

  constructor(port: number, localAddress?: string) {
    this.socket = createConnection({ host: '127.0.0.1', port, localAddress });
    this.ready = new Promise((resolve, reject) => {
      this.socket.once('connect', () => resolve());
      this.socket.once('error', reject);
    });
    this.socket.on('data', (d: Buffer) => { this.received += d.toString('latin1'); });
    this.socket.on('error', () => undefined);
    this.socket.on('close', () => { this.closed = true; });
  }

  connected(): Promise<void> {
    return this.ready;
  }

  /** Sends one command as a multibulk and resolves with the reply bytes that arrive for it. */
  async command(...args: string[]): Promise<string> {
    await this.ready;
    const before = this.received.length;
    this.socket.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
    const deadline = Date.now() + 2000;
    while (this.received.length === before && !this.closed && Date.now() < deadline) await sleep(5);
    await sleep(20); // the rest of a multi-part reply
    return this.received.slice(before);
  }

  async waitClosed(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < deadline) await sleep(10);
    return this.closed;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Probes /healthz every ~20 ms until stopped; records each answer's latency (a failure counts as 10 s). */
class HealthProbe {
  readonly latencies: number[] = [];
  private stopped = false;
  private readonly loop: Promise<void>;

  constructor(url: string) {
    this.loop = (async () => {
      for (let i = 0; !this.stopped && i < 5000; i++) {
        const t0 = performance.now();
        try {
          const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(3000) });
          await res.text();
          this.latencies.push(res.ok ? performance.now() - t0 : 10_000);
        } catch {
          this.latencies.push(10_000);
        }
        await sleep(20);
      }
    })();
  }

  async stop(): Promise<{ count: number; worst: number }> {
    this.stopped = true;
    await this.loop;
    return { count: this.latencies.length, worst: Math.max(...this.latencies) };
  }
}

/** PING on a fresh connection: ms from sending it to the first byte of +PONG. */
async function pingMs(port: number): Promise<number> {
  const socket = createConnection({ host: '127.0.0.1', port });
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const t0 = performance.now();
    const reply = await new Promise<string>((resolve, reject) => {
      socket.once('data', (d: Buffer) => resolve(d.toString()));
      socket.once('error', reject);
      socket.write('PING\r\n');
    });
    expect(reply).to.equal('+PONG\r\n');
    return performance.now() - t0;
  } finally {
    socket.destroy();
  }
}

describe('Sentinel endpoint under attack: globs, huge requests (issue 7, A1/A2)', function () {
  this.timeout(60_000);
  let fleet: LocalFleet;

  before(async () => {
    fleet = await LocalFleet.start({ agents: 2 });
  });

  after(async () => {
    await fleet?.stop();
  });

  it('64 patterns of 100 stars neither slow /healthz past 100 ms nor stop +switch-master reaching others during failovers', async () => {
    expect((await fleet.api('POST', '/api/instances', { name: 'globbed', capacityMb: 32, replicas: 1 })).status).to.equal(202);
    const inst = await fleet.waitForStatus('globbed', 'RUNNING');
    const hostile = new RawClient(fleet.sentinelPort);
    const normal = new Redis({ host: '127.0.0.1', port: fleet.sentinelPort });
    const events: string[] = [];
    normal.on('message', (channel: string, message: string) => events.push(`${channel} ${message}`));
    try {
      // Stars that no longer collapse into one once they are separated by `?`, `a` or a class;
      // as regular expressions each of these backtracks for longer than the test can wait.
      const shapes = [(i: number) => `${'*'.repeat(100)}Z${i}`, (i: number) => `${'*?'.repeat(100)}Z${i}`, (i: number) => `${'*a'.repeat(100)}${i}`, (i: number) => `${'*[a-z]'.repeat(25)}${'*'.repeat(75)}${i}`];
      const patterns = Array.from({ length: 64 }, (_, i) => shapes[i % shapes.length](i));
      const subscribed = await hostile.command('PSUBSCRIBE', ...patterns);
      expect(subscribed.match(/psubscribe/g)).to.have.length(64);
      // Over the caps: a 65th pattern, and a pattern longer than 256 bytes. Neither is added.
      expect(await hostile.command('PSUBSCRIBE', `${'*'.repeat(100)}one-more`)).to.match(/^-ERR too many patterns/);
      expect(await hostile.command('PSUBSCRIBE', '*'.repeat(300))).to.match(/^-ERR pattern too long/);
      const channels = Array.from({ length: 65 }, (_, i) => `channel-${i}`);
      expect(await hostile.command('SUBSCRIBE', ...channels)).to.match(/^-ERR too many channels/);
      await normal.subscribe('+switch-master');

      const probe = new HealthProbe(fleet.apiUrl);
      let result;
      try {
        process.kill(inst.master.pid, 'SIGKILL');
        await fleet.waitFor(() => events.find((e) => e.startsWith('+switch-master globbed ')), 15_000, '+switch-master on the normal subscriber');
        // A second failover: the promoted master is killed too once its new replica is up.
        const second = await fleet.waitFor(async () => {
          const i = (await fleet.api('GET', '/api/instances/globbed')).json;
          return i.status === 'RUNNING' && i.slaves.length === 1 && i.master.pid !== inst.master.pid ? i : undefined;
        }, 20_000, 'globbed to be whole again');
        process.kill(second.master.pid, 'SIGKILL');
        await fleet.waitFor(() => events.filter((e) => e.startsWith('+switch-master globbed ')).length >= 2, 15_000, 'a second +switch-master');
        await sleep(200);
      } finally {
        result = await probe.stop();
      }
      expect(result.count).to.be.above(20);
      expect(result.worst, `slowest /healthz of ${result.count}: ${result.worst.toFixed(1)} ms`).to.be.below(100);
      expect(hostile.closed).to.equal(false);

      // Item 27: every 'sentinel event' line names its instance.
      const lines = fleet.log('scheduler').split('\n').filter((l) => l.includes('"sentinel event"')).map((l) => JSON.parse(l));
      expect(lines.length).to.be.above(5);
      for (const line of lines) expect(line.instance, JSON.stringify(line)).to.equal('globbed');
      expect(lines.map((l) => l.channel)).to.include.members(['+try-failover', '+selected-slave', '+switch-master']);
    } finally {
      hostile.close();
      normal.disconnect();
    }
  });

  it('refuses a *1024 request of 64 KiB bulks with an error and closes it, while /healthz and PING stay fast', async () => {
    const attacker = new RawClient(fleet.sentinelPort);
    await attacker.connected();
    const probe = new HealthProbe(fleet.apiUrl);
    const pings: number[] = [];
    try {
      const bulk = Buffer.alloc(64 * 1024, 0x78);
      let sent = 0;
      attacker.socket.write('*1024\r\n');
      // Written in pieces the way a client streams it, until the server has had enough.
      for (let i = 0; i < 1024 && !attacker.closed; i++) {
        const more = attacker.socket.write(Buffer.concat([Buffer.from(`$${bulk.length}\r\n`), bulk, Buffer.from('\r\n')]));
        sent += bulk.length;
        if (i % 64 === 0) pings.push(await pingMs(fleet.sentinelPort));
        if (!more) await Promise.race([new Promise((r) => attacker.socket.once('drain', r)), sleep(200)]);
      }
      expect(await attacker.waitClosed(5000), 'the server closes the connection').to.equal(true);
      expect(attacker.received).to.match(/^-ERR Protocol error: request larger than 65536 bytes\r\n/);
      expect(sent, 'the server stopped reading long before 64 MB').to.be.below(64 * 1024 * 1024);
      pings.push(await pingMs(fleet.sentinelPort));
    } finally {
      attacker.close();
    }
    const result = await probe.stop();
    expect(result.worst, `slowest /healthz of ${result.count}: ${result.worst.toFixed(1)} ms`).to.be.below(100);
    expect(Math.max(...pings), `PING round trips ${pings.map((p) => p.toFixed(1)).join(', ')} ms`).to.be.below(100);
  });
});

describe('Sentinel endpoint limits and password (issue 7, A3 and G)', function () {
  this.timeout(60_000);
  const PASSWORD = 'sentinel-secret-for-tests';
  let fleet: LocalFleet;
  let instancePassword: string;
  let dir: string;

  before(async () => {
    // The password comes from a file, as the help advises; limits are small enough to reach.
    dir = mkdtempSync(join(tmpdir(), 'sentinel-pw-'));
    const file = join(dir, 'password');
    writeFileSync(file, `${PASSWORD}\n`, { mode: 0o600 });
    fleet = await LocalFleet.start({
      agents: 1,
      schedulerArgs: ['--sentinel-max-clients', '12', '--sentinel-max-clients-per-ip', '5', '--sentinel-idle-timeout', '2', '--sentinel-password-file', file],
    });
    const res = await fleet.api('POST', '/api/instances', { name: 'secret-name', capacityMb: 32, replicas: 0 });
    expect(res.status).to.equal(202);
    instancePassword = res.json.password;
    await fleet.waitForStatus('secret-name', 'RUNNING');
  });

  after(async () => {
    await fleet?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('without AUTH answers only -NOAUTH and reveals no instance name', async () => {
    const c = new RawClient(fleet.sentinelPort);
    try {
      const replies = [
        await c.command('SENTINEL', 'masters'),
        await c.command('SENTINEL', 'get-master-addr-by-name', 'secret-name'),
        await c.command('ROLE'),
        await c.command('INFO'),
        await c.command('PSUBSCRIBE', '*'),
        await c.command('PING'),
        await c.command('HELLO', '3'),
      ];
      for (const r of replies.slice(0, 6)) expect(r).to.equal('-NOAUTH Authentication required.\r\n');
      expect(replies[6]).to.match(/^-NOAUTH/);
      expect(replies.join('')).not.to.contain('secret-name');
      expect(await c.command('AUTH', 'wrong-password')).to.match(/^-WRONGPASS/);
      expect(await c.command('AUTH', 'someone', PASSWORD)).to.match(/^-WRONGPASS/);
      expect(await c.command('ROLE')).to.equal('-NOAUTH Authentication required.\r\n');
      expect(await c.command('AUTH', PASSWORD)).to.equal('+OK\r\n');
      expect(await c.command('ROLE')).to.contain('secret-name');
      expect(await c.command('RESET')).to.equal('+RESET\r\n');
      expect(await c.command('ROLE')).to.equal('-NOAUTH Authentication required.\r\n');
      expect(await c.command('HELLO', '3', 'AUTH', 'default', PASSWORD)).to.match(/^%7\r\n/);
      expect(await c.command('SENTINEL', 'get-master-addr-by-name', 'secret-name')).to.match(/^\*2\r\n/);
    } finally {
      c.close();
    }
  });

  it('lets an ioredis Sentinel client with sentinelPassword find the master; without it, none', async () => {
    const opts = { sentinels: [{ host: '127.0.0.1', port: fleet.sentinelPort }], name: 'secret-name', password: instancePassword, lazyConnect: true };
    const good = new Redis({ ...opts, sentinelPassword: PASSWORD });
    const bad = new Redis({ ...opts, maxRetriesPerRequest: 0, sentinelRetryStrategy: () => null, enableOfflineQueue: false });
    bad.on('error', () => undefined);
    try {
      await good.connect();
      expect(await good.set('k', 'v')).to.equal('OK');
      expect(await good.get('k')).to.equal('v');
      const failure = await bad.connect().then(() => undefined, (err: Error) => err);
      expect(failure, 'a client without the password must not reach the master').to.be.instanceOf(Error);
    } finally {
      good.disconnect();
      bad.disconnect();
    }
  });

  it('caps connections per address and in all with -ERR max number of clients reached', async () => {
    const open: RawClient[] = [];
    try {
      /** Opens n connections from `address`, one after another, and waits until `refused` of them are closed. */
      const from = async (address: string, n: number, refused: number) => {
        const list: RawClient[] = [];
        for (let i = 0; i < n; i++) {
          const c = new RawClient(fleet.sentinelPort, address);
          open.push(c);
          list.push(c);
          await c.connected();
        }
        await fleet.waitFor(() => list.filter((c) => c.closed).length >= refused, 3000, `${refused} refused connections from ${address}`);
        await sleep(50);
        return list;
      };
      const first = await from('127.0.0.2', 6, 1);
      // Five from 127.0.0.2 are served; the sixth is told why and closed.
      expect(first.filter((c) => c.closed)).to.have.length(1);
      expect(first.find((c) => c.closed)?.received).to.equal('-ERR max number of clients reached\r\n');
      expect(await first[0].command('AUTH', PASSWORD)).to.equal('+OK\r\n');
      // Another address has its own five; then the endpoint's 12 are reached.
      const second = await from('127.0.0.3', 5, 0);
      expect(second.filter((c) => c.closed)).to.have.length(0);
      const third = await from('127.0.0.4', 3, 1);
      expect(third.filter((c) => c.closed)).to.have.length(1);
      expect(third.find((c) => c.closed)?.received).to.equal('-ERR max number of clients reached\r\n');
      // A closed connection frees its place.
      first[0].close();
      await sleep(200);
      const again = await from('127.0.0.4', 1, 0);
      expect(again[0].closed).to.equal(false);
    } finally {
      for (const c of open) c.close();
    }
  });

  it('closes a connection idle past --sentinel-idle-timeout, but not a busy or subscribed one', async () => {
    const idle = new RawClient(fleet.sentinelPort);
    const busy = new RawClient(fleet.sentinelPort);
    const subscriber = new RawClient(fleet.sentinelPort);
    try {
      await Promise.all([idle.connected(), busy.connected(), subscriber.connected()]);
      expect(await subscriber.command('AUTH', PASSWORD)).to.equal('+OK\r\n');
      expect(await subscriber.command('SUBSCRIBE', '+switch-master')).to.contain('subscribe');
      for (let i = 0; i < 8; i++) {
        expect(await busy.command('PING')).to.match(/^-NOAUTH|^\+PONG/);
        await sleep(500);
      }
      expect(idle.closed, 'idle for 4 s with a 2 s timeout').to.equal(true);
      expect(busy.closed).to.equal(false);
      expect(subscriber.closed).to.equal(false);
    } finally {
      idle.close();
      busy.close();
      subscriber.close();
    }
  });
});
