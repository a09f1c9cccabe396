/**
 * bench/sim/resp: the least of RESP2 a simulated redis-server needs: reading the command arrays
 * a client (ioredis, redis-cli) sends, and writing replies. Inline commands are not read: every
 * client RedFleet uses sends arrays of bulk strings.
 */

/** A reply to encode: a status (`{ status }`), an error (`{ error }`), an integer, a bulk string, null, or an array. */
export type Reply = { status: string } | { error: string } | number | string | null | Reply[];

/** Encodes one reply. */
export function encodeReply(reply: Reply): string {
  if (reply === null) return '$-1\r\n';
  if (typeof reply === 'number') return `:${Math.trunc(reply)}\r\n`;
  if (typeof reply === 'string') return `$${Buffer.byteLength(reply)}\r\n${reply}\r\n`;
  if (Array.isArray(reply)) return `*${reply.length}\r\n${reply.map(encodeReply).join('')}`;
  if ('status' in reply) return `+${reply.status}\r\n`;
  return `-${reply.error}\r\n`;
}

/** Largest command accepted (bytes): a simulated server never needs big values. */
const MAX_COMMAND_BYTES = 64 * 1024;

/**
 * Reads whole commands from a connection's bytes as they arrive; what is left of a partial command
 * waits for the next chunk. Throws on anything that is not a RESP array of bulk strings.
 */
export class CommandReader {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): string[][] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    if (this.buf.length > MAX_COMMAND_BYTES) throw new Error('command too large');
    const out: string[][] = [];
    for (;;) {
      const parsed = parseCommand(this.buf);
      if (!parsed) return out;
      out.push(parsed.args);
      this.buf = this.buf.subarray(parsed.used);
    }
  }
}

/** One command at the start of `buf`, and how many bytes it took; undefined while it is incomplete. */
function parseCommand(buf: Buffer): { args: string[]; used: number } | undefined {
  if (buf.length === 0) return undefined;
  if (buf[0] !== 0x2a) throw new Error('expected a RESP array');
  let at = buf.indexOf('\r\n');
  if (at < 0) return undefined;
  const count = Number(buf.toString('latin1', 1, at));
  if (!Number.isInteger(count) || count < 0 || count > 64) throw new Error('bad array length');
  let pos = at + 2;
  const args: string[] = [];
  for (let i = 0; i < count; i++) {
    if (pos >= buf.length) return undefined;
    if (buf[pos] !== 0x24) throw new Error('expected a bulk string');
    at = buf.indexOf('\r\n', pos);
    if (at < 0) return undefined;
    const len = Number(buf.toString('latin1', pos + 1, at));
    if (!Number.isInteger(len) || len < 0 || len > MAX_COMMAND_BYTES) throw new Error('bad bulk length');
    const start = at + 2;
    if (start + len + 2 > buf.length) return undefined;
    args.push(buf.toString('utf8', start, start + len));
    pos = start + len + 2;
  }
  return { args, used: pos };
}
