import { expect } from 'chai';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { Redis } from 'ioredis';
import { LocalFleet } from '../harness/local-fleet.js';
import { repoRoot } from '../structure/source-tree.js';

const ADMIN = 'admin-token-for-the-dashboard-test';
const auth = { Authorization: `Bearer ${ADMIN}` };
/** Debian's chromium, installed by scripts/setup.sh; headless, and without the sandbox (CI runs as root). */
const CHROMIUM = process.env.REDFLEET_CHROMIUM ?? '/usr/bin/chromium';

/** The text of one cell of an instance's row in the instances table (1-based column). */
function cell(name: string, column: number): string {
  return `#instances tr[data-key="${name}"] td:nth-child(${column})`;
}

/**
 * A GET's status with node:http: fetch adds `Cache-Control: no-cache` to a request that carries
 * If-None-Match, which asks the server not to answer 304, unlike a browser revalidating.
 */
function statusOf(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    get(url, { headers }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on('error', reject);
  });
}

/** Waits until the selector's text includes `text` (the page polls every second: no reload). */
async function waitForText(page: Page, selector: string, text: string, timeout = 30_000): Promise<void> {
  await page.waitForFunction(([s, t]) => document.querySelector(s)?.textContent?.includes(t) === true, [selector, text] as const, { timeout })
    .catch(async (err: Error) => {
      const seen = await page.locator(selector).first().textContent({ timeout: 1000 }).catch(() => '(absent)');
      throw new Error(`waiting for "${text}" in ${selector}: ${err.message.split('\n')[0]}; it shows "${seen}"`);
    });
}

describe('the dashboard at / in a real browser (Debian chromium)', function () {
  this.timeout(180_000);
  let dir: string;
  let fleet: LocalFleet;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  /** Console errors and failed or refused requests the page made; each step that expects some takes them out. */
  const consoleErrors: string[] = [];
  const badRequests: string[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'redfleet-dashboard-'));
    const tokenFile = join(dir, 'tokens');
    writeFileSync(tokenFile, `${ADMIN}\n`, { mode: 0o600 });
    fleet = await LocalFleet.start({ agents: 3, adminToken: ADMIN, schedulerArgs: ['--api-token-file', tokenFile] });
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
    context = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'light' });
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: fleet.apiUrl });
    page = await watchedPage();
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    await fleet?.stop();
    if (process.env.REDFLEET_KEEP_TEST_DIRS) console.log(`kept ${dir} (screenshots)`);
    else if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('serves its files without a token, with their types and validators, and nothing outside its folder', async () => {
    const index = await fetch(`${fleet.apiUrl}/`);
    expect(index.status).to.equal(200);
    expect(index.headers.get('content-type')).to.equal('text/html; charset=utf-8');
    expect(index.headers.get('content-security-policy')).to.include("script-src 'self'");
    expect(index.headers.get('cache-control')).to.equal('no-cache');
    const etag = index.headers.get('etag') ?? '';
    expect(await statusOf(`${fleet.apiUrl}/`, { 'If-None-Match': etag }), 'revalidated').to.equal(304);
    const types: Record<string, string> = { 'app.js': 'text/javascript; charset=utf-8', 'style.css': 'text/css; charset=utf-8', 'api.html': 'text/html; charset=utf-8' };
    for (const [file, type] of Object.entries(types)) {
      const res = await fetch(`${fleet.apiUrl}/ui/${file}`);
      expect(res.status, file).to.equal(200);
      expect(res.headers.get('content-type'), file).to.equal(type);
    }
    for (const path of ['/ui/..%2Fui-routes.js', '/ui/%2e%2e%2f%2e%2e%2fpackage.json', '/ui/nope.js', '/ui/']) {
      const res = await fetch(`${fleet.apiUrl}${path}`);
      expect(res.status, path).to.equal(404);
    }
    expect((await fetch(`${fleet.apiUrl}/api/instances`)).status, 'the data still needs the token').to.equal(401);
  });

  it('signs in, creates an instance, sees it RUNNING and its failover live, and deletes one through the dialog', async () => {
    await page.goto(`${fleet.apiUrl}/`);
    await signIn();
    const scratch = await fleet.api('POST', '/api/instances', { name: 'scratch', capacityMb: 16, replicas: 0, ttlSeconds: 3600 }, auth);
    expect(scratch.status).to.equal(202);
    await page.evaluate(() => { (window as unknown as { sameDocument: boolean }).sameDocument = true; });

    const password = await createThroughForm();
    await waitForText(page, cell('checkout', 2), 'RUNNING');
    await waitForText(page, cell('checkout', 4), 'link up');
    const running = await fleet.waitForStatus('checkout', 'RUNNING');
    await usePassword(running.master, password);

    await page.getByRole('button', { name: 'Show instance checkout' }).click();
    await waitForText(page, '#detail', 'No failover yet');
    process.kill(running.master.pid, 'SIGKILL');
    await waitForText(page, '#failovers tbody tr', 'unplanned', 60_000);
    const history = await page.locator('#failovers tbody tr').first().innerText();
    expect(history).to.include(`${running.master.ip}:${running.master.port}`);
    const healed = await fleet.waitFor(async () => {
      const i = (await fleet.api('GET', '/api/instances/checkout', undefined, auth)).json;
      return i.status === 'RUNNING' && i.master?.id !== running.master.id && i.slaves.length === 1 ? i : undefined;
    }, 60_000, 'the replacement replica');
    const promoted = healed.master;
    expect(history).to.include(`${promoted.ip}:${promoted.port}`);
    expect(history).to.include(healed.failovers[0].cause);
    await waitForText(page, cell('checkout', 3), `${promoted.ip}:${promoted.port}`);
    await waitForText(page, cell('checkout', 4), 'link up');
    expect(await page.evaluate(() => (window as unknown as { sameDocument?: boolean }).sameDocument), 'no reload').to.equal(true);

    await screenshots();
    await deleteThroughDialog('scratch');
    expect(page.url()).to.not.include(ADMIN);
    expect(consoleErrors, 'console errors').to.deep.equal([]);
    expect(badRequests, 'failed or refused requests').to.deep.equal([]);
  });

  it('shows the API page from /api/openapi.json, every route with its parameters and body fields', async () => {
    // A fresh page: leaving the dashboard would abort its poll in flight, which is no failure.
    await page.close();
    consoleErrors.length = 0;
    badRequests.length = 0;
    page = await watchedPage();
    await page.goto(`${fleet.apiUrl}/ui/api.html`);
    const doc = (await fleet.api('GET', '/api/openapi.json')).json as { paths: Record<string, Record<string, unknown>> };
    const count = Object.values(doc.paths).reduce((n, item) => n + Object.keys(item).length, 0);
    await waitForText(page, '#api-info', `${count} routes`);
    expect(await page.locator('article.api-route').count()).to.equal(count);
    const create = await page.locator('#op-post-api-instances').innerText();
    for (const field of ['capacityMb', 'replicas', 'ttlSeconds', 'backup.everyMinutes', '≤ 16']) expect(create, field).to.include(field);
    const patch = await page.locator('#op-patch-api-instances-name').innerText();
    await page.screenshot({ path: join(dir, 'api-page.png') });
    expect(patch).to.include('shape 2 of 2');
    expect(patch).to.include('string (path)');
    expect(patch).to.include('matches ^[a-z0-9]');
    expect(consoleErrors, 'console errors').to.deep.equal([]);
    expect(badRequests, 'failed or refused requests').to.deep.equal([]);
  });

  /** A new page whose console errors and failed or refused requests are collected. */
  async function watchedPage(): Promise<Page> {
    const p = await context.newPage();
    p.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
    p.on('pageerror', (e) => consoleErrors.push(`uncaught: ${e.message}`));
    p.on('requestfailed', (r) => badRequests.push(`${r.method()} ${r.url()}: ${r.failure()?.errorText}`));
    p.on('response', (r) => { if (r.status() >= 400) badRequests.push(`${r.status()} ${r.request().method()} ${r.url()}`); });
    return p;
  }

  /** The page asks for a token; a wrong one is refused with a message; the right one opens the live view. */
  async function signIn(): Promise<void> {
    const token = page.getByLabel('Admin token');
    await token.waitFor({ state: 'visible' });
    await token.fill('not-the-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await waitForText(page, '#login-error', 'not accepted');
    // The probe without a token and the wrong token: two 401s, which Chromium logs as errors.
    expect(badRequests, badRequests.join("; ")).to.have.length(2);
    expect(badRequests.every((r) => r.startsWith('401 GET') && r.endsWith('/api/agents')), badRequests.join('; ')).to.equal(true);
    expect(consoleErrors.every((e) => e.includes('401')), consoleErrors.join('; ')).to.equal(true);
    badRequests.length = 0;
    consoleErrors.length = 0;

    await token.fill(ADMIN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await waitForText(page, '#agents-count', '3 of 3 connected');
    expect(await page.locator('#agents tbody tr').count()).to.equal(3);
    expect(await page.evaluate(() => sessionStorage.getItem('redfleet.adminToken'))).to.equal(ADMIN);
  }

  /** Fills the create form; reads the password and access key from the dialog, once. */
  async function createThroughForm(): Promise<string> {
    await page.getByText('New instance').click();
    await page.getByLabel('Name').fill('checkout');
    await page.getByLabel('Memory (MB)').fill('32');
    await page.getByLabel('Replicas').fill('1');
    await page.getByRole('button', { name: 'Create' }).click();
    const dialog = page.locator('dialog#secrets');
    await dialog.waitFor({ state: 'visible' });
    const password = await page.getByLabel('Password').inputValue();
    const accessKey = await page.getByLabel('Access key').inputValue();
    expect(password).to.have.length.of.at.least(32);
    expect(accessKey).to.have.length.of.at.least(32);
    await page.getByRole('button', { name: 'Copy password' }).click();
    await waitForText(page, '#copy-note', 'Copied the password');
    expect(await page.evaluate(() => navigator.clipboard.readText())).to.equal(password);
    await page.getByRole('button', { name: 'I have stored them' }).click();
    await dialog.waitFor({ state: 'hidden' });
    expect(await page.locator('#secret-password').inputValue(), 'the secret leaves the page').to.equal('');
    const keyed = await fleet.api('GET', '/api/instances/checkout', undefined, { Authorization: `Bearer ${accessKey}` });
    expect(keyed.status, 'the access key reads its instance').to.equal(200);
    return password;
  }

  async function usePassword(master: { ip: string; port: number }, password: string): Promise<void> {
    const client = new Redis({ host: master.ip, port: master.port, password, lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await client.connect();
      expect(await client.ping()).to.equal('PONG');
    } finally {
      client.disconnect();
    }
  }

  /** The first Delete is kept back with "Keep it"; the second goes through. */
  async function deleteThroughDialog(name: string): Promise<void> {
    const dialog = page.locator('dialog#confirm-delete');
    await page.getByRole('button', { name: `Delete instance ${name}` }).click();
    await dialog.waitFor({ state: 'visible' });
    expect(await dialog.innerText()).to.include(name);
    await page.getByRole('button', { name: 'Keep it' }).click();
    await dialog.waitFor({ state: 'hidden' });
    expect((await fleet.api('GET', `/api/instances/${name}`, undefined, auth)).json.status).to.equal('RUNNING');

    await page.getByRole('button', { name: `Delete instance ${name}` }).click();
    await dialog.waitFor({ state: 'visible' });
    await dialog.getByRole('button', { name: 'Delete' }).click();
    await dialog.waitFor({ state: 'hidden' });
    await waitForText(page, '#action-note', `Deleting ${name}`);
    await page.waitForFunction((n) => /DELET/.test(document.querySelector(`#instances tr[data-key="${n}"]`)?.textContent ?? 'DELETED'), name, { timeout: 30_000 });
    const gone = await fleet.api('GET', `/api/instances/${name}`, undefined, auth);
    expect(gone.status === 404 || ['DELETING', 'DELETED'].includes(gone.json.status), gone.text).to.equal(true);
  }

  /**
   * Screenshots in the test's directory: desktop (1280x800, the whole page), phone (390x844: the
   * instances in view, and the whole page), desktop in dark. Neither width scrolls sideways.
   * REDFLEET_DOCS_SCREENSHOTS=1 also writes docs/dashboard-desktop.png and docs/dashboard-phone.png.
   */
  async function screenshots(): Promise<void> {
    const shot = async (name: string, width: number, height: number, fullPage: boolean): Promise<void> => {
      await page.setViewportSize({ width, height });
      await page.evaluate(() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done))));
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      expect(overflow, `${name}: no sideways scrolling`).to.be.at.most(0);
      if (!fullPage) await page.evaluate(() => document.getElementById('instances-title')?.scrollIntoView({ block: 'start' }));
      await page.screenshot({ path: join(dir, `${name}.png`), fullPage });
    };
    await shot('dashboard-desktop', 1280, 800, true);
    await shot('dashboard-phone-full', 390, 844, true);
    await page.evaluate(() => window.scrollTo(0, 0));
    await shot('dashboard-phone', 390, 844, false);
    await page.emulateMedia({ colorScheme: 'dark' });
    await shot('dashboard-dark', 1280, 800, true);
    await page.emulateMedia({ colorScheme: 'light' });
    await page.setViewportSize({ width: 1280, height: 800 });
    if (!process.env.REDFLEET_DOCS_SCREENSHOTS) return;
    for (const name of ['dashboard-desktop', 'dashboard-phone']) copyFileSync(join(dir, `${name}.png`), join(repoRoot(), 'docs', `${name}.png`));
  }
});
