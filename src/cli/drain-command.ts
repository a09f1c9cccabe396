import { setTimeout as sleep } from 'node:timers/promises';
import { UsageError } from '../errors.js';
import { intFlag, parseFlags } from './args.js';
import { apiBase, apiFlag, call, CONNECTION_FLAGS } from './api-client.js';

/** Agent maintenance: drain and undrain. They speak the JSON API. */

export const DRAIN_HELP = `Usage: redfleet drain AGENT [flags]
Puts an agent under maintenance: it gets no new procs, each of its replicas is replaced on another
agent, each of its masters is switched over to a replica elsewhere first, with no acknowledged write
lost. Done when the agent runs nothing; then it can be patched or replaced. Undo with 'redfleet undrain'.

  --wait               print what is left to move, and why it waits, until the agent is drained
  --timeout SECONDS    with --wait: give up after this long and exit 1 with the reason; default 600
  --output json        print the agent as GET /api/agents shows it (at the end, with --wait); progress
                       lines then go to stderr
${CONNECTION_FLAGS}`;

export const UNDRAIN_HELP = `Usage: redfleet undrain AGENT [flags]
Ends an agent's maintenance: it gets new procs again. Procs already moved stay where they are.

  --output json        print the agent as GET /api/agents shows it
${CONNECTION_FLAGS}`;

const DEFAULT_WAIT_SECONDS = 600;

interface DrainView {
  state: string;
  left: number;
  waitingReason: string;
  moving: string;
}

interface AgentReply {
  id: string;
  draining?: boolean;
  left?: number;
  drain?: DrainView | null;
}

export async function drainCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseFlags(argv, { ...apiFlag, wait: { type: 'boolean' }, timeout: { type: 'string' }, output: { type: 'string' } });
  if (values.help) return void console.log(DRAIN_HELP);
  if (positionals.length !== 1) throw new UsageError('drain takes exactly one AGENT');
  const json = jsonOutput(values.output);
  const say = json ? (line: string) => console.error(line) : (line: string) => console.log(line);
  const waitSeconds = intFlag(values.timeout, 'timeout', DEFAULT_WAIT_SECONDS, 1);
  const base = apiBase(values.api, values.token);
  const agent = positionals[0];
  const { body } = await call(base, 'POST', `/api/agents/${encodeURIComponent(agent)}/drain`);
  const reply = body as unknown as AgentReply;
  say(`agent ${agent}: ${reply.drain?.state ?? 'draining'}, ${reply.left ?? 0} proc(s) to move`);
  const last = values.wait ? await waitForDrain(base, agent, waitSeconds, say) : reply;
  if (json) console.log(JSON.stringify(last, null, 2));
}

export async function undrainCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseFlags(argv, { ...apiFlag, output: { type: 'string' } });
  if (values.help) return void console.log(UNDRAIN_HELP);
  if (positionals.length !== 1) throw new UsageError('undrain takes exactly one AGENT');
  const json = jsonOutput(values.output);
  const base = apiBase(values.api, values.token);
  const { body } = await call(base, 'POST', `/api/agents/${encodeURIComponent(positionals[0])}/undrain`);
  console.log(json ? JSON.stringify(body, null, 2) : `agent ${positionals[0]}: takes new procs again`);
}

/** `--output json` or `--output text` (the default). */
export function jsonOutput(value: string | boolean | undefined): boolean {
  if (value === undefined || value === 'text') return false;
  if (value === 'json') return true;
  throw new UsageError(`--output must be json or text, got '${String(value)}'`);
}

/** One progress line per change ("3 left; moving cache1: replacing replica ..." or "...; waiting: why") until drained. */
async function waitForDrain(base: string, agent: string, seconds: number, say: (line: string) => void): Promise<AgentReply> {
  const started = Date.now();
  let last = '';
  for (;;) {
    const { body } = await call(base, 'GET', '/api/agents');
    const view = (body as unknown as AgentReply[]).find((a) => a.id === agent);
    const drain = view?.drain;
    if (!drain) throw new Error(`agent ${agent} is no longer draining (undrained?)`);
    const line = progressLine({ ...drain, left: view?.left ?? drain.left });
    if (line !== last) say(`drain ${agent}: ${line} (${Math.round((Date.now() - started) / 1000)} s)`);
    last = line;
    if (drain.state === 'drained') return view;
    if (Date.now() - started > seconds * 1000) throw new Error(`gave up waiting for the drain of ${agent} after ${seconds} s: ${line}`);
    await sleep(300);
  }
}

function progressLine(d: DrainView): string {
  if (d.state === 'drained') return 'drained: the agent runs nothing';
  const doing = d.waitingReason ? `waiting: ${d.waitingReason}` : d.moving ? `moving ${d.moving}` : 'looking for the next move';
  return `${d.left} proc(s) left; ${doing}`;
}
