/**
 * bench/failover/prober: the measuring client, identical for both systems. It finds the master
 * through the Sentinel protocol, writes all the time, injects the fault and times the first write
 * a new master acknowledges.
 */
import { type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { pidAlive as alive } from '../../test/harness/local-fleet.js';
import { MAX_IN_FLIGHT, RUN_TIMEOUT_MS, SETUP_TIMEOUT_MS, TRACE, WARM_WRITES, WRITE_EVERY_MS, type Fault } from './parameters.js';
import { waitFor } from './wait.js';

/** Client settings from the command line, set before any Prober exists. */
export const clientSettings: {
  /** ioredis `disconnectTimeout` (--disconnect-timeout); undefined: ioredis's default (2000 ms). */
  disconnectTimeout?: number;
} = {};

export interface Hit {
  /** ms from the fault to the first SET acknowledged on the new master. */
  ms: number;
  port: number;
  /** Whether the old master's process still existed when that reply came. */
  oldAlive: boolean;
  /** Errors the client's SETs got between the fault and that reply, by kind. */
  errors: Map<string, number>;
}

/**
 * An ioredis client that finds the master through the Sentinel protocol and sends a SET every
 * WRITE_EVERY_MS (pipelined, at most MAX_IN_FLIGHT outstanding), remembering the first success
 * after the fault on a connection to a port other than the old master's.
 */
export class Prober {
  readonly redis: Redis;
  ok = 0;
  errors = 0;
  readonly errorKinds = new Map<string, number>();
  subscribed = 0;
  /** Successful writes after the fault, by the port of the connection they came back on. */
  readonly okAfter = new Map<number, number>();
  private seq = 0;
  private lastErrorKind = '';
  private inFlight = 0;
  private stopped = false;
  private loop?: Promise<void>;
  private fault?: { t0: number; oldPort: number; oldPid: number };
  private readonly errorsAfterFault = new Map<string, number>();
  private hit?: Hit;

  constructor(sentinels: { host: string; port: number }[], name: string, password?: string) {
    this.redis = new Redis({
      sentinels,
      name,
      password,
      failoverDetector: true,
      commandTimeout: 300,
      maxRetriesPerRequest: 1,
      retryStrategy: () => 20,
      sentinelRetryStrategy: () => 20,
      ...(clientSettings.disconnectTimeout === undefined ? {} : { disconnectTimeout: clientSettings.disconnectTimeout }),
    });
    this.redis.on('error', (err: Error) => this.trace(`error ${err.message.slice(0, 120)}`));
    for (const ev of ['connect', 'ready', 'close', 'reconnecting'] as const) this.redis.on(ev, () => this.trace(`${ev} port ${this.port ?? '-'}`));
    this.redis.on('sentinelError', (err: Error) => this.trace(`sentinelError ${err.message.slice(0, 120)}`));
    // Emitted by ioredis's SentinelConnector once its FailoverDetector has subscribed to
    // +switch-master on the sentinels (after every (re)connection).
    this.redis.on('failoverSubscribed', () => { this.subscribed++; });
  }

  /** With FAILOVER_BENCH_TRACE=1, the client's connection events around the fault go to stderr. */
  private trace(what: string): void {
    if (!TRACE || !this.fault) return;
    process.stderr.write(`  client +${(performance.now() - this.fault.t0).toFixed(0)} ms: ${what}\n`);
  }

  /** The port the client's connection goes to right now, if connected. */
  get port(): number | undefined {
    return (this.redis.stream as Socket | undefined)?.remotePort;
  }

  start(): void {
    this.loop = (async () => {
      const deadline = performance.now() + SETUP_TIMEOUT_MS + RUN_TIMEOUT_MS + 5000;
      const maxIterations = Math.ceil((SETUP_TIMEOUT_MS + RUN_TIMEOUT_MS + 5000) / WRITE_EVERY_MS);
      for (let i = 0; !this.stopped && i < maxIterations && performance.now() < deadline; i++) {
        if (this.inFlight < MAX_IN_FLIGHT) this.write();
        await sleep(WRITE_EVERY_MS);
      }
    })();
  }

  private write(): void {
    const n = this.seq++;
    this.inFlight++;
    this.redis.set(`bench:${n}`, String(n)).then(
      () => {
        const t = performance.now();
        this.ok++;
        const port = this.port;
        if (this.fault && t > this.fault.t0) this.okAfter.set(port ?? 0, (this.okAfter.get(port ?? 0) ?? 0) + 1);
        if (this.fault && !this.hit && t > this.fault.t0 && port !== undefined && port !== this.fault.oldPort) {
          this.hit = { ms: t - this.fault.t0, port, oldAlive: alive(this.fault.oldPid), errors: new Map(this.errorsAfterFault) };
          this.trace(`first write acknowledged on port ${port}`);
        }
      },
      (err: Error) => {
        this.errors++;
        const kind = err.message.replace(/[0-9]+/g, 'N').slice(0, 80);
        this.errorKinds.set(kind, (this.errorKinds.get(kind) ?? 0) + 1);
        if (this.fault && !this.hit) this.errorsAfterFault.set(kind, (this.errorsAfterFault.get(kind) ?? 0) + 1);
        if (kind !== this.lastErrorKind) this.trace(`SET #${n} failed: ${err.message.slice(0, 100)} (port ${this.port ?? '-'})`);
        this.lastErrorKind = kind;
      },
    ).finally(() => { this.inFlight--; });
  }

  /** Resolves once WARM_WRITES writes went through to `masterPort` and the failover detector listens. */
  async ready(masterPort: number): Promise<void> {
    const base = this.ok;
    await waitFor(`the client to write to the master on port ${masterPort}`, SETUP_TIMEOUT_MS, () =>
      this.ok - base >= WARM_WRITES && this.subscribed > 0 && this.port === masterPort ? true : undefined);
  }

  /** Marks t0 and sends `signal` to `pid` at once. Returns the wall-clock time of the fault. */
  inject(pid: number, signal: Fault, oldPort: number): number {
    const wall = Date.now();
    this.fault = { t0: performance.now(), oldPort, oldPid: pid };
    process.kill(pid, signal);
    return wall;
  }

  /** Resolves at the first write acknowledged by a new master; throws after RUN_TIMEOUT_MS or when ioredis gives up. */
  async waitNewMaster(): Promise<Hit> {
    let got: Hit | 'end';
    try {
      got = await waitFor('a write acknowledged by a new master', RUN_TIMEOUT_MS, () => this.hit ?? (this.redis.status === 'end' ? 'end' : undefined));
    } catch (err) {
      throw new Error(`${(err as Error).message}; ${this.describe()}`);
    }
    if (got === 'end') throw new Error(`the ioredis client gave up (status 'end': it will not reconnect); ${this.describe()}`);
    return got;
  }

  /** What the client saw, for a failed run. */
  describe(): string {
    const after = [...this.okAfter].map(([port, n]) => `${n} on port ${port}`).join(', ') || 'none';
    return `client status ${this.redis.status}, connected to port ${this.port ?? '-'}; writes acknowledged after the fault: ${after}; `
      + `${this.errors} errors: ${this.errorSummary().slice(0, 400) || 'none'}`;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    this.redis.disconnect();
  }

  errorSummary(): string {
    return [...this.errorKinds].map(([k, n]) => `${n}x ${k}`).join('; ');
  }
}

/** SIGCONT to a process frozen by the benchmark (it may have ended meanwhile: RedFleet fences it). */
export function resume(pid: number): void {
  try {
    process.kill(pid, 'SIGCONT');
  } catch {
    // already gone
  }
}
