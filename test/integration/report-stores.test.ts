/**
 * The report over a PostgreSQL audit store (the store's own `chain` and `query`, data
 * decoded and re-encoded to hash) gives the same figures as over a JSONL copy of the same
 * records, and finds a record edited in PostgreSQL.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ChainWriter, signCheckpoint, type AuditRecord } from '../../src/audit/chain.js';
import type { AuditStore } from '../../src/audit/store.js';
import { openJsonlStore } from '../../src/audit/store-jsonl.js';
import { openPostgresStore } from '../../src/audit/store-postgres.js';
import { startPgCluster, type PgCluster } from '../../src/embedded/pg-cluster.js';
import { buildReport, type Report } from '../../src/report/build.js';
import { backtest } from '../../src/report/backtest.js';

const T0 = Date.UTC(2026, 10, 2, 9, 0, 0);
const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519');
let cluster: PgCluster;
let dir: string;
const stores: AuditStore[] = [];
let records: AuditRecord[];

function workload(): AuditRecord[] {
  const w = new ChainWriter({ instance: 'pg-1' });
  const out: AuditRecord[] = [];
  let m = 0;
  const add = (type: string, data: Record<string, unknown>): AuditRecord => {
    const r = w.append(type, data as never, new Date(T0 + m++ * 60_000));
    out.push(r);
    return r;
  };
  const who = (identity: string, kind: string) => ({ session: `s-${identity}`, identity, kind, database: 'app' });
  add('session.start', { ...who('alice', 'human'), groups: ['dba'], client_address: '10.0.0.1', intent: {} });
  add('login.failed', { identity: 'mallory', client_address: '10.6.6.6', database: 'app', reason: 'authentication failed', tls: false });
  for (let i = 0; i < 30; i++) {
    const agent = i % 3 === 0;
    const id = agent ? who('bot', 'agent') : who('alice', 'human');
    const b = add('statement.begin', { ...id, protocol: 'simple', sql: `SELECT id, email FROM public.customers WHERE id = $1`, intent: { ticket: `T-${i}` }, tables: ['public.customers'], reads: ['public.customers'], writes: [], classes: ['read', 'select'], kinds: ['select'], decision: { action: agent ? 'mask' : 'allow', rule: agent ? 'mask-pii' : 'default', reason: 'r', matched: [] }, sensitive: ['email'], odd: { 'é': 'ünïcode ✓', big: 1e21, small: 0.1 } });
    add('statement.end', { session: id.session, identity: id.identity, begin_seq: b.seq, rows: i, duration_ms: 0.5, tags: [`SELECT ${i}`], ...(agent ? { masked: ['email'] } : {}) });
    if (i % 7 === 0) add('statement.refused', { ...id, protocol: 'simple', sql: 'DROP TABLE public.customers', intent: {}, tables: ['public.customers'], reads: [], writes: ['public.customers'], classes: ['ddl', 'drop'], kinds: ['drop'], decision: { action: 'deny', rule: 'no-drop', reason: 'no', matched: [{ rule: 'no-drop', action: 'deny', certain: true }] }, sqlstate: '42501', error: 'denied' });
  }
  return out;
}

async function filled(store: AuditStore): Promise<AuditStore> {
  await store.append(records);
  await store.saveCheckpoint(signCheckpoint(records[19], privateKey, new Date(T0 + 3_600_000)));
  await store.saveCheckpoint(signCheckpoint(records[records.length - 1], privateKey, new Date(T0 + 7_200_000)));
  stores.push(store);
  return store;
}

const report = (store: AuditStore): Promise<Report> =>
  buildReport(store, { from: new Date(T0).toISOString(), to: new Date(T0 + 86_400_000).toISOString(), config: { sensitive: { columns: { 'public.customers.email': 'email' } } }, publicKey });
const comparable = (r: Report): unknown => ({ ...r, generatedAt: '', store: '' });

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-report-stores-'));
  cluster = await startPgCluster();
  records = workload();
}, 60_000);

afterAll(async () => {
  for (const s of stores) await s.close().catch(() => undefined);
  await cluster?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

it('a PostgreSQL store gives the figures a JSONL copy gives, and an edited row is found', async () => {
  const jsonl = await filled(await openJsonlStore(path.join(dir, 'a.jsonl')));
  const pg = await filled(await openPostgresStore(cluster.url('postgres'), { schema: 'audit_report' }));
  const a = await report(jsonl);
  const b = await report(pg);
  expect(a.integrity.ok).toBe(true);
  expect(b.integrity.ok).toBe(true);
  expect(b.integrity.instances[0].anchor).toBeNull();
  expect(b.integrity.instances[0].checkpoints.map((c) => c.seq)).toEqual([20, records.length]);
  expect(comparable(b)).toEqual(comparable(a));
  expect(b.sections.sensitiveReads.maskedStatements).toBe(10);
  expect(b.sections.refusals.total).toBe(5);
  expect(b.sections.refusals.failedLogins.total).toBe(1);
  const bt = await backtest(pg, { from: new Date(T0).toISOString(), to: new Date(T0 + 86_400_000).toISOString(), policy: { rules: [], default: 'allow', limits: [] } });
  // Without the mask rule every masked read of the agent would have been unmasked; without no-drop the drops run.
  expect(bt.counts['now-unmasked']).toBe(10);
  expect(bt.counts['now-allowed']).toBe(5);

  const target = records.find((r) => r.type === 'statement.refused')!;
  await cluster.query(`UPDATE audit_report.records SET data = replace(data, 'DROP TABLE', 'SELECT 1 FROM') WHERE seq = ${target.seq}`, 'postgres');
  const t = await report(pg);
  expect(t.integrity.ok).toBe(false);
  expect(t.integrity.instances[0].problems).toEqual([expect.objectContaining({ kind: 'hash-mismatch', seq: target.seq })]);
}, 60_000);
