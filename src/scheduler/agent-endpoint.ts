import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import ipaddr from 'ipaddr.js';
import { encodeFrame } from '../proto/recordio.js';
import { sealEvent } from '../proto/sealed-event.js';
import { pb } from '../proto/messages.js';
import type { redfleet } from '../proto/redfleet.js';
import { BodyTooLargeError, readBody } from '../net.js';
import { AgentConnectedError, BodyTimeoutError, NotYourProcError } from '../errors.js';
import { eventKey, randomToken, sameSecret, schedulerProof, subscribeSignature } from '../store/secrets.js';
import type { Logger } from '../logger.js';
import type { EventSink, OfferBroker } from './broker.js';
import { AGENT_PATH, CHALLENGE_PATH } from '../proto/routes.js';

export { AGENT_PATH, CHALLENGE_PATH };

/** Headers of a signed SUBSCRIBE (see docs/hardening/session.md). */
export const AGENT_HEADER = 'x-redfleet-agent';
export const NONCE_HEADER = 'x-redfleet-nonce';
export const CLIENT_NONCE_HEADER = 'x-redfleet-client-nonce';
export const BODY_SHA256_HEADER = 'x-redfleet-body-sha256';
/** `Authorization: RedFleet-HMAC <signature>` on SUBSCRIBE, `RedFleet-Session <token>` on every later call. */
export const HMAC_SCHEME = 'RedFleet-HMAC';
export const SESSION_SCHEME = 'RedFleet-Session';

/** A SUBSCRIBE lists every task of the agent: 1 MiB holds thousands. Read only once its headers are authentic. */
const MAX_SUBSCRIBE_BYTES = 1024 * 1024;
/** UPDATE and HEARTBEAT calls are a few hundred bytes. */
const MAX_CALL_BYTES = 64 * 1024;
/** An authenticated caller still has to send its body promptly. */
const BODY_TIMEOUT_MS = 5000;
/** A refused caller's connection is closed if it has not finished sending its body by then. */
const REFUSED_LINGER_MS = 2000;
const NONCE_TTL_MS = 30_000;
/** Outstanding nonces kept at most; the oldest make room (a flood can only delay a real agent's retry). */
const MAX_NONCES = 10_000;
/** How long the current stream of an agent has to answer a heartbeat before a second SUBSCRIBE may replace it. */
const PROBE_MS = 2000;
/** /healthz stays not-ok this long after an agent that holds procs was refused. */
const REFUSAL_MEMORY_MS = 30_000;
const AGENT_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const NONCE = /^[A-Za-z0-9_-]{16,128}$/;

interface Session {
  token: string;
  agentId: string;
  sink: EventSink;
}

export interface Refusal {
  agent: string;
  at: string;
  reason: string;
}

/**
 * The agents' side of the scheduler's HTTP API.
 * - `GET /api/v1/agent/challenge` hands out a single-use nonce (30 s).
 * - `POST /api/v1/agent` SUBSCRIBE, signed in its headers with the fleet key over that nonce:
 *   answers 200 and keeps the response open as a RecordIO stream of sealed `Event`s, the first
 *   being SUBSCRIBED with the session token and the scheduler's proof.
 * - `POST /api/v1/agent` UPDATE / HEARTBEAT with `Authorization: RedFleet-Session <token>`: act
 *   only as the session's agent. A session ends with its stream.
 * Everything that can be checked from headers is checked before a byte of body is read.
 */
export class AgentEndpoint {
  private readonly nonces = new Map<string, number>();
  private readonly sessions = new Map<string, Session>();
  private readonly refusals = new Map<string, { at: number; reason: string }>();
  private readonly fleetKeys: string[];

  /** `fleetKeys`: the current fleet key first, then the previous one during a rotation. */
  constructor(private readonly broker: OfferBroker, private readonly log: Logger, fleetKeys: string | string[]) {
    this.fleetKeys = (Array.isArray(fleetKeys) ? fleetKeys : [fleetKeys]).filter((k) => k.length > 0);
  }

  static owns(req: IncomingMessage): boolean {
    const path = (req.url ?? '').split('?')[0];
    return path === AGENT_PATH || path === CHALLENGE_PATH;
  }

  /** Agents that hold live procs and were refused lately (a scheduler with the wrong fleet key, a forged id). */
  refusedAgents(): Refusal[] {
    const now = Date.now();
    const out: Refusal[] = [];
    for (const [agent, r] of this.refusals) {
      if (now - r.at > REFUSAL_MEMORY_MS) this.refusals.delete(agent);
      else out.push({ agent, at: new Date(r.at).toISOString(), reason: r.reason });
    }
    return out;
  }

  /** Handles an agent call in full (see `owns`). */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    if ((req.url ?? '').split('?')[0] === CHALLENGE_PATH) return this.challenge(req, res);
    if (req.method !== 'POST') return this.refuse(req, res, 405, 'METHOD_NOT_ALLOWED', 'agent calls are POST');
    const auth = req.headers.authorization ?? '';
    if (auth.startsWith(`${SESSION_SCHEME} `)) return this.sessionCall(auth.slice(SESSION_SCHEME.length + 1), req, res);
    if (auth.startsWith(`${HMAC_SCHEME} `)) return this.subscribe(auth.slice(HMAC_SCHEME.length + 1), req, res);
    this.log.warn('agent call refused: no session and no signed SUBSCRIBE', { peer: req.socket.remoteAddress });
    return this.refuse(req, res, 401, 'UNAUTHENTICATED', `agent calls need Authorization: ${SESSION_SCHEME} <token>, or a SUBSCRIBE signed with the fleet key (${HMAC_SCHEME})`);
  }

  // ---- challenge ----

  private challenge(req: IncomingMessage, res: ServerResponse): boolean {
    if (req.method !== 'GET') return this.refuse(req, res, 405, 'METHOD_NOT_ALLOWED', 'the agent challenge is GET');
    req.resume();
    const now = Date.now();
    for (const [nonce, expires] of this.nonces) {
      if (expires > now && this.nonces.size < MAX_NONCES) break;
      this.nonces.delete(nonce);
    }
    const nonce = randomToken();
    this.nonces.set(nonce, now + NONCE_TTL_MS);
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
    res.end(JSON.stringify({ nonce, expiresInSeconds: NONCE_TTL_MS / 1000 }));
    return true;
  }

  /** Removes the nonce whatever the outcome, so each one is tried once. */
  private takeNonce(nonce: string): boolean {
    const expires = this.nonces.get(nonce);
    this.nonces.delete(nonce);
    return expires !== undefined && expires > Date.now();
  }

  // ---- SUBSCRIBE ----

  private async subscribe(signature: string, req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const agentId = header(req, AGENT_HEADER);
    const serverNonce = header(req, NONCE_HEADER);
    const clientNonce = header(req, CLIENT_NONCE_HEADER);
    const bodySha = header(req, BODY_SHA256_HEADER);
    if (!AGENT_ID.test(agentId) || !NONCE.test(serverNonce) || !NONCE.test(clientNonce) || !/^[0-9a-f]{64}$/.test(bodySha)) {
      return this.refuse(req, res, 400, 'BAD_SUBSCRIBE', `a signed SUBSCRIBE needs the ${AGENT_HEADER}, ${NONCE_HEADER}, ${CLIENT_NONCE_HEADER} and ${BODY_SHA256_HEADER} headers`);
    }
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (!Number.isInteger(declared)) return this.refuse(req, res, 411, 'LENGTH_REQUIRED', 'SUBSCRIBE needs a Content-Length');
    if (declared > MAX_SUBSCRIBE_BYTES) return this.refuse(req, res, 413, 'BODY_TOO_LARGE', `SUBSCRIBE is over the ${MAX_SUBSCRIBE_BYTES}-byte limit`);
    const peer = normalise(req.socket.remoteAddress ?? '');
    if (!this.takeNonce(serverNonce)) {
      return this.refuseAgent(req, res, agentId, peer, 'nonce unknown, used or expired (a replayed or stale SUBSCRIBE)', `GET ${CHALLENGE_PATH} for a fresh nonce and sign again`);
    }
    const fleetKey = this.fleetKeys.find((k) => sameSecret(signature, subscribeSignature(k, agentId, serverNonce, clientNonce, bodySha)));
    if (!fleetKey) return this.refuseAgent(req, res, agentId, peer, 'bad signature: not signed with this fleet key', 'check that the agent has the same --fleet-key file as the scheduler');

    const call = await this.readCall(req, res, MAX_SUBSCRIBE_BYTES, bodySha);
    if (!call) return true;
    const sub = call.subscribe;
    if (call.type !== pb.Call.Type.SUBSCRIBE || !sub || sub.agent_info?.id?.value !== agentId) {
      return this.reply(res, 400, 'BAD_SUBSCRIBE', `the signed body must be a SUBSCRIBE for agent '${agentId}'`);
    }
    const address = this.addressOf(sub.agent_info, agentId, peer);
    if (!address) return this.reply(res, 400, 'BAD_ADDRESS', 'agent_info.ip must be the IP address the agent\'s redis-servers listen on');
    if (this.broker.connected(agentId) && !(await this.replaceable(agentId, peer))) {
      const conflict = new AgentConnectedError(agentId);
      return this.reply(res, conflict.status, conflict.code, conflict.message);
    }
    if (res.destroyed || req.socket.destroyed) return true;
    this.open(agentId, clientNonce, serverNonce, fleetKey, address, sub, req, res);
    return true;
  }

  /**
   * The address the agent's redis-servers are announced at. It comes from the signed SUBSCRIBE
   * body, not from the connection: an agent may reach the scheduler through another interface
   * (or NAT) than the one its redis-servers serve on, and only a holder of the fleet key can sign
   * it. It must be an IP literal; a mismatch with the connection is logged. An agent that sends
   * no ip (one from before the field) sent its address in hostname.
   */
  private addressOf(info: redfleet.v1.IAgentInfo, agentId: string, peer: string): string | undefined {
    const claimed = info.ip || info.hostname || '';
    if (isIP(claimed) === 0) {
      this.log.warn('agent SUBSCRIBE refused: address is not an IP literal', { agent: agentId, address: claimed.slice(0, 64), peer });
      return undefined;
    }
    const address = normalise(claimed);
    if (address !== peer) this.log.warn('agent announces an address other than the one it connects from', { agent: agentId, address, peer });
    return address;
  }

  /** A second SUBSCRIBE for a connected agent: the old stream must be proven gone first. */
  private async replaceable(agentId: string, peer: string): Promise<boolean> {
    if (await this.broker.probe(agentId, PROBE_MS)) {
      this.log.warn('agent SUBSCRIBE refused: the agent is connected and answers heartbeats', { agent: agentId, peer });
      return false;
    }
    this.broker.dropStream(agentId, 'a new SUBSCRIBE came and the old stream did not answer a heartbeat');
    return true;
  }

  private open(agentId: string, clientNonce: string, serverNonce: string, fleetKey: string, address: string, sub: redfleet.v1.Call.ISubscribe, req: IncomingMessage, res: ServerResponse): void {
    const token = randomToken(32);
    const key = eventKey(fleetKey, agentId, clientNonce, serverNonce, token);
    res.writeHead(200, { 'Content-Type': 'application/recordio', 'Record-IO-Content-Type': 'application/x-protobuf', 'Cache-Control': 'no-cache' });
    req.socket.setNoDelay(true);
    req.socket.setTimeout(0);
    let open = true;
    let seq = 0;
    let backedUpSince = 0;
    res.on('drain', () => {
      backedUpSince = 0;
    });
    const sink: EventSink = {
      send: (event) => {
        if (!open) return;
        seq += 1;
        const flowing = res.write(encodeFrame(sealEvent(key, seq, event)));
        if (!flowing && backedUpSince === 0) backedUpSince = Date.now();
      },
      close: (abort = false) => {
        if (!open) return;
        open = false;
        if (abort) res.destroy();
        else res.end();
      },
      backedUpSince: () => backedUpSince,
    };
    const session: Session = { token, agentId, sink };
    this.sessions.set(token, session);
    this.refusals.delete(agentId);
    res.on('close', () => {
      open = false;
      this.sessions.delete(token);
      this.broker.disconnected(agentId, sink);
    });
    this.broker.subscribe(sub.agent_info, address, sub.tasks ?? [], sink, { session: token, proof: schedulerProof(fleetKey, agentId, clientNonce, serverNonce, token) });
    for (const u of sub.unacknowledged_updates ?? []) void this.applyUpdate(agentId, u.status).catch(() => undefined);
  }

  // ---- calls within a session ----

  private async sessionCall(token: string, req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const session = this.sessions.get(token);
    if (!session) return this.refuse(req, res, 401, 'SESSION_ENDED', 'this session has ended (its stream closed); SUBSCRIBE again');
    const call = await this.readCall(req, res, MAX_CALL_BYTES);
    if (!call) return true;
    const { agentId } = session;
    // The body may name an agent (Mesos's fields); it must be the session's own.
    const claimed = [call.agent_id?.value, call.update?.status?.agent_id?.value].find((id) => id && id !== agentId);
    if (claimed) {
      this.log.warn('agent call refused: it names another agent than its session', { agent: agentId, claimed: claimed.slice(0, 64), peer: req.socket.remoteAddress });
      return this.reply(res, 403, 'AGENT_MISMATCH', `this session belongs to agent '${agentId}'; it cannot speak for '${claimed.slice(0, 64)}'`);
    }
    this.broker.heardFrom(agentId, session.sink);
    if (call.type === pb.Call.Type.HEARTBEAT) {
      res.writeHead(202).end();
      return true;
    }
    if (call.type !== pb.Call.Type.UPDATE) return this.reply(res, 400, 'BAD_CALL', `call type ${call.type} is not supported within a session`);
    const status = call.update?.status;
    if (!status) return this.reply(res, 400, 'BAD_UPDATE', 'UPDATE needs update.status');
    try {
      await this.applyUpdate(agentId, status);
    } catch (err) {
      if (err instanceof NotYourProcError) return this.reply(res, 403, err.code, err.message);
      return this.reply(res, 503, 'NOT_PERSISTED', 'status update not persisted; retry');
    }
    res.writeHead(202).end();
    return true;
  }

  /** A status update, acting as `agentId` only; refusals are logged here, once. */
  private async applyUpdate(agentId: string, status: redfleet.v1.ITaskStatus): Promise<void> {
    const proc = status.task_id.value;
    try {
      await this.broker.update(agentId, status);
    } catch (err) {
      if (err instanceof NotYourProcError) this.log.warn('status update refused: the proc belongs to another agent', { agent: agentId, proc, state: pb.TaskState[status.state] });
      else this.log.error('status update failed', { agent: agentId, proc, error: (err as Error).message });
      throw err;
    }
  }

  // ---- bodies and replies ----

  /** Reads and decodes the body of an authenticated call; on failure replies and resolves undefined. */
  private async readCall(req: IncomingMessage, res: ServerResponse, limit: number, sha256?: string): Promise<redfleet.v1.Call | undefined> {
    let body: Buffer;
    try {
      body = await readBody(req, limit, BODY_TIMEOUT_MS);
    } catch (err) {
      if (err instanceof BodyTooLargeError) this.refuse(req, res, 413, 'BODY_TOO_LARGE', err.message);
      else if (err instanceof BodyTimeoutError) this.refuse(req, res, 408, err.code, err.message);
      else req.socket.destroy();
      return undefined;
    }
    if (sha256 !== undefined && createHash('sha256').update(body).digest('hex') !== sha256) {
      this.reply(res, 401, 'UNAUTHENTICATED', `the body does not match its signed ${BODY_SHA256_HEADER}`);
      return undefined;
    }
    try {
      return pb.Call.decode(body);
    } catch (err) {
      this.reply(res, 400, 'BAD_PROTOBUF', `body is not a valid Call: ${(err as Error).message}`);
      return undefined;
    }
  }

  /** A 401 for a SUBSCRIBE in an agent's name; remembered for /healthz when that agent holds procs. */
  private refuseAgent(req: IncomingMessage, res: ServerResponse, agentId: string, peer: string, reason: string, hint: string): boolean {
    this.log.warn(`agent SUBSCRIBE refused: ${reason}`, { agent: agentId, peer });
    if (this.broker.holdsProcs(agentId)) this.refusals.set(agentId, { at: Date.now(), reason });
    return this.refuse(req, res, 401, 'UNAUTHENTICATED', `${reason}; ${hint}`);
  }

  /**
   * Replies without reading the body: whatever the caller still sends is discarded as it comes
   * (never buffered), and a caller that has not finished within REFUSED_LINGER_MS is cut off.
   */
  private refuse(req: IncomingMessage, res: ServerResponse, status: number, code: string, message: string): boolean {
    req.resume();
    if (!req.complete) {
      const linger = setTimeout(() => {
        if (!req.complete) req.socket.destroy();
      }, REFUSED_LINGER_MS);
      linger.unref();
      req.once('end', () => clearTimeout(linger));
    }
    return this.reply(res, status, code, message);
  }

  private reply(res: ServerResponse, status: number, code: string, message: string): boolean {
    if (res.writableEnded || res.destroyed) return true;
    if (!res.headersSent) res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ error: { code, message } }));
    return true;
  }
}

function header(req: IncomingMessage, name: string): string {
  const value = req.headers[name];
  return typeof value === 'string' ? value : '';
}

/** An address as one canonical string: IPv4-mapped IPv6 becomes IPv4, IPv6 its short form. */
function normalise(address: string): string {
  try {
    return ipaddr.process(address).toString();
  } catch {
    return address;
  }
}
