import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ApiContext, ApiRouter } from './request.js';

/**
 * The dashboard: static files built from src/api/ui/ (copied beside this module into
 * dist/src/api/ui/ by scripts/copy-generated.sh), served at GET / and GET /ui/<file> without a
 * token. They hold no data: the page asks for an admin token and sends it with each data call.
 */
const UI_DIR = fileURLToPath(new URL('./ui/', import.meta.url));

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/**
 * Only same-origin scripts, styles and calls; nothing from elsewhere, no inline script, no
 * framing. `img-src data:` lets the empty inline favicon through (no /favicon.ico request).
 */
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
  + "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

interface UiFile {
  body: Buffer;
  type: string;
  etag: string;
}

let files: Map<string, UiFile> | undefined;

/**
 * The files, read once: the build wrote them and nothing changes them while the scheduler runs.
 * Only plain names with a known extension are served, so no request path can name anything
 * outside the folder (a missing folder serves nothing).
 */
function uiFiles(): Map<string, UiFile> {
  if (files) return files;
  const found = new Map<string, UiFile>();
  let names: string[] = [];
  try {
    names = readdirSync(UI_DIR);
  } catch {
    names = [];
  }
  for (const name of names) {
    const type = CONTENT_TYPES[extname(name)];
    if (!type || !/^[a-z0-9-]+\.[a-z]+$/.test(name)) continue;
    const body = readFileSync(UI_DIR + name);
    found.set(name, { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` });
  }
  files = found;
  return found;
}

/** Paths served without a token: the page and its files. */
export function isUiPath(path: string): boolean {
  return path === '/' || path.startsWith('/ui/');
}

function serve(ctx: ApiContext, name: string): void {
  const file = uiFiles().get(name);
  if (!file) {
    ctx.status = 404;
    ctx.body = { error: { code: 'NO_SUCH_FILE', message: `the dashboard has no file '${name.slice(0, 64)}'` } };
    return;
  }
  // Revalidated on every load (a 304 costs one round trip), so a new build is picked up at once.
  ctx.set({
    'Cache-Control': 'no-cache',
    'Content-Security-Policy': CSP,
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
  });
  ctx.etag = file.etag;
  ctx.type = file.type;
  ctx.status = 200;
  if (ctx.fresh) {
    ctx.status = 304;
    return;
  }
  ctx.body = file.body;
}

export function uiRoutes(router: ApiRouter): void {
  router.get('/', (ctx) => serve(ctx, 'index.html'));
  router.get('/ui/:file', (ctx) => serve(ctx, ctx.params.file));
}
