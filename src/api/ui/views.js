// The three views: agents, instances, and one instance's processes and failover history.
// Each takes what the API answered and brings its table up to date.

import { badge, bar, h, paint, repaint, row, syncRows } from './dom.js';
import {
  describeReplication, formatDuration, formatMb, formatTime, instanceTone, linkTone, memoryUse, portCount, procTone, replication,
} from './format.js';

const $ = (id) => document.getElementById(id);

function showEmpty(id, empty) {
  $(id).hidden = !empty;
}

// ---- agents ---------------------------------------------------------------------------------

function agentState(a) {
  const parts = [badge(a.connected ? 'connected' : 'disconnected', a.connected ? 'ok' : 'bad')];
  if (a.draining) parts.push(' ', badge(a.left ? `draining, ${a.left} left` : 'drained', 'warn'));
  return parts;
}

function fillAgent(tr, a) {
  const [id, state, cpus, mem, ports, procs] = tr.cells;
  paint(id, [a.id, a.hostname, a.ip], () => [h('strong', {}, a.id), h('br'), h('small', {}, `${a.hostname} · ${a.ip}`)]);
  paint(state, [a.connected, a.draining, a.left], () => agentState(a));
  const cpuUsed = a.total.cpus - a.free.cpus;
  paint(cpus, [cpuUsed, a.total.cpus], () => bar(a.total.cpus ? cpuUsed / a.total.cpus : 0, `${+cpuUsed.toFixed(2)} of ${a.total.cpus}, ${+a.free.cpus.toFixed(2)} free`));
  const memUsed = a.total.mem - a.free.mem;
  paint(mem, [memUsed, a.total.mem], () => bar(a.total.mem ? memUsed / a.total.mem : 0, `${formatMb(memUsed)} of ${formatMb(a.total.mem)}, ${formatMb(a.free.mem)} free`));
  paint(ports, [a.free.ports, a.total.ports], () => `${portCount(a.free.ports)} of ${portCount(a.total.ports)}`);
  paint(procs, a.tasks.length, (n) => String(n));
}

export function renderAgents(agents) {
  const table = $('agents');
  const sorted = [...agents].sort((x, y) => x.id.localeCompare(y.id));
  syncRows(table.tBodies[0], sorted, (a) => a.id, (key) => row(table, key), fillAgent);
  const connected = agents.filter((a) => a.connected).length;
  $('agents-count').textContent = `(${connected} of ${agents.length} connected)`;
  showEmpty('agents-empty', agents.length === 0);
}

// ---- instances ------------------------------------------------------------------------------

function address(p) {
  return `${p.ip}:${p.port}`;
}

function replicaItems(inst) {
  return inst.slaves.map((s) => {
    const r = replication(inst.master, s);
    return { id: s.id, at: address(s), agent: s.agent, link: r.link, text: describeReplication(r) };
  });
}

function drawReplicas(m) {
  const list = h('ul', { class: 'plain' }, m.items.map((r) => h('li', {}, `${r.at} on ${r.agent}: `, badge(`link ${r.link}`, linkTone(r.link)), h('br'), h('small', {}, r.text))));
  return [h('span', {}, `${m.items.length} of ${m.wanted}`), m.items.length ? list : null];
}

function fillInstance(tr, inst) {
  const [name, status, master, replicas, memory, ttl, act] = tr.cells;
  paint(name, inst.name, () => h('button', { type: 'button', class: 'link', 'aria-label': `Show instance ${inst.name}`, 'data-show': inst.name }, inst.name));
  paint(status, [inst.status, inst.reason], () => [badge(inst.status, instanceTone(inst.status)), inst.reason ? h('small', { class: 'reason' }, inst.reason) : null]);
  paint(master, inst.master && [address(inst.master), inst.master.agent], (m) => (m ? [m[0], h('br'), h('small', {}, `on ${m[1]}`)] : h('span', { class: 'muted' }, 'none')));
  paint(replicas, { items: replicaItems(inst), wanted: inst.replicas }, drawReplicas);
  const used = inst.master?.stats?.usedMemory;
  paint(memory, [used ?? null, inst.capacityMb], () => bar(memoryUse(used, inst.capacityMb).share, memoryUse(used, inst.capacityMb).text));
  paint(ttl, inst.ttlRemainingSeconds, (s) => (s === null ? h('span', { class: 'muted' }, 'no TTL') : formatDuration(s)));
  const deletable = inst.status !== 'DELETING' && inst.status !== 'DELETED';
  paint(act, [inst.name, deletable], () => (deletable ? h('button', { type: 'button', class: 'danger small', 'aria-label': `Delete instance ${inst.name}`, 'data-delete': inst.name }, 'Delete') : null));
}

export function renderInstances(instances) {
  const table = $('instances');
  const sorted = [...instances].sort((x, y) => x.name.localeCompare(y.name));
  syncRows(table.tBodies[0], sorted, (i) => i.name, (key) => row(table, key), fillInstance);
  const running = instances.filter((i) => i.status === 'RUNNING').length;
  $('instances-count').textContent = `(${running} of ${instances.length} running)`;
  showEmpty('instances-empty', instances.length === 0);
}

// ---- one instance ---------------------------------------------------------------------------

/** The instance's facts as [label, text] pairs. */
function facts(inst) {
  const list = [
    ['Status', inst.status], ['Type', inst.type], ['Capacity', formatMb(inst.capacityMb)], ['Replicas wanted', String(inst.replicas)],
    ['Epoch', String(inst.epoch)], ['Created', formatTime(inst.createdAt)],
    ['Expires', inst.expiresAt ? `${formatTime(inst.expiresAt)} (in ${formatDuration(inst.ttlRemainingSeconds)})` : 'never'],
    ['Persistence', inst.persistence ?? 'none'],
  ];
  if (inst.reason) list.push(['Reason', inst.reason]);
  if (inst.operation) list.push(['Operation', `${inst.operation.kind ?? ''} ${inst.operation.state ?? ''}`.trim()]);
  return list;
}

function fillProc(tr, p, inst) {
  const master = inst.master;
  const [role, state, at, agent, memory, clients, repl] = tr.cells;
  paint(role, p.role, (r) => h('strong', {}, r));
  paint(state, p.state, (s) => badge(s, procTone(s)));
  paint(at, address(p), (a) => a);
  paint(agent, p.agent, (a) => a);
  const used = p.stats?.usedMemory ?? null;
  paint(memory, [used, inst.capacityMb], () => (used === null ? '–' : memoryUse(used, inst.capacityMb).text));
  paint(clients, p.stats?.clients ?? null, (c) => (c === null ? '–' : String(c)));
  const r = p.role === 'replica' ? replication(master, p) : null;
  paint(repl, [p.role, r, p.stats?.replOffset ?? null], () => (r ? [badge(`link ${r.link}`, linkTone(r.link)), ' ', h('small', {}, describeReplication(r))] : h('span', { class: 'muted' }, p.role === 'master' ? `offset ${p.stats?.replOffset ?? '–'}` : '–')));
}

function fillFailover(tr, f) {
  const [at, cause, kind, from, to, epoch] = tr.cells;
  paint(at, f.at, () => h('time', { datetime: f.at }, formatTime(f.at)));
  paint(cause, f.cause, (c) => c);
  paint(kind, f.planned, (p) => badge(p ? 'planned' : 'unplanned', p ? 'info' : 'warn'));
  paint(from, [f.fromAddress, f.from], () => [f.fromAddress ?? '–', h('br'), h('small', { class: 'id' }, f.from ?? '')]);
  paint(to, [f.toAddress, f.to], () => [f.toAddress ?? '–', h('br'), h('small', { class: 'id' }, f.to ?? '')]);
  paint(epoch, f.epoch, (e) => String(e));
}

/** The detail panel for one instance (undefined: it is gone). */
export function renderDetail(inst) {
  if (!inst) return;
  $('detail-title').textContent = `Instance ${inst.name}`;
  repaint($('detail-facts'), facts(inst), (list) => list.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
  const procs = $('procs');
  const ordered = [...inst.procs].sort((x, y) => (x.role === y.role ? x.id.localeCompare(y.id) : x.role === 'master' ? -1 : 1));
  syncRows(procs.tBodies[0], ordered, (p) => p.id, (key) => row(procs, key), (tr, p) => fillProc(tr, p, inst));
  const failovers = $('failovers');
  const history = inst.failovers ?? [];
  syncRows(failovers.tBodies[0], history, (f) => `${f.epoch}-${f.at}`, (key) => row(failovers, key), fillFailover);
  showEmpty('failovers-empty', history.length === 0);
}
