import { ProtocolError } from '../errors.js';

/** Limits that keep a garbage-spewing or huge-length client from costing memory or time. */
export const MAX_BULK_BYTES = 64 * 1024;
export const MAX_ARGS = 1024;
export const MAX_INLINE_BYTES = 64 * 1024;
/**
 * The most one request may hold, headers and bulks together. The longest Sentinel command a
 * client sends is a few hundred bytes; a bigger request is an attack, refused before it is read.
 */
export const MAX_REQUEST_BYTES = 64 * 1024;
/** A `*N` or `$N` header is never longer than this. */
const MAX_HEADER_LINE = 64;

/**
 * Bytes of the element being read (a header line, an inline command or a bulk). Grows by
 * doubling, so a request that arrives a byte at a time costs linear time, not quadratic.
 */
class PartialBytes {
  private bytes = Buffer.alloc(64);
  length = 0;

  append(chunk: Buffer, from: number, to: number): void {
    const need = this.length + (to - from);
    if (need > this.bytes.length) {
      const grown = Buffer.alloc(Math.max(need, this.bytes.length * 2));
      this.bytes.copy(grown, 0, 0, this.length);
      this.bytes = grown;
    }
    // Buffer.copy has a fixed cost that dominates for the few bytes of a header line.
    if (to - from < 32) {
      for (let i = from; i < to; i++) this.bytes[this.length++] = chunk[i];
      return;
    }
    chunk.copy(this.bytes, this.length, from, to);
    this.length = need;
  }

  at(i: number): number {
    return this.bytes[i];
  }

  text(encoding: 'utf8' | 'latin1', from: number, to: number): string {
    return this.bytes.toString(encoding, from, to);
  }

  clear(): void {
    this.length = 0;
    if (this.bytes.length > 4096) this.bytes = Buffer.alloc(64);
  }
}

const tooLarge = (): ProtocolError => new ProtocolError(`request larger than ${MAX_REQUEST_BYTES} bytes`);

type ParseState = 'start' | 'inline' | 'count' | 'bulk-header' | 'bulk-body';

/**
 * Incremental RESP request parser: multibulk arrays (`*N\r\n$L\r\n...`) as clients send them,
 * and inline commands (`PING\r\n`) as typed into telnet. It keeps its place between chunks:
 * each byte is looked at once, complete arguments are kept as they arrive, and nothing is
 * re-parsed (issue 7, A2: re-parsing from byte 0 on every chunk stalled the scheduler for 75 s).
 * Throws ProtocolError on anything malformed or over the limits; the connection is then closed.
 */
export class RespParser {
  private state: ParseState = 'start';
  private readonly partial = new PartialBytes();
  private args: string[] = [];
  private argCount = 0;
  private bulkLength = 0;
  private requestBytes = 0;

  push(chunk: Buffer): string[][] {
    const commands: string[][] = [];
    let i = 0;
    while (i < chunk.length) {
      if (this.state === 'start') this.begin(chunk[i]);
      i = this.state === 'bulk-body' ? this.readBulk(chunk, i) : this.readLine(chunk, i);
      if (this.state === 'start' && this.args.length > 0) {
        commands.push(this.args);
        this.args = [];
      }
    }
    return commands;
  }

  private begin(first: number): void {
    this.state = first === 0x2a /* * */ ? 'count' : 'inline';
    this.requestBytes = 0;
    this.args = [];
  }

  private count(bytes: number): void {
    this.requestBytes += bytes;
    if (this.requestBytes > MAX_REQUEST_BYTES) throw tooLarge();
  }

  /** Reads up to the end of a line; returns where reading stopped in `chunk`. */
  private readLine(chunk: Buffer, from: number): number {
    const nl = chunk.indexOf(0x0a, from);
    const to = nl < 0 ? chunk.length : nl;
    this.partial.append(chunk, from, to);
    const limit = this.state === 'inline' ? MAX_INLINE_BYTES : MAX_HEADER_LINE;
    if (this.partial.length > limit) throw new ProtocolError(this.state === 'inline' ? 'inline command too long' : 'protocol line too long');
    this.count(nl < 0 ? to - from : to - from + 1);
    if (nl < 0) return chunk.length;
    this.endOfLine();
    this.partial.clear();
    return nl + 1;
  }

  /** Acts on the complete line held in `partial` (without its LF). */
  private endOfLine(): void {
    const line = this.partial;
    if (this.state === 'inline') {
      const text = line.text('utf8', 0, line.length).replace(/\r$/, '');
      this.args = text.split(/\s+/).filter(Boolean);
      this.state = 'start';
      return;
    }
    if (line.at(line.length - 1) !== 0x0d) throw new ProtocolError('protocol line not ended by CRLF');
    if (this.state === 'count') {
      this.argCount = this.headerNumber(MAX_ARGS, 'multibulk length');
      // `*0` is an empty request: nothing to run.
      this.state = this.argCount === 0 ? 'start' : 'bulk-header';
      return;
    }
    if (line.at(0) !== 0x24 /* $ */) throw new ProtocolError(`expected '$', got ${JSON.stringify(line.text('latin1', 0, 1))}`);
    this.bulkLength = this.headerNumber(MAX_BULK_BYTES, 'bulk length');
    // Refuse a request that announces more than the cap before any of it is read.
    if (this.requestBytes + this.bulkLength + 2 > MAX_REQUEST_BYTES) throw tooLarge();
    this.state = 'bulk-body';
  }

  /** The decimal number between a header's type byte and its CR, within 0..max. */
  private headerNumber(max: number, what: string): number {
    const line = this.partial;
    const end = line.length - 1;
    if (end < 2 || end > 12) throw new ProtocolError(`invalid ${what}`);
    let n = 0;
    for (let i = 1; i < end; i++) {
      const digit = line.at(i) - 0x30;
      if (digit < 0 || digit > 9) throw new ProtocolError(`invalid ${what}`);
      n = n * 10 + digit;
    }
    if (n > max) throw new ProtocolError(`invalid ${what}: ${n} (at most ${max})`);
    return n;
  }

  /** Reads bulk bytes and their CRLF; returns where reading stopped in `chunk`. */
  private readBulk(chunk: Buffer, from: number): number {
    const want = this.bulkLength + 2 - this.partial.length;
    const to = Math.min(chunk.length, from + want);
    this.count(to - from);
    this.partial.append(chunk, from, to);
    if (this.partial.length < this.bulkLength + 2) return to;
    const body = this.partial;
    if (body.at(this.bulkLength) !== 0x0d || body.at(this.bulkLength + 1) !== 0x0a) throw new ProtocolError('bulk string not followed by CRLF');
    this.args.push(body.text('utf8', 0, this.bulkLength));
    this.partial.clear();
    this.state = this.args.length === this.argCount ? 'start' : 'bulk-header';
    return to;
  }
}

/** A reply value; maps are written as RESP3 maps or, in RESP2, as flat arrays. */
export type RespValue =
  | { kind: 'simple'; value: string }
  | { kind: 'error'; value: string }
  | { kind: 'int'; value: number }
  | { kind: 'bulk'; value: string | null }
  | { kind: 'array'; value: RespValue[] | null }
  | { kind: 'map'; value: [string, RespValue][] }
  | { kind: 'push'; value: RespValue[] };

export const simple = (value: string): RespValue => ({ kind: 'simple', value });
export const error = (value: string): RespValue => ({ kind: 'error', value });
export const int = (value: number): RespValue => ({ kind: 'int', value });
export const bulk = (value: string | null): RespValue => ({ kind: 'bulk', value });
export const array = (value: RespValue[] | null): RespValue => ({ kind: 'array', value });
export const map = (value: [string, RespValue][]): RespValue => ({ kind: 'map', value });
export const push = (value: RespValue[]): RespValue => ({ kind: 'push', value });
export const bulks = (values: string[]): RespValue => array(values.map(bulk));

export function encode(v: RespValue, resp3: boolean): string {
  switch (v.kind) {
    case 'simple':
      return `+${v.value}\r\n`;
    case 'error':
      return `-${v.value}\r\n`;
    case 'int':
      return `:${v.value}\r\n`;
    case 'bulk':
      if (v.value === null) return resp3 ? '_\r\n' : '$-1\r\n';
      return `$${Buffer.byteLength(v.value)}\r\n${v.value}\r\n`;
    case 'array':
      if (v.value === null) return resp3 ? '_\r\n' : '*-1\r\n';
      return `*${v.value.length}\r\n${v.value.map((x) => encode(x, resp3)).join('')}`;
    case 'push':
      return `${resp3 ? '>' : '*'}${v.value.length}\r\n${v.value.map((x) => encode(x, resp3)).join('')}`;
    case 'map':
      if (resp3) return `%${v.value.length}\r\n${v.value.map(([k, x]) => encode(bulk(k), true) + encode(x, true)).join('')}`;
      return `*${v.value.length * 2}\r\n${v.value.map(([k, x]) => encode(bulk(k), false) + encode(x, false)).join('')}`;
  }
}
