import { ProtocolError } from '../errors.js';

/** Frames above this size are refused: no RedFleet message comes near it. */
export const MAX_FRAME_BYTES = 4 * 1024 * 1024;

/** RecordIO, as Mesos frames its event streams: `<decimal length>\n<bytes>`. */
export function encodeFrame(payload: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(`${payload.length}\n`, 'ascii'), payload]);
}

/**
 * Incremental RecordIO decoder: feed it chunks as they arrive, get whole records back.
 * Throws ProtocolError on a malformed or oversize length; the stream is then unusable.
 */
export class FrameDecoder {
  private buffer = Buffer.alloc(0);
  private failed = false;

  constructor(private readonly maxFrame = MAX_FRAME_BYTES) {}

  push(chunk: Uint8Array): Buffer[] {
    if (this.failed) throw new ProtocolError('RecordIO stream already failed');
    this.buffer = this.buffer.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.buffer, chunk]);
    const records: Buffer[] = [];
    for (;;) {
      const nl = this.buffer.indexOf(0x0a);
      if (nl < 0) {
        // The length prefix of a 4 MiB frame is 7 digits; anything longer is garbage.
        if (this.buffer.length > 20) this.fail('RecordIO length prefix is too long');
        return records;
      }
      const prefix = this.buffer.subarray(0, nl).toString('ascii');
      if (!/^[0-9]{1,20}$/.test(prefix)) this.fail(`RecordIO length prefix is not a decimal number: ${JSON.stringify(prefix.slice(0, 20))}`);
      const length = Number(prefix);
      if (length > this.maxFrame) this.fail(`RecordIO frame of ${length} bytes is over the ${this.maxFrame}-byte limit`);
      if (this.buffer.length < nl + 1 + length) return records;
      records.push(this.buffer.subarray(nl + 1, nl + 1 + length));
      this.buffer = this.buffer.subarray(nl + 1 + length);
    }
  }

  private fail(message: string): never {
    this.failed = true;
    throw new ProtocolError(message);
  }
}
