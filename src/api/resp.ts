import { ProtocolError } from '../errors.js';

/** Limits that keep a garbage-spewing or huge-length client from costing memory. */
export const MAX_BULK_BYTES = 64 * 1024;
export const MAX_ARGS = 1024;
export const MAX_INLINE_BYTES = 64 * 1024;

/**
 * Incremental RESP request parser: multibulk arrays (`*N\r\n$L\r\n...`) as clients send them,
 * and inline commands (`PING\r\n`) as typed into telnet. Throws ProtocolError on anything
 * malformed or over the limits; the connection is then closed.
 */
export class RespParser {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): string[][] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const commands: string[][] = [];
    for (;;) {
      const parsed = this.buf[0] === 0x2a ? this.multibulk() : this.inline();
      if (!parsed) break;
      if (parsed.args.length > 0) commands.push(parsed.args);
      this.buf = this.buf.subarray(parsed.used);
    }
    return commands;
  }

  private inline(): { args: string[]; used: number } | undefined {
    const nl = this.buf.indexOf(0x0a);
    if (nl < 0) {
      if (this.buf.length > MAX_INLINE_BYTES) throw new ProtocolError('inline command too long');
      return undefined;
    }
    const line = this.buf.subarray(0, nl).toString('utf8').replace(/\r$/, '');
    return { args: line.split(/\s+/).filter(Boolean), used: nl + 1 };
  }

  private multibulk(): { args: string[]; used: number } | undefined {
    let pos = 0;
    const header = this.line(pos);
    if (!header) return undefined;
    const count = this.int(header.text.slice(1), MAX_ARGS, 'multibulk length');
    pos = header.next;
    const args: string[] = [];
    for (let i = 0; i < count; i++) {
      const h = this.line(pos);
      if (!h) return undefined;
      if (h.text[0] !== '$') throw new ProtocolError(`expected '$', got ${JSON.stringify(h.text.slice(0, 1))}`);
      const len = this.int(h.text.slice(1), MAX_BULK_BYTES, 'bulk length');
      if (this.buf.length < h.next + len + 2) return undefined;
      if (this.buf[h.next + len] !== 0x0d || this.buf[h.next + len + 1] !== 0x0a) throw new ProtocolError('bulk string not followed by CRLF');
      args.push(this.buf.subarray(h.next, h.next + len).toString('utf8'));
      pos = h.next + len + 2;
    }
    return { args, used: pos };
  }

  private line(from: number): { text: string; next: number } | undefined {
    const nl = this.buf.indexOf(0x0a, from);
    if (nl < 0) {
      if (this.buf.length - from > 64) throw new ProtocolError('protocol line too long');
      return undefined;
    }
    if (this.buf[nl - 1] !== 0x0d) throw new ProtocolError('protocol line not ended by CRLF');
    return { text: this.buf.subarray(from, nl - 1).toString('latin1'), next: nl + 1 };
  }

  private int(text: string, max: number, what: string): number {
    if (!/^-?[0-9]{1,10}$/.test(text)) throw new ProtocolError(`invalid ${what}`);
    const n = Number(text);
    if (n < 0 || n > max) throw new ProtocolError(`invalid ${what}: ${n} (at most ${max})`);
    return n;
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
