import { expect } from 'chai';
import { Redis } from 'ioredis';
import { readFileSync } from 'node:fs';
import { LocalFleet, pidAlive } from '../harness/local-fleet.js';
import { FRAMEWORK_USER, frameworkSecret } from '../../src/store/secrets.js';
import { setTimeout as sleep } from 'node:timers/promises';

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

const INSTANCES = 10;
const ROUNDS_PER_FAULT = 5;
const DOWN_AFTER_MS = 500;
/**
 * The issue's bound: every client writes again within down-after + 1 s of the switch
 * (+switch-master). The time from the fault is printed too: a frozen master is found down about
 * down-after + 0.2 to 0.6 s after the fault (see docs/hardening/failover.md).
 */
const BOUND_MS = DOWN_AFTER_MS + 1000;
/** The instances' failover-timeout: the default, 3 x down-after. */
const FAILOVER_TIMEOUT_MS = 3 * DOWN_AFTER_MS;

/**
 * The client from issue 7 item 15: ioredis in Sentinel mode as an application has it, with no
 * failoverDetector, a 200 ms command timeout, reconnects every 10 ms, and a loop that drops and
 * reopens a connection on which a command failed. It must never end for good, and after each
 * failover it must write again soon.
 *
 * The loop calls disconnect(true) only on a ready connection: called while ioredis is still
 * asking the Sentinel for the master, it ends the client for good whatever the server does
 * (SentinelConnector throws "Connection is closed" when its resolve finds `connecting` false,
 * and Redis._connect then sets status "end"); that is a client-side race no server can prevent.
 */
class Client {
  readonly redis: Redis;
  lastOk = 0;
  /** When each write of the current round succeeded (the round starts with `newRound`). */
  private oks: number[] = [];
  /** Errors in the current round, for the failure message. */
  errors: string[] = [];
  private stopped = false;
  private loop?: Promise<void>;

  constructor(sentinelPort: number, readonly name: string, password: string) {
    this.redis = new Redis({
      sentinels: [{ host: '127.0.0.1', port: sentinelPort }],
      name,
      password,
      commandTimeout: 200,
      retryStrategy: () => 10,
      sentinelRetryStrategy: () => 10,
    });
    this.redis.on('error', () => undefined);
  }

  newRound(): void {
    this.oks = [];
    this.errors = [];
  }

  /** When the first write that succeeded after `t` did, or undefined. */
  firstOkAfter(t: number): number | undefined {
    return this.oks.find((ok) => ok > t);
  }

  get ended(): boolean {
    return this.redis.status === 'end';
  }

  start(): void {
    this.loop = (async () => {
      for (let i = 0; !this.stopped && !this.ended; i++) {
        try {
          await this.redis.set(`k${i % 100}`, String(i));
          this.lastOk = Date.now();
          if (this.oks.length < 10_000) this.oks.push(this.lastOk);
          await sleep(5);
        } catch (err) {
          if (this.stopped) return;
          if (this.errors.length < 50) this.errors.push(`${Date.now() % 100000} ${(err as Error).message.slice(0, 40)}`);
          if (this.redis.status === 'ready') this.redis.disconnect(true);
          await sleep(10);
        }
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    this.redis.disconnect();
  }
}

describe('clients survive every failover', function () {
  this.timeout(150_000);
  let fleet: LocalFleet;
  const clients: Client[] = [];
  let events: Redis | undefined;

  before(async () => {
    fleet = await LocalFleet.start({ agents: 3, agent: { ports: 40 } });
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.stop()));
    events?.disconnect();
    await fleet?.stop();
  });

  async function whole(name: string): Promise<Json> {
    return fleet.waitFor(async () => {
      const i = (await fleet.api('GET', `/api/instances/${name}`)).json;
      const live = i.procs.filter((p: { state: string }) => ['STAGING', 'STARTING', 'RUNNING'].includes(p.state));
      return i.status === 'RUNNING' && i.master && i.slaves.length === 2 && live.length === 3 ? i : undefined;
    }, 60_000, `${name} to be whole`);
  }

  it(`${INSTANCES} Sentinel-mode clients across ${INSTANCES * ROUNDS_PER_FAULT} SIGSTOP and ${INSTANCES * ROUNDS_PER_FAULT} kill -9 failovers: none ends, each writes again within down-after + 1 s of the switch, the promotion is one MULTI/EXEC`, async () => {
    const names = Array.from({ length: INSTANCES }, (_, i) => `surv${i}`);
    for (const name of names) {
      const res = await fleet.api('POST', '/api/instances', { name, capacityMb: 16, replicas: 2, downAfterMs: DOWN_AFTER_MS });
      expect(res.status, res.text).to.equal(202);
      clients.push(new Client(fleet.sentinelPort, name, res.json.password));
    }
    await Promise.all(names.map(whole));
    // When each instance's +switch-master reached a Sentinel subscriber: the clock for "writes again".
    const switchedAt = new Map<string, number>();
    events = new Redis({ port: fleet.sentinelPort });
    events.on('message', (_channel: string, message: string) => switchedAt.set(message.split(' ')[0], Date.now()));
    await events.subscribe('+switch-master');
    for (const c of clients) c.start();
    await fleet.waitFor(() => clients.every((c) => c.lastOk > 0), 10_000, 'every client to write');

    // The promotion's commands are counted on the promoted replica (INFO commandstats): the
    // tenants here send only SET, so MULTI and EXEC there come from the agent's promotion. (MONITOR
    // would show their order, but an ioredis MONITOR feed across a failover can throw a "Command
    // queue state error" out of its socket handler.)
    const key = readFileSync(fleet.fleetKeyPath, 'utf8').trim();
    const latencies: number[] = [];
    const fromFault: number[] = [];
    const faults: ('SIGSTOP' | 'SIGKILL')[] = [];
    for (let r = 0; r < ROUNDS_PER_FAULT; r++) faults.push('SIGSTOP', 'SIGKILL');
    for (const [round, fault] of faults.entries()) {
      const before = await Promise.all(names.map(whole));
      // A master failed over less than failover-timeout (3 x down-after) ago is held back, as
      // Sentinel does; each round here is a fresh failover, so it waits that out first.
      const lastSwitch = Math.max(0, ...switchedAt.values());
      await sleep(Math.max(0, lastSwitch + FAILOVER_TIMEOUT_MS + 100 - Date.now()));
      switchedAt.clear();
      for (const c of clients) c.newRound();
      const faultAt = Date.now();
      for (const inst of before) process.kill(inst.master.pid, fault);
      try {
        await fleet.waitFor(() => names.every((n) => switchedAt.has(n)), 20_000, `round ${round} (${fault}): every instance to fail over`);
      } finally {
        if (fault === 'SIGSTOP') for (const inst of before) if (pidAlive(inst.master.pid)) process.kill(inst.master.pid, 'SIGCONT');
      }
      // Every client writes again soon after the switch: its first write to succeed after it.
      const backAt = (c: Client) => c.firstOkAfter(switchedAt.get(c.name)!);
      const deadline = Math.max(...switchedAt.values()) + BOUND_MS;
      await fleet.waitFor(() => clients.every((c) => backAt(c) !== undefined || c.ended) || Date.now() > deadline, BOUND_MS + 5000, 'the clients to write again');
      const late = clients.filter((c) => backAt(c) === undefined || backAt(c)! - switchedAt.get(c.name)! > BOUND_MS);
      expect(clients.filter((c) => c.ended).map((c) => c.name), `round ${round} (${fault}): clients that ended for good`).to.deep.equal([]);
      expect(late.map((c) => `${c.name}: ${backAt(c) !== undefined ? `${backAt(c)! - switchedAt.get(c.name)!} ms` : 'no write'} switch at ${switchedAt.get(c.name)! % 100000}; ${c.errors.join(' | ')}`), `round ${round} (${fault}): clients slower than down-after + 1 s`).to.deep.equal([]);
      if (round === 0) {
        // The promotion and the kill of the tenant's old connections are one MULTI/EXEC, so a
        // client that finds the new master after the switch is never dropped by that kill.
        const newMaster = (await whole(names[0])).master;
        const m = new Redis({ host: newMaster.ip, port: newMaster.port, username: FRAMEWORK_USER, password: frameworkSecret(key, names[0]), lazyConnect: true });
        m.on('error', () => undefined);
        await m.connect();
        const stats = await m.info('commandstats');
        m.disconnect();
        const calls = (cmd: string) => Number(new RegExp(`cmdstat_${cmd}:calls=(\\d+)`).exec(stats)?.[1] ?? 0);
        expect(calls('multi'), 'the promotion ran inside MULTI').to.be.at.least(1);
        expect(calls('exec'), 'the promotion ran inside MULTI/EXEC').to.be.at.least(1);
      }
      const sw = [...switchedAt.values()].map((t) => t - faultAt).sort((x, y) => x - y);
      const back = clients.map((c) => backAt(c)! - faultAt).sort((x, y) => x - y);
      console.log(`      round ${round} (${fault}): switches ${sw[0]}..${sw[sw.length - 1]} ms after the fault, first writes ${back[0]}..${back[back.length - 1]} ms`);
      for (const c of clients) {
        const ms = backAt(c)! - switchedAt.get(c.name)!;
        latencies.push(ms);
        fromFault.push(backAt(c)! - faultAt);
        if (ms > BOUND_MS) console.log(`      round ${round} (${fault}) ${c.name}: ${ms} ms; ${c.errors.join(' | ')}`);
      }
      const after = await Promise.all(names.map(whole));
      after.forEach((inst, i) => expect(inst.epoch).to.equal(before[i].epoch + 1, `${inst.name}: one failover in round ${round}`));
    }
    const sorted = [...latencies].sort((a, b) => a - b);
    const pct = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
    console.log(`      first write after +switch-master (ms): median ${pct(0.5)}, p90 ${pct(0.9)}, max ${sorted[sorted.length - 1]} over ${sorted.length}`);
    const byFault = [...fromFault].sort((a, b) => a - b);
    console.log(`      first write after the fault (ms): median ${byFault[50]}, p90 ${byFault[90]}, max ${byFault[byFault.length - 1]} over ${byFault.length}`);
  });
});
