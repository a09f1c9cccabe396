import { request, type IncomingMessage } from 'node:http';
import { createHash } from 'node:crypto';
import { eventKey, randomToken, sameSecret, schedulerProof, subscribeSignature } from '../store/secrets.js';
import { openEvent } from '../proto/sealed-event.js';
import { CHALLENGE_PATH } from '../proto/routes.js';
import { pb } from '../proto/messages.js';
import type { redfleet } from '../proto/redfleet.js';
import { ProtocolError } from '../errors.js';

/*
 * The agent's side of a session's handshake (docs/hardening/session.md): a single-use nonce
 * from the scheduler, a SUBSCRIBE signed with the fleet key over both nonces, and the check that
 * the scheduler's SUBSCRIBED proves it holds the fleet key too.
 */

/** One SUBSCRIBE attempt: where it goes, the key and nonces it is signed with, and its body. */
export interface SignedSubscribe {
  scheduler: string;
  fleetKey: string;
  serverNonce: string;
  clientNonce: string;
  body: Uint8Array;
  headers: Record<string, string | number>;
}

/** An opened session: the token every later call carries, and the key its events are sealed with. */
export interface OpenedSession {
  token: string;
  key: Buffer;
  /** The first event (SUBSCRIBED). */
  event: redfleet.v1.Event;
}

/** How long a challenge may take: to connect, then (once connected) to be answered. */
export interface ChallengeTimeouts {
  connectMs: number;
  answerMs: number;
}

/**
 * GET /api/v1/agent/challenge: a single-use nonce to sign SUBSCRIBE with. Over a fresh connection,
 * so that the two phases can be told apart: a scheduler that is gone or cut off never accepts it
 * (found within `connectMs`, so the agent soon asks etcd for the leader again), while a connected
 * one is there and only busy (its loop stalled: issue 11), and is given `answerMs` to answer.
 */
export function fetchChallenge(scheduler: string, timeouts: ChallengeTimeouts, localAddress?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(`${scheduler}${CHALLENGE_PATH}`, { method: 'GET', agent: false, localAddress, timeout: timeouts.connectMs }, (res) => {
      void readSmall(res).then((text) => {
        let nonce: unknown;
        try {
          nonce = (JSON.parse(text) as { nonce?: unknown }).nonce;
        } catch {
          nonce = undefined;
        }
        if (res.statusCode === 200 && typeof nonce === 'string') resolve(nonce);
        else reject(new Error(`challenge answered ${res.statusCode}: ${text.slice(0, 200)}`));
      });
    });
    req.on('socket', (socket) => {
      if (socket.connecting) socket.once('connect', () => req.setTimeout(timeouts.answerMs));
      else req.setTimeout(timeouts.answerMs);
    });
    req.on('timeout', () => req.destroy(new Error('no challenge from the scheduler in time')));
    req.on('error', reject);
    req.end();
  });
}

/** A SUBSCRIBE call, signed in its headers over both nonces and the body's SHA-256. */
export function signSubscribe(call: redfleet.v1.ICall, agentId: string, fleetKey: string, scheduler: string, serverNonce: string): SignedSubscribe {
  const clientNonce = randomToken();
  const body = pb.Call.encode(call).finish();
  const bodySha = createHash('sha256').update(body).digest('hex');
  const headers = {
    'Content-Type': 'application/x-protobuf',
    Accept: 'application/recordio',
    'Content-Length': body.length,
    Authorization: `RedFleet-HMAC ${subscribeSignature(fleetKey, agentId, serverNonce, clientNonce, bodySha)}`,
    'X-RedFleet-Agent': agentId,
    'X-RedFleet-Nonce': serverNonce,
    'X-RedFleet-Client-Nonce': clientNonce,
    'X-RedFleet-Body-Sha256': bodySha,
  };
  return { scheduler, fleetKey, serverNonce, clientNonce, body, headers };
}

/**
 * Checks the first frame: it must be SUBSCRIBED, carry the scheduler's proof for this agent,
 * these nonces and this session, and be sealed with the session's event key. Only then does the
 * agent use the session token; a scheduler without the fleet key never gets a call on it.
 */
export function openSession(frame: Buffer, signed: SignedSubscribe, agentId: string): OpenedSession {
  const { fleetKey, clientNonce, serverNonce } = signed;
  const claimed = pb.Event.decode(frame);
  const session = claimed.subscribed?.session ?? '';
  if (claimed.type !== pb.Event.Type.SUBSCRIBED || !session) throw new ProtocolError('the scheduler did not open with SUBSCRIBED and a session');
  const proof = schedulerProof(fleetKey, agentId, clientNonce, serverNonce, session);
  if (!sameSecret(proof, claimed.subscribed?.proof ?? new Uint8Array())) throw new ProtocolError('the scheduler could not prove that it holds the fleet key');
  const key = eventKey(fleetKey, agentId, clientNonce, serverNonce, session);
  const event = openEvent(key, 1, frame);
  return { token: session, key, event };
}

/** A response body of at most 4 KiB, as text (error bodies, the challenge). */
export function readSmall(res: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    res.on('data', (chunk: Buffer) => {
      if (text.length < 4096) text += chunk.toString('utf8');
    });
    res.on('end', () => resolve(text.slice(0, 4096)));
    res.on('error', () => resolve(text.slice(0, 4096)));
  });
}
