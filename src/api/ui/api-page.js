// The API page: renders the scheduler's own OpenAPI document (GET /api/openapi.json, served
// without a token): each route, its method, summary, parameters and request-body fields.

import { h } from './dom.js';

const METHODS = ['get', 'post', 'put', 'patch', 'delete'];
let components = {};

/** A schema with its $ref followed (one level at a time), and the name it was referred by. */
function deref(schema) {
  const ref = schema?.$ref;
  if (!ref) return { schema: schema ?? {}, name: '' };
  const name = ref.split('/').pop();
  return { schema: components[name] ?? {}, name };
}

/** Whether a schema is an object (3.1 writes a nullable one as type ["object", "null"]). */
function isObject(schema) {
  return schema.type === 'object' || (Array.isArray(schema.type) && schema.type.includes('object'));
}

/** A short type: integer, string, "spread" | "binpack", BackupSchedule, array of Agent. */
function typeOf(raw) {
  const { schema, name } = deref(raw);
  if (schema.allOf) return typeOf(schema.allOf[0]);
  if (schema.anyOf || schema.oneOf) return (schema.anyOf ?? schema.oneOf).map(typeOf).join(' or ');
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(' | ');
  if (schema.type === 'array') return `array of ${typeOf(schema.items)}`;
  if (name && isObject(schema)) return name;
  const type = Array.isArray(schema.type) ? schema.type.filter((t) => t !== 'null').join(' or ') : schema.type;
  return type ?? (name || 'any');
}

/** What a value must be: bounds, pattern, lengths. */
function rules(raw) {
  const { schema } = deref(raw);
  const base = schema.allOf ? deref(schema.allOf[0]).schema : schema;
  const out = [];
  if (base.minimum !== undefined) out.push(`≥ ${base.minimum}`);
  if (base.maximum !== undefined) out.push(`≤ ${base.maximum}`);
  if (base.minLength !== undefined) out.push(`length ≥ ${base.minLength}`);
  if (base.maxLength !== undefined) out.push(`length ≤ ${base.maxLength}`);
  if (base.pattern) out.push(`matches ${base.pattern}`);
  return out.join(', ');
}

function description(raw) {
  const { schema } = deref(raw);
  return raw?.description ?? schema.description ?? (schema.allOf ? deref(schema.allOf[0]).schema.description : '') ?? '';
}

/** The fields of an object schema, nested objects as "backup.everyMinutes". */
function fields(raw, prefix = '', depth = 0) {
  const { schema } = deref(raw);
  const object = schema.allOf ? deref(schema.allOf[0]).schema : schema;
  const required = new Set(object.required ?? []);
  return Object.entries(object.properties ?? {}).flatMap(([key, prop]) => {
    const name = `${prefix}${key}`;
    const row = { name, type: typeOf(prop), required: required.has(key), rules: rules(prop), text: description(prop) };
    const inner = deref(prop.allOf ? prop.allOf[0] : prop).schema;
    const nested = depth < 2 && isObject(inner) && inner.properties ? fields(inner, `${name}.`, depth + 1) : [];
    return [row, ...nested];
  });
}

const COLUMNS = ['Name', 'Type', 'Required', 'Rules', 'Description'];

/** A table of fields; on a phone each row is a card whose cells carry their column name. */
function fieldTable(caption, rows) {
  const head = h('tr', {}, COLUMNS.map((t) => h('th', { scope: 'col' }, t)));
  const cells = (r) => [h('code', {}, r.name), r.type, r.required ? 'yes' : 'no', r.rules, r.text]
    .map((value, i) => h('td', { 'data-label': COLUMNS[i] }, h('div', { class: 'value' }, value)));
  const body = rows.map((r) => h('tr', {}, cells(r)));
  return h('div', { class: 'scroll' }, h('table', { class: 'cards' }, h('caption', { class: 'api-caption' }, caption), h('thead', {}, head), h('tbody', {}, body)));
}

function parameterRows(op) {
  return (op.parameters ?? []).map((p) => ({ name: p.name, type: `${typeOf(p.schema)} (${p.in})`, required: Boolean(p.required), rules: rules(p.schema), text: description(p) || description(p.schema) }));
}

/** The request body: its fields, or each alternative's when it is one of several shapes. */
function bodyParts(op) {
  const content = op.requestBody?.content ?? {};
  const schema = content['application/json']?.schema;
  if (!schema) return [];
  const need = op.requestBody.required ? 'required' : 'optional';
  const { schema: resolved, name } = deref(schema);
  const alternatives = resolved.anyOf ?? resolved.oneOf;
  if (alternatives) return alternatives.map((alt, i) => fieldTable(`JSON body (${need}), shape ${i + 1} of ${alternatives.length}: ${deref(alt).name}`, fields(alt)));
  if (resolved.type === 'array') return [fieldTable(`JSON body (${need}): an array of ${typeOf(resolved.items)}`, fields(resolved.items))];
  return [fieldTable(`JSON body (${need})${name ? `: ${name}` : ''}`, fields(schema))];
}

function answers(op) {
  return h('p', { class: 'note' }, 'Answers: ', Object.entries(op.responses ?? {}).map(([code, r]) => `${code} ${r.description}`).join('; '));
}

function anchor(method, path) {
  const words = path.split(/[^A-Za-z0-9]+/).filter(Boolean);
  return ['op', method, ...words].join('-');
}

function route(method, path, op) {
  const open = Array.isArray(op.security) && op.security.length === 0;
  const params = parameterRows(op);
  return h('article', { class: 'api-route', id: anchor(method, path) },
    h('h2', {}, h('span', { class: `method method-${method}` }, method.toUpperCase()), ' ', h('code', {}, path)),
    h('p', {}, op.summary ?? '', ' ', h('span', { class: `badge tone-${open ? 'ok' : 'info'}` }, open ? 'no token' : 'token')),
    params.length ? fieldTable('Path parameters', params) : null,
    bodyParts(op),
    answers(op));
}

function operations(doc) {
  return Object.entries(doc.paths ?? {}).flatMap(([path, item]) => METHODS.filter((m) => item[m]).map((m) => ({ method: m, path, op: item[m] })));
}

async function main() {
  const info = document.getElementById('api-info');
  try {
    const res = await fetch('/api/openapi.json', { headers: { Accept: 'application/json' }, cache: 'no-store', credentials: 'omit' });
    if (!res.ok) throw new Error(`${res.status} ${res.statusText}`);
    const doc = await res.json();
    components = doc.components?.schemas ?? {};
    const ops = operations(doc);
    info.textContent = `${doc.info?.title ?? 'API'} ${doc.info?.version ?? ''}, OpenAPI ${doc.openapi}: ${ops.length} routes`;
    document.getElementById('api-index').replaceChildren(h('ul', { class: 'plain api-list' }, ops.map((o) => h('li', {}, h('a', { href: `#${anchor(o.method, o.path)}` }, `${o.method.toUpperCase()} ${o.path}`)))));
    document.getElementById('api-routes').replaceChildren(...ops.map((o) => route(o.method, o.path, o.op)));
    if (location.hash) document.getElementById(location.hash.slice(1))?.scrollIntoView();
  } catch (err) {
    info.textContent = `Could not read /api/openapi.json: ${err.message}`;
  }
}

void main();
