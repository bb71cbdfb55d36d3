#!/usr/bin/env node
/**
 * Audit search on a large log: fills a SQLite audit store with
 * BENCH_AUDIT_RECORDS records (default 1 000 000; hash-chained like Warden
 * writes them: statement.begin/end pairs from 50 identities over 200 tables)
 * and times the searches `warden audit search` runs — by identity, table,
 * action, type and time — through the store's indexes.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { SqliteAuditDb, toStoredRow } from '../dist/audit/sqlite-db.js';
import { ChainWriter } from '../dist/audit/chain.js';

const N = Number(process.env.BENCH_AUDIT_RECORDS ?? 1_000_000);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-bench-audit-'));
const file = path.join(dir, 'audit.db');
try {
  const db = new SqliteAuditDb(file, { durability: 'os' });
  const chain = new ChainWriter({ instance: 'bench' });
  const t0 = performance.now();
  const start = Date.now() - N * 10; // one record every 10 ms of history
  for (let i = 0; i < N; i += 5000) {
    const rows = [];
    for (let j = i; j < Math.min(N, i + 5000); j++) {
      const who = `user${j % 50}`;
      const table = `app.t${(j * 7) % 200}`;
      const begin = j % 2 === 0;
      const data = begin
        ? { session: `s${Math.floor(j / 40)}`, identity: who, sql: `UPDATE ${table} SET x = $1 WHERE id = $2`, tables: [table], classes: ['update', 'write'], kinds: ['update'], decision: { action: j % 97 === 0 ? 'deny' : 'allow', rule: 'default' } }
        : { session: `s${Math.floor(j / 40)}`, identity: who, begin_seq: j, rows: 1, duration_ms: 0.4 };
      rows.push(toStoredRow(chain.append(begin ? 'statement.begin' : 'statement.end', data, new Date(start + j * 10))));
    }
    db.appendRows(rows);
  }
  const fillS = (performance.now() - t0) / 1000;
  const size = fs.statSync(file).size + (fs.existsSync(`${file}-wal`) ? fs.statSync(`${file}-wal`).size : 0);
  console.log(`audit-search: ${N} records written in ${fillS.toFixed(1)} s (${Math.round(N / fillS)} records/s), ${(size / 1e6).toFixed(0)} MB`);
  const mid = new Date(start + Math.floor(N / 2) * 10).toISOString();
  const searches = [
    ['identity, newest 100', { identity: 'user7', descending: true, limit: 100 }],
    ['table, newest 100', { table: 'app.t42', descending: true, limit: 100 }],
    ['bare table name, newest 100', { table: 't42', descending: true, limit: 100 }],
    ['action deny, newest 100', { action: 'deny', descending: true, limit: 100 }],
    ['identity + table + since', { identity: 'user8', table: 'app.t56', since: mid, limit: 100 }],
    ['type, 1 hour window', { types: ['statement.begin'], since: mid, until: new Date(Date.parse(mid) + 3_600_000).toISOString(), limit: 1000 }],
    ['tail: newest 20', { descending: true, limit: 20 }],
  ];
  for (const [name, q] of searches) {
    const t = performance.now();
    let n = 0;
    for (const _ of db.query(q)) n++;
    console.log(`audit-search: ${name.padEnd(28)} ${n.toString().padStart(5)} records in ${(performance.now() - t).toFixed(1).padStart(7)} ms`);
  }
  db.close();
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
