#!/usr/bin/env node
/**
 * The audit log's cost floor: what one statement's audit costs at the least, measured piece by
 * piece in tight loops (warm caches, nothing else running in this process), to set beside issue
 * 18's budget of "+5 µs of Warden's CPU per statement".
 *
 * 1. The record: a statement.begin record as Warden writes it (its data's canonical JSON),
 *    sealed onto the hash chain by the real `ChainWriter.seal` (SHA-256 over its bytes, the JSON
 *    line), and appended to a file with one `write()` per K records (K = 1, 2, 8: pgbench -c 8
 *    puts about 2 statements in an event-loop turn on this machine). Then the completion
 *    (statement.end) likewise.
 * 2. The search index: SQLite rows as Warden's index stores them (`SqliteAuditDb.appendRows`, in
 *    batches of 5,000 as its indexer does), and for the floor of any SQLite index, a bare table
 *    (seq, ts, type, identity, session, text) without secondary indexes.
 *
 * 3. The `fsync` level's group commit: 512 bytes appended and `fdatasync`ed, per call.
 *
 * CPU time of this process (user + system) per record, median of BENCH_FLOOR_ROUNDS (3).
 * Needs `npm run build`. No database. `npm run bench` runs it.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { ChainWriter } from '../dist/audit/chain.js';
import { SqliteAuditDb, toStoredRow } from '../dist/audit/sqlite-db.js';

const N = Number(process.env.BENCH_FLOOR_RECORDS ?? 100_000);
const ROUNDS = Number(process.env.BENCH_FLOOR_ROUNDS ?? 3);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-audit-floor-'));

/** A statement.begin record's data as Warden writes it for pgbench -S (from a real journal). */
const beginData = (i) =>
  `{"application_name":"pgbench","classes":["read","select"],"database":"bench","decision":{"action":"allow","matched":[],"reason":"allowed by default: no rule matched","rule":"default"},"identity":"bencher","intent":{},"kind":"service","kinds":["select"],"protocol":"simple","reads":["public.pgbench_accounts"],"session":"5473dda64b6${i & 7}","sql":"SELECT abalance FROM pgbench_accounts WHERE aid = ${(i * 7919) % 1_000_000};","tables":["public.pgbench_accounts"],"writes":[]}`;
const endData = (i) =>
  `{"affected":1,"begin_seq":${i},"duration_ms":0.${(i * 31) % 1000},"identity":"bencher","rows":1,"session":"5473dda64b6${i & 7}","tags":["SELECT 1"]}`;

const cpu = () => {
  const c = process.cpuUsage();
  return c.user + c.system;
};
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** µs of CPU per record: seal + one write() per `per` records. */
function records(per, type, data) {
  const fd = fs.openSync(path.join(dir, `journal-${per}`), 'w', 0o600);
  const chain = new ChainWriter({ instance: 'bench' });
  const texts = Array.from({ length: 1000 }, (_, i) => data(i));
  // Warden makes a time stamp's text once per millisecond (several records share it).
  const stamps = Array.from({ length: 1000 }, (_, i) => new Date(1.8e12 + i).toISOString());
  let pending = '';
  const c0 = cpu();
  for (let i = 0; i < N; i++) {
    pending += chain.seal(type, texts[i % 1000], stamps[(i >> 3) % 1000]).line;
    if ((i + 1) % per === 0) {
      fs.writeSync(fd, pending);
      pending = '';
    }
  }
  if (pending) fs.writeSync(fd, pending);
  const us = (cpu() - c0) / N;
  fs.closeSync(fd);
  return us;
}

/** µs of CPU per record: Warden's index rows (`appendRows`), batches of 5,000. */
function wardenIndex(round) {
  const db = new SqliteAuditDb(path.join(dir, `index-${round}.db`), { durability: 'os' });
  const chain = new ChainWriter({ instance: 'bench' });
  const batches = [];
  for (let i = 0; i < N; i += 5000) {
    const rows = [];
    for (let j = i; j < Math.min(N, i + 5000); j++) {
      const begin = j % 2 === 0;
      const rec = chain.append(begin ? 'statement.begin' : 'statement.end', JSON.parse(begin ? beginData(j) : endData(j - 1)), new Date(1.8e12 + j));
      rows.push(toStoredRow(rec));
    }
    batches.push(rows);
  }
  const c0 = cpu();
  for (const rows of batches) db.appendRows(rows);
  const us = (cpu() - c0) / N;
  db.close();
  return us;
}

/** µs of CPU per record: a bare SQLite table, no secondary index, batches of 5,000 in a transaction. */
function bareTable(round) {
  const db = new Database(path.join(dir, `bare-${round}.db`));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = OFF');
  db.exec('CREATE TABLE r (seq INTEGER PRIMARY KEY, ts TEXT, type TEXT, identity TEXT, session TEXT, text TEXT)');
  const ins = db.prepare('INSERT INTO r VALUES (?, ?, ?, ?, ?, ?)');
  const texts = Array.from({ length: 1000 }, (_, i) => beginData(i));
  const batch = db.transaction((a, b) => {
    for (let j = a; j < b; j++) ins.run(j + 1, new Date(1.8e12 + j).toISOString(), 'statement.begin', 'bencher', `5473dda64b6${j & 7}`, texts[j % 1000]);
  });
  const c0 = cpu();
  for (let i = 0; i < N; i += 5000) batch(i, Math.min(N, i + 5000));
  const us = (cpu() - c0) / N;
  db.close();
  return us;
}

/** µs of CPU per call (and wall): 512 bytes appended and fdatasync'ed, 2,000 times. */
function syncCall() {
  const fd = fs.openSync(path.join(dir, 'sync'), 'w', 0o600);
  const b = Buffer.alloc(512, 0x78);
  const n = 2000;
  const t0 = performance.now();
  const c0 = cpu();
  for (let i = 0; i < n; i++) {
    fs.writeSync(fd, b);
    fs.fdatasyncSync(fd);
  }
  const us = (cpu() - c0) / n;
  const wall = ((performance.now() - t0) * 1000) / n;
  fs.closeSync(fd);
  return { us, wall };
}

try {
  const rows = [
    ['statement.begin record, one write() per record', () => records(1, 'statement.begin', beginData)],
    ['statement.begin record, one write() per 2 records', () => records(2, 'statement.begin', beginData)],
    ['statement.begin record, one write() per 8 records', () => records(8, 'statement.begin', beginData)],
    ['statement.end record, one write() per 2 records', () => records(2, 'statement.end', endData)],
    ["search index as Warden's (appendRows, per record)", (r) => wardenIndex(r)],
    ['bare SQLite table, no secondary index (per record)', (r) => bareTable(r)],
  ];
  const out = {};
  console.log(`Audit cost floor (µs of CPU per record, median of ${ROUNDS} rounds of ${N} records; tight loops, warm caches)\n`);
  for (const [name, fn] of rows) {
    fn(-1); // warm-up
    const us = median(Array.from({ length: ROUNDS }, (_, r) => fn(r)));
    out[name] = us;
    console.log(`  ${name.padEnd(54)} ${us.toFixed(2).padStart(7)}`);
  }
  const syncs = Array.from({ length: ROUNDS }, () => syncCall());
  const sync = median(syncs.map((x) => x.us));
  console.log(`  ${'write() + fdatasync of 512 bytes (per call)'.padEnd(54)} ${sync.toFixed(2).padStart(7)}  (wall ${median(syncs.map((x) => x.wall)).toFixed(0)} µs)`);
  const record = out['statement.begin record, one write() per 2 records'];
  const end = out['statement.end record, one write() per 2 records'];
  const index = out["search index as Warden's (appendRows, per record)"];
  const bare = out['bare SQLite table, no secondary index (per record)'];
  console.log(
    `\n  one statement, begin record only, bare index:        ${(record + bare).toFixed(2).padStart(7)}` +
      `\n  one statement, begin + end records, Warden's index:  ${(record + end + 2 * index).toFixed(2).padStart(7)}`,
  );
  console.log(
    `\naudit_floor_record_us=${record.toFixed(2)} audit_floor_end_us=${end.toFixed(2)} audit_floor_index_us=${index.toFixed(2)} audit_floor_bare_index_us=${bare.toFixed(2)} audit_floor_fdatasync_us=${sync.toFixed(2)} audit_floor_one_record_bare_index_us=${(record + bare).toFixed(2)} audit_floor_statement_us=${(record + end + 2 * index).toFixed(2)}`,
  );
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
