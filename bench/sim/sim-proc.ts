/**
 * bench/sim/sim-proc: one simulated redis-server. It has a role (master, or replica of an
 * `ip:port`), a replication offset that moves while it is a live master (54 bytes every 100 ms,
 * as the replication heartbeat of a real master moves it), a memory figure that drifts, and a tiny RESP responder
 * on the address the scheduler launched it at, which answers what the scheduler asks of a proc:
 * AUTH, PING, INFO, ROLE, REPLICAOF, CLIENT PAUSE/UNPAUSE/KILL, CONFIG SET, MULTI/EXEC, PUBLISH.
 *
 * Failures on command: `crash()` (the process is gone: the listener and every link close at once),
 * `freeze()` (the process is SIGSTOPped: connections are accepted by the kernel, nothing is ever
 * answered, replicas stop hearing it).
 */
import { createServer, type Server, type Socket } from 'node:net';
import { CommandReader, encodeReply, type Reply } from './resp.js';
import { replyTo } from './commands.js';

/**
 * What another proc shows of itself: its role (the address it follows), whether it answers, whether
 * its process is gone, and its replication offset. A proc in this simulator is a SimProc; one in
 * another shard of the simulator is a RemoteProc (bench/sim/shard-world.ts).
 */
export interface ProcView {
  readonly ip: string;
  readonly port: number;
  readonly address: string;
  readonly target: string | null;
  readonly frozen: boolean;
  readonly exited: boolean;
  readonly offset: number;
}

/** What a proc needs from the fleet around it: the procs at other addresses (its master), and who follows it. */
export interface ProcWorld {
  procAt(address: string): ProcView | undefined;
  followersOf(address: string): ProcView[];
  /** A proc's state changed (listening, its target, frozen, exited); `before` is the target it followed until now. */
  retargeted(proc: SimProc, before: string | null): void;
}

/** Bytes one replication heartbeat adds to a live master's offset (a PUBLISH in the stream). */
export const HEARTBEAT_BYTES = 54;
/** How often a live master's offset moves: the real agents' replication heartbeat. */
export const HEARTBEAT_MS = 100;

/**
 * A live master's offset at `now`, from where it stood at `baseAt`: 54 bytes every 100 ms. A
 * formula rather than a ticker, so that another simulator process computes the same figure from
 * one message (bench/sim/shard-world.ts), and a starved loop does not slow the master's stream.
 */
export function masterOffset(base: number, baseAt: number, now = Date.now()): number {
  return base + HEARTBEAT_BYTES * Math.floor(Math.max(0, now - baseAt) / HEARTBEAT_MS);
}

let nextPid = 200_000;

export class SimProc implements ProcView {
  readonly pid = nextPid++;
  readonly startedAt = Date.now();
  /** Replica of `ip:port`, or null for a master. */
  target: string | null = null;
  /** The offset at `baseAt`; a live master's moves on from there (masterOffset). */
  base = 0;
  baseAt = Date.now();
  /** When a replica last heard its master (its offset moved with the master's). */
  lastIoAt = Date.now();
  /** When a replica's link went down (0: up). */
  linkDownSince = 0;
  usedMemory: number;
  commands = 0;
  frozen = false;
  exited = false;
  private server?: Server;
  private readonly sockets = new Set<Socket>();

  constructor(readonly id: string, readonly instance: string, readonly ip: string, readonly port: number, public capacityMb: number, private readonly world: ProcWorld) {
    this.usedMemory = 900_000 + Math.floor(Math.random() * 200_000);
  }

  get address(): string {
    return `${this.ip}:${this.port}`;
  }

  /** The replication offset: a live master's moves with its heartbeat, anything else's stands where it was last set. */
  get offset(): number {
    return this.target || this.frozen || this.exited ? this.base : masterOffset(this.base, this.baseAt);
  }

  set offset(value: number) {
    this.base = value;
    this.baseAt = Date.now();
  }

  get role(): 'master' | 'slave' {
    return this.target ? 'slave' : 'master';
  }

  /** Listens on ip:port. Rejects when the address is taken (reported as a failed launch). */
  listen(): Promise<void> {
    const server = createServer((sock) => this.accept(sock));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: this.ip, port: this.port, backlog: 64 }, () => {
        server.off('error', reject);
        this.world.retargeted(this, null);
        resolve();
      });
    });
  }

  private accept(sock: Socket): void {
    if (this.exited) {
      sock.destroy();
      return;
    }
    this.sockets.add(sock);
    sock.setNoDelay(true);
    const reader = new CommandReader();
    const conn = { queued: undefined as string[][] | undefined };
    sock.on('data', (chunk: Buffer) => {
      if (this.frozen) return;
      try {
        const replies = reader.push(chunk).map((args) => this.handle(args, conn, sock));
        if (replies.length > 0) sock.write(replies.join(''));
      } catch {
        sock.destroy();
      }
    });
    sock.on('error', () => undefined);
    sock.on('close', () => this.sockets.delete(sock));
  }

  /** One command's encoded reply (MULTI queues until EXEC, as Redis does). */
  private handle(args: string[], conn: { queued?: string[][] }, sock: Socket): string {
    this.commands += 1;
    const name = (args[0] ?? '').toUpperCase();
    if (name === 'MULTI') {
      conn.queued = [];
      return encodeReply({ status: 'OK' });
    }
    if (name === 'EXEC') {
      const queued = conn.queued ?? [];
      conn.queued = undefined;
      return encodeReply(queued.map((a) => replyTo(this, a)));
    }
    if (name === 'DISCARD') {
      conn.queued = undefined;
      return encodeReply({ status: 'OK' });
    }
    if (conn.queued) {
      conn.queued.push(args);
      return encodeReply({ status: 'QUEUED' });
    }
    if (name === 'QUIT') setImmediate(() => sock.end());
    return encodeReply(replyTo(this, args));
  }

  /** Follows `address` (null: becomes a master). */
  follow(address: string | null): void {
    const before = this.target;
    if (before === address) return;
    const offset = this.offset;
    this.target = address;
    this.offset = offset;
    if (address) {
      this.lastIoAt = Date.now();
      this.linkDownSince = 0;
    }
    this.world.retargeted(this, before);
  }

  /**
   * A replica's view of its master, brought up to date when read: while the master answers, the
   * replica has read all of its stream; a frozen master sends nothing (the link stays up until
   * repl-timeout); a gone one drops the link at once.
   */
  syncWithMaster(now = Date.now()): void {
    if (!this.target) return;
    const master = this.world.procAt(this.target);
    if (!master || master.exited || master.target) {
      if (this.linkDownSince === 0) this.linkDownSince = now;
      return;
    }
    if (master.frozen) {
      if (now - this.lastIoAt > 60_000 && this.linkDownSince === 0) this.linkDownSince = now;
      return;
    }
    if (master.offset > this.offset) this.offset = master.offset;
    this.lastIoAt = now;
    this.linkDownSince = 0;
  }

  followers(): ProcView[] {
    return this.world.followersOf(this.address).filter((p) => !p.exited && p.target === this.address);
  }

  /** Open client connections (the scheduler's link, the agent's own). */
  get clients(): number {
    return this.sockets.size;
  }

  /** The memory figure drifts a little each read, and now and then the dataset grows by a tenth. */
  driftMemory(): void {
    const ceiling = this.capacityMb * 1024 * 1024;
    const grow = Math.random() < 0.01 ? Math.floor(this.usedMemory * 0.1) : Math.floor((Math.random() - 0.5) * 4096);
    this.usedMemory = Math.max(800_000, Math.min(ceiling, this.usedMemory + grow));
  }

  freeze(): void {
    if (this.frozen) return;
    const offset = this.offset;
    this.frozen = true;
    this.offset = offset;
    this.world.retargeted(this, this.target);
  }

  /** The process is gone: listener and links closed. */
  crash(): void {
    if (this.exited) return;
    const offset = this.offset;
    this.exited = true;
    this.offset = offset;
    this.server?.close();
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    this.world.retargeted(this, this.target);
  }
}

export type { Reply };
