/**
 * bench/startup/fill: a synthetic fleet stamped from the template (template.ts) and written to
 * etcd in bulk.
 *
 * Instance i is `st<i>`; its procs take slots 3i, 3i+1, 3i+2, and slot s lives on agent
 * `sim<s % agents>` (the simulator's names and 127.1.x.y addresses, bench/sim/sim-fleet.ts) at
 * port 7000 + floor(s / agents): three distinct agents per instance, a distinct address and port
 * per proc, the procs spread evenly over the agents. Everything else is the template's, byte for
 * byte, but the per-instance secrets' hashes, which are drawn afresh.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Etcd3, IRequestOp } from 'etcd3';
import { Keys } from '../../src/store/keys.js';
import { simAgentIp } from '../sim/sim-fleet.js';
import type { Template } from './template.js';

const FIRST_PORT = 7000;
/** Keys per etcd transaction (etcd must run with --max-txn-ops at least this). */
const KEYS_PER_TXN = 400;
export const MAX_TXN_OPS = 1024;
/** Transactions in flight at once. */
const PARALLEL_TXNS = 8;
const TXN_ATTEMPTS = 3;

export interface Shape {
  instances: number;
  agents: number;
}

export function instanceName(i: number): string {
  return `st${i}`;
}

/** Where slot `slot` (proc k of instance i is slot 3i + k) lives. */
function placeOf(slot: number, agents: number): { agent: string; ip: string; port: number } {
  const a = slot % agents;
  return { agent: `sim${a}`, ip: simAgentIp(a), port: FIRST_PORT + Math.floor(slot / agents) };
}

/** Per-proc keys that name where the proc runs: written from its slot, not copied. */
const PLACED_FIELDS = new Set(['Instance', 'Nodename', 'IP', 'Port', 'Pid', 'SID', 'EID']);
/** Per-instance secrets' hashes: drawn afresh, so that no two instances share one. */
const SECRET_FIELDS = new Set(['PasswordHash', 'AccessKeyHash']);

/** What names the template: strings that must not survive a stamp. */
function identityOf(t: Template): string[] {
  return [
    t.name,
    ...t.procs.map((p) => p.id),
    ...t.procs.map((p) => p.fields.get('SID') ?? ''),
    ...t.procs.map((p) => `${p.fields.get('IP')}:${p.fields.get('Port')}`),
  ].filter(Boolean);
}

/** Every key and value of instance `i`, with its full etcd path. */
function stampInstance(t: Template, keys: Keys, i: number, agents: number): [string, string][] {
  const name = instanceName(i);
  const ids = t.procs.map(() => `${name}::${randomUUID()}`);
  const places = t.procs.map((_, k) => placeOf(3 * i + k, agents));
  // The template's ids and addresses in a value (Mname, SlaveOf, a Msg, Failovers) become this instance's.
  const swaps: [string, string][] = t.procs.flatMap((p, k) => [
    [p.id, ids[k]],
    [`${p.fields.get('IP')}:${p.fields.get('Port')}`, `${places[k].ip}:${places[k].port}`],
    [`${p.fields.get('IP')} ${p.fields.get('Port')}`, `${places[k].ip} ${places[k].port}`],
  ] as [string, string][]);
  swaps.push([t.name, name]);
  const rewrite = (v: string): string => swaps.reduce((s, [from, to]) => (s.includes(from) ? s.split(from).join(to) : s), v);
  const out: [string, string][] = [];
  for (const [field, value] of t.fields) out.push([keys.instanceField(name, field), SECRET_FIELDS.has(field) ? randomBytes(32).toString('hex') : rewrite(value)]);
  for (const [id, value] of t.snames) out.push([keys.sname(name, rewrite(id)), value]);
  t.procs.forEach((p, k) => {
    const placed: Record<string, string> = {
      Instance: name,
      Nodename: `sim-${places[k].agent}`,
      IP: places[k].ip,
      Port: String(places[k].port),
      Pid: String(10_000 + ((3 * i + k) % 4_000_000)),
      SID: places[k].agent,
      EID: (p.fields.get('EID') ?? '').split(p.fields.get('SID') ?? '\0').join(places[k].agent),
    };
    for (const [field, value] of p.fields) out.push([keys.procField(name, ids[k], field), PLACED_FIELDS.has(field) ? placed[field] : rewrite(value)]);
  });
  return out;
}

/** Throws when a stamped key or value still carries the template's identity (a field this stamp does not know). */
function checkStamp(t: Template, stamped: [string, string][]): void {
  const identity = identityOf(t);
  for (const [key, value] of stamped) {
    const left = identity.find((s) => key.includes(s) || value.includes(s));
    if (left) throw new Error(`the stamp left the template's '${left}' in ${key} = ${value.slice(0, 120)}`);
  }
}

/**
 * Writes the whole fleet: instances stamped in groups of about KEYS_PER_TXN keys, one
 * transaction each (no compare: puts only), PARALLEL_TXNS at a time. Returns keys and bytes written.
 */
export async function fillFleet(etcd: Etcd3, t: Template, keys: Keys, shape: Shape, progress: (done: number) => void): Promise<{ keys: number; bytes: number }> {
  checkStamp(t, stampInstance(t, keys, 0, shape.agents));
  const perTemplate = t.fields.size + t.snames.size + t.procs.reduce((n, p) => n + p.fields.size, 0);
  const perTxn = Math.max(1, Math.floor(KEYS_PER_TXN / perTemplate));
  let next = 0;
  let done = 0;
  let written = 0;
  let bytes = 0;
  const worker = async (): Promise<void> => {
    while (next < shape.instances) {
      const first = next;
      const end = Math.min(shape.instances, first + perTxn);
      next = end;
      const ops: IRequestOp[] = [];
      for (let i = first; i < end; i++) {
        for (const [k, v] of stampInstance(t, keys, i, shape.agents)) {
          ops.push({ request_put: { key: Buffer.from(k), value: Buffer.from(v) } });
          bytes += k.length + v.length;
        }
      }
      await commit(etcd, ops);
      written += ops.length;
      done += end - first;
      progress(done);
    }
  };
  await Promise.all(Array.from({ length: PARALLEL_TXNS }, worker));
  return { keys: written, bytes };
}

async function commit(etcd: Etcd3, ops: IRequestOp[]): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await etcd.kv.txn({ success: ops });
      return;
    } catch (err) {
      if (attempt >= TXN_ATTEMPTS) throw err;
    }
  }
}
