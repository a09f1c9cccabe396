import { createHmac, timingSafeEqual } from 'node:crypto';
import { ProtocolError } from '../errors.js';
import { pb } from './messages.js';
import type { redfleet } from './redfleet.js';

/**
 * Event frames on a session's stream are sealed: the encoded Event (with its `seq`) is followed
 * by its `mac` field, an HMAC-SHA256 under the session's event key over every byte before it.
 * The trailer has a fixed shape (field 101, length 32), so the receiver checks the MAC on the
 * exact bytes it received, with no re-encoding, before it decodes anything.
 */
const MAC_KEY = (101 << 3) | 2;
/** Field 101's key as a varint, then the length 32. */
const MAC_TAG = Buffer.from([(MAC_KEY & 0x7f) | 0x80, MAC_KEY >> 7, 32]);
export const SEAL_BYTES = MAC_TAG.length + 32;

export function sealEvent(key: Uint8Array, seq: number, event: redfleet.v1.IEvent): Buffer {
  const body = pb.Event.encode({ ...event, seq, mac: undefined }).finish();
  const mac = createHmac('sha256', key).update(body).digest();
  return Buffer.concat([body, MAC_TAG, mac]);
}

/** Checks a sealed frame and its position; throws ProtocolError on any mismatch. */
export function openEvent(key: Uint8Array, expectedSeq: number, frame: Uint8Array): redfleet.v1.Event {
  const bytes = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
  if (bytes.length < SEAL_BYTES || !bytes.subarray(bytes.length - SEAL_BYTES, bytes.length - 32).equals(MAC_TAG)) {
    throw new ProtocolError('event frame is not sealed');
  }
  const body = bytes.subarray(0, bytes.length - SEAL_BYTES);
  const mac = createHmac('sha256', key).update(body).digest();
  if (!timingSafeEqual(mac, bytes.subarray(bytes.length - 32))) throw new ProtocolError('event frame MAC does not match: not from the scheduler this session was opened with');
  const event = pb.Event.decode(body);
  if (Number(event.seq) !== expectedSeq) throw new ProtocolError(`event frame out of order: seq ${String(event.seq)}, expected ${expectedSeq}`);
  return event;
}
