import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';

/**
 * A pass-through stream that hashes (SHA-256) and counts the bytes that cross it: a backup is
 * checksummed as it is written, by the scheduler that stores it and by the agent that fetches it.
 */
export class ChecksumTap extends Transform {
  private readonly hash = createHash('sha256');
  bytes = 0;

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: (err: Error | null, chunk: Buffer) => void): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    done(null, chunk);
  }

  /** The SHA-256 in hex; call once the stream has ended. */
  digest(): string {
    return this.hash.digest('hex');
  }
}
