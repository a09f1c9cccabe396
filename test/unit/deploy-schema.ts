import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

/**
 * The small schema of the keys deploy/compose.yaml uses (the compose specification has many more:
 * a key outside this list is a mistake here, or a key this check must learn). Used only when
 * `docker compose config` cannot run.
 */
const TOP_KEYS = new Set(['name', 'services', 'networks', 'volumes', 'secrets']);
const SERVICE_KEYS = new Set(['image', 'build', 'hostname', 'command', 'environment', 'restart', 'healthcheck', 'secrets',
  'depends_on', 'networks', 'ports', 'volumes']);
const RESTART = new Set(['no', 'always', 'on-failure', 'unless-stopped']);
const HEALTH_KEYS = new Set(['test', 'interval', 'timeout', 'retries', 'start_period']);
const CONDITIONS = new Set(['service_started', 'service_healthy', 'service_completed_successfully']);
const DURATION = /^\d+(ms|s|m|h)$/;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const keysOf = (v: unknown): string[] => (isObj(v) ? Object.keys(v) : Array.isArray(v) ? v.map(String) : []);

/** Every problem found in a parsed compose file (merge keys already resolved), as `where: what`. */
export function composeProblems(doc: unknown, dir: string): string[] {
  const out: string[] = [];
  if (!isObj(doc)) return ['top: not a mapping'];
  for (const k of Object.keys(doc)) if (!TOP_KEYS.has(k) && !k.startsWith('x-')) out.push(`top: unknown key '${k}'`);
  if (!isObj(doc.services)) return [...out, 'services: missing'];
  const names = { services: Object.keys(doc.services), networks: keysOf(doc.networks), volumes: keysOf(doc.volumes), secrets: keysOf(doc.secrets) };
  for (const [name, svc] of Object.entries(doc.services)) out.push(...serviceProblems(name, svc, names, dir));
  for (const [name, secret] of Object.entries(isObj(doc.secrets) ? doc.secrets : {})) {
    if (!isObj(secret) || typeof secret.file !== 'string') out.push(`secrets.${name}: needs file`);
  }
  return out;
}

interface Names { services: string[]; networks: string[]; volumes: string[]; secrets: string[] }

function serviceProblems(name: string, svc: unknown, names: Names, dir: string): string[] {
  const at = `services.${name}`;
  if (!isObj(svc)) return [`${at}: not a mapping`];
  const out = Object.keys(svc).filter((k) => !SERVICE_KEYS.has(k)).map((k) => `${at}: unknown key '${k}'`);
  if (typeof svc.image !== 'string' && svc.build === undefined) out.push(`${at}: needs image or build`);
  if (isObj(svc.build)) {
    const dockerfile = resolve(dir, String(svc.build.context ?? '.'), String(svc.build.dockerfile ?? 'Dockerfile'));
    if (!existsSync(dockerfile)) out.push(`${at}.build: ${dockerfile} does not exist`);
  }
  if (!RESTART.has(String(svc.restart))) out.push(`${at}.restart: '${String(svc.restart)}' is not one of ${[...RESTART].join(', ')}`);
  out.push(...healthProblems(at, svc.healthcheck));
  if (svc.command !== undefined && !Array.isArray(svc.command)) out.push(`${at}.command: use a list (no shell word splitting)`);
  for (const s of Array.isArray(svc.secrets) ? svc.secrets : []) {
    const source = isObj(s) ? s.source : s;
    if (!names.secrets.includes(String(source))) out.push(`${at}.secrets: '${String(source)}' is not defined`);
  }
  for (const [dep, cond] of Object.entries(isObj(svc.depends_on) ? svc.depends_on : {})) {
    if (!names.services.includes(dep)) out.push(`${at}.depends_on: no service '${dep}'`);
    if (!isObj(cond) || !CONDITIONS.has(String(cond.condition))) out.push(`${at}.depends_on.${dep}: bad condition`);
  }
  for (const n of keysOf(svc.networks)) if (!names.networks.includes(n)) out.push(`${at}.networks: '${n}' is not defined`);
  for (const v of Array.isArray(svc.volumes) ? svc.volumes : []) {
    const source = String(v).split(':')[0];
    if (!source.startsWith('.') && !source.startsWith('/') && !names.volumes.includes(source)) out.push(`${at}.volumes: '${source}' is not defined`);
  }
  return out;
}

function healthProblems(at: string, hc: unknown): string[] {
  if (!isObj(hc)) return [`${at}: needs a healthcheck`];
  const out = Object.keys(hc).filter((k) => !HEALTH_KEYS.has(k)).map((k) => `${at}.healthcheck: unknown key '${k}'`);
  if (!Array.isArray(hc.test) || !['CMD', 'CMD-SHELL'].includes(String(hc.test[0]))) out.push(`${at}.healthcheck.test: must be ["CMD", ...] or ["CMD-SHELL", ...]`);
  for (const k of ['interval', 'timeout', 'start_period']) {
    if (hc[k] !== undefined && !DURATION.test(String(hc[k]))) out.push(`${at}.healthcheck.${k}: '${String(hc[k])}' is not a duration`);
  }
  return out;
}

/** A systemd unit file as section -> key -> values (a key may repeat; continuation lines joined). */
export function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const units = new Map<string, Map<string, string[]>>();
  let section = new Map<string, string[]>();
  const lines = text.replace(/\\\n/g, ' ').split('\n');
  for (const raw of lines) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const head = /^\[(.+)\]$/.exec(line);
    if (head) { section = new Map(); units.set(head[1], section); continue; }
    const eq = line.indexOf('=');
    const key = line.slice(0, eq).trim();
    section.set(key, [...(section.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return units;
}
