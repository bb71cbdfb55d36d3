/**
 * `postgres://` audit store: the records of any number of Warden instances in
 * one PostgreSQL schema (default `warden_audit`, created unless read-only).
 *
 * - `records` holds each record verbatim: `ts` and `data` are stored as the
 *   exact text that was hashed (ISO string, JSON text), never as timestamptz /
 *   jsonb, which would normalize them and break the hash chain. Columns are
 *   `COLLATE "C"`, so ISO timestamps compare and sort as text.
 * - `terms` holds the index terms of each record (kinds `table`, `action`;
 *   see `indexTermsOf`); `identity` and `session` are columns of `records`.
 *   Every query filter runs in SQL; results are streamed in keyset pages.
 * - Appends run on one dedicated connection, one transaction per batch; reads
 *   use a small pool. A second writer on the same instance's chain is caught by
 *   the primary key (instance, seq) and rejected with a clear error.
 * - The password never appears in `description` or in error messages.
 */
import pg from 'pg';
import type { AuditRecord, ChainHead, Checkpoint } from './chain.js';
import { type AuditQuery, type AuditStore, type IndexEntry, indexTermsOf, matchesQuery, normalizeTime } from './store.js';
import { parsePgUrl, type PgUrlInfo } from '../util/pg-url.js';

export interface PostgresStoreOptions {
  /** Read only (CLI verify / search / export): the schema must exist; nothing is written. */
  readOnly?: boolean;
  /** Schema holding the tables; default `warden_audit`. */
  schema?: string;
  /** `os`: commit appends with synchronous_commit = off (a server crash may lose the last ones). */
  durability?: 'fsync' | 'os';
}

const PAGE = 1000;
/** Rows per fetch when reading the whole index for verification. */
const INDEX_PAGE = 10_000;

/** Opens the store at `url` (`postgres://user:password@host:port/db`). */
export async function openPostgresStore(url: string, opts: PostgresStoreOptions = {}): Promise<AuditStore> {
  const conn = parsePgUrl(url, 'postgres audit store');
  const schema = opts.schema ?? 'warden_audit';
  if (schema === '' || Buffer.byteLength(schema) > 63) {
    throw new Error(`postgres audit store ${conn.description}: invalid schema name ${JSON.stringify(schema)}`);
  }
  const store = new PostgresStore(url, conn, schema, opts.readOnly === true);
  store.asyncCommit = opts.durability === 'os';
  try {
    await store.init();
  } catch (err) {
    await store.close().catch(() => undefined);
    throw conn.error('open failed', err);
  }
  return store;
}

type Conn = PgUrlInfo;

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

interface RecordRow {
  instance: string;
  seq: string;
  ts: string;
  type: string;
  data: string;
  prev: string;
  hash: string;
}

const RECORD_COLS = 'r.instance, r.seq, r.ts, r.type, r.data, r.prev, r.hash';

/** A row's data text as a record's data, or null when it is not a JSON object. */
function parseData(text: string): AuditRecord['data'] | null {
  try {
    const v: unknown = JSON.parse(text);
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as AuditRecord['data']) : null;
  } catch {
    return null;
  }
}

/** A row as a record; `data` that is not a JSON object comes back as `{ malformed: text }` (flagged by verification). */
function toRecord(row: RecordRow, data: AuditRecord['data'] = parseData(row.data) ?? { malformed: row.data }): AuditRecord {
  return { seq: Number(row.seq), ts: row.ts, instance: row.instance, type: row.type, data, prev: row.prev, hash: row.hash };
}

/** Index columns must not carry NUL (PostgreSQL text cannot); they are only for searching. */
function indexText(s: string | undefined): string | null {
  return s === undefined ? null : s.replace(/\0/g, '\uFFFD');
}

function schemaSql(s: string): string {
  return `
CREATE SCHEMA IF NOT EXISTS ${s};
CREATE TABLE IF NOT EXISTS ${s}.records (
  instance text COLLATE "C" NOT NULL,
  seq bigint NOT NULL,
  ts text COLLATE "C" NOT NULL,
  type text COLLATE "C" NOT NULL,
  data text NOT NULL,
  prev text NOT NULL,
  hash text NOT NULL,
  identity text COLLATE "C",
  session text COLLATE "C",
  PRIMARY KEY (instance, seq)
);
CREATE INDEX IF NOT EXISTS records_ts ON ${s}.records (ts, instance, seq);
CREATE INDEX IF NOT EXISTS records_identity_ts ON ${s}.records (identity, ts);
CREATE INDEX IF NOT EXISTS records_session ON ${s}.records (session);
CREATE INDEX IF NOT EXISTS records_type_ts ON ${s}.records (type, ts);
CREATE TABLE IF NOT EXISTS ${s}.terms (
  instance text COLLATE "C" NOT NULL,
  seq bigint NOT NULL,
  kind text COLLATE "C" NOT NULL,
  value text COLLATE "C" NOT NULL,
  PRIMARY KEY (instance, seq, kind, value)
);
CREATE INDEX IF NOT EXISTS terms_lookup ON ${s}.terms (kind, value, instance, seq);
CREATE TABLE IF NOT EXISTS ${s}.checkpoints (
  instance text COLLATE "C" NOT NULL,
  seq bigint NOT NULL,
  hash text NOT NULL,
  ts text NOT NULL,
  signature text NOT NULL,
  key_id text NOT NULL,
  PRIMARY KEY (instance, seq)
);`;
}

class PostgresStore implements AuditStore {
  readonly description: string;
  readonly #url: string;
  readonly #conn: Conn;
  readonly #schema: string;
  /** Quoted schema name, for SQL. */
  readonly #s: string;
  readonly #readOnly: boolean;
  /** Commit appends without waiting for the WAL flush (durability: os). */
  asyncCommit = false;
  readonly #pool: pg.Pool;
  #writer: pg.Client | null = null;
  #writerBroken = false;
  /** Serializes everything on the writer connection (its transactions must not interleave). */
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  constructor(url: string, conn: Conn, schema: string, readOnly: boolean) {
    this.#url = url;
    this.#conn = conn;
    this.description = conn.description;
    this.#schema = schema;
    this.#s = quoteIdent(schema);
    this.#readOnly = readOnly;
    this.#pool = new pg.Pool({ connectionString: url, max: 2 });
    // An idle connection dying (server restart) must not crash the process; the next query reconnects.
    this.#pool.on('error', () => undefined);
  }

  async init(): Promise<void> {
    if (this.#readOnly) {
      const r = await this.#pool.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [`${this.#s}.records`]);
      if (r.rows[0]?.t == null) throw new Error(`schema "${this.#schema}" has no audit records table`);
      return;
    }
    const c = await this.#client();
    await c.query('BEGIN');
    try {
      // Two Wardens starting at once must not race on CREATE SCHEMA / TABLE.
      await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`warden audit schema ${this.#schema}`]);
      await c.query(schemaSql(this.#s));
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  }

  /** The dedicated write connection, (re)connected on demand. */
  async #client(): Promise<pg.Client> {
    if (this.#writer && !this.#writerBroken) return this.#writer;
    if (this.#writer) {
      const old = this.#writer;
      this.#writer = null;
      await old.end().catch(() => undefined);
    }
    const c = new pg.Client({ connectionString: this.#url });
    c.on('error', () => {
      this.#writerBroken = true;
    });
    await c.connect();
    this.#writer = c;
    this.#writerBroken = false;
    return c;
  }

  #write<T>(what: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
    if (this.#readOnly) return Promise.reject(new Error(`${this.description}: store was opened read-only`));
    if (this.#closed) return Promise.reject(new Error(`${this.description}: store is closed`));
    const run = this.#queue.then(async () => {
      let c: pg.Client;
      try {
        c = await this.#client();
      } catch (err) {
        throw this.#conn.error(`${what}: cannot connect`, err);
      }
      return fn(c);
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #read<R extends pg.QueryResultRow>(sql: string, params: unknown[]): Promise<R[]> {
    if (this.#closed) throw new Error(`${this.description}: store is closed`);
    try {
      return (await this.#pool.query<R>(sql, params)).rows;
    } catch (err) {
      throw this.#conn.error('query failed', err);
    }
  }

  async head(instance: string): Promise<ChainHead | null> {
    const rows = await this.#read<{ seq: string; hash: string }>(
      `SELECT seq, hash FROM ${this.#s}.records WHERE instance = $1 ORDER BY seq DESC LIMIT 1`,
      [instance],
    );
    return rows.length === 0 ? null : { seq: Number(rows[0].seq), hash: rows[0].hash };
  }

  append(records: readonly AuditRecord[]): Promise<void> {
    return this.#write('append', async (c) => {
      if (records.length === 0) return;
      const cols: { instance: string[]; seq: number[]; ts: string[]; type: string[]; data: string[]; prev: string[]; hash: string[]; identity: (string | null)[]; session: (string | null)[] } =
        { instance: [], seq: [], ts: [], type: [], data: [], prev: [], hash: [], identity: [], session: [] };
      const terms: { instance: string[]; seq: number[]; kind: string[]; value: string[] } = { instance: [], seq: [], kind: [], value: [] };
      for (const r of records) {
        const t = indexTermsOf(r);
        cols.instance.push(r.instance);
        cols.seq.push(r.seq);
        cols.ts.push(r.ts);
        cols.type.push(r.type);
        cols.data.push(JSON.stringify(r.data));
        cols.prev.push(r.prev);
        cols.hash.push(r.hash);
        cols.identity.push(indexText(t.identity));
        cols.session.push(indexText(t.session));
        for (const [kind, values] of [['table', t.tables], ['action', t.actions]] as const) {
          for (const v of new Set(values.map((x) => indexText(x) ?? ''))) {
            terms.instance.push(r.instance);
            terms.seq.push(r.seq);
            terms.kind.push(kind);
            terms.value.push(v);
          }
        }
      }
      try {
        await c.query('BEGIN');
        if (this.asyncCommit) await c.query('SET LOCAL synchronous_commit = off');
        await c.query(
          `INSERT INTO ${this.#s}.records (instance, seq, ts, type, data, prev, hash, identity, session)
           SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])`,
          [cols.instance, cols.seq, cols.ts, cols.type, cols.data, cols.prev, cols.hash, cols.identity, cols.session],
        );
        if (terms.seq.length > 0) {
          await c.query(
            `INSERT INTO ${this.#s}.terms (instance, seq, kind, value) SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[])`,
            [terms.instance, terms.seq, terms.kind, terms.value],
          );
        }
        await c.query('COMMIT');
      } catch (err) {
        await c.query('ROLLBACK').catch(() => undefined);
        if ((err as { code?: unknown }).code === '23505') {
          const first = records[0];
          const last = records[records.length - 1];
          const e = new Error(
            `${this.description}: records ${first.seq}..${last.seq} of instance "${first.instance}" collide with stored ones: ` +
              `another writer is using the same instance name's chain (two Warden instances must have distinct audit.instance names)`,
          );
          e.name = 'DuplicateSeqError';
          throw e;
        }
        throw this.#conn.error('append failed', err);
      }
    });
  }

  async *query(q: AuditQuery): AsyncGenerator<AuditRecord> {
    const params: unknown[] = [];
    const p = (v: unknown): string => {
      params.push(v);
      return `$${params.length}`;
    };
    const where: string[] = [];
    if (q.instance !== undefined) where.push(`r.instance = ${p(q.instance)}`);
    if (q.fromSeq !== undefined) where.push(`r.seq >= ${p(q.fromSeq)}`);
    if (q.toSeq !== undefined) where.push(`r.seq <= ${p(q.toSeq)}`);
    if (q.since !== undefined) where.push(`r.ts >= ${p(normalizeTime(q.since))}`);
    if (q.until !== undefined) where.push(`r.ts < ${p(normalizeTime(q.until))}`);
    if (q.types && q.types.length > 0) {
      const ors = q.types.map((t) =>
        t.endsWith('.') ? `r.type LIKE ${p(`${t.replace(/[\\%_]/g, (ch) => `\\${ch}`)}%`)}` : `r.type = ${p(t)}`,
      );
      where.push(`(${ors.join(' OR ')})`);
    }
    if (q.identity !== undefined) where.push(`r.identity = ${p(q.identity)}`);
    if (q.session !== undefined) where.push(`r.session = ${p(q.session)}`);
    if (q.table !== undefined) {
      const t = q.table.toLowerCase();
      // A bare table name matches it in any schema.
      const match = t.includes('.') ? `t.value = ${p(t)}` : `(t.value = ${p(t)} OR t.value LIKE ${p(`%.${t.replace(/[\\%_]/g, (ch) => `\\${ch}`)}`)})`;
      where.push(`EXISTS (SELECT 1 FROM ${this.#s}.terms t WHERE t.kind = 'table' AND ${match} AND t.instance = r.instance AND t.seq = r.seq)`);
    }
    if (q.action !== undefined) {
      where.push(
        `EXISTS (SELECT 1 FROM ${this.#s}.terms t WHERE t.kind = 'action' AND t.value = ${p(q.action.toLowerCase())} AND t.instance = r.instance AND t.seq = r.seq)`,
      );
    }
    const limit = q.limit === undefined ? Infinity : Math.max(0, Math.floor(q.limit));
    if (limit === 0) return;
    // Every row is re-checked against its own (hashed) data: an edited index can hide
    // records from a search (verify reports that) but never make a record appear under
    // an identity, table or action it does not have. Rows the check drops do not count
    // against the limit: pages continue until `limit` records passed it.
    // Instance, seq, time and type are the record's own (hashed) columns, filtered in SQL;
    // identity, session, table and action come from the index: those are re-checked.
    const check: AuditQuery | null =
      q.identity === undefined && q.session === undefined && q.table === undefined && q.action === undefined
        ? null
        : { identity: q.identity, session: q.session, table: q.table, action: q.action };
    let n = 0;
    for await (const row of this.#pages(where, params, q.instance !== undefined, q.descending === true, Infinity, Math.min(PAGE, limit))) {
      const data = parseData(row.data);
      if (!data) continue; // an unreadable row is only reported by chain()
      const r = toRecord(row, data);
      if (check && !matchesQuery(r, check)) continue;
      yield r;
      if (++n >= limit) return;
    }
  }

  /** The instance's records in seq order; rows whose data is not a JSON object come back as `{ malformed }`. */
  async *chain(instance: string, fromSeq = 1): AsyncGenerator<AuditRecord> {
    for await (const row of this.#pages(['r.instance = $1', 'r.seq >= $2'], [instance, fromSeq], true, false, Infinity)) {
      yield toRecord(row);
    }
  }

  /**
   * Rows matching `where`, streamed in keyset pages of {@link PAGE}: ordered by
   * seq (one instance) or by (ts, instance, seq).
   */
  async *#pages(where: string[], params: unknown[], bySeq: boolean, desc: boolean, limit: number, page = PAGE): AsyncGenerator<RecordRow> {
    const dir = desc ? 'DESC' : 'ASC';
    const cmp = desc ? '<' : '>';
    const order = bySeq ? `r.seq ${dir}` : `r.ts ${dir}, r.instance ${dir}, r.seq ${dir}`;
    let last: RecordRow | undefined;
    let left = limit;
    while (left > 0) {
      const ps = [...params];
      const conds = [...where];
      if (last) {
        if (bySeq) {
          ps.push(last.seq);
          conds.push(`r.seq ${cmp} $${ps.length}`);
        } else {
          ps.push(last.ts, last.instance, last.seq);
          conds.push(`(r.ts, r.instance, r.seq) ${cmp} ($${ps.length - 2}, $${ps.length - 1}, $${ps.length})`);
        }
      }
      const n = Math.min(page, left);
      const rows = await this.#read<RecordRow>(
        `SELECT ${RECORD_COLS} FROM ${this.#s}.records r${conds.length ? ` WHERE ${conds.join(' AND ')}` : ''} ORDER BY ${order} LIMIT ${n}`,
        ps,
      );
      for (const row of rows) yield row;
      if (rows.length < n) return;
      left -= rows.length;
      last = rows[rows.length - 1];
    }
  }

  /**
   * The search index of one instance's chain as stored (see index-check.ts): the
   * records' identity/session columns and the terms, merged by seq. Both are read
   * through cursors in one read-only REPEATABLE READ transaction (one snapshot) on
   * a connection of its own, in primary-key order, {@link INDEX_PAGE} rows per fetch.
   */
  async *indexEntries(instance: string, throughSeq = Number.MAX_SAFE_INTEGER): AsyncGenerator<IndexEntry[]> {
    if (this.#closed) throw new Error(`${this.description}: store is closed`);
    // A connection of its own (not the pool's): held for the whole pass, it must not starve
    // the chain reads of the same verification, or of another one running at the same time.
    const c = new pg.Client({ connectionString: this.#url });
    c.on('error', () => undefined);
    try {
      await c.connect();
    } catch (err) {
      await c.end().catch(() => undefined);
      throw this.#conn.error('reading the index: cannot connect', err);
    }
    const q = async <R extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<R[]> => {
      try {
        return (await c.query<R>(sql, params)).rows;
      } catch (err) {
        throw this.#conn.error('reading the index failed', err);
      }
    };
    try {
      await q('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      await q(
        `DECLARE warden_ix_records NO SCROLL CURSOR FOR
           SELECT seq, identity, session FROM ${this.#s}.records WHERE instance = $1 AND seq <= $2 ORDER BY instance, seq`,
        [instance, throughSeq],
      );
      await q(
        `DECLARE warden_ix_terms NO SCROLL CURSOR FOR
           SELECT seq, kind, value FROM ${this.#s}.terms WHERE instance = $1 AND seq <= $2 ORDER BY instance, seq, kind, value`,
        [instance, throughSeq],
      );
      type R = { seq: string; identity: string | null; session: string | null };
      type T = { seq: string; kind: string; value: string };
      const stream = <X extends { seq: string }>(cursor: string) => {
        let buf: X[] = [];
        let i = 0;
        let end = false;
        return {
          async peek(): Promise<X | undefined> {
            if (i < buf.length) return buf[i];
            if (end) return undefined;
            buf = await q<X>(`FETCH ${INDEX_PAGE} FROM ${cursor}`);
            i = 0;
            if (buf.length < INDEX_PAGE) end = true;
            return buf[0];
          },
          take(): void {
            i++;
          },
        };
      };
      const recs = stream<R>('warden_ix_records');
      const terms = stream<T>('warden_ix_terms');
      let batch: IndexEntry[] = [];
      for (;;) {
        const r = await recs.peek();
        const t = await terms.peek();
        if (!r && !t) break;
        const seq = r && (!t || Number(r.seq) <= Number(t.seq)) ? Number(r.seq) : Number(t!.seq);
        const e: IndexEntry = { seq, record: false, identity: null, session: null, terms: [] };
        if (r && Number(r.seq) === seq) {
          e.record = true;
          e.identity = r.identity;
          e.session = r.session;
          recs.take();
        }
        for (let x = t; x && Number(x.seq) === seq; x = await terms.peek()) {
          e.terms.push({ kind: x.kind, value: x.value });
          terms.take();
        }
        batch.push(e);
        if (batch.length === INDEX_PAGE) {
          yield batch;
          batch = [];
        }
      }
      if (batch.length > 0) yield batch;
      await q('COMMIT');
    } finally {
      // Done, failed or abandoned midway: the connection (and any open transaction) ends.
      await c.end().catch(() => undefined);
    }
  }

  async indexInstances(): Promise<string[]> {
    return this.#distinctInstances('terms');
  }

  async instances(): Promise<string[]> {
    return this.#distinctInstances('records');
  }

  /** The instances a table names: a loose index scan over its primary key (instance first), one probe per instance. */
  async #distinctInstances(table: 'records' | 'terms'): Promise<string[]> {
    const rows = await this.#read<{ instance: string }>(
      `WITH RECURSIVE i AS (
         (SELECT instance FROM ${this.#s}.${table} ORDER BY instance LIMIT 1)
         UNION ALL
         SELECT (SELECT t.instance FROM ${this.#s}.${table} t WHERE t.instance > i.instance ORDER BY t.instance LIMIT 1)
           FROM i WHERE i.instance IS NOT NULL
       ) SELECT instance FROM i WHERE instance IS NOT NULL`,
      [],
    );
    return rows.map((r) => r.instance);
  }

  /** Stores a checkpoint; one for the same (instance, seq) replaces the earlier one. */
  saveCheckpoint(cp: Checkpoint): Promise<void> {
    return this.#write('saving checkpoint', async (c) => {
      try {
        await c.query(
          `INSERT INTO ${this.#s}.checkpoints (instance, seq, hash, ts, signature, key_id) VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (instance, seq) DO UPDATE SET hash = EXCLUDED.hash, ts = EXCLUDED.ts, signature = EXCLUDED.signature, key_id = EXCLUDED.key_id`,
          [cp.instance, cp.seq, cp.hash, cp.ts, cp.signature, cp.keyId],
        );
      } catch (err) {
        throw this.#conn.error('saving checkpoint failed', err);
      }
    });
  }

  async checkpoints(instance?: string): Promise<Checkpoint[]> {
    const rows = await this.#read<{ instance: string; seq: string; hash: string; ts: string; signature: string; key_id: string }>(
      `SELECT instance, seq, hash, ts, signature, key_id FROM ${this.#s}.checkpoints${
        instance === undefined ? '' : ' WHERE instance = $1'
      } ORDER BY instance, seq`,
      instance === undefined ? [] : [instance],
    );
    return rows.map((r) => ({ instance: r.instance, seq: Number(r.seq), hash: r.hash, ts: r.ts, signature: r.signature, keyId: r.key_id }));
  }

  /**
   * Deletes the records with `ts < before` (and their terms); checkpoints are
   * kept. Afterwards a chain no longer starts at seq 1: verify it with
   * `verifyChain`'s `startAfter` = `{ seq: first.seq - 1, hash: first.prev }` of
   * the first kept record.
   */
  prune(before: string, instance?: string): Promise<number> {
    const cutoff = normalizeTime(before);
    return this.#write('prune', async (c) => {
      const params: unknown[] = [cutoff];
      if (instance !== undefined) params.push(instance);
      try {
        const r = await c.query<{ n: number }>(
          `WITH gone AS (
             DELETE FROM ${this.#s}.records WHERE ts < $1${instance === undefined ? '' : ' AND instance = $2'} RETURNING instance, seq
           ), t AS (
             DELETE FROM ${this.#s}.terms x USING gone g WHERE x.instance = g.instance AND x.seq = g.seq
           ) SELECT count(*)::int AS n FROM gone`,
          params,
        );
        return r.rows[0]?.n ?? 0;
      } catch (err) {
        throw this.#conn.error('prune failed', err);
      }
    });
  }

  close(): Promise<void> {
    if (this.#closed) return this.#queue.then(() => undefined);
    this.#closed = true;
    const done = this.#queue.then(async () => {
      const w = this.#writer;
      this.#writer = null;
      await Promise.all([w?.end().catch(() => undefined), this.#pool.end().catch(() => undefined)]);
    });
    this.#queue = done;
    return done;
  }
}
