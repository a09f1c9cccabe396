import { setTimeout as sleep } from 'node:timers/promises';
import { progress } from './progress.js';

/** How the client commands speak the JSON API: the base URL, the token, one call, and waiting. */

export function apiBase(flag: string | boolean | undefined, tokenFlag?: string | boolean): string {
  if (typeof tokenFlag === 'string') token = tokenFlag;
  const raw = typeof flag === 'string' ? flag : process.env.REDFLEET_API ?? 'http://127.0.0.1:5656';
  return (/^https?:\/\//.test(raw) ? raw : `http://${raw}`).replace(/\/$/, '');
}

export interface ApiReply {
  status: number;
  body: Record<string, unknown> & { error?: { code: string; message: string } };
}

let token = process.env.REDFLEET_TOKEN ?? '';

export async function call(base: string, method: string, path: string, body?: unknown): Promise<ApiReply> {
  let res: Response;
  const headers: Record<string, string> = body === undefined ? {} : { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  try {
    res = await fetch(`${base}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new Error(`cannot reach the RedFleet API at ${base} (${(err as Error).cause ?? (err as Error).message}); is the scheduler running? Set --api or REDFLEET_API`);
  }
  const text = await res.text();
  let parsed: ApiReply['body'] = {};
  try {
    parsed = text ? JSON.parse(text) : {};
  } catch {
    parsed = { text } as ApiReply['body'];
  }
  if (res.status >= 400) throw new Error(parsed.error ? `${parsed.error.code}: ${parsed.error.message}` : `HTTP ${res.status}`);
  return { status: res.status, body: parsed };
}

export const apiFlag = { api: { type: 'string' as const }, token: { type: 'string' as const } };

export const CONNECTION_FLAGS = `  --api URL            the scheduler's API; default $REDFLEET_API, else http://127.0.0.1:5656
  --token TOKEN        an admin token or the instance's access key; default $REDFLEET_TOKEN.
                       A flag shows in \`ps\` to every local user: prefer REDFLEET_TOKEN.
  -h, --help           this text`;

/**
 * Follows operation `opId` of an instance until it ends, showing its progress on `stream`: a spinner
 * with the current step on a terminal, else one line per change (`resize: copying ... (12 s)`).
 * Resolves when it is done; throws with its error when it failed, or after `seconds`.
 */
export async function waitForOperation(base: string, name: string, opId: string, seconds: number, stream: NodeJS.WriteStream = process.stdout): Promise<Record<string, unknown>> {
  const shown = progress(stream);
  try {
    return await followOperation(base, name, opId, seconds, shown.step);
  } finally {
    shown.done();
  }
}

async function followOperation(base: string, name: string, opId: string, seconds: number, step: (line: string) => void): Promise<Record<string, unknown>> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const { body } = await call(base, 'GET', `/api/instances/${encodeURIComponent(name)}`);
    const op = body.operation as { id: string; kind: string; state: string; step: string; error?: string } | null;
    if (!op || op.id !== opId) throw new Error(`operation ${opId} on ${name} was replaced by another; see 'redfleet status ${name}'`);
    step(`${op.kind}: ${op.state === 'running' ? op.step : op.state}`);
    if (op.state === 'done') return body;
    if (op.state === 'failed') throw new Error(`${op.kind} of ${name} failed: ${op.error ?? op.step}`);
    if (Date.now() >= deadline) throw new Error(`gave up waiting for the ${op.kind} of ${name} after ${seconds} s: ${op.step}`);
    await sleep(Math.min(200, Math.max(0, deadline - Date.now())));
  }
}
