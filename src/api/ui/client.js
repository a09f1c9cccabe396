// The dashboard's calls to the scheduler's API. The admin token lives in sessionStorage (this
// tab only) and travels in the Authorization header; it is never put in an address.

const TOKEN_KEY = 'redfleet.adminToken';

export function storedToken() {
  return sessionStorage.getItem(TOKEN_KEY) ?? '';
}

export function keepToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** A refusal from the API: its HTTP status and the {"error":{"code","message","field"}} body. */
export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

async function send(method, path, token, body) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  return fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
    credentials: 'omit',
  });
}

async function readJson(res) {
  const text = await res.text();
  try {
    return text ? JSON.parse(text) : undefined;
  } catch {
    return undefined;
  }
}

/** One API call with the stored token; the parsed answer, or an ApiError. */
export async function call(method, path, body) {
  const res = await send(method, path, storedToken(), body);
  const json = await readJson(res);
  if (res.ok) return json;
  const err = json?.error;
  throw new ApiError(res.status, err?.code ?? `HTTP_${res.status}`, err?.message ?? `${res.status} ${res.statusText}`, err?.field);
}

/** /healthz, whatever its status (503 still carries the body). */
export async function health() {
  const res = await send('GET', '/healthz', '');
  return (await readJson(res)) ?? { ok: false };
}

/**
 * Whether this token (or none) may read the fleet: GET /api/agents answers 200 (yes), 401 (no
 * token, or one the scheduler does not know) or 403 (an instance's access key, not an admin's).
 */
export async function probe(token) {
  const res = await send('GET', '/api/agents', token);
  await res.text();
  return res.status;
}
