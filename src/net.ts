import { createServer } from 'node:net';
import { BodyTimeoutError, BodyTooLargeError } from './errors.js';

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Whether a TCP port on 127.0.0.1 can be bound right now. */
export function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** Splits `HOST:PORT` (or `http://HOST:PORT`) into its parts. */
export function parseHostPort(text: string, what: string): { host: string; port: number } {
  const bare = text.replace(/^https?:\/\//, '').replace(/\/.*$/, '');
  const at = bare.lastIndexOf(':');
  const port = Number(bare.slice(at + 1));
  if (at <= 0 || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`${what} must be HOST:PORT, got '${text}'`);
  }
  return { host: bare.slice(0, at), port };
}

/**
 * Reads a request body, refusing one over `limit` bytes (the error says so; nothing is buffered
 * past it). With `timeoutMs`, a body still incomplete after that long is refused with
 * BodyTimeoutError: a slow sender must not hold the caller's memory or connection for minutes.
 */
export function readBody(req: NodeJS.ReadableStream, limit: number, timeoutMs = 0): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const timer = timeoutMs > 0 ? setTimeout(() => fail(new BodyTimeoutError(timeoutMs)), timeoutMs) : undefined;
    const fail = (err: Error): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      chunks.length = 0;
      reject(err);
    };
    req.on('data', (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > limit) {
        fail(new BodyTooLargeError(limit));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    req.on('error', fail);
    // A client that hangs up mid-body does not always get an 'error' (it depends on where the
    // parser was); without this the read would wait forever and hold its buffers.
    // Only then is the error built: every request closes, and an Error's stack trace was 4% of the
    // scheduler's time at 1,000 agents' calls a second.
    req.on('close', () => {
      if (!done) fail(new ClientAbortedError());
    });
  });
}

/** Thrown by readBody when the client closed the connection before the body's end. */
export class ClientAbortedError extends Error {
  readonly code = 'ECONNRESET';

  constructor() {
    super('aborted');
  }
}
