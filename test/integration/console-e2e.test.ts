/**
 * The web console end to end (issue 22), in Debian's headless Chromium against a real
 * PostgreSQL and Warden: log in; approve a held UPDATE from the inbox and see the waiting psql
 * get `UPDATE 1`; deny another; search the audit, open a session replay and a record's chain
 * verification, export the search; a session's timeline; kill a session (its client gets
 * 57P01); suspend an identity (its next login is refused) and resume it; the policy page and a
 * dry run. And the refusals: no cookie, an identity outside the console's groups, a
 * state-changing request without the CSRF token or from another origin, the cookie's flags,
 * logout, no secret in any URL the page requested. A screenshot of every page goes to
 * test-output/screenshots/console-*.png.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseYaml, direct, PASSWORDS, startCluster, startEnv, type TestEnv } from '../helpers/warden-env.js';
import { runPsql, type RunResult } from '../helpers/psql.js';
import { launchBrowser, screenshot, type TestBrowser } from '../helpers/browser.js';

const DANA = 'dana-Console-pw-4';
const MALLORY = 'mallory-pw-6';
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-console-'));

function yaml(pgPort: number): string {
  const key = path.join(dir, 'signing.pem');
  if (!fs.existsSync(key)) fs.writeFileSync(key, crypto.generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  return baseYaml(
    pgPort,
    `  - { name: dana, kind: human, groups: [dba, ops, auditors], password: ${DANA} }
  - { name: mallory, kind: human, groups: [interns], password: ${MALLORY} }
admin: { host: 127.0.0.1, port: 0, operators: [ops], auditors: [auditors] }
state: { store: "sqlite:${path.join(dir, 'state.db')}" }
audit: { store: "sqlite:${path.join(dir, 'audit.db')}", signing_key: ${key}, checkpoint_every: 5 }
approvals: { mode: hold, timeout: 60s }
rules:
  - name: billing-writes-need-approval
    match: { statement: [write], tables: ["billing.*"] }
    action: approve
    reason: Billing changes need a DBA
    approvers: { groups: [dba], count: 1 }
`,
  );
}

let env: TestEnv;
let tb: TestBrowser;
let context: BrowserContext;
let page: Page;
let base = '';
/** Every URL the console page requested (none may carry a secret). */
const urls: string[] = [];

const until = async <T>(what: string, f: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 15_000): Promise<T> => {
  const t0 = Date.now();
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

const psql = (user: keyof typeof PASSWORDS, sql: string): Promise<RunResult> =>
  runPsql({ port: env.warden.port, user, password: PASSWORDS[user], database: 'app', args: ['-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=verbose', '-c', sql] });

async function pendingCount(): Promise<number> {
  const res = await fetch(`${base}/api/v1/approvals?status=pending`, { headers: { authorization: `Basic ${Buffer.from(`dana:${DANA}`).toString('base64')}` } });
  return ((await res.json()) as { requests: unknown[] }).requests.length;
}

async function nav(name: string): Promise<void> {
  await page.getByRole('navigation').getByRole('button', { name }).click();
  await page.getByRole('heading', { level: 1, name }).waitFor();
}

beforeAll(async () => {
  const cluster = await startCluster();
  for (const s of [
    'CREATE SCHEMA billing',
    'CREATE TABLE billing.invoices (id int PRIMARY KEY, status text)',
    "INSERT INTO billing.invoices SELECT g, 'open' FROM generate_series(1, 20) g",
    'GRANT ALL ON SCHEMA billing TO warden_svc',
    'GRANT ALL ON ALL TABLES IN SCHEMA billing TO warden_svc',
  ])
    await direct(cluster, s);
  env = await startEnv({ cluster, yaml: yaml });
  base = `http://127.0.0.1:${env.warden.admin!.port}`;
  tb = await launchBrowser();
  context = await tb.browser.newContext({ viewport: { width: 1366, height: 768 }, acceptDownloads: true });
  page = await context.newPage();
  page.on('request', (r) => urls.push(r.url()));
}, 120_000);

afterAll(async () => {
  await tb?.close();
  const cluster = env?.cluster;
  await env?.stop();
  await cluster?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('console', () => {
  it('refuses requests without a console session, and identities outside the console groups', async () => {
    expect((await fetch(`${base}/api/v1/sessions`)).status).toBe(401);
    expect((await fetch(`${base}/api/v1/stats`)).status).toBe(401);
    expect((await fetch(`${base}/console/api/session`)).status).toBe(401);
    // A made-up cookie is no session.
    expect((await fetch(`${base}/api/v1/sessions`, { headers: { cookie: `warden_console=${'A'.repeat(43)}` } })).status).toBe(401);
    // Mallory's password is right, but interns may not use the console: no cookie is set.
    const m = await fetch(`${base}/console/api/login`, { method: 'POST', headers: { 'content-type': 'application/json', origin: base }, body: JSON.stringify({ name: 'mallory', password: MALLORY }) });
    expect(m.status).toBe(403);
    expect(m.headers.get('set-cookie')).toBeNull();
    expect(((await m.json()) as { error: string }).error).toMatch(/may not use the web console: it needs membership of one of the groups ops, auditors, dba/);
    // A login from another origin is refused before the password is even checked.
    const x = await fetch(`${base}/console/api/login`, { method: 'POST', headers: { 'content-type': 'application/json', origin: 'http://evil.example' }, body: JSON.stringify({ name: 'dana', password: DANA }) });
    expect(x.status).toBe(403);

    await page.goto(`${base}/console/`);
    await page.getByLabel('Identity').fill('mallory');
    await page.getByLabel('Password').fill(MALLORY);
    await page.getByRole('button', { name: 'Log in' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toMatch(/may not use the web console/);
    await screenshot(page, 'console-login-refused');
    await page.getByLabel('Identity').fill('dana');
    await page.getByLabel('Password').fill('wrong');
    await page.getByRole('button', { name: 'Log in' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toMatch(/password authentication failed for "dana"/);
  });

  it('logs in: an HttpOnly, SameSite=Strict session cookie; the overview streams live statistics', async () => {
    const res = await page.goto(`${base}/console/`);
    expect(res!.headers()['content-security-policy']).toMatch(/default-src 'none'; script-src 'self'/);
    await screenshot(page, 'console-login');
    await page.getByLabel('Identity').fill('dana');
    await page.getByLabel('Password').fill(DANA);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
    const cookies = await context.cookies(base);
    expect(cookies).toHaveLength(1);
    expect(cookies[0]).toMatchObject({ name: 'warden_console', httpOnly: true, sameSite: 'Strict', path: '/' });
    expect(cookies[0]!.value).toMatch(/^[A-Za-z0-9_-]{43}$/);
    // Traffic for the charts, then the stream delivers it.
    for (let i = 0; i < 3; i++) expect((await psql('alice', 'SELECT count(*) FROM billing.invoices')).code).toBe(0);
    await page.locator('.live.on').waitFor();
    await expect.poll(() => page.locator('.card').first().textContent()).toMatch(/Active sessions/);
    await expect.poll(async () => (await page.locator('.card').filter({ hasText: 'Audit chain' }).textContent()) ?? '', { timeout: 15_000 }).toMatch(/signed checkpoint at seq \d+/);
    // The live stream: the totals and the top lists (from the audit log, re-read every few seconds) fill in.
    await expect.poll(async () => Number(await page.locator('.card').filter({ hasText: 'Since start' }).locator('.card-value').textContent()), { timeout: 15_000 }).toBeGreaterThanOrEqual(3);
    await expect.poll(() => page.locator('main p.muted').filter({ hasText: 'Top lists' }).textContent(), { timeout: 15_000 }).toMatch(/\(([1-9]\d*) statements read\)/);
    expect(await page.getByText('No table touched in the last five minutes.').isHidden()).toBe(true);
    await page.getByRole('button', { name: 'Verify the audit chain now' }).click();
    await expect.poll(() => page.locator('.verify').textContent()).toMatch(/verified/);
    await screenshot(page, 'console-overview');
  });

  it('refuses a state-changing request without the CSRF token, or from another origin', async () => {
    const noToken = await page.evaluate(async () => {
      const r = await fetch('/api/v1/identities/alice/suspend', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ reason: 'csrf' }) });
      return { status: r.status, body: (await r.json()) as { error: string } };
    });
    expect(noToken.status).toBe(403);
    expect(noToken.body.error).toMatch(/CSRF check failed/);
    const cookie = (await context.cookies(base)).map((c) => `${c.name}=${c.value}`).join('; ');
    const { csrf } = (await (await fetch(`${base}/console/api/session`, { headers: { cookie } })).json()) as { csrf: string };
    const foreign = await fetch(`${base}/api/v1/identities/alice/suspend`, { method: 'POST', headers: { cookie, 'x-warden-csrf': csrf, origin: 'http://evil.example', 'content-type': 'application/json' }, body: JSON.stringify({ reason: 'csrf' }) });
    expect(foreign.status).toBe(403);
    expect(((await foreign.json()) as { error: string }).error).toMatch(/cross-origin request refused/);
    const suspensions = await fetch(`${base}/api/v1/suspensions`, { headers: { cookie } });
    expect(((await suspensions.json()) as { suspensions: unknown[] }).suspensions).toEqual([]);
  });

  it('approvals inbox: approve releases the held UPDATE (psql prints UPDATE 1); deny refuses the other', async () => {
    await nav('Approvals');
    const held = psql('alice', "UPDATE billing.invoices SET status = 'paid' WHERE id = 1");
    const card = page.locator('article.approval').filter({ hasText: "SET status = 'paid'" });
    await card.waitFor();
    await expect.poll(() => card.textContent()).toMatch(/billing-writes-need-approval — Billing changes need a DBA/);
    expect(await card.locator('pre.sql').textContent()).toBe("UPDATE billing.invoices SET status = 'paid' WHERE id = 1");
    await screenshot(page, 'console-approvals');
    await card.getByLabel('Reason').fill('month-end close');
    const t0 = Date.now();
    await card.getByRole('button', { name: 'Approve' }).click();
    const r = await held;
    const releasedMs = Date.now() - t0;
    expect(r.out).toContain('UPDATE 1');
    expect(r.code).toBe(0);
    expect((await direct(env.cluster, 'SELECT status FROM billing.invoices WHERE id = 1')).rows[0].status).toBe('paid');
    console.log(`console: held statement released ${releasedMs} ms after the click (psql exited)`);
    expect(releasedMs).toBeLessThan(3000);
    await expect.poll(() => page.getByRole('status').first().textContent()).toMatch(/approved: the held statement is released/);

    // The other over the extended protocol: its parameters are shown as the audit records them.
    const client = await env.connect('alice');
    const denied = client.query('UPDATE billing.invoices SET status = $1 WHERE id = $2', ['void', 2]).catch((e: pg.DatabaseError) => e);
    const card2 = page.locator('article.approval').filter({ hasText: 'SET status = $1' });
    await card2.waitFor();
    expect(await card2.locator('ul.params li').allTextContents()).toEqual(['$1 = void', '$2 = 2']);
    await screenshot(page, 'console-approvals-params');
    await card2.getByLabel('Reason').fill('not during the freeze');
    await card2.getByRole('button', { name: 'Deny' }).click();
    const d = (await denied) as pg.DatabaseError;
    expect(d.code).toBe('42501');
    expect(d.message).toMatch(/approval request \S+ .*was denied by dana: not during the freeze/);
    expect((await client.query('SELECT 1 AS one')).rows[0].one).toBe(1); // the session goes on
    await client.end();
    expect((await direct(env.cluster, 'SELECT status FROM billing.invoices WHERE id = 2')).rows[0].status).toBe('open');
    await until('the inbox to empty', async () => (await pendingCount()) === 0 && (await page.getByText('Nothing waits for an approval.').count()) > 0);
  });

  it('sessions: a timeline, kill (the client gets 57P01), suspend (the next login is refused) and resume', async () => {
    const bob = await env.connect('bob');
    bob.on('error', () => undefined);
    await bob.query("SELECT 'before the sleep' AS t");
    const sleeping = bob.query('SELECT pg_sleep(60)').catch((e: pg.DatabaseError) => e);
    const agent = await env.connect('agent');
    agent.on('error', () => undefined);
    await nav('Sessions');
    const bobRow = page.locator('tr[data-identity="bob"]');
    await expect.poll(() => bobRow.textContent()).toMatch(/pg_sleep/);
    await bobRow.getByRole('button', { name: /Timeline/ }).click();
    await expect.poll(() => page.locator('.timeline').textContent()).toMatch(/before the sleep/);
    await screenshot(page, 'console-sessions');

    await bobRow.getByRole('button', { name: /Kill session/ }).click();
    await page.getByRole('dialog').getByLabel(/Reason/).fill('runaway query');
    await screenshot(page, 'console-sessions-kill-dialog');
    await page.getByRole('dialog').getByRole('button', { name: 'Kill session' }).click();
    const err = (await sleeping) as pg.DatabaseError;
    expect(err.code).toBe('57P01');
    expect(err.message).toMatch(/terminated by an operator \(dana\): runaway query/);
    await bobRow.waitFor({ state: 'detached' });

    const agentRow = page.locator('tr[data-identity="agent"]');
    await agentRow.getByRole('button', { name: /Suspend identity/ }).click();
    await page.getByRole('dialog').getByLabel(/Reason/).fill('token leaked');
    await page.getByRole('dialog').getByRole('button', { name: 'Suspend' }).click();
    await page.locator('li[data-identity="agent"]').waitFor();
    const refused = await env.connect('agent').catch((e: pg.DatabaseError) => e);
    expect(refused).toMatchObject({ code: '28000', message: 'identity agent is suspended: token leaked' });
    await screenshot(page, 'console-sessions-suspended');
    await page.getByRole('button', { name: 'Resume identity agent' }).click();
    await page.locator('li[data-identity="agent"]').waitFor({ state: 'detached' });
    const again = await env.connect('agent');
    await again.end();
    await agent.end().catch(() => undefined);
    await bob.end().catch(() => undefined);
  });

  it('audit: search, a session replay, a record verified against its signed checkpoint, export', async () => {
    await nav('Audit');
    await page.getByLabel('Identity').fill('alice');
    await page.getByLabel('Free text').fill("status = 'paid'");
    await page.getByRole('button', { name: 'Search' }).click();
    const row = page.locator('table.records tbody tr').filter({ hasText: 'statement.begin' }).first();
    await row.waitFor();
    expect(await row.textContent()).toContain("UPDATE billing.invoices SET status = 'paid' WHERE id = 1");
    await row.getByRole('button', { name: /Replay/ }).click();
    await expect.poll(() => page.locator('.timeline').textContent()).toMatch(/alice on app .*UPDATE billing\.invoices SET status = 'paid'/s);
    await expect.poll(() => page.locator('.timeline').textContent()).toMatch(/1 row affected/);
    await screenshot(page, 'console-audit-replay');
    await row.getByRole('button', { name: /Chain position and verification/ }).click();
    await expect.poll(() => page.locator('.chain').textContent(), { timeout: 15_000 }).toMatch(/verified seq \d+ of .*Signed checkpoint at seq \d+.*signature valid/s);
    await screenshot(page, 'console-audit-verify');
    // The decision filter: only records decided approve (the begin of each held statement).
    await page.getByLabel('Free text').fill('');
    await page.getByLabel('Decision').selectOption('approve');
    await page.getByRole('button', { name: 'Search' }).click();
    await expect.poll(() => page.locator('.results p.muted').first().textContent()).toMatch(/^2 records/);
    expect(await page.locator('table.records tbody tr td:nth-child(4) .badge').allTextContents()).toEqual(['approve', 'approve']);
    await page.getByLabel('Decision').selectOption('');
    await page.getByLabel('Free text').fill("status = 'paid'");
    await page.getByRole('button', { name: 'Search' }).click();
    await expect.poll(() => page.locator('.results p.muted').first().textContent()).toMatch(/^2 records/);
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export CSV' }).click()]);
    expect(download.suggestedFilename()).toMatch(/^warden-audit-.*\.csv$/);
    const csv = fs.readFileSync((await download.path())!, 'utf8');
    expect(csv.split('\r\n')[0]).toBe('instance,seq,ts,type,identity,session,database,decision,rule,tables,sql,rows,sqlstate,error,hash');
    expect(csv).toContain("UPDATE billing.invoices SET status = 'paid' WHERE id = 1");
    expect(csv).not.toContain('SET status = $1');
  });

  it('policy: the loaded rules and a dry run backed by policy explain', async () => {
    await nav('Policy');
    await expect.poll(() => page.locator('table').first().textContent()).toMatch(/billing-writes-need-approval/);
    await page.getByLabel('Identity', { exact: true }).selectOption('alice');
    await page.getByLabel('Statement').fill('DELETE FROM billing.invoices WHERE id = 3');
    await page.getByRole('button', { name: 'Explain' }).click();
    await expect.poll(() => page.locator('.explain').textContent()).toMatch(/approve alice on app: .*billing-writes-need-approval/s);
    expect(await page.locator('body').textContent()).not.toContain(PASSWORDS.alice);
    await screenshot(page, 'console-policy');
  });

  it('works from the keyboard: the skip link first, then the pages by Tab and Enter, focus visible', async () => {
    await page.reload();
    await page.getByRole('heading', { level: 1 }).first().waitFor();
    await page.keyboard.press('Tab');
    expect(await page.evaluate('document.activeElement?.textContent')).toBe('Skip to content');
    await page.keyboard.press('Tab'); // Log out
    await page.keyboard.press('Tab'); // the first page
    expect(await page.evaluate('document.activeElement?.textContent')).toBe('Overview');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { level: 1, name: 'Approvals' }).waitFor();
    await page.keyboard.press('Shift+Tab');
    await page.keyboard.press('Tab');
    const ring = await page.evaluate('getComputedStyle(document.activeElement).outlineStyle');
    expect(ring).toBe('solid');
  });

  it('logout ends the session; no URL the page requested carried a secret, a search or a statement', async () => {
    const cookie = (await context.cookies(base)).map((c) => `${c.name}=${c.value}`).join('; ');
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByRole('heading', { name: 'Warden console' }).waitFor();
    expect((await fetch(`${base}/api/v1/sessions`, { headers: { cookie } })).status).toBe(401);
    for (const secret of [DANA, MALLORY, 'month-end close', 'runaway query', "status = 'paid'", 'DELETE FROM', 'token leaked']) {
      expect(urls.filter((u) => u.includes(encodeURIComponent(secret)) || u.includes(secret))).toEqual([]);
    }
    // Nothing came from elsewhere: every request went to the admin listener.
    expect(urls.filter((u) => !u.startsWith(base) && !u.startsWith('blob:'))).toEqual([]);
  });
});
