import { PassThrough } from 'node:stream';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { encodeFrame } from '../proto/recordio.js';
import { pb } from '../proto/messages.js';
import type { redfleet } from '../proto/redfleet.js';
import { BodyTooLargeError, readBody } from '../net.js';
import { agentToken, sameSecret } from '../store/secrets.js';
import type { Logger } from '../logger.js';
import type { EventSink, OfferBroker } from './broker.js';

export const AGENT_PATH = '/api/v1/agent';
const MAX_CALL_BYTES = 1024 * 1024;

/**
 * The agents' side of the scheduler's HTTP API: `POST /api/v1/agent` with a protobuf `Call`.
 * SUBSCRIBE answers 200 and keeps the response open as a RecordIO stream of `Event`s;
 * UPDATE answers 202 once the status is durable, and the ACKNOWLEDGED event follows on the stream.
 */
export class AgentEndpoint {
  constructor(private readonly broker: OfferBroker, private readonly log: Logger, private readonly fleetKey: string) {}

  /** An agent proves it holds the fleet key: Bearer HMAC(fleet key, "agent:<id>"). */
  private authentic(req: IncomingMessage, agentId: string): boolean {
    const header = req.headers.authorization ?? '';
    const token = header.startsWith('Bearer ') ? header.slice(7) : '';
    return token !== '' && sameSecret(token, agentToken(this.fleetKey, agentId));
  }

  static owns(req: IncomingMessage): boolean {
    return (req.url ?? '').split('?')[0] === AGENT_PATH;
  }

  /** Handles an agent call in full (see `owns`). */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    if (req.method !== 'POST') return this.reply(res, 405, 'METHOD_NOT_ALLOWED', 'agent calls are POST');
    let call: redfleet.v1.Call;
    try {
      const body = await readBody(req, MAX_CALL_BYTES);
      call = pb.Call.decode(body);
    } catch (err) {
      if (err instanceof BodyTooLargeError) return this.reply(res, 413, 'BODY_TOO_LARGE', err.message);
      return this.reply(res, 400, 'BAD_PROTOBUF', `body is not a valid Call: ${(err as Error).message}`);
    }
    const claimed = call.subscribe?.agent_info?.id?.value ?? call.agent_id?.value ?? '';
    if (!this.authentic(req, claimed)) {
      this.log.warn('agent call refused: bad or missing fleet-key token', { agent: claimed.slice(0, 64), peer: req.socket.remoteAddress });
      return this.reply(res, 401, 'UNAUTHENTICATED', 'agent calls need Authorization: Bearer <token derived from the fleet key>');
    }
    if (call.type === pb.Call.Type.SUBSCRIBE) return this.subscribe(call, req, res);
    if (call.type === pb.Call.Type.UPDATE) return this.update(call, res);
    return this.reply(res, 400, 'BAD_CALL', `call type ${call.type} is not supported`);
  }

  private subscribe(call: redfleet.v1.Call, req: IncomingMessage, res: ServerResponse): boolean {
    const sub = call.subscribe;
    const agentId = sub?.agent_info?.id?.value ?? '';
    if (!sub || !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(agentId)) {
      return this.reply(res, 400, 'BAD_SUBSCRIBE', 'SUBSCRIBE needs agent_info.id made of letters, digits, "_", "." or "-"');
    }
    res.writeHead(200, { 'Content-Type': 'application/recordio', 'Record-IO-Content-Type': 'application/x-protobuf', 'Cache-Control': 'no-cache' });
    req.socket.setNoDelay(true);
    req.socket.setTimeout(0);
    const stream = new PassThrough();
    stream.pipe(res);
    let open = true;
    const sink: EventSink = {
      send: (event) => {
        if (open) stream.write(encodeFrame(pb.Event.encode(event).finish()));
      },
      close: () => {
        if (!open) return;
        open = false;
        stream.end();
      },
    };
    res.on('close', () => {
      open = false;
      this.broker.disconnected(agentId, sink);
    });
    this.broker.subscribe(sub.agent_info, sub.tasks ?? [], sink);
    for (const u of sub.unacknowledged_updates ?? []) {
      void this.broker.update(agentId, u.status).catch((err: Error) => this.log.error('replayed update failed', { agent: agentId, error: err.message }));
    }
    return true;
  }

  private async update(call: redfleet.v1.Call, res: ServerResponse): Promise<boolean> {
    const status = call.update?.status;
    const agentId = call.agent_id?.value ?? '';
    if (!status || !agentId) return this.reply(res, 400, 'BAD_UPDATE', 'UPDATE needs agent_id and update.status');
    try {
      await this.broker.update(agentId, status);
    } catch (err) {
      this.log.error('status update failed', { agent: agentId, proc: status.task_id.value, error: (err as Error).message });
      return this.reply(res, 503, 'NOT_PERSISTED', 'status update not persisted; retry');
    }
    res.writeHead(202).end();
    return true;
  }

  private reply(res: ServerResponse, status: number, code: string, message: string): boolean {
    if (!res.headersSent) res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ error: { code, message } }));
    return true;
  }
}
