import { createHash } from 'node:crypto';
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import { FrameDecoder } from '../../src/proto/recordio.js';
import { openEvent } from '../../src/proto/sealed-event.js';
import { pb } from '../../src/proto/messages.js';
import type { redfleet } from '../../src/proto/redfleet.js';
import { eventKey, randomToken, schedulerProof, subscribeSignature } from '../../src/store/secrets.js';

export interface SignedSubscribe {
  headers: Record<string, string>;
  body: Buffer;
  clientNonce: string;
  serverNonce: string;
}

export interface CallResult {
  status: number;
  text: string;
}

/**
 * A hand-driven agent that speaks the real agent protocol, for tests that play a forged,
 * replaying or duplicate agent: it signs with whatever key it is given, keeps every event it is
 * sent, and answers heartbeats only when told to.
 */
export class ProtocolAgent {
  readonly events: redfleet.v1.Event[] = [];
  session = '';
  status = 0;
  closed = false;
  answerHeartbeats = true;
  private stream?: ClientRequest;

  constructor(readonly apiUrl: string, readonly id: string, readonly fleetKey: string) {}

  static async challenge(apiUrl: string): Promise<string> {
    const res = await fetch(`${apiUrl}/api/v1/agent/challenge`);
    return ((await res.json()) as { nonce: string }).nonce;
  }

  /** A SUBSCRIBE signed over a fresh nonce: the headers and body an agent would send. */
  static async sign(apiUrl: string, id: string, fleetKey: string, info: { hostname: string; ip?: string; tasks?: redfleet.v1.ITaskInfo[] }): Promise<SignedSubscribe> {
    const serverNonce = await ProtocolAgent.challenge(apiUrl);
    const clientNonce = randomToken();
    const body = Buffer.from(pb.Call.encode({
      type: pb.Call.Type.SUBSCRIBE,
      subscribe: {
        agent_info: { hostname: info.hostname, ip: info.ip, id: { value: id }, resources: [
          { name: 'cpus', type: pb.Value.Type.SCALAR, scalar: { value: 4 } },
          { name: 'mem', type: pb.Value.Type.SCALAR, scalar: { value: 4096 } },
          { name: 'ports', type: pb.Value.Type.RANGES, ranges: { range: [{ begin: 41000, end: 41100 }] } },
        ] },
        tasks: info.tasks ?? [],
      },
    }).finish());
    const sha = createHash('sha256').update(body).digest('hex');
    return {
      body,
      clientNonce,
      serverNonce,
      headers: {
        'Content-Type': 'application/x-protobuf',
        'Content-Length': String(body.length),
        Authorization: `RedFleet-HMAC ${subscribeSignature(fleetKey, id, serverNonce, clientNonce, sha)}`,
        'X-RedFleet-Agent': id,
        'X-RedFleet-Nonce': serverNonce,
        'X-RedFleet-Client-Nonce': clientNonce,
        'X-RedFleet-Body-Sha256': sha,
      },
    };
  }

  /** Sends a signed SUBSCRIBE; resolves with its HTTP status once known (the stream stays open on 200). */
  subscribe(signed: SignedSubscribe): Promise<number> {
    return new Promise((resolve) => {
      const req = request(`${this.apiUrl}/api/v1/agent`, { method: 'POST', agent: false, headers: signed.headers });
      this.stream = req;
      req.on('response', (res: IncomingMessage) => {
        this.status = res.statusCode ?? 0;
        resolve(this.status);
        if (this.status !== 200) {
          res.resume();
          return;
        }
        const decoder = new FrameDecoder();
        let key: Buffer | undefined;
        let seq = 0;
        res.on('data', (chunk: Buffer) => {
          for (const frame of decoder.push(chunk)) {
            seq += 1;
            if (!key) {
              const first = pb.Event.decode(frame);
              this.session = first.subscribed?.session ?? '';
              const proof = schedulerProof(this.fleetKey, this.id, signed.clientNonce, signed.serverNonce, this.session);
              if (!proof.equals(Buffer.from(first.subscribed?.proof ?? []))) throw new Error('scheduler proof does not match');
              key = eventKey(this.fleetKey, this.id, signed.clientNonce, signed.serverNonce, this.session);
            }
            const event = openEvent(key, seq, frame);
            this.events.push(event);
            if (event.type === pb.Event.Type.HEARTBEAT && this.answerHeartbeats) void this.call({ type: pb.Call.Type.HEARTBEAT });
          }
        });
        res.on('close', () => {
          this.closed = true;
        });
      });
      req.on('error', () => {
        this.closed = true;
        resolve(this.status || -1);
      });
      req.end(signed.body);
    });
  }

  /** A call within this agent's session. */
  call(call: redfleet.v1.ICall, session = this.session): Promise<CallResult> {
    return postCall(this.apiUrl, Buffer.from(pb.Call.encode(call).finish()), { Authorization: `RedFleet-Session ${session}` });
  }

  close(): void {
    this.stream?.destroy();
  }
}

/** POSTs raw bytes to the agent endpoint; resolves with the status and the body text (-1 on a connection error). */
export function postCall(apiUrl: string, body: Buffer, headers: Record<string, string>): Promise<CallResult> {
  return new Promise((resolve) => {
    const req = request(`${apiUrl}/api/v1/agent`, { method: 'POST', headers: { 'Content-Type': 'application/x-protobuf', 'Content-Length': String(body.length), ...headers } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => { text += d.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', () => resolve({ status: -1, text: '' }));
    req.end(body);
  });
}
