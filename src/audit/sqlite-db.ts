/**
 * The SQLite audit database (better-sqlite3, synchronous): schema, appends,
 * searches. Used directly by readers (CLI, admin API) and, for appends, from
 * a worker thread (see store-sqlite.ts) so that fsync never blocks the proxy.
 *
 * Records are stored verbatim (ts and data as the exact text that was hashed)
 * with their index terms in a side table, so searches by identity, session,
 * table or action use indexes instead of scanning a million rows.
 */
import { isMainThread } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { createPrivateFile } from '../util/private-file.js';
import type { AuditRecord, ChainHead, Checkpoint } from './chain.js';
import { indexTermsOf, matchesQuery, normalizeTime, tableMatches, type AuditQuery, type IndexEntry } from './store.js';

const SCHEMA_VERSION = 1;
/** Distinct table names a bare-name search lists before it falls back to a LIKE scan. */
const MAX_TABLE_NAMES = 5000;
/** Index entries per batch handed to verification. */
const INDEX_BATCH = 1000;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
  instance TEXT NOT NULL,
  seq INTEGER NOT NULL,
  ts TEXT NOT NULL,
  type TEXT NOT NULL,
  data TEXT NOT NULL,
  prev TEXT NOT NULL,
  hash TEXT NOT NULL,
  identity TEXT,
  session TEXT,
  PRIMARY KEY (instance, seq)
);
DROP INDEX IF EXISTS records_ts;
CREATE INDEX IF NOT EXISTS records_time ON records (ts, instance, seq);
CREATE INDEX IF NOT EXISTS records_identity ON records (identity, ts) WHERE identity IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_session ON records (session, seq) WHERE session IS NOT NULL;
CREATE TABLE IF NOT EXISTS terms (
  kind TEXT NOT NULL,
  value TEXT NOT NULL,
  instance TEXT NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY (kind, value, instance, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
  instance TEXT NOT NULL,
  seq INTEGER NOT NULL,
  hash TEXT NOT NULL,
  ts TEXT NOT NULL,
  signature TEXT NOT NULL,
  key_id TEXT NOT NULL,
  PRIMARY KEY (instance, seq)
);
`;

/** The columns a record is read back from. */
type RecordRow = Omit<StoredRow, 'identity' | 'session' | 'tables' | 'actions'>;

/** A row as a record; data that is not JSON comes back as `{ malformed: text }` so verification flags it. */
function toRecord(r: RecordRow): AuditRecord {
  let data: AuditRecord['data'];
  try {
    const parsed: unknown = JSON.parse(r.data);
    data = parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as AuditRecord['data']) : { malformed: r.data };
  } catch {
    data = { malformed: r.data };
  }
  return { seq: r.seq, ts: r.ts, instance: r.instance, type: r.type, data, prev: r.prev, hash: r.hash };
}

/** A record as stored: data as JSON text and its index terms, ready to insert (cheap to post to a worker). */
export interface StoredRow {
  instance: string;
  seq: number;
  ts: string;
  type: string;
  data: string;
  prev: string;
  hash: string;
  identity: string | null;
  session: string | null;
  tables: string[];
  actions: string[];
}

export function toStoredRow(r: AuditRecord): StoredRow {
  const t = indexTermsOf(r);
  return {
    instance: r.instance,
    seq: r.seq,
    ts: r.ts,
    type: r.type,
    data: JSON.stringify(r.data),
    prev: r.prev,
    hash: r.hash,
    identity: t.identity ?? null,
    session: t.session ?? null,
    tables: t.tables,
    actions: t.actions,
  };
}

export class DuplicateSeqError extends Error {
  constructor(instance: string, seq: number) {
    super(
      `audit store already has record ${seq} of instance "${instance}": another Warden is writing the same chain (give each instance its own audit.instance)`,
    );
    this.name = 'DuplicateSeqError';
  }
}

export class SqliteAuditDb {
  readonly db: Database.Database;
  readonly #insert: Database.Statement;
  readonly #term: Database.Statement;
  readonly #appendTx: (rows: readonly StoredRow[]) => void;

  constructor(
    readonly path: string,
    opts: { readOnly?: boolean; durability?: 'fsync' | 'os' } = {},
  ) {
    // Created 0600 before SQLite opens it: SQLite gives the -wal and -shm files the database's mode.
    // (A worker thread opens the file after the main thread did: no second warning.)
    if (!opts.readOnly && path !== ':memory:' && path !== '') createPrivateFile(path, { what: 'audit database', warn: isMainThread });
    this.db = new Database(path, opts.readOnly ? { readonly: true, fileMustExist: true } : {});
    this.db.pragma('busy_timeout = 5000');
    if (!opts.readOnly) {
      this.db.pragma('journal_mode = WAL');
      // FULL: a commit is fsync'd to the WAL before it is acknowledged (power-loss safe).
      // NORMAL (durability: os): written to the OS, fsync'd at checkpoints (survives a process crash).
      this.db.pragma(opts.durability === 'os' ? 'synchronous = NORMAL' : 'synchronous = FULL');
      this.db.exec(SCHEMA);
      this.db.prepare('INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)').run('schema_version', String(SCHEMA_VERSION));
    }
    const version = this.db.prepare('SELECT value FROM meta WHERE key = ?').pluck().get('schema_version') as string | undefined;
    if (version !== String(SCHEMA_VERSION)) throw new Error(`${path}: not a Warden audit database (schema version ${version ?? 'missing'})`);
    this.#insert = this.db.prepare(
      'INSERT INTO records (instance, seq, ts, type, data, prev, hash, identity, session) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
    this.#term = this.db.prepare('INSERT OR IGNORE INTO terms (kind, value, instance, seq) VALUES (?, ?, ?, ?)');
    this.#appendTx = this.db.transaction((rows: readonly StoredRow[]) => {
      for (const r of rows) {
        try {
          this.#insert.run(r.instance, r.seq, r.ts, r.type, r.data, r.prev, r.hash, r.identity, r.session);
        } catch (err) {
          if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') throw new DuplicateSeqError(r.instance, r.seq);
          throw err;
        }
        for (const v of r.tables) this.#term.run('table', v, r.instance, r.seq);
        for (const v of r.actions) this.#term.run('action', v, r.instance, r.seq);
      }
    });
  }

  /** Atomically and durably stores a batch. */
  append(records: readonly AuditRecord[]): void {
    this.appendRows(records.map(toStoredRow));
  }

  appendRows(rows: readonly StoredRow[]): void {
    if (rows.length > 0) this.#appendTx(rows);
  }

  head(instance: string): ChainHead | null {
    const r = this.db.prepare('SELECT seq, hash FROM records WHERE instance = ? ORDER BY seq DESC LIMIT 1').get(instance) as ChainHead | undefined;
    return r ?? null;
  }

  instances(): string[] {
    return this.db.prepare('SELECT DISTINCT instance FROM records ORDER BY instance').pluck().all() as string[];
  }

  /**
   * Matching records; iterates lazily. The index answers the filters, and every
   * record is re-checked against its own (hashed) data with `matchesQuery`: an
   * edited index can hide records from a search (verify reports that) but never
   * make a record appear under an identity, table or action it does not have.
   */
  *query(q: AuditQuery): Generator<AuditRecord> {
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (q.instance !== undefined) (where.push('r.instance = ?'), args.push(q.instance));
    if (q.fromSeq !== undefined) (where.push('r.seq >= ?'), args.push(q.fromSeq));
    if (q.toSeq !== undefined) (where.push('r.seq <= ?'), args.push(q.toSeq));
    if (q.since !== undefined) (where.push('r.ts >= ?'), args.push(normalizeTime(q.since)));
    if (q.until !== undefined) (where.push('r.ts < ?'), args.push(normalizeTime(q.until)));
    if (q.types && q.types.length > 0) {
      const ors = q.types.map((t) => {
        if (t.endsWith('.')) {
          args.push(`${t.replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
          return "r.type LIKE ? ESCAPE '\\'";
        }
        args.push(t);
        return 'r.type = ?';
      });
      where.push(`(${ors.join(' OR ')})`);
    }
    if (q.identity !== undefined) (where.push('r.identity IS NOT NULL AND r.identity = ?'), args.push(q.identity));
    if (q.session !== undefined) (where.push('r.session IS NOT NULL AND r.session = ?'), args.push(q.session));
    // Table and action filters are answered from the terms index first (a set of
    // record keys), instead of probing the terms once per record.
    if (q.table !== undefined) {
      const t = q.table.toLowerCase();
      if (t.includes('.')) {
        where.push("(r.instance, r.seq) IN (SELECT t.instance, t.seq FROM terms t WHERE t.kind = 'table' AND t.value = ?)");
        args.push(t);
      } else {
        // A bare table name: in any schema. The indexed table names that match are looked
        // up first (one index seek per distinct name), so the terms are then read by exact
        // value instead of scanning every table term with LIKE.
        const names = this.#tableNamesMatching(t);
        if (names !== null) {
          where.push(
            names.length === 0
              ? '0'
              : `(r.instance, r.seq) IN (SELECT t.instance, t.seq FROM terms t WHERE t.kind = 'table' AND t.value IN (${names.map(() => '?').join(', ')}))`,
          );
          args.push(...names);
        } else {
          where.push(
            "(r.instance, r.seq) IN (SELECT t.instance, t.seq FROM terms t WHERE t.kind = 'table' AND (t.value = ? OR t.value LIKE ? ESCAPE '\\'))",
          );
          args.push(t, `%.${t.replace(/[\\%_]/g, (c) => `\\${c}`)}`);
        }
      }
    }
    if (q.action !== undefined) {
      where.push("(r.instance, r.seq) IN (SELECT t.instance, t.seq FROM terms t WHERE t.kind = 'action' AND t.value = ?)");
      args.push(q.action.toLowerCase());
    }
    const dir = q.descending ? 'DESC' : 'ASC';
    const bySeq = q.instance !== undefined;
    const order = bySeq ? `r.seq ${dir}` : `r.ts ${dir}, r.instance ${dir}, r.seq ${dir}`;
    // Instance, seq, time and type are the record's own (hashed) columns, filtered in SQL;
    // identity, session, table and action come from the index: those are re-checked.
    const check: AuditQuery | null =
      q.identity === undefined && q.session === undefined && q.table === undefined && q.action === undefined
        ? null
        : { identity: q.identity, session: q.session, table: q.table, action: q.action };
    let left = q.limit === undefined ? Infinity : Math.max(0, Math.floor(q.limit));
    let last: RecordRow | undefined;
    // One query normally; only when the re-check dropped rows and the limit cut the
    // result does another page follow (keyset after the last row read).
    while (left > 0) {
      const conds = [...where];
      const params = [...args];
      if (last) {
        const cmp = q.descending ? '<' : '>';
        if (bySeq) (conds.push(`r.seq ${cmp} ?`), params.push(last.seq));
        else (conds.push(`(r.ts, r.instance, r.seq) ${cmp} (?, ?, ?)`), params.push(last.ts, last.instance, last.seq));
      }
      const sql = `SELECT r.instance, r.seq, r.ts, r.type, r.data, r.prev, r.hash FROM records r${
        conds.length ? ` WHERE ${conds.join(' AND ')}` : ''
      } ORDER BY ${order}${left !== Infinity ? ` LIMIT ${left}` : ''}`;
      let read = 0;
      let dropped = 0;
      for (const row of this.db.prepare(sql).iterate(...params) as IterableIterator<RecordRow>) {
        read++;
        last = row;
        const r = toRecord(row);
        if (!check || matchesQuery(r, check)) yield r;
        else dropped++;
      }
      if (left === Infinity || dropped === 0 || read < left) return;
      left -= read - dropped;
    }
  }

  /**
   * The indexed table names a bare `table` filter matches (`table` itself or
   * `schema.table`), from a loose scan of the terms' primary key (one seek per
   * distinct table name); null when there are too many names to list.
   */
  #tableNamesMatching(bare: string): string[] | null {
    const names = this.db
      .prepare(
        `WITH RECURSIVE v(x) AS (
           SELECT (SELECT value FROM terms WHERE kind = 'table' ORDER BY value LIMIT 1)
           UNION ALL
           SELECT (SELECT value FROM terms WHERE kind = 'table' AND value > v.x ORDER BY value LIMIT 1) FROM v WHERE v.x IS NOT NULL
           LIMIT ${MAX_TABLE_NAMES + 1}
         ) SELECT x FROM v WHERE x IS NOT NULL`,
      )
      .pluck()
      .all() as string[];
    if (names.length > MAX_TABLE_NAMES) return null;
    return names.filter((v) => tableMatches(v, bare));
  }

  /** One instance's chain in seq order (storage order for verification). */
  *chain(instance: string, fromSeq = 1): Generator<AuditRecord> {
    const stmt = this.db.prepare(
      'SELECT instance, seq, ts, type, data, prev, hash FROM records WHERE instance = ? AND seq >= ? ORDER BY seq',
    );
    for (const row of stmt.iterate(instance, fromSeq) as IterableIterator<RecordRow>) yield toRecord(row);
  }

  /**
   * The search index of one instance's chain as stored, for verification (see
   * index-check.ts): the records' identity/session columns and the terms,
   * merged by seq. Two streaming statements in seq order; the terms (keyed by
   * kind and value first) are sorted by SQLite once.
   */
  *indexEntries(instance: string, throughSeq = Number.MAX_SAFE_INTEGER): Generator<IndexEntry[]> {
    const recs = this.db
      .prepare('SELECT seq, identity, session FROM records WHERE instance = ? AND seq <= ? ORDER BY seq')
      .raw()
      .iterate(instance, throughSeq) as IterableIterator<[number, string | null, string | null]>;
    const terms = this.db
      .prepare('SELECT seq, kind, value FROM terms WHERE instance = ? AND seq <= ? ORDER BY seq')
      .raw()
      .iterate(instance, throughSeq) as IterableIterator<[number, string, string]>;
    try {
      let r = recs.next();
      let t = terms.next();
      let batch: IndexEntry[] = [];
      while (!r.done || !t.done) {
        const seq = !r.done && (t.done || r.value[0] <= t.value[0]) ? r.value[0] : (t.value as [number, string, string])[0];
        const e: IndexEntry = { seq, record: false, identity: null, session: null, terms: [] };
        if (!r.done && r.value[0] === seq) {
          e.record = true;
          e.identity = r.value[1];
          e.session = r.value[2];
          r = recs.next();
        }
        while (!t.done && t.value[0] === seq) {
          e.terms.push({ kind: t.value[1], value: t.value[2] });
          t = terms.next();
        }
        batch.push(e);
        if (batch.length === INDEX_BATCH) {
          yield batch;
          batch = [];
        }
      }
      if (batch.length > 0) yield batch;
    } finally {
      recs.return?.();
      terms.return?.();
    }
  }

  /** Instances the terms name. */
  indexInstances(): string[] {
    return this.db.prepare('SELECT DISTINCT instance FROM terms ORDER BY instance').pluck().all() as string[];
  }

  saveCheckpoint(cp: Checkpoint): void {
    this.db
      .prepare('INSERT OR REPLACE INTO checkpoints (instance, seq, hash, ts, signature, key_id) VALUES (?, ?, ?, ?, ?, ?)')
      .run(cp.instance, cp.seq, cp.hash, cp.ts, cp.signature, cp.keyId);
  }

  checkpoints(instance?: string): Checkpoint[] {
    const rows = (
      instance === undefined
        ? this.db.prepare('SELECT * FROM checkpoints ORDER BY instance, seq').all()
        : this.db.prepare('SELECT * FROM checkpoints WHERE instance = ? ORDER BY seq').all(instance)
    ) as { instance: string; seq: number; hash: string; ts: string; signature: string; key_id: string }[];
    return rows.map((r) => ({ instance: r.instance, seq: r.seq, hash: r.hash, ts: r.ts, signature: r.signature, keyId: r.key_id }));
  }

  prune(before: string, instance?: string): number {
    const t = normalizeTime(before);
    return this.db.transaction(() => {
      const cond = instance === undefined ? 'ts < ?' : 'ts < ? AND instance = ?';
      const args = instance === undefined ? [t] : [t, instance];
      this.db
        .prepare(`DELETE FROM terms WHERE (instance, seq) IN (SELECT instance, seq FROM records WHERE ${cond})`)
        .run(...args);
      return this.db.prepare(`DELETE FROM records WHERE ${cond}`).run(...args).changes;
    })();
  }

  close(): void {
    this.db.close();
  }
}
