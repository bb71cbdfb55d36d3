/**
 * The report's aggregation over a hand-made chain (every section's record types),
 * its integrity check (edited, deleted and cut records; anchors and covers), the
 * renderings, and the backtest's categories.
 */
import crypto from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ChainWriter, signCheckpoint, type AuditRecord } from '../../src/audit/chain.js';
import type { AuditStore } from '../../src/audit/store.js';
import { openJsonlStore } from '../../src/audit/store-jsonl.js';
import { openSqliteStore } from '../../src/audit/store-sqlite.js';
import { SqliteAuditDb, toStoredRow } from '../../src/audit/sqlite-db.js';
import Database from 'better-sqlite3';
import { buildReport, type Report } from '../../src/report/build.js';
import { renderHtml } from '../../src/report/render-html.js';
import { renderCsv } from '../../src/report/render-csv.js';
import { backtest } from '../../src/report/backtest.js';
import { proposedPolicy, ProposalError } from '../../src/report/proposed.js';
import type { RuleConfig } from '../../src/config/types.js';

const T0 = Date.UTC(2026, 10, 2, 9, 0, 0);
const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519');
const at = (min: number): Date => new Date(T0 + min * 60_000);
const FROM = at(0).toISOString();
const TO = at(1000).toISOString();

const RULES: RuleConfig[] = [
  { name: 'mask-pii', match: { sensitive: ['email'], kind: ['agent'] }, action: 'mask' },
  { name: 'no-drop', match: { statement: ['drop'] }, action: 'deny', reason: 'no drops' },
  { name: 'ticket-for-writes', match: { statement: ['write'], intent: false }, action: 'deny' },
  { name: 'big-delete', match: { statement: ['delete'] }, action: 'approve', approvers: { groups: ['dba'], count: 1 } },
];

const who = (identity: string, kind: string, session: string, extra: Record<string, unknown> = {}) => ({ session, identity, kind, database: 'app', environment: 'production', ...extra });

/** A small workload, one record of each kind the report reads. */
function workload(w: ChainWriter): AuditRecord[] {
  const r: AuditRecord[] = [];
  let m = 1;
  const add = (type: string, data: Record<string, unknown>) => {
    const rec = w.append(type, data as never, at(m++));
    r.push(rec);
    return rec;
  };
  add('warden.start', { version: '0.1.0', pid: 1, host: '127.0.0.1', port: 6432, instance: 'w1' });
  add('config.loaded', { source: '/etc/warden.yaml', hash: 'a'.repeat(64) });
  add('login.failed', { identity: 'mallory', client_address: '10.6.6.6', database: 'app', reason: 'authentication failed', tls: false });
  add('session.start', { ...who('alice', 'human', 's1'), groups: ['dba'], client_address: '10.0.0.1', intent: {} });
  add('session.start', { ...who('bot', 'agent', 's2', { on_behalf_of: 'carol' }), groups: ['agents'], client_address: '10.0.0.2', intent: {} });
  // alice reads emails unmasked (2 rows)
  const b1 = add('statement.begin', { ...who('alice', 'human', 's1'), protocol: 'simple', sql: 'SELECT email FROM public.customers WHERE id = $1', intent: { ticket: 'T-1' }, tables: ['public.customers'], reads: ['public.customers'], writes: [], classes: ['read', 'select'], kinds: ['select'], decision: { action: 'allow', rule: 'default', reason: 'default', matched: [] }, sensitive: ['email'] });
  add('statement.end', { session: 's1', identity: 'alice', begin_seq: b1.seq, rows: 2, duration_ms: 1, tags: ['SELECT 2'] });
  // the agent reads emails masked (5 rows)
  const b2 = add('statement.begin', { ...who('bot', 'agent', 's2', { on_behalf_of: 'carol' }), protocol: 'simple', sql: 'SELECT id, email FROM public.customers', intent: {}, tables: ['public.customers'], reads: ['public.customers'], writes: [], classes: ['read', 'select'], kinds: ['select'], decision: { action: 'mask', rule: 'mask-pii', reason: 'r', matched: [{ rule: 'mask-pii', action: 'mask', certain: true }] }, sensitive: ['email'] });
  add('statement.end', { session: 's2', identity: 'bot', begin_seq: b2.seq, rows: 5, duration_ms: 1, masked: ['email'], tags: ['SELECT 5'] });
  // the agent tries a drop: refused
  add('statement.refused', { ...who('bot', 'agent', 's2', { on_behalf_of: 'carol' }), protocol: 'simple', sql: 'DROP TABLE public.customers', intent: {}, tables: ['public.customers'], reads: [], writes: ['public.customers'], classes: ['ddl', 'drop'], kinds: ['drop'], decision: { action: 'deny', rule: 'no-drop', reason: 'no drops', matched: [{ rule: 'no-drop', action: 'deny', certain: true }] }, sqlstate: '42501', error: 'denied by no-drop' });
  // alice writes without a ticket: refused by the intent rule
  add('statement.refused', { ...who('alice', 'human', 's1'), protocol: 'simple', sql: 'UPDATE public.orders SET total = 0', intent: {}, tables: ['public.orders'], reads: [], writes: ['public.orders'], classes: ['update', 'write'], kinds: ['update'], decision: { action: 'deny', rule: 'ticket-for-writes', reason: 'r', matched: [{ rule: 'ticket-for-writes', action: 'deny', certain: true }] }, sqlstate: '42501', error: 'denied' });
  // alice's delete is held, approved by dave after 3 minutes, then runs
  add('approval.requested', { session: 's1', identity: 'alice', request: 'apr-1', mode: 'hold', rules: ['big-delete'], tables: ['public.orders'], sql: 'DELETE FROM public.orders WHERE id < 10' });
  m += 2;
  add('approval.decided', { identity: 'dave', request: 'apr-1', decision: 'approve', reason: 'cleanup agreed', status: 'approved' });
  add('approval.resolved', { session: 's1', identity: 'alice', request: 'apr-1', status: 'approved' });
  const b3 = add('statement.begin', { ...who('alice', 'human', 's1'), protocol: 'simple', sql: 'DELETE FROM public.orders WHERE id < 10', intent: { ticket: 'T-2', reason: 'cleanup' }, tables: ['public.orders'], reads: ['public.orders'], writes: ['public.orders'], classes: ['delete', 'write'], kinds: ['delete'], decision: { action: 'approve', rule: 'big-delete', reason: 'r', matched: [{ rule: 'big-delete', action: 'approve', certain: true }] } });
  add('statement.end', { session: 's1', identity: 'alice', begin_seq: b3.seq, rows: 0, affected: 9, duration_ms: 1, tags: ['DELETE 9'] });
  // a limit halts the agent
  add('limit.exceeded', { session: 's2', identity: 'bot', kind: 'agent', database: 'app', limit: 'agent-rows', measure: 'max_rows', figure: 1001, max: 1000, on_exceed: 'halt', protocol: 'simple', sql: 'SELECT * FROM public.orders' });
  // a schema change by alice
  const b4 = add('statement.begin', { ...who('alice', 'human', 's1'), protocol: 'simple', sql: 'ALTER TABLE public.orders ADD COLUMN note text', intent: { ticket: 'T-3' }, tables: ['public.orders'], reads: [], writes: ['public.orders'], classes: ['alter', 'ddl'], kinds: ['alter'], decision: { action: 'allow', rule: 'default', reason: 'd', matched: [] } });
  add('statement.end', { session: 's1', identity: 'alice', begin_seq: b4.seq, rows: 0, duration_ms: 3, tags: ['ALTER TABLE'] });
  add('schema.change', { ...who('alice', 'human', 's1'), statement_seq: b4.seq, tables: ['public.orders'], objects: { 'public.orders': { before: { columns: ['id', 'total'] }, after: { columns: ['id', 'total', 'note'] }, changes: ['column "note" text added'] } }, read: { before: 'catalog', after: 'catalog' } });
  // operators
  add('session.killed', { session: 's2', identity: 'bot', database: 'app', by: 'dave', reason: 'runaway agent' });
  add('identity.suspended', { identity: 'bot', reason: 'runaway agent', by: 'dave', sessions_ended: ['s2'] });
  add('config.reloaded', { source: '/etc/warden.yaml', previous_hash: 'a'.repeat(64), hash: 'b'.repeat(64), restart_needed: [], trigger: 'admin-api', identity: 'dave' });
  add('session.end', { ...who('alice', 'human', 's1'), reason: 'client closed', duration_ms: 1000, statements: 4, refused: 1 });
  return r;
}

let dir: string;
let file: string;
let store: AuditStore;
let records: AuditRecord[];

async function fill(withCheckpoints: boolean): Promise<void> {
  const w = new ChainWriter({ instance: 'w1' });
  records = workload(w);
  const s = await openJsonlStore(file);
  await s.append(records);
  if (withCheckpoints) {
    await s.saveCheckpoint(signCheckpoint(records[9], privateKey, at(20)));
    await s.saveCheckpoint(signCheckpoint(records[records.length - 1], privateKey, at(40)));
  }
  await s.close();
  store = await openJsonlStore(file, { readOnly: true });
}

const report = (o: Partial<Parameters<typeof buildReport>[1]> = {}): Promise<Report> =>
  buildReport(store, { from: FROM, to: TO, config: { rules: RULES, sensitive: { columns: { 'public.customers.email': 'email' } }, report: { privilegedGroups: ['dba'] } }, publicKey, ...o });

beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'warden-report-'));
  file = path.join(dir, 'audit.jsonl');
});
afterEach(async () => {
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('report aggregation', () => {
  it('counts every section from the records', async () => {
    await fill(true);
    const r = await report();
    expect(r.integrity.ok).toBe(true);
    expect(r.totals.records).toBe(records.length);
    expect(r.totals.statements).toBe(6);
    expect(r.totals.refused).toBe(2);
    const sr = r.sections.sensitiveReads;
    expect(sr.statements).toBe(2);
    expect(sr.maskedStatements).toBe(1);
    expect(sr.unmaskedStatements).toBe(1);
    expect(sr.groups.map((g) => [g.type, g.identity, g.kind, g.masked, g.statements, g.rows, g.columns, g.maskedColumns])).toEqual([
      ['email', 'alice', 'human', false, 1, 2, ['public.customers.email'], []],
      ['email', 'bot', 'agent', true, 1, 5, ['public.customers.email'], ['email']],
    ]);
    expect(r.sections.refusals.failedLogins.items.map((l) => [l.identity, l.clientAddress, l.reason, l.channel])).toEqual([['mallory', '10.6.6.6', 'authentication failed', 'postgres']]);
    expect(r.sections.refusals.byRule).toEqual([
      { key: 'no-drop', count: 1 },
      { key: 'ticket-for-writes', count: 1 },
    ]);
    const ap = r.sections.approvals.requests;
    expect(ap).toHaveLength(1);
    expect(ap[0]).toMatchObject({ request: 'apr-1', requester: 'alice', status: 'approved', database: 'app', intent: { ticket: 'T-2', reason: 'cleanup' }, waitMs: 3 * 60_000 });
    expect(ap[0].decisions).toEqual([expect.objectContaining({ approver: 'dave', decision: 'approve', reason: 'cleanup agreed' })]);
    expect(r.sections.limits.events.items.map((e) => [e.identity, e.limit, e.outcome])).toEqual([['bot', 'agent-rows', 'halted']]);
    const sc = r.sections.schemaChanges.changes.items;
    expect(sc).toHaveLength(1);
    expect(sc[0]).toMatchObject({ identity: 'alice', sql: 'ALTER TABLE public.orders ADD COLUMN note text', intent: { ticket: 'T-3' } });
    expect(sc[0].objects[0]).toMatchObject({ object: 'public.orders', changes: ['column "note" text added'], before: { columns: ['id', 'total'] } });
    expect(r.sections.agents.access).toEqual([expect.objectContaining({ identity: 'bot', onBehalfOf: 'carol', statements: 2, refused: 1, sensitive: 1, masked: 1, sessions: 1 })]);
    expect(r.sections.missingIntent.statements.items.map((x) => [x.identity, x.rule, x.outcome])).toEqual([['alice', 'ticket-for-writes', 'refused']]);
    expect(r.sections.privileged.identities).toEqual([expect.objectContaining({ identity: 'alice', groups: ['dba'], statements: 4, refused: 1, ddl: 1, writes: 2 })]);
    expect(r.sections.operations.kills.items).toEqual([expect.objectContaining({ identity: 'bot', by: 'dave', reason: 'runaway agent' })]);
    expect(r.sections.operations.suspensions.items).toEqual([expect.objectContaining({ event: 'suspended', identity: 'bot', sessionsEnded: 1 })]);
    expect(r.sections.operations.config.items.map((c) => c.event)).toEqual(['loaded', 'reloaded']);
  });

  it('keeps to the period and to the database asked for', async () => {
    await fill(true);
    const r = await report({ from: at(6).toISOString(), to: at(10).toISOString() });
    // minutes 6..9: b1 (6), its end (7), b2 (8), its end (9)
    expect(r.totals.records).toBe(4);
    expect(r.sections.sensitiveReads.statements).toBe(2);
    expect(r.sections.refusals.total).toBe(0);
    const other = await report({ database: 'other' });
    expect(other.totals.statements).toBe(0);
    expect(other.sections.approvals.total).toBe(0);
  });

  it('anchors the verification at a signed checkpoint before the period and pins it with one after', async () => {
    await fill(true);
    const r = await report({ from: at(15).toISOString() });
    const i = r.integrity.instances[0];
    expect(i.anchor?.seq).toBe(10);
    expect(i.anchor?.signatureValid).toBe(true);
    expect(i.verifiedFromSeq).toBe(11);
    expect(i.cover?.seq).toBe(records.length);
    expect(i.checkpoints.map((c) => [c.seq, c.signatureValid])).toEqual([
      [10, true],
      [records.length, true],
    ]);
    expect(i.unpinnedRecords).toBe(0);
  });

  it('says first that an edited log failed verification', async () => {
    await fill(true);
    await store.close();
    const lines = readFileSync(file, 'utf8').split('\n');
    const idx = lines.findIndex((l) => l.includes('"DROP TABLE public.customers"'));
    lines[idx] = lines[idx].replace('DROP TABLE public.customers', 'SELECT 1');
    writeFileSync(file, lines.join('\n'));
    store = await openJsonlStore(file, { readOnly: true });
    const r = await report();
    expect(r.integrity.ok).toBe(false);
    expect(r.integrity.verdict).toMatch(/^WARNING: the audit log FAILED verification for this period \(hash-mismatch/);
    expect(Object.keys(r).indexOf('integrity')).toBeLessThan(Object.keys(r).indexOf('sections'));
    const html = renderHtml(r);
    const body = html.slice(html.indexOf('<main>'));
    // The first thing on the page after the title: the failed verdict.
    expect(body.indexOf('AUDIT LOG TAMPERED')).toBeGreaterThan(0);
    expect(body.indexOf('AUDIT LOG TAMPERED')).toBeLessThan(body.indexOf('class="figures"'));
    expect(html).toMatch(/<title>[^<]*AUDIT LOG TAMPERED/);
    // The edited refusal is marked where it is listed.
    const row = /<tr[^>]*>(?:(?!<\/tr>)[\s\S])*SELECT 1(?:(?!<\/tr>)[\s\S])*<\/tr>/.exec(html)?.[0] ?? '';
    expect(row).toContain('failed verification');
    expect(html.match(/>failed verification</g)).toHaveLength(1);
  });

  it('reports records deleted from the period as a gap, and a cut tail against its checkpoint', async () => {
    await fill(true);
    await store.close();
    const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');
    writeFileSync(file, [...lines.slice(0, 5), ...lines.slice(7)].join('\n') + '\n');
    store = await openJsonlStore(file, { readOnly: true });
    const gap = await report();
    expect(gap.integrity.ok).toBe(false);
    expect(gap.integrity.instances[0].problems.map((p) => p.kind)).toContain('seq-gap');
    await store.close();
    writeFileSync(file, lines.slice(0, lines.length - 3).join('\n') + '\n');
    store = await openJsonlStore(file, { readOnly: true });
    const cut = await report();
    expect(cut.integrity.ok).toBe(false);
    expect(cut.integrity.instances[0].problems.map((p) => p.kind)).toContain('truncated');
  });

  it('says which records no signed checkpoint pins yet', async () => {
    await fill(false);
    const r = await report();
    expect(r.integrity.ok).toBe(true);
    expect(r.integrity.instances[0].unpinnedRecords).toBe(records.length);
    expect(r.integrity.verdict).toMatch(/not pinned by a signature/);
  });
});

describe('report over a SQLite store (its index read in batches, data hashed as stored)', () => {
  it('gives the same figures as over the records, and finds an edited row', async () => {
    await fill(true);
    const fromJsonl = await report();
    const dbFile = path.join(dir, 'audit.db');
    const db = new SqliteAuditDb(dbFile, { durability: 'os' });
    db.appendRows(records.map(toStoredRow));
    for (const cp of await store.checkpoints()) db.saveCheckpoint(cp);
    db.close();
    await store.close();
    store = await openSqliteStore(dbFile, { readOnly: true });
    const r = await report();
    expect(r.integrity.ok).toBe(true);
    expect(r.integrity.instances[0].verifiedRecords).toBe(records.length);
    expect({ ...r, generatedAt: '', store: '' }).toEqual({ ...fromJsonl, generatedAt: '', store: '' });
    await store.close();
    const target = records.find((x) => x.type === 'statement.refused')!;
    const raw = new Database(dbFile);
    raw.prepare("UPDATE records SET data = replace(data, 'DROP TABLE', 'SELECT * FROM') WHERE seq = ?").run(target.seq);
    raw.close();
    store = await openSqliteStore(dbFile, { readOnly: true });
    const t = await report();
    expect(t.integrity.ok).toBe(false);
    expect(t.integrity.instances[0].problems).toEqual([expect.objectContaining({ kind: 'hash-mismatch', seq: target.seq })]);
  });
});

describe('a report made by a running Warden', () => {
  it('gives the event loop turns while it reads (the proxy is not held up)', async () => {
    const dbFile = path.join(dir, 'big.db');
    const db = new SqliteAuditDb(dbFile, { durability: 'os' });
    const w = new ChainWriter({ instance: 'w1' });
    const rows = [];
    for (let i = 0; i < 6000; i++) rows.push(toStoredRow(w.append('statement.begin', { session: 's', identity: 'alice', kind: 'human', database: 'app', sql: `SELECT ${i}`, classes: ['read'], decision: { action: 'allow' } }, at(i / 100))));
    db.appendRows(rows);
    db.close();
    store = await openSqliteStore(dbFile, { readOnly: true });
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    try {
      const r = await report();
      expect(r.totals.statements).toBe(6000);
    } finally {
      clearInterval(timer);
    }
    // Without a turn between batches no timer could fire until the report was done.
    expect(ticks).toBeGreaterThanOrEqual(3);
  });
});

describe('report renderings', () => {
  it('CSV: one file per section, formulas neutralized; HTML self-contained', async () => {
    await fill(true);
    const r = await report();
    const csv = renderCsv(r);
    expect(Object.keys(csv)).toEqual(expect.arrayContaining(['integrity.csv', 'controls.csv', 'sensitive-reads.csv', 'refusals.csv', 'approvals.csv', 'limits.csv', 'schema-changes.csv', 'agents.csv', 'missing-intent.csv', 'privileged-identities.csv', 'suspensions.csv', 'kills.csv', 'config-reloads.csv']));
    expect(csv['refusals.csv'].split('\r\n').filter((l) => l !== '')).toHaveLength(3);
    expect(csv['controls.csv']).toContain('"SOC 2","CC6.1"');
    const html = renderHtml(r);
    expect(html).not.toMatch(/<script|src="http|href="http|@import/);
    expect(html).toContain('break-inside: avoid');
    expect(html).toContain('Evidence, not certification');
    for (const c of ['CC6.1', 'CC6.2', 'CC6.3', 'CC7.2', 'CC8.1', 'A.8.15', 'A.8.16', '164.312(b)', '10.2']) expect(html).toContain(c);
    expect(html).not.toMatch(/certified|compliant with/i);
  });
});

describe('report HTML: whatever the records hold stays text', () => {
  it('a client-chosen intent, statement, identity or reason cannot put markup in the report', async () => {
    // A database client chooses its statement text and its intent (warden.* options, sqlcommenter
    // keys and values); identities and reasons come from configs and operators. None may become markup,
    // even as an object shaped like the renderer's own raw-HTML cells ({ html: ... }).
    const XSS = '<script>alert(1)</script><img src=x onerror=alert(2)>';
    const w = new ChainWriter({ instance: 'w1' });
    const recs: AuditRecord[] = [];
    let m = 1;
    const add = (type: string, data: Record<string, unknown>) => {
      const rec = w.append(type, data as never, at(m++));
      recs.push(rec);
      return rec;
    };
    const evil = who(`eve${XSS}`, 'agent', 's9', { on_behalf_of: `carol${XSS}` });
    add('session.start', { ...evil, groups: ['agents'], client_address: '10.0.0.9', intent: { html: XSS } });
    const b = add('statement.begin', { ...evil, protocol: 'simple', sql: `SELECT email FROM public.customers /* ${XSS} */`, intent: { html: XSS, ticket: XSS }, tables: ['public.customers'], reads: ['public.customers'], writes: [], classes: ['read', 'select'], kinds: ['select'], decision: { action: 'allow', rule: 'default', reason: XSS, matched: [] }, sensitive: ['email'] });
    add('statement.end', { session: 's9', identity: evil.identity, begin_seq: b.seq, rows: 1, duration_ms: 1, tags: ['SELECT 1'] });
    add('statement.refused', { ...evil, protocol: 'simple', sql: `UPDATE public.orders SET note = '${XSS}'`, intent: { html: XSS }, tables: ['public.orders'], reads: [], writes: ['public.orders'], classes: ['update', 'write'], kinds: ['update'], decision: { action: 'deny', rule: 'ticket-for-writes', reason: XSS, matched: [{ rule: 'ticket-for-writes', action: 'deny', certain: true }] }, sqlstate: '42501', error: XSS });
    add('limit.exceeded', { ...evil, limit: `rows${XSS}`, measure: 'max_rows', figure: 2, max: 1, on_exceed: 'halt', protocol: 'simple', sql: XSS });
    add('identity.suspended', { identity: evil.identity, reason: XSS, by: `dave${XSS}`, sessions_ended: ['s9'] });
    const s = await openJsonlStore(file);
    await s.append(recs);
    await s.close();
    store = await openJsonlStore(file, { readOnly: true });
    const html = renderHtml(await report());
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;'); // it is shown, as text
    // No element of the records' own: every < of theirs is &lt; (the text above still shows them).
    expect(html).not.toMatch(/<script|<img/i);
  });
});

describe('backtest', () => {
  it('lists what a stricter and a relaxed policy would change', async () => {
    await fill(true);
    const base = { default: 'allow' as const, sensitive: { columns: { 'public.customers.email': 'email' }, detect: [], maskers: {} }, limits: [] };
    // Deny every read of customers: the two reads become refused.
    const strict = await backtest(store, { from: FROM, to: TO, policy: { ...base, rules: [...RULES, { name: 'no-customers', match: { tables: ['public.customers'], statement: ['read'] }, action: 'deny' }] } });
    expect(strict.changes['newly-refused'].items.map((c) => c.sql)).toEqual(['SELECT email FROM public.customers WHERE id = $1', 'SELECT id, email FROM public.customers']);
    // Without the mask rule: the agent's masked read would have been unmasked.
    const relaxed = await backtest(store, { from: FROM, to: TO, policy: { ...base, rules: RULES.filter((r) => r.name !== 'mask-pii') } });
    expect(relaxed.changes['now-unmasked'].items.map((c) => [c.identity, c.sql, c.was.maskedColumns])).toEqual([['bot', 'SELECT id, email FROM public.customers', ['email']]]);
    expect(relaxed.changes['newly-refused'].total).toBe(0);
    // Masking everyone's email reads: alice's read is newly masked.
    const mask = await backtest(store, { from: FROM, to: TO, policy: { ...base, rules: [{ name: 'mask-all', match: { sensitive: ['email'] }, action: 'mask' }, ...RULES.slice(1)] } });
    expect(mask.changes['newly-masked'].items.map((c) => c.identity)).toEqual(['alice']);
    // A max_rows limit of 3: the agent's 5-row read would have been halted.
    const lim = await backtest(store, { from: FROM, to: TO, policy: { ...base, rules: RULES, limits: [{ name: 'small', match: { kind: ['agent'] }, maxRows: 3, onExceed: 'halt' }] } });
    expect(lim.changes['newly-limited'].items.map((c) => [c.identity, c.detail])).toEqual([['bot', 'small: 5 rows > max_rows 3']]);
    // Same policy: nothing changes.
    const same = await backtest(store, { from: FROM, to: TO, policy: { ...base, rules: RULES } });
    expect(Object.values(same.counts).every((n) => n === 0)).toBe(true);
    expect(same.replayed).toBe(6);
  });

  it('a proposal replaces only the sections it gives, validated by the config schema', () => {
    const running = { rules: RULES, default: 'allow' as const, limits: [] };
    const p = proposedPolicy(running, 'rules:\n  - name: x\n    match: { statement: [drop] }\n    action: deny\n');
    expect(p.rules.map((r) => r.name)).toEqual(['x']);
    expect(p.default).toBe('allow');
    expect(() => proposedPolicy(running, 'masking: {}')).toThrow(ProposalError);
    expect(() => proposedPolicy(running, 'rules:\n  - name: x\n    action: nope\n    match: {}\n')).toThrow(/rules/);
    expect(() => proposedPolicy(running, 'listen: {}')).toThrow(/unknown section "listen"/);
  });
});
