import { isIP } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pb } from '../proto/messages.js';
import type { redfleet } from '../proto/redfleet.js';
import { AgentConnectedError, NotYourProcError } from '../errors.js';
import { eventKey, randomToken, sameSecret, schedulerProof, subscribeSignature } from '../store/secrets.js';
import type { Logger } from '../logger.js';
import type { EventSink, OfferBroker } from './broker.js';
import { header, normalise, readCall, refuse, reply } from './agent-call.js';
import { AgentChallenge } from './agent-challenge.js';
import { openEventStream } from './agent-event-stream.js';
import { AGENT_PATH, BACKUP_PATH, CHALLENGE_PATH } from '../proto/routes.js';
import { serveBackup, type AgentBackupSource } from './agent-backup-route.js';
import type { AgentReports } from './agent-reports.js';

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
/**
 * UPDATE and HEARTBEAT calls are a few hundred bytes; a REPORT carries about 450 bytes per proc of
 * the agent, so it gets the room of a SUBSCRIBE, which lists every task too.
 */
const MAX_CALL_BYTES = MAX_SUBSCRIBE_BYTES;
/** How long (in the scheduler's awake time) the current stream of an agent has to answer a heartbeat before a second SUBSCRIBE may replace it. */
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
 * - `POST /api/v1/agent` UPDATE / HEARTBEAT / REPORT with `Authorization: RedFleet-Session
 *   <token>`: act only as the session's agent and on its own procs. A session ends with its stream.
 * Everything that can be checked from headers is checked before a byte of body is read.
 */
export class AgentEndpoint {
  private readonly challenges = new AgentChallenge();
  private readonly sessions = new Map<string, Session>();
  private readonly refusals = new Map<string, { at: number; reason: string }>();
  private readonly fleetKeys: string[];

  /**
   * `fleetKeys`: the current fleet key first, then the previous one during a rotation. `reports`
   * takes REPORT calls; without it they are answered and dropped.
   */
  constructor(
    private readonly broker: OfferBroker,
    private readonly log: Logger,
    fleetKeys: string | string[],
    private readonly backups?: AgentBackupSource,
    private readonly reports?: AgentReports,
  ) {
    this.fleetKeys = (Array.isArray(fleetKeys) ? fleetKeys : [fleetKeys]).filter((k) => k.length > 0);
  }

  static owns(req: IncomingMessage): boolean {
    const path = (req.url ?? '').split('?')[0];
    return path === AGENT_PATH || path === CHALLENGE_PATH || path === BACKUP_PATH;
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
    const path = (req.url ?? '').split('?')[0];
    if (path === CHALLENGE_PATH) return this.challenge(req, res);
    if (path === BACKUP_PATH) return this.backupFetch(req, res);
    if (req.method !== 'POST') return refuse(req, res, 405, 'METHOD_NOT_ALLOWED', 'agent calls are POST');
    const auth = req.headers.authorization ?? '';
    if (auth.startsWith(`${SESSION_SCHEME} `)) return this.sessionCall(auth.slice(SESSION_SCHEME.length + 1), req, res);
    if (auth.startsWith(`${HMAC_SCHEME} `)) return this.subscribe(auth.slice(HMAC_SCHEME.length + 1), req, res);
    this.log.warn('agent call refused: no session and no signed SUBSCRIBE', { peer: req.socket.remoteAddress });
    return refuse(req, res, 401, 'UNAUTHENTICATED', `agent calls need Authorization: ${SESSION_SCHEME} <token>, or a SUBSCRIBE signed with the fleet key (${HMAC_SCHEME})`);
  }

  // ---- challenge ----

  private challenge(req: IncomingMessage, res: ServerResponse): boolean {
    if (req.method !== 'GET') return refuse(req, res, 405, 'METHOD_NOT_ALLOWED', 'the agent challenge is GET');
    req.resume();
    this.challenges.issue(res);
    return true;
  }

  // ---- SUBSCRIBE ----

  private async subscribe(signature: string, req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const agentId = header(req, AGENT_HEADER);
    const serverNonce = header(req, NONCE_HEADER);
    const clientNonce = header(req, CLIENT_NONCE_HEADER);
    const bodySha = header(req, BODY_SHA256_HEADER);
    if (!AGENT_ID.test(agentId) || !NONCE.test(serverNonce) || !NONCE.test(clientNonce) || !/^[0-9a-f]{64}$/.test(bodySha)) {
      return refuse(req, res, 400, 'BAD_SUBSCRIBE', `a signed SUBSCRIBE needs the ${AGENT_HEADER}, ${NONCE_HEADER}, ${CLIENT_NONCE_HEADER} and ${BODY_SHA256_HEADER} headers`);
    }
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (!Number.isInteger(declared)) return refuse(req, res, 411, 'LENGTH_REQUIRED', 'SUBSCRIBE needs a Content-Length');
    if (declared > MAX_SUBSCRIBE_BYTES) return refuse(req, res, 413, 'BODY_TOO_LARGE', `SUBSCRIBE is over the ${MAX_SUBSCRIBE_BYTES}-byte limit`);
    const peer = normalise(req.socket.remoteAddress ?? '');
    if (!this.challenges.take(serverNonce)) {
      return this.refuseAgent(req, res, agentId, peer, 'nonce unknown, used or expired (a replayed or stale SUBSCRIBE)', `GET ${CHALLENGE_PATH} for a fresh nonce and sign again`);
    }
    const fleetKey = this.fleetKeys.find((k) => sameSecret(signature, subscribeSignature(k, agentId, serverNonce, clientNonce, bodySha)));
    if (!fleetKey) return this.refuseAgent(req, res, agentId, peer, 'bad signature: not signed with this fleet key', 'check that the agent has the same --fleet-key file as the scheduler');

    const call = await readCall(req, res, MAX_SUBSCRIBE_BYTES, bodySha, BODY_SHA256_HEADER);
    if (!call) return true;
    const sub = call.subscribe;
    if (call.type !== pb.Call.Type.SUBSCRIBE || !sub || sub.agent_info?.id?.value !== agentId) {
      return reply(res, 400, 'BAD_SUBSCRIBE', `the signed body must be a SUBSCRIBE for agent '${agentId}'`);
    }
    const address = this.addressOf(sub.agent_info, agentId, peer);
    if (!address) return reply(res, 400, 'BAD_ADDRESS', 'agent_info.ip must be the IP address the agent\'s redis-servers listen on');
    if (this.broker.connected(agentId) && !(await this.replaceable(agentId, peer))) {
      const conflict = new AgentConnectedError(agentId);
      return reply(res, conflict.status, conflict.code, conflict.message);
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
    const sink = openEventStream(req, res, key, (closed) => {
      this.sessions.delete(token);
      this.broker.disconnected(agentId, closed);
    });
    this.sessions.set(token, { token, agentId, sink });
    this.refusals.delete(agentId);
    this.broker.subscribe(sub.agent_info, address, sub.tasks ?? [], sink, { session: token, proof: schedulerProof(fleetKey, agentId, clientNonce, serverNonce, token) });
    for (const u of sub.unacknowledged_updates ?? []) void this.applyUpdate(agentId, u.status).catch(() => undefined);
  }

  // ---- calls within a session ----

  /** A restored master's backup, for the agent that seeds it (see agent-backup-route.ts). */
  private async backupFetch(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const auth = req.headers.authorization ?? '';
    const session = auth.startsWith(`${SESSION_SCHEME} `) ? this.sessions.get(auth.slice(SESSION_SCHEME.length + 1)) : undefined;
    if (!session) return refuse(req, res, 401, 'UNAUTHENTICATED', `a backup fetch needs Authorization: ${SESSION_SCHEME} <token> of a live session`);
    return serveBackup(req, res, session.agentId, this.backups, this.log);
  }

  private async sessionCall(token: string, req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const session = this.sessions.get(token);
    if (!session) return refuse(req, res, 401, 'SESSION_ENDED', 'this session has ended (its stream closed); SUBSCRIBE again');
    const call = await readCall(req, res, MAX_CALL_BYTES);
    if (!call) return true;
    const { agentId } = session;
    // The body may name an agent (Mesos's fields); it must be the session's own.
    const claimed = [call.agent_id?.value, call.update?.status?.agent_id?.value].find((id) => id && id !== agentId);
    if (claimed) {
      this.log.warn('agent call refused: it names another agent than its session', { agent: agentId, claimed: claimed.slice(0, 64), peer: req.socket.remoteAddress });
      return reply(res, 403, 'AGENT_MISMATCH', `this session belongs to agent '${agentId}'; it cannot speak for '${claimed.slice(0, 64)}'`);
    }
    this.broker.heardFrom(agentId, session.sink);
    if (call.type === pb.Call.Type.HEARTBEAT || call.type === pb.Call.Type.REPORT) {
      // A heartbeat answer carries the procs' latest figures; a REPORT of its own, a proc the
      // agent found silent or busy. Entries about another agent's procs are skipped and logged
      // (AgentReports.accept); the rest is taken.
      if (call.report) this.reports?.accept(agentId, call.report);
      res.writeHead(202).end();
      return true;
    }
    if (call.type !== pb.Call.Type.UPDATE) return reply(res, 400, 'BAD_CALL', `call type ${call.type} is not supported within a session`);
    const status = call.update?.status;
    if (!status) return reply(res, 400, 'BAD_UPDATE', 'UPDATE needs update.status');
    try {
      await this.applyUpdate(agentId, status);
    } catch (err) {
      if (err instanceof NotYourProcError) return reply(res, 403, err.code, err.message);
      return reply(res, 503, 'NOT_PERSISTED', 'status update not persisted; retry');
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

  /** A 401 for a SUBSCRIBE in an agent's name; remembered for /healthz when that agent holds procs. */
  private refuseAgent(req: IncomingMessage, res: ServerResponse, agentId: string, peer: string, reason: string, hint: string): boolean {
    this.log.warn(`agent SUBSCRIBE refused: ${reason}`, { agent: agentId, peer });
    if (this.broker.holdsProcs(agentId)) this.refusals.set(agentId, { at: Date.now(), reason });
    return refuse(req, res, 401, 'UNAUTHENTICATED', `${reason}; ${hint}`);
  }
}
