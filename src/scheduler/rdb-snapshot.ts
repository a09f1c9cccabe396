import { connect, type Socket } from 'node:net';
import { PassThrough, type Readable } from 'node:stream';

/** Where to take a snapshot from, and as whom (the framework user). */
export interface SnapshotSource {
  host: string;
  port: number;
  user: string;
  password: string;
  /** How long the server may stay silent (preparing the snapshot, or between chunks). */
  idleTimeoutMs: number;
}

/** The length of the end mark of a diskless (`$EOF:<mark>`) transfer. */
const EOF_MARK_LENGTH = 40;

/**
 * Takes an RDB snapshot from a redis-server the way `redis-cli --rdb` does: it speaks the
 * replication protocol as the framework user (AUTH, `REPLCONF rdb-only 1` where the server knows
 * it, then `SYNC`) and streams the payload, in either form the server sends: `$<length>` followed
 * by that many bytes (a disk-based sync) or `$EOF:<40-byte mark>` followed by the data and the
 * mark again (a diskless sync). The server forks once to produce it: run it against a replica
 * and the master never notices. Resolves once the payload starts; the stream errors if the
 * transfer breaks, and ends when it is complete.
 */
export function rdbSnapshot(src: SnapshotSource): Promise<Readable> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: src.host, port: src.port });
    const out = new PassThrough();
    const transfer = new SyncReader(sock, out, resolve, reject);
    sock.setTimeout(src.idleTimeoutMs, () => sock.destroy(new Error(`no data from ${src.host}:${src.port} for ${src.idleTimeoutMs} ms`)));
    // One command at a time: a server refuses SYNC while replies to earlier commands are pending.
    sock.on('connect', () => sock.write(command('AUTH', src.user, src.password)));
    sock.on('data', (chunk: Buffer) => transfer.feed(chunk));
    sock.on('error', (err) => transfer.fail(err));
    sock.on('close', () => transfer.fail(new Error(`${src.host}:${src.port} closed the connection before the snapshot was complete`)));
  });
}

/** A command as RESP. */
function command(...args: string[]): Buffer {
  return Buffer.from(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
}

/**
 * Reads the replies to AUTH and REPLCONF (an error to REPLCONF rdb-only is fine: servers before
 * 7.0 do not know it), skips the newlines a server sends while it prepares the snapshot, then
 * passes the payload on.
 */
class SyncReader {
  private head = Buffer.alloc(0);
  private replies = 0;
  /** Bytes of payload still to come (a `$<length>` transfer), or the end mark (diskless). */
  private remaining?: number;
  private mark?: Buffer;
  private tail = Buffer.alloc(0);
  private done = false;

  constructor(
    private readonly sock: Socket,
    private readonly out: PassThrough,
    private readonly started: (r: Readable) => void,
    private readonly refused: (e: Error) => void,
  ) {}

  feed(chunk: Buffer): void {
    if (this.done) return;
    if (this.remaining !== undefined || this.mark) return this.payload(chunk);
    this.head = Buffer.concat([this.head, chunk]);
    for (;;) {
      while (this.head[0] === 0x0a) this.head = this.head.subarray(1);
      const eol = this.head.indexOf('\r\n');
      if (eol < 0) return;
      const line = this.head.subarray(0, eol).toString('latin1');
      const rest = this.head.subarray(eol + 2);
      this.head = Buffer.alloc(0);
      if (!this.line(line)) return;
      if (this.remaining !== undefined || this.mark) return this.payload(rest);
      this.head = rest;
    }
  }

  /** One reply line before the payload; false when the transfer was refused. */
  private line(line: string): boolean {
    if (this.replies < 2) {
      this.replies += 1;
      if (line.startsWith('-') && this.replies === 1) return this.refuse(`AUTH refused: ${line.slice(1)}`);
      this.sock.write(this.replies === 1 ? command('REPLCONF', 'rdb-only', '1') : command('SYNC'));
      return true;
    }
    if (line.startsWith('-')) return this.refuse(`SYNC refused: ${line.slice(1)}`);
    if (line.startsWith('$EOF:')) {
      this.mark = Buffer.from(line.slice(5), 'latin1');
      if (this.mark.length !== EOF_MARK_LENGTH) return this.refuse(`bad diskless mark in ${JSON.stringify(line.slice(0, 60))}`);
    } else if (/^\$[0-9]+$/.test(line)) {
      this.remaining = Number(line.slice(1));
    } else {
      return this.refuse(`unexpected reply to SYNC: ${JSON.stringify(line.slice(0, 60))}`);
    }
    this.started(this.out);
    return true;
  }

  private payload(chunk: Buffer): void {
    if (this.remaining !== undefined) {
      const take = chunk.subarray(0, this.remaining);
      this.remaining -= take.length;
      if (take.length > 0) this.push(take);
      if (this.remaining === 0) this.finish();
      return;
    }
    // Diskless: hold back the last 40 bytes, which may be the end mark.
    const all = Buffer.concat([this.tail, chunk]);
    const mark = this.mark!;
    const end = all.indexOf(mark);
    if (end >= 0) {
      this.push(all.subarray(0, end));
      this.finish();
      return;
    }
    const keep = Math.min(all.length, mark.length - 1);
    if (all.length > keep) this.push(all.subarray(0, all.length - keep));
    this.tail = Buffer.from(all.subarray(all.length - keep));
  }

  /** Passes payload on, pausing the socket while the consumer is behind. */
  private push(bytes: Buffer): void {
    if (bytes.length === 0 || this.out.write(bytes)) return;
    this.sock.pause();
    this.out.once('drain', () => this.sock.resume());
  }

  private finish(): void {
    this.done = true;
    this.out.end();
    this.sock.destroy();
  }

  private refuse(reason: string): boolean {
    this.done = true;
    this.sock.destroy();
    this.refused(new Error(reason));
    return false;
  }

  /** The connection broke: before the payload the snapshot is refused, during it the stream errors. */
  fail(err: Error): void {
    if (this.done) return;
    this.done = true;
    this.refused(err);
    this.out.destroy(err);
  }
}
