// The dashboard: signs in when the scheduler needs a token, then polls the API every second
// (EventSource cannot send an Authorization header, and a token must never go in an address).

import { ApiError, call, forgetToken, health, keepToken, probe, storedToken } from './client.js';
import { formatTime } from './format.js';
import { renderAgents, renderDetail, renderInstances } from './views.js';

const POLL_MS = 1000;
const $ = (id) => document.getElementById(id);

const state = { timer: 0, live: false, busy: false, again: false, selected: '', pendingDelete: '' };

// ---- signing in -----------------------------------------------------------------------------

const REFUSALS = {
  401: 'That token is not accepted: it matches no admin token of this scheduler.',
  403: 'That is an instance\'s access key; the dashboard needs an admin token.',
};

function showLogin(message) {
  stopLive();
  $('live').hidden = true;
  $('sign-out').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message ?? '';
  $('token').value = '';
  $('token').focus();
}

async function signIn(event) {
  event.preventDefault();
  const token = $('token').value.trim();
  if (!token) {
    $('login-error').textContent = 'Enter an admin token.';
    return;
  }
  const status = await probe(token).catch(() => 0);
  if (status !== 200) {
    $('login-error').textContent = REFUSALS[status] ?? `The scheduler did not answer (${status || 'no connection'}); try again.`;
    $('token').select();
    return;
  }
  keepToken(token);
  $('token').value = '';
  startLive(true);
}

function signOut() {
  forgetToken();
  showLogin('Signed out.');
}

/** Open mode (no token needed), a stored token that still works, or the sign-in form. */
async function begin() {
  const token = storedToken();
  const status = await probe(token).catch(() => 0);
  if (status === 200) return startLive(Boolean(token));
  if (token) forgetToken();
  if (status === 401 || status === 403) return showLogin(token ? 'The stored token is no longer accepted; sign in again.' : '');
  $('health').textContent = 'The scheduler does not answer; retrying…';
  setTimeout(begin, 2000);
}

// ---- the live view --------------------------------------------------------------------------

function startLive(withToken) {
  $('login').hidden = true;
  $('live').hidden = false;
  $('sign-out').hidden = !withToken;
  state.live = true;
  void tick();
}

function stopLive() {
  state.live = false;
  clearTimeout(state.timer);
}

function showHealth(h) {
  const leader = h.leader ? 'leader' : h.leaderApi ? `standby (leader: ${h.leaderApi})` : 'standby';
  const ok = h.ok ? 'healthy' : 'unhealthy';
  const refused = h.refusedAgents?.length ? `; refusing ${h.refusedAgents.map((r) => r.agent).join(', ')} (${h.refusedAgents[0].reason})` : '';
  $('health').textContent = `Scheduler ${ok}, ${leader}; ${h.agents ?? 0} agents connected, ${h.instances ?? 0} instances${refused}`;
}

/** One poll; false when the token stopped working (the sign-in form is shown instead). */
async function refresh() {
  try {
    const [h, agents, instances] = await Promise.all([health(), call('GET', '/api/agents'), call('GET', '/api/instances')]);
    if (!state.live) return false;
    showHealth(h);
    renderAgents(agents);
    renderInstances(instances);
    showSelected(instances);
    $('feed').textContent = `Live: updated ${formatTime(new Date().toISOString())}, every second.`;
    $('feed').classList.remove('stale');
  } catch (err) {
    if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
      forgetToken();
      showLogin('The token is no longer accepted; sign in again.');
      return false;
    }
    $('feed').textContent = `Not updating: ${err.message}. Retrying every second.`;
    $('feed').classList.add('stale');
  }
  return state.live;
}

/**
 * Polls now, then every second. One poll at a time: a call while one runs (after a create, say)
 * asks for another as soon as it ends.
 */
async function tick() {
  if (state.busy) {
    state.again = true;
    return;
  }
  clearTimeout(state.timer);
  state.busy = true;
  const go = await refresh();
  state.busy = false;
  if (!go) return;
  if (state.again) {
    state.again = false;
    return tick();
  }
  state.timer = setTimeout(tick, POLL_MS);
}

// ---- one instance's detail -------------------------------------------------------------------

function showSelected(instances) {
  if (!state.selected) return;
  const inst = instances.find((i) => i.name === state.selected);
  if (!inst) return closeDetail();
  renderDetail(inst);
}

async function openDetail(name) {
  state.selected = name;
  $('detail').hidden = false;
  renderDetail(await call('GET', `/api/instances/${encodeURIComponent(name)}`).catch(() => undefined));
  $('detail-title').scrollIntoView({ block: 'nearest' });
  $('detail-close').focus();
}

function closeDetail() {
  state.selected = '';
  $('detail').hidden = true;
}

// ---- create ------------------------------------------------------------------------------------

function createBody(form) {
  const data = new FormData(form);
  const body = { name: String(data.get('name')).trim(), capacityMb: Number(data.get('capacityMb')), replicas: Number(data.get('replicas')) };
  const ttl = String(data.get('ttlSeconds') ?? '').trim();
  if (ttl !== '') body.ttlSeconds = Number(ttl);
  return body;
}

function markField(form, field) {
  for (const input of form.querySelectorAll('input')) input.removeAttribute('aria-invalid');
  const bad = field && form.querySelector(`[name="${CSS.escape(field)}"]`);
  if (bad) {
    bad.setAttribute('aria-invalid', 'true');
    bad.focus();
  }
}

async function create(event) {
  event.preventDefault();
  const form = event.target;
  const button = form.querySelector('button[type="submit"]');
  button.disabled = true;
  $('create-error').textContent = '';
  try {
    const inst = await call('POST', '/api/instances', createBody(form));
    markField(form, '');
    form.reset();
    $('create-box').open = false;
    showSecrets(inst);
    void tick();
  } catch (err) {
    $('create-error').textContent = err.message;
    markField(form, err.field);
  } finally {
    button.disabled = false;
  }
}

function showSecrets(inst) {
  $('secrets-name').textContent = inst.name;
  $('secret-password').value = inst.password ?? '';
  $('secret-key').value = inst.accessKey ?? '';
  $('copy-note').textContent = '';
  $('secrets').showModal();
}

/** The secrets leave the page once the dialog closes: they are shown once. */
function clearSecrets() {
  $('secret-password').value = '';
  $('secret-key').value = '';
}

async function copy(button) {
  const input = $(button.dataset.copy);
  const what = button.textContent.replace(/^Copy /, '');
  try {
    if (!navigator.clipboard) throw new Error('no clipboard API');
    await navigator.clipboard.writeText(input.value);
    $('copy-note').textContent = `Copied the ${what}.`;
  } catch {
    // Plain http from another host is no secure context, and has no navigator.clipboard.
    input.focus();
    input.select();
    const done = document.execCommand('copy');
    $('copy-note').textContent = done ? `Copied the ${what}.` : `Could not copy: the ${what} is selected, copy it with Ctrl+C.`;
  }
}

// ---- delete ------------------------------------------------------------------------------------

function askDelete(name) {
  state.pendingDelete = name;
  $('confirm-name').textContent = name;
  $('confirm-delete').showModal();
}

async function confirmDelete() {
  const name = state.pendingDelete;
  $('confirm-delete').close('delete');
  state.pendingDelete = '';
  try {
    await call('DELETE', `/api/instances/${encodeURIComponent(name)}`);
    $('action-note').textContent = `Deleting ${name}.`;
    void tick();
  } catch (err) {
    $('action-note').textContent = `Could not delete ${name}: ${err.message}`;
  }
}

// ---- wiring ------------------------------------------------------------------------------------

function onTableClick(event) {
  const target = event.target.closest('button');
  if (!target) return;
  if (target.dataset.show) void openDetail(target.dataset.show);
  if (target.dataset.delete) askDelete(target.dataset.delete);
}

function wire() {
  $('login-form').addEventListener('submit', signIn);
  $('sign-out').addEventListener('click', signOut);
  $('create-form').addEventListener('submit', create);
  $('instances').addEventListener('click', onTableClick);
  $('detail-close').addEventListener('click', closeDetail);
  $('confirm-cancel').addEventListener('click', () => $('confirm-delete').close('cancel'));
  $('confirm-ok').addEventListener('click', confirmDelete);
  // Cleared before the dialog closes: its 'close' event comes in a later task (it also covers Escape).
  $('secrets-done').addEventListener('click', () => {
    clearSecrets();
    $('secrets').close();
  });
  $('secrets').addEventListener('close', clearSecrets);
  for (const b of document.querySelectorAll('button.copy')) b.addEventListener('click', () => copy(b));
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && state.live) void tick();
  });
}

wire();
void begin();
