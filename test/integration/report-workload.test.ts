/**
 * The compliance report and the policy backtest over a workload driven through a
 * real Warden and PostgreSQL (issue 23's acceptance):
 * - every figure of `warden report` is checked against the audit records themselves;
 * - the HTML renders in headless Chromium (screenshots under test-output/screenshots/),
 *   and its PDF print cuts no table row and repeats table headers (checked on the
 *   PDF's text per page with pdftotext; the same check finds cut rows when the
 *   print rules are left out, so it can fail);
 * - a tampered log's report says so first, and `warden report` exits 1;
 * - a backtest of a policy that denies what was allowed lists exactly those
 *   statements, one that relaxes a mask exactly the reads that would have been unmasked;
 * - the admin API serves both, to operators only (auditors may read the report).
 */
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PASSWORDS, SVC_PASSWORD, startCluster } from '../helpers/warden-env.js';
import { runCli } from '../helpers/warden-process.js';
import { launchBrowser, screenshot, SCREENSHOT_DIR, type TestBrowser } from '../helpers/browser.js';
import { loadConfig } from '../../src/config/load.js';
import { startWarden, type Warden } from '../../src/app.js';
import { silentLogger } from '../../src/log/logger.js';
import type { PgCluster } from '../../src/embedded/pg-cluster.js';
import type { Report } from '../../src/report/build.js';
import type { BacktestResult } from '../../src/report/backtest.js';
import { renderHtml } from '../../src/report/render-html.js';

const OLGA = 'olga-operator-pw-7';
const DANA = 'dana-dba-pw-4';
const AUDREY = 'audrey-auditor-pw-5';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let cluster: PgCluster;
let warden: Warden | undefined;
let dir: string;
let configFile: string;
let auditFile: string;
let from: string;
let to: string;
let browser: TestBrowser | undefined;

function yaml(pgPort: number, o: { rules?: string } = {}): string {
  return `version: 1
listen: { host: 127.0.0.1, port: 0 }
databases:
  app:
    upstream: postgres://warden_svc:${SVC_PASSWORD}@127.0.0.1:${pgPort}/app
    environment: test
identities:
  - { name: alice, kind: human, groups: [analysts], password: ${PASSWORDS.alice} }
  - { name: agent, kind: agent, password: ${PASSWORDS.agent} }
  - { name: dana, kind: human, groups: [dba], password: ${DANA} }
  - { name: olga, kind: human, groups: [ops], password: ${OLGA} }
  - { name: audrey, kind: human, groups: [auditors], password: ${AUDREY} }
admin: { host: 127.0.0.1, port: 0, operators: [ops], auditors: [auditors] }
state: { store: "sqlite:${path.join(dir, 'state.db')}" }
audit:
  store: "jsonl:${auditFile}"
  durability: os
  instance: report-test
  signing_key: ${path.join(dir, 'signing.pem')}
  checkpoint_every: 10
sensitive:
  columns: { "public.customers.email": email }
report: { privileged_groups: [dba] }
approvals: { mode: hold, timeout: 60s }
rules:
${
  o.rules ??
  `  - name: agents-see-masked-email
    match: { kind: [agent], sensitive: [email] }
    action: mask
  - name: no-drop
    match: { statement: [drop] }
    action: deny
    reason: tables are not dropped through Warden
  - name: updates-need-a-ticket
    match: { statement: [update], intent: false }
    action: deny
  - name: deletes-need-a-dba
    match: { statement: [delete] }
    action: approve
    approvers: { groups: [dba], count: 1 }`
}
limits:
  - name: agent-rows
    match: { kind: [agent] }
    max_rows: 3
`;
}

const basic = (user: string, pw: string): Record<string, string> => ({ authorization: `Basic ${Buffer.from(`${user}:${pw}`).toString('base64')}`, 'content-type': 'application/json' });

async function api(who: [string, string], method: string, p: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown>; text: string; type: string; csp: string }> {
  const res = await fetch(`http://127.0.0.1:${warden!.admin!.port}/api/v1${p}`, { method, headers: basic(...who), body: body ? JSON.stringify(body) : undefined });
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // html
  }
  return { status: res.status, json, text, type: res.headers.get('content-type') ?? '', csp: res.headers.get('content-security-policy') ?? '' };
}

const client = (user: string, password: string, ticket?: string): pg.Client =>
  new pg.Client({ host: '127.0.0.1', port: warden!.port, user, password, database: 'app', ...(ticket ? { options: `-c warden.ticket=${ticket} -c warden.reason=report-test` } : {}) });

interface Rec {
  seq: number;
  ts: string;
  type: string;
  data: Record<string, any>;
}
const records = (file = auditFile): Rec[] => fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Rec);

async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-report-'));
  auditFile = path.join(dir, 'audit.jsonl');
  const { privateKey } = crypto.generateKeyPairSync('ed25519');
  fs.writeFileSync(path.join(dir, 'signing.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  cluster = await startCluster();
  await cluster.query(
    `CREATE TABLE public.customers (id int PRIMARY KEY, name text, email text);
     INSERT INTO public.customers VALUES (1, 'Ann', 'ann@example.com'), (2, 'Bo', 'bo@example.com');
     CREATE TABLE public.orders (id int PRIMARY KEY, total numeric);
     INSERT INTO public.orders SELECT g, g * 10 FROM generate_series(1, 10) g;
     ALTER TABLE public.customers OWNER TO warden_svc; ALTER TABLE public.orders OWNER TO warden_svc;`,
    'app',
  );
  configFile = path.join(dir, 'warden.yaml');
  fs.writeFileSync(configFile, yaml(cluster.port));
  from = new Date(Date.now() - 1000).toISOString();
  warden = await startWarden({ config: loadConfig(configFile), log: silentLogger() });

  // 0. someone guesses alice's password.
  const guess = client('alice', 'not-her-password');
  await expect(guess.connect()).rejects.toThrow(/password authentication failed/);
  // 1. alice reads emails (unmasked), with a ticket; 2. the agent reads them masked.
  const alice = client('alice', PASSWORDS.alice, 'T-1');
  await alice.connect();
  await alice.query('SELECT id, email FROM public.customers');
  const agent = client('agent', PASSWORDS.agent);
  await agent.connect();
  const masked = await agent.query('SELECT id, email FROM public.customers');
  expect(masked.rows[0].email).not.toBe('ann@example.com');
  // 3. the agent tries a drop; 4. alice updates without a ticket: both refused.
  await expect(agent.query('DROP TABLE public.orders')).rejects.toThrow(/no-drop/);
  const noTicket = client('alice', PASSWORDS.alice);
  await noTicket.connect();
  await expect(noTicket.query('UPDATE public.orders SET total = 0')).rejects.toThrow(/updates-need-a-ticket/);
  // 5. with a ticket it runs; 6. dana changes the schema.
  await alice.query('UPDATE public.orders SET total = total + 1 WHERE id = 1');
  const dana = client('dana', DANA, 'T-3');
  await dana.connect();
  await dana.query('ALTER TABLE public.orders ADD COLUMN note text');
  // 7. alice's delete is held until dana approves it.
  const held = alice.query('DELETE FROM public.orders WHERE id = 2');
  const req = await until('a pending approval', async () => {
    const r = await api(['dana', DANA], 'GET', '/approvals?status=pending');
    return (r.json.requests as { id: string }[] | undefined)?.[0];
  });
  await sleep(300);
  expect((await api(['dana', DANA], 'POST', `/approvals/${req.id}/approve`, { reason: 'one test order goes' })).status).toBe(200);
  await held;
  // 8. the agent's big read is halted by its limit.
  await expect(agent.query('SELECT * FROM public.orders')).rejects.toThrow(/agent-rows/);
  // 9. olga kills the agent's session, suspends it and lifts the suspension; reloads the config.
  const sessions = (await api(['olga', OLGA], 'GET', '/sessions')).json.sessions as { id: string; identity: string }[];
  const agentSession = sessions.find((s) => s.identity === 'agent')!;
  agent.on('error', () => undefined);
  expect((await api(['olga', OLGA], 'POST', `/sessions/${agentSession.id}/kill`, { reason: 'runaway agent' })).status).toBe(200);
  expect((await api(['olga', OLGA], 'POST', '/identities/agent/suspend', { reason: 'investigating the agent' })).status).toBe(200);
  expect((await api(['olga', OLGA], 'POST', '/identities/agent/resume', {})).status).toBe(200);
  expect((await api(['olga', OLGA], 'POST', '/reload', {})).status).toBe(200);
  await Promise.all([alice.end(), noTicket.end(), dana.end(), agent.end().catch(() => undefined)]);
  await until('the session ends to be recorded', async () => (records().filter((r) => r.type === 'session.end').length >= 4 ? true : undefined));
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await warden?.close();
  await cluster?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('the admin API', () => {
  it('serves the report to operators and auditors, the backtest to operators only', async () => {
    const period = `from=${encodeURIComponent(from)}&to=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`;
    const r = await api(['olga', OLGA], 'GET', `/report?${period}`);
    expect(r.status, r.text).toBe(200);
    const report = r.json as unknown as Report;
    expect(report.integrity.ok).toBe(true);
    expect(report.sections.refusals.total).toBe(records().filter((x) => x.type === 'statement.refused').length);
    expect((await api(['audrey', AUDREY], 'GET', `/report?${period}`)).status).toBe(200);
    const html = await api(['olga', OLGA], 'GET', `/report?${period}&format=html`);
    expect(html.type).toMatch(/text\/html/);
    expect(html.text).toContain('Warden compliance report');
    // Opened on the admin origin outside the console's sandboxed frame, nothing in it may run or load.
    expect(html.csp).toMatch(/default-src 'none'/);
    expect(html.csp).not.toMatch(/script-src/);
    const denied = await api(['alice', PASSWORDS.alice], 'GET', `/report?${period}`);
    expect(denied.status).toBe(403);
    expect(denied.json.error).toMatch(/admin\.operators or admin\.auditors/);
    expect((await api(['olga', OLGA], 'GET', '/report?from=yesterday&to=now')).status).toBe(400);

    const body = { from, to: new Date(Date.now() + 60_000).toISOString(), policy: 'rules:\n  - name: no-customers\n    match: { tables: [public.customers], statement: [read] }\n    action: deny\n' };
    const bt = await api(['olga', OLGA], 'POST', '/policy/backtest', body);
    expect(bt.status, bt.text).toBe(200);
    const result = bt.json as unknown as BacktestResult;
    expect(result.changes['newly-refused'].items.map((c) => c.sql)).toEqual(['SELECT id, email FROM public.customers', 'SELECT id, email FROM public.customers']);
    expect((await api(['audrey', AUDREY], 'POST', '/policy/backtest', body)).status).toBe(403);
    const bad = await api(['olga', OLGA], 'POST', '/policy/backtest', { ...body, policy: 'masking: {}' });
    expect(bad.status).toBe(400);
    expect(bad.json.error).toMatch(/no masking section/);
  });
});

describe('warden report over the recorded workload', () => {
  let out: string;
  let report: Report;
  beforeAll(async () => {
    await warden!.close();
    warden = undefined;
    to = new Date(Date.now() + 1000).toISOString();
    out = path.join(dir, 'out');
    const r = await runCli(['report', '--config', configFile, '--from', from, '--to', to, '--out', out]);
    expect(r.code, r.out + r.err).toBe(0);
    expect(r.out.split('\n')[0]).toMatch(/^OK\s+Every record of the period verified/);
    report = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8')) as Report;
  }, 60_000);

  it('checks every figure against the audit records', () => {
    const all = records();
    const begins = all.filter((r) => r.type === 'statement.begin');
    const refused = all.filter((r) => r.type === 'statement.refused');
    const ends = new Map(all.filter((r) => r.type === 'statement.end').map((r) => [r.data.begin_seq as number, r]));
    expect(report.integrity.ok).toBe(true);
    expect(report.integrity.signaturesChecked).toBe(true);
    expect(report.integrity.instances).toHaveLength(1);
    expect(report.integrity.instances[0].periodRecords).toBe(all.length);
    expect(report.integrity.instances[0].problems).toEqual([]);
    expect(report.totals.records).toBe(all.length);
    expect(report.totals.statements).toBe(begins.length + refused.length);
    expect(report.totals.refused).toBe(refused.length);
    expect(report.totals.sessions).toBe(all.filter((r) => r.type === 'session.start').length);

    // Sensitive reads: alice unmasked, the agent masked, with rows from the completions.
    const sensitive = begins.filter((r) => (r.data.sensitive ?? []).length > 0);
    const isMasked = (r: Rec): boolean => r.data.decision?.action === 'mask' || (ends.get(r.seq)?.data.masked ?? []).length > 0;
    const sr = report.sections.sensitiveReads;
    expect(sr.statements).toBe(sensitive.length);
    expect(sr.maskedStatements).toBe(sensitive.filter(isMasked).length);
    expect(sr.unmaskedStatements).toBe(sensitive.filter((r) => !isMasked(r)).length);
    for (const g of sr.groups) {
      const mine = sensitive.filter((r) => r.data.identity === g.identity && isMasked(r) === g.masked && r.data.sensitive.includes(g.type));
      expect(g.statements).toBe(mine.length);
      expect(g.rows).toBe(mine.reduce((n, r) => n + (ends.get(r.seq)?.data.rows ?? 0), 0));
    }
    expect(sr.groups.map((g) => [g.type, g.identity, g.kind, g.masked])).toEqual([
      ['email', 'agent', 'agent', true],
      ['email', 'alice', 'human', false],
    ]);
    expect(sr.groups.find((g) => g.masked)!.columns).toEqual(['public.customers.email']);
    expect(sr.groups.find((g) => g.masked)!.maskedColumns).toEqual(['email']);

    // Refusals, by rule.
    const byRule = new Map<string, number>();
    for (const r of refused) byRule.set(r.data.decision.rule, (byRule.get(r.data.decision.rule) ?? 0) + 1);
    expect(Object.fromEntries(report.sections.refusals.byRule.map((c) => [c.key, c.count]))).toEqual(Object.fromEntries(byRule));
    expect(report.sections.refusals.refusals.items.map((x) => x.record)).toEqual(refused.map((r) => `report-test#${r.seq}`));
    const failedLogins = all.filter((r) => r.type === 'login.failed');
    expect(failedLogins.length).toBeGreaterThan(0);
    expect(report.sections.refusals.failedLogins.items.map((l) => [l.record, l.identity])).toEqual(failedLogins.map((r) => [`report-test#${r.seq}`, 'alice']));

    // The approval: requester, approver, reason, waiting time from the records' times.
    const requested = all.find((r) => r.type === 'approval.requested')!;
    const decided = all.find((r) => r.type === 'approval.decided')!;
    const ap = report.sections.approvals;
    expect(ap.total).toBe(1);
    expect(ap.requests[0]).toMatchObject({ request: requested.data.request, requester: 'alice', status: 'approved', rules: ['deletes-need-a-dba'], intent: { ticket: 'T-1', reason: 'report-test' } });
    expect(ap.requests[0].decisions).toEqual([expect.objectContaining({ approver: 'dana', decision: 'approve', reason: 'one test order goes' })]);
    expect(ap.requests[0].waitMs).toBe(Date.parse(decided.ts) - Date.parse(requested.ts));

    // Limits.
    const limitRecs = all.filter((r) => r.type === 'limit.exceeded');
    expect(limitRecs.length).toBeGreaterThan(0);
    expect(report.sections.limits.total).toBe(limitRecs.length);
    expect(report.sections.limits.halted).toBe(limitRecs.length);
    expect(report.sections.limits.events.items[0]).toMatchObject({ identity: 'agent', limit: 'agent-rows', measure: 'max_rows', max: 3 });

    // The schema change, with the statement and its intent.
    const changes = all.filter((r) => r.type === 'schema.change');
    expect(report.sections.schemaChanges.total).toBe(changes.length);
    const sc = report.sections.schemaChanges.changes.items[0];
    expect(sc).toMatchObject({ identity: 'dana', sql: 'ALTER TABLE public.orders ADD COLUMN note text', intent: { ticket: 'T-3', reason: 'report-test' } });
    expect(sc.objects[0].object).toBe('public.orders');
    expect(sc.objects[0].changes.join(' ')).toMatch(/note/);

    // The agent, privileged use (dana: group dba), missing intent.
    const agentStatements = [...begins, ...refused].filter((r) => r.data.kind === 'agent');
    expect(report.sections.agents.statements).toBe(agentStatements.length);
    expect(report.sections.agents.refused).toBe(refused.filter((r) => r.data.kind === 'agent').length);
    const danaStatements = [...begins, ...refused].filter((r) => r.data.identity === 'dana');
    expect(report.sections.privileged.identities.map((i) => [i.identity, i.statements, i.ddl])).toEqual([['dana', danaStatements.length, 1]]);
    expect(report.sections.missingIntent.statements.items.map((x) => [x.identity, x.rule, x.outcome])).toEqual([['alice', 'updates-need-a-ticket', 'refused']]);

    // Operators.
    const op = report.sections.operations;
    expect(op.kills.items.map((k) => [k.identity, k.by, k.reason])).toEqual([['agent', 'olga', 'runaway agent']]);
    expect(op.suspensions.items.map((s) => [s.event, s.identity])).toEqual([
      ['suspended', 'agent'],
      ['resumed', 'agent'],
    ]);
    expect(op.config.items.map((c) => c.event)).toEqual(all.filter((r) => r.type.startsWith('config.')).map((r) => (r.type === 'config.loaded' ? 'loaded' : r.type === 'config.reloaded' ? 'reloaded' : 'reload refused')));
    expect(op.config.items.some((c) => c.event === 'reloaded' && c.by === 'olga')).toBe(true);

    // CSV: one file per section, the same rows.
    const csvDir = path.join(out, 'csv');
    const rows = (f: string): number => fs.readFileSync(path.join(csvDir, f), 'utf8').split('\r\n').filter(Boolean).length - 1;
    expect(rows('refusals.csv')).toBe(refused.length);
    expect(rows('limits.csv')).toBe(limitRecs.length);
    expect(rows('approvals.csv')).toBe(1);
    expect(rows('sensitive-reads.csv')).toBe(2);
  });

  it('renders in Chromium, and prints to PDF without cutting a table row', async () => {
    browser ??= await launchBrowser();
    const page = await browser.browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(`file://${path.join(out, 'report.html')}`);
    expect(await page.locator('.verdict').first().innerText()).toMatch(/Audit log verified/);
    const shot = await screenshot(page, 'report-workload');
    expect(fs.statSync(shot).size).toBeGreaterThan(10_000);
    // The first screen, and sections one by one, at a size a person can read.
    await page.screenshot({ path: path.join(SCREENSHOT_DIR, 'report-workload-top.png') });
    for (const id of ['sensitive-reads', 'refusals', 'approvals', 'schema-changes', 'operations']) {
      await page.locator(`#${id}`).screenshot({ path: path.join(SCREENSHOT_DIR, `report-workload-${id}.png`) });
    }
    const pdf = path.join(SCREENSHOT_DIR, 'report-workload.pdf');
    const cut = await cutRows(page, pdf);
    expect(cut.pages).toBeGreaterThanOrEqual(5);
    expect(cut.cut, JSON.stringify(cut.cut.slice(0, 3))).toEqual([]);
    expect(cut.headerless, JSON.stringify(cut.headerless.slice(0, 3))).toEqual([]);
    execFileSync('pdftoppm', ['-png', '-r', '60', '-f', '1', '-l', '3', pdf, path.join(SCREENSHOT_DIR, 'report-workload-pdf')]);
    await page.close();
  }, 60_000);

  it('the PDF check finds a cut row (so it can fail), and the report keeps rows shorter than a page', async () => {
    browser ??= await launchBrowser();
    const page = await browser.browser.newPage();
    // A plain table with one row taller than a page: no print rule can keep it whole.
    const words = (n: number, tag: string): string => Array.from({ length: n }, (_, k) => `${tag}word${k}`).join(' ');
    const file = path.join(dir, 'tall-row.html');
    fs.writeFileSync(file, `<!doctype html><html><body><table><thead><tr><th>row</th><th>text</th></tr></thead><tbody><tr><td>first</td><td>${words(20, 'a')}</td></tr><tr><td>tall</td><td>${words(4000, 'b')}</td></tr></tbody></table></body></html>`);
    await page.goto(`file://${file}`);
    const plain = await cutRows(page, path.join(dir, 'tall-row.pdf'));
    expect(plain.cut.length).toBe(1);
    expect(plain.cut[0]).toMatch(/^tall/);
    // The same text in the report: cells are capped, so its 80 long refusals print uncut.
    const long = { ...report };
    const items = Array.from({ length: 80 }, (_, i) => ({ ...report.sections.refusals.refusals.items[0], record: `report-test#${1000 + i}`, sql: `SELECT ${words(600, `c${i}x`)} FROM public.customers` }));
    long.sections = { ...report.sections, refusals: { ...report.sections.refusals, refusals: { total: items.length, items, truncated: false } } };
    fs.writeFileSync(file, renderHtml(long));
    await page.goto(`file://${file}`);
    const withRules = await cutRows(page, path.join(dir, 'long-report.pdf'));
    expect(withRules.pages).toBeGreaterThan(10);
    expect(withRules.cut).toEqual([]);
    expect(withRules.headerless).toEqual([]);
    await page.close();
  }, 60_000);

  it("a tampered log's report says so first", async () => {
    const tampered = path.join(dir, 'tampered.jsonl');
    const lines = fs.readFileSync(auditFile, 'utf8').split('\n');
    const i = lines.findIndex((l) => l.includes('"type":"statement.refused"') && l.includes('"identity":"agent"'));
    expect(i).toBeGreaterThan(0);
    // Someone hides that the agent tried the drop.
    lines[i] = lines[i].replace(/"identity":"agent"/g, '"identity":"alice"');
    fs.writeFileSync(tampered, lines.join('\n'));
    fs.copyFileSync(`${auditFile}.checkpoints.jsonl`, `${tampered}.checkpoints.jsonl`);
    const out2 = path.join(dir, 'out-tampered');
    const r = await runCli(['report', '--config', configFile, '--store', `jsonl:${tampered}`, '--from', from, '--to', to, '--out', out2]);
    expect(r.code, r.out + r.err).toBe(1);
    expect(r.out.split('\n')[0]).toMatch(/^FAIL WARNING: the audit log FAILED verification for this period \(hash-mismatch/);
    const j = JSON.parse(fs.readFileSync(path.join(out2, 'report.json'), 'utf8')) as Report;
    expect(Object.keys(j).indexOf('integrity')).toBeLessThan(Object.keys(j).indexOf('sections'));
    expect(j.integrity.ok).toBe(false);
    expect(j.integrity.instances[0].problems[0]).toMatchObject({ kind: 'hash-mismatch', seq: JSON.parse(lines[i]).seq });
    browser ??= await launchBrowser();
    const page = await browser.browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(`file://${path.join(out2, 'report.html')}`);
    // The first block under the title is the failed verdict.
    const first = await page.evaluate<string>("document.querySelector('main > h1').nextElementSibling.nextElementSibling.querySelector('.verdict')?.textContent ?? ''");
    expect(first).toMatch(/^AUDIT LOG TAMPERED: verification FAILED/);
    expect(await page.title()).toMatch(/AUDIT LOG TAMPERED/);
    await screenshot(page, 'report-tampered');
    await page.screenshot({ path: path.join(SCREENSHOT_DIR, 'report-tampered-top.png') });
    await page.locator('#refusals').screenshot({ path: path.join(SCREENSHOT_DIR, 'report-tampered-refusals.png') });
    expect(await page.locator('#refusals tr.bad, #refusals td .tag.unmasked').count()).toBeGreaterThan(0);
    await page.close();
  }, 60_000);

  it('backtest: a policy denying what was allowed lists exactly those statements; one relaxing a mask exactly the reads it would unmask', async () => {
    const all = records();
    const ranOnCustomers = all.filter((r) => r.type === 'statement.begin' && (r.data.reads ?? []).includes('public.customers')).map((r) => `report-test#${r.seq}`);
    const maskedReads = all.filter((r) => r.type === 'statement.begin' && r.data.decision?.action === 'mask').map((r) => `report-test#${r.seq}`);
    expect(ranOnCustomers.length).toBe(2);
    expect(maskedReads.length).toBe(1);
    const current = fs.readFileSync(configFile, 'utf8');
    const stricter = path.join(dir, 'stricter.yaml');
    fs.writeFileSync(stricter, current.replace('rules:\n', 'rules:\n  - name: no-customer-reads\n    match: { tables: [public.customers], statement: [read] }\n    action: deny\n'));
    const s = await runCli(['policy', 'backtest', '--config', stricter, '--from', from, '--to', to, '--json']);
    expect(s.code, s.err).toBe(0);
    const strict = JSON.parse(s.out) as BacktestResult;
    expect(strict.changes['newly-refused'].items.map((c) => c.record)).toEqual(ranOnCustomers);
    expect(strict.changes['newly-refused'].items.every((c) => c.now.rule === 'no-customer-reads')).toBe(true);
    expect(strict.counts['now-unmasked'] + strict.counts['now-allowed'] + strict.counts['newly-masked']).toBe(0);

    const relaxed = path.join(dir, 'relaxed.yaml');
    fs.writeFileSync(relaxed, current.replace(/  - name: agents-see-masked-email\n.*\n.*\n/, ''));
    expect(fs.readFileSync(relaxed, 'utf8')).not.toContain('agents-see-masked-email');
    const rl = await runCli(['policy', 'backtest', '--config', relaxed, '--from', from, '--to', to, '--json']);
    expect(rl.code, rl.err).toBe(0);
    const relax = JSON.parse(rl.out) as BacktestResult;
    expect(relax.changes['now-unmasked'].items.map((c) => c.record)).toEqual(maskedReads);
    expect(relax.changes['now-unmasked'].items[0].was.maskedColumns).toEqual(['email']);
    expect(relax.counts['newly-refused']).toBe(0);

    const text = await runCli(['policy', 'backtest', '--config', stricter, '--from', from, '--to', to]);
    expect(text.out).toMatch(/Newly refused\s+2/);
    expect(text.out).toMatch(/Limits of a backtest/);
  }, 60_000);
});

/**
 * Prints the page to PDF and checks each table row's text lies on one page, and that each
 * page holding rows of a table also holds that table's header (repeated headers).
 */
async function cutRows(page: import('playwright-core').Page, pdf: string): Promise<{ pages: number; cut: string[]; headerless: string[] }> {
  const norm = (s: string): string => s.replace(/[^A-Za-z0-9]/g, '');
  const tables = await page.evaluate<{ head: string; rows: string[] }[]>(
    `[...document.querySelectorAll('table')].map((t) => ({
      head: [...t.querySelectorAll('thead th')].map((th) => th.textContent ?? '').join(' '),
      rows: [...t.querySelectorAll('tbody tr')].map((tr) => tr.textContent ?? ''),
    }))`,
  );
  await page.emulateMedia({ media: 'print' });
  await page.pdf({ path: pdf, format: 'A4', printBackground: true, preferCSSPageSize: true });
  await page.emulateMedia({ media: 'screen' });
  const info = execFileSync('pdfinfo', [pdf]).toString();
  const pages = Number(/Pages:\s+(\d+)/.exec(info)![1]);
  const texts: string[] = [];
  for (let p = 1; p <= pages; p++) texts.push(norm(execFileSync('pdftotext', ['-raw', '-f', String(p), '-l', String(p), pdf, '-']).toString()));
  const cut: string[] = [];
  const headerless: string[] = [];
  for (const t of tables) {
    const head = norm(t.head);
    for (const row of t.rows) {
      const r = norm(row);
      if (r.length < 12) continue;
      const on = texts.map((x, i) => (x.includes(r) ? i : -1)).filter((i) => i >= 0);
      if (on.length === 0) cut.push(row.slice(0, 120));
      else if (!on.some((i) => texts[i].includes(head))) headerless.push(`${t.head.slice(0, 60)} | ${row.slice(0, 60)}`);
    }
  }
  return { pages, cut, headerless };
}
