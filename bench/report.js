#!/usr/bin/env node
/**
 * The compliance report on a large log: fills a SQLite audit store with
 * BENCH_REPORT_RECORDS records (default 1 000 000; hash-chained like Warden
 * writes them, with signed checkpoints every 1 000 records: sessions, statement
 * begin/end pairs from 50 identities over 200 tables, sensitive reads masked
 * and not, refusals, approvals, limit events, schema changes) and times
 * `warden report` over the whole period and over one day of it, as a user runs
 * it (the CLI, a separate process; --store, no config).
 *
 * BENCH_REPORT_STORE=FILE keeps the store there (made when missing) to run the
 * timings again without filling it anew.
 */
import crypto from 'node:crypto';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { SqliteAuditDb, toStoredRow } from '../dist/audit/sqlite-db.js';
import { ChainWriter, signCheckpoint } from '../dist/audit/chain.js';

const N = Number(process.env.BENCH_REPORT_RECORDS ?? 1_000_000);
const keep = process.env.BENCH_REPORT_STORE;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-bench-report-'));
const file = keep ? path.resolve(keep) : path.join(dir, 'audit.db');
const STEP_MS = 1_000; // one record a second of history: 1M records are ~11.6 days
const start = Date.UTC(2026, 10, 1);

function fill() {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519');
  fs.writeFileSync(`${file}.pub`, publicKey.export({ type: 'spki', format: 'pem' }));
  const db = new SqliteAuditDb(file, { durability: 'os' });
  const chain = new ChainWriter({ instance: 'bench' });
  const t0 = performance.now();
  let rows = [];
  let j = 0;
  const add = (type, data) => {
    const r = chain.append(type, data, new Date(start + j * STEP_MS));
    j++;
    rows.push(toStoredRow(r));
    if (r.seq % 1000 === 0) {
      db.appendRows(rows);
      rows = [];
      db.saveCheckpoint(signCheckpoint(r, privateKey, new Date(start + j * STEP_MS)));
    }
    return r;
  };
  while (j < N) {
    const s = Math.floor(j / 40);
    const who = `user${s % 50}`;
    const kind = s % 10 === 0 ? 'agent' : s % 7 === 0 ? 'service' : 'human';
    const common = { session: `s${s}`, identity: who, kind, database: 'app', environment: 'production', ...(kind === 'agent' ? { on_behalf_of: `person${s % 5}` } : {}) };
    if (j % 40 === 0) {
      add('session.start', { ...common, groups: s % 13 === 0 ? ['dba'] : ['staff'], client_address: '10.0.0.1', intent: {} });
      continue;
    }
    const table = `app.t${(j * 7) % 200}`;
    const n = j;
    if (n % 997 === 0) {
      add('approval.requested', { session: common.session, identity: who, request: `apr-${n}`, mode: 'hold', rules: ['deletes'], tables: [table], sql: `DELETE FROM ${table} WHERE id = $1` });
      add('approval.decided', { identity: 'dana', request: `apr-${n}`, decision: 'approve', reason: 'ok', status: 'approved' });
      continue;
    }
    if (n % 1999 === 0) {
      add('limit.exceeded', { ...common, limit: 'rows', measure: 'max_rows', figure: 1001, max: 1000, on_exceed: 'halt', protocol: 'simple', sql: `SELECT * FROM ${table}` });
      continue;
    }
    if (n % 97 === 0) {
      add('statement.refused', { ...common, protocol: 'simple', sql: `DROP TABLE ${table}`, intent: {}, tables: [table], reads: [], writes: [table], classes: ['ddl', 'drop'], kinds: ['drop'], decision: { action: 'deny', rule: 'no-drop', reason: 'no drops', matched: [{ rule: 'no-drop', action: 'deny', certain: true }] }, sqlstate: '42501', error: 'denied' });
      continue;
    }
    const sensitive = n % 20 === 1;
    const ddl = n % 4999 === 0;
    const action = sensitive && kind === 'agent' ? 'mask' : 'allow';
    const sql = ddl ? `ALTER TABLE ${table} ADD COLUMN c${n} int` : sensitive ? `SELECT id, email FROM ${table} WHERE id = $1` : `UPDATE ${table} SET x = $1 WHERE id = $2`;
    const b = add('statement.begin', {
      ...common,
      protocol: 'extended',
      sql,
      params: ['1', '2'],
      intent: n % 3 === 0 ? { ticket: `T-${n % 1000}` } : {},
      tables: [table],
      reads: sensitive ? [table] : [],
      writes: sensitive ? [] : [table],
      classes: ddl ? ['alter', 'ddl'] : sensitive ? ['read', 'select'] : ['update', 'write'],
      kinds: [ddl ? 'alter' : sensitive ? 'select' : 'update'],
      decision: { action, rule: action === 'mask' ? 'mask-pii' : 'default', reason: 'r', matched: [] },
      ...(sensitive ? { sensitive: ['email'] } : {}),
    });
    if (j >= N) break;
    add('statement.end', { session: common.session, identity: who, begin_seq: b.seq, rows: sensitive ? 3 : 1, duration_ms: 0.4, tags: [sensitive ? 'SELECT 3' : 'UPDATE 1'], ...(action === 'mask' ? { masked: ['email'] } : {}) });
    if (ddl && j < N) add('schema.change', { ...common, statement_seq: b.seq, tables: [table], objects: { [table]: { before: { columns: ['id', 'x'] }, after: { columns: ['id', 'x', `c${n}`] }, changes: [`column "c${n}" integer added`] } }, read: { before: 'catalog', after: 'catalog' } });
  }
  if (rows.length > 0) db.appendRows(rows);
  db.close();
  const s = (performance.now() - t0) / 1000;
  console.log(`report: ${N} records written in ${s.toFixed(1)} s, ${(fs.statSync(file).size / 1e6).toFixed(0)} MB, checkpoint every 1000`);
}

function report(label, from, to) {
  const out = path.join(dir, `out-${label.replace(/\W+/g, '-')}`);
  const t0 = performance.now();
  const key = fs.existsSync(`${file}.pub`) ? ['--public-key', `${file}.pub`] : [];
  const r = spawnSync(process.execPath, ['bin/warden.js', 'report', '--store', `sqlite:${file}`, ...key, '--from', from, '--to', to, '--out', out], { encoding: 'utf8', cwd: path.resolve(import.meta.dirname, '..') });
  const s = (performance.now() - t0) / 1000;
  if (r.status !== 0) {
    console.log(`report: ${label}: FAILED (exit ${r.status})\n${r.stdout}${r.stderr}`);
    process.exitCode = 1;
    return;
  }
  const j = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8'));
  const html = fs.statSync(path.join(out, 'report.html')).size;
  console.log(
    `report: ${label.padEnd(24)} ${String(j.totals.records).padStart(8)} records in the period, ${String(j.integrity.instances[0]?.verifiedRecords ?? 0).padStart(8)} verified, in ${s.toFixed(1).padStart(5)} s (${Math.round(j.totals.records / s)} records/s); html ${(html / 1e6).toFixed(1)} MB; integrity ${j.integrity.ok ? 'ok' : 'FAILED'}${j.integrity.signaturesChecked ? ', signatures checked' : ''}`,
  );
}

try {
  if (!fs.existsSync(file)) fill();
  else console.log(`report: reusing ${file}`);
  const end = new Date(start + N * STEP_MS + STEP_MS).toISOString();
  report('whole log', new Date(start).toISOString(), end);
  const mid = start + Math.floor(N / 2) * STEP_MS;
  report('one day in the middle', new Date(mid).toISOString(), new Date(mid + 86_400_000).toISOString());
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
