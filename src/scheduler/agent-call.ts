import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import ipaddr from 'ipaddr.js';
import { pb } from '../proto/messages.js';
import type { redfleet } from '../proto/redfleet.js';
import { readBody } from '../net.js';
import { BodyTooLargeError } from '../errors.js';
import { BodyTimeoutError } from '../errors.js';

/** An authenticated caller still has to send its body promptly. */
const BODY_TIMEOUT_MS = 5000;
/** A refused caller's connection is closed if it has not finished sending its body by then. */
const REFUSED_LINGER_MS = 2000;

/**
 * Reads and decodes the body of an authenticated agent call; on failure replies and resolves
 * undefined. `sha256`: the body's signed digest (SUBSCRIBE), named by `shaHeader` in the reply.
 */
export async function readCall(req: IncomingMessage, res: ServerResponse, limit: number, sha256?: string, shaHeader = ''): Promise<redfleet.v1.Call | undefined> {
  let body: Buffer;
  try {
    body = await readBody(req, limit, BODY_TIMEOUT_MS);
  } catch (err) {
    if (err instanceof BodyTooLargeError) refuse(req, res, 413, 'BODY_TOO_LARGE', err.message);
    else if (err instanceof BodyTimeoutError) refuse(req, res, 408, err.code, err.message);
    else req.socket.destroy();
    return undefined;
  }
  if (sha256 !== undefined && createHash('sha256').update(body).digest('hex') !== sha256) {
    reply(res, 401, 'UNAUTHENTICATED', `the body does not match its signed ${shaHeader}`);
    return undefined;
  }
  try {
    return pb.Call.decode(body);
  } catch (err) {
    reply(res, 400, 'BAD_PROTOBUF', `body is not a valid Call: ${(err as Error).message}`);
    return undefined;
  }
}

/**
 * Replies without reading the body: whatever the caller still sends is discarded as it comes
 * (never buffered), and a caller that has not finished within REFUSED_LINGER_MS is cut off.
 */
export function refuse(req: IncomingMessage, res: ServerResponse, status: number, code: string, message: string): boolean {
  req.resume();
  if (!req.complete) {
    const linger = setTimeout(() => {
      if (!req.complete) req.socket.destroy();
    }, REFUSED_LINGER_MS);
    linger.unref();
    req.once('end', () => clearTimeout(linger));
  }
  return reply(res, status, code, message);
}

/** A JSON error reply, unless the response is already over. */
export function reply(res: ServerResponse, status: number, code: string, message: string): boolean {
  if (res.writableEnded || res.destroyed) return true;
  if (!res.headersSent) res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ error: { code, message } }));
  return true;
}

/** A request header's single value, or ''. */
export function header(req: IncomingMessage, name: string): string {
  const value = req.headers[name];
  return typeof value === 'string' ? value : '';
}

/** An address as one canonical string: IPv4-mapped IPv6 becomes IPv4, IPv6 its short form. */
export function normalise(address: string): string {
  try {
    return ipaddr.process(address).toString();
  } catch {
    return address;
  }
}
