/**
 * bench/startup/template: one real instance's etcd keys, to stamp a synthetic fleet from.
 *
 * Why a recorded template rather than records built here: the keys of a RUNNING instance are
 * written by several hands (the API's create, the creator's placement, the maintainer's status
 * updates, the agent's Pid, Stats and Msg resets), and any list kept in the benchmark would drift
 * from them as fields are added. A real scheduler with three real agents (real redis-servers)
 * creates one instance of 1 master + 2 replicas; once it is RUNNING and every proc's agent has
 * written its Stats, every key under the instance is copied. The stamp (fill.ts) changes only
 * what names one instance, proc or agent, and checks that nothing of the template's identity is
 * left in any key or value.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Etcd3 } from 'etcd3';
import type { LocalFleet } from '../../test/harness/local-fleet.js';
import { Keys } from '../../src/store/keys.js';

export const TEMPLATE_NAME = 'startuptemplate';
export const CAPACITY_MB = 16;

/** One proc of the template: its id and its keys below `Procs/<id>/`. */
export interface TemplateProc {
  id: string;
  fields: Map<string, string>;
}

export interface Template {
  name: string;
  /** Keys directly under the instance (`Status`, `Mname`, ...), by field. */
  fields: Map<string, string>;
  /** Replica proc ids under `Snames/` (their values). */
  snames: Map<string, string>;
  /** The master first, then the replicas, each with every key etcd holds for it. */
  procs: TemplateProc[];
}

/** Creates the template instance on `fleet` (real agents), waits until it is whole, and copies its keys. */
export async function recordTemplate(fleet: LocalFleet, etcd: Etcd3, keys: Keys, timeoutMs = 60_000): Promise<Template> {
  const res = await fleet.api('POST', '/api/instances', { name: TEMPLATE_NAME, capacityMb: CAPACITY_MB, replicas: 2 });
  if (res.status !== 202) throw new Error(`creating the template instance failed: ${res.status} ${res.text.slice(0, 200)}`);
  await fleet.waitForStatus(TEMPLATE_NAME, 'RUNNING', timeoutMs);
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; Date.now() < deadline && i < timeoutMs / 250; i++) {
    const template = parseTemplate(await etcd.getAll().prefix(keys.instance(TEMPLATE_NAME)).strings(), keys);
    if (template && isWhole(template)) return template;
    await sleep(250);
  }
  throw new Error(`the template instance did not have 3 RUNNING procs with Stats and a Pid within ${timeoutMs} ms`);
}

/** The template from its keys (full etcd paths), or undefined while its master or a proc is missing. */
function parseTemplate(kvs: Record<string, string>, keys: Keys): Template | undefined {
  const fields = new Map<string, string>();
  const snames = new Map<string, string>();
  const procs = new Map<string, Map<string, string>>();
  const root = keys.instance(TEMPLATE_NAME);
  for (const [key, value] of Object.entries(kvs)) {
    const rel = key.slice(root.length).split('/');
    if (rel.length === 1) fields.set(rel[0], value);
    else if (rel[0] === 'Snames' && rel.length === 2) snames.set(rel[1], value);
    else if (rel[0] === 'Procs' && rel.length === 3) procs.set(rel[1], (procs.get(rel[1]) ?? new Map()).set(rel[2], value));
    else throw new Error(`the template has a key this benchmark does not know how to copy: ${key}`);
  }
  const master = fields.get('Mname');
  if (!master || !procs.has(master)) return undefined;
  const ordered = [master, ...[...procs.keys()].filter((id) => id !== master).sort()];
  return { name: TEMPLATE_NAME, fields, snames, procs: ordered.map((id) => ({ id, fields: procs.get(id)! })) };
}

/** RUNNING, three RUNNING procs on three agents, each with its Pid and the Stats its agent wrote. */
function isWhole(t: Template): boolean {
  if (t.fields.get('Status') !== 'RUNNING' || t.procs.length !== 3) return false;
  if (new Set(t.procs.map((p) => p.fields.get('SID'))).size !== 3) return false;
  return t.procs.every((p) => p.fields.get('State') === 'RUNNING' && Boolean(p.fields.get('Stats')) && Number(p.fields.get('Pid')) > 0);
}
