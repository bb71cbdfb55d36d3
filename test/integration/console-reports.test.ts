/**
 * The console's Reports page (issue 22 with issue 23's routes), in headless Chromium against a
 * real PostgreSQL and Warden: the compliance report of a period shown in a sandboxed frame (no
 * script, opaque origin), and a policy backtest whose proposed policy travels in the body and
 * whose changes are listed as a table. An approver who is neither operator nor auditor has no
 * Reports entry.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { baseYaml, direct, PASSWORDS, startCluster, startEnv, type TestEnv } from '../helpers/warden-env.js';
import { launchBrowser, screenshot, SCREENSHOT_DIR, type TestBrowser } from '../helpers/browser.js';

const OLGA = 'olga-Reports-pw-1';
const APRIL = 'april-pw-2';
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-console-reports-'));

let env: TestEnv;
let tb: TestBrowser;
let page: Page;
let base = '';
const urls: string[] = [];

async function login(name: string, password: string): Promise<void> {
  await page.goto(`${base}/console/`);
  await page.getByLabel('Identity').fill(name);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
}

beforeAll(async () => {
  const cluster = await startCluster();
  for (const s of ['CREATE TABLE orders (id int, total int)', 'INSERT INTO orders SELECT g, g * 10 FROM generate_series(1, 5) g', 'GRANT ALL ON orders TO warden_svc']) await direct(cluster, s);
  env = await startEnv({
    cluster,
    yaml: (p) =>
      baseYaml(
        p,
        `  - { name: olga, kind: human, groups: [ops, auditors], password: ${OLGA} }
  - { name: april, kind: human, groups: [approvers], password: ${APRIL} }
admin: { host: 127.0.0.1, port: 0, operators: [ops], auditors: [auditors] }
audit: { store: "jsonl:${path.join(dir, 'audit.jsonl')}", durability: os }
rules:
  - { name: nothing-held, match: { tables: ["vault.*"] }, action: approve, approvers: { groups: [approvers], count: 1 } }
`,
      ),
  });
  base = `http://127.0.0.1:${env.warden.admin!.port}`;
  const c = await env.connect('alice');
  await c.query('SELECT * FROM orders');
  await c.query('DELETE FROM orders WHERE id = 5');
  await c.end();
  tb = await launchBrowser();
  page = await (await tb.browser.newContext({ viewport: { width: 1366, height: 768 } })).newPage();
  page.on('request', (r) => urls.push(r.url()));
}, 120_000);

afterAll(async () => {
  await tb?.close();
  const cluster = env?.cluster;
  await env?.stop();
  await cluster?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

it('shows the compliance report in a sandboxed frame and a backtest as a table', async () => {
  await login('olga', OLGA);
  await page.getByRole('navigation').getByRole('button', { name: 'Reports' }).click();
  await page.getByRole('heading', { level: 1, name: 'Reports' }).waitFor();
  await page.getByRole('button', { name: 'Show report' }).click();
  const frame = page.locator('iframe[title="Compliance report"]');
  expect(await frame.getAttribute('sandbox')).toBe('');
  await expect
    .poll(async () => (await frame.contentFrame().locator('h1').textContent({ timeout: 1000 }).catch(async () => `no h1: ${(await frame.contentFrame().locator('body').textContent({ timeout: 1000 }).catch(() => '')) ?? ''}`)) ?? '', { timeout: 20_000 })
    .toBe('Warden compliance report');
  // The frame as a person sees it (a full-page capture can draw a frame's content shifted).
  await frame.scrollIntoViewIfNeeded();
  await frame.screenshot({ path: path.join(SCREENSHOT_DIR, 'console-reports-frame.png') });
  await page.getByLabel(/Proposed policy/).fill('rules:\n  - { name: no-deletes, match: { statement: [delete] }, action: deny, reason: never }\n');
  await page.getByRole('button', { name: 'Run backtest' }).click();
  await expect.poll(() => page.locator('main').textContent(), { timeout: 20_000 }).toMatch(/DELETE FROM orders WHERE id = 5/);
  expect(await page.locator('table').filter({ hasText: 'Would be' }).textContent()).toMatch(/no-deletes/);
  await screenshot(page, 'console-reports');
  // The proposed policy and its reason went in the body, not in a URL.
  expect(urls.filter((u) => u.includes('no-deletes') || u.includes('never'))).toEqual([]);
});

it('an approver who neither operates nor audits has no Reports entry, and the API refuses the report', async () => {
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByRole('heading', { name: 'Warden console' }).waitFor();
  await login('april', APRIL);
  expect(await page.getByRole('navigation').getByRole('button', { name: 'Reports' }).count()).toBe(0);
  const status = await page.evaluate(async () => (await fetch('/api/v1/report?from=2020-01-01T00:00:00Z&to=2030-01-01T00:00:00Z')).status);
  expect(status).toBe(403);
  void PASSWORDS;
});
