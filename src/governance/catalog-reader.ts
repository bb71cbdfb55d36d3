/**
 * Reads an upstream database's catalog (object definitions for the audit of
 * DDL, sensitive columns for masking), over one internal connection per database (service credentials,
 * application_name `warden:catalog`), opened on first use and reopened after
 * an error. Queries are serialized per connection and time-limited twice: by
 * the server (statement_timeout) and by Warden, for a query that never starts
 * (an upstream that stalls, or PGlite busy with another session's
 * transaction); the connection is then dropped and the caller fails closed.
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';
import type { DatabaseConfig } from '../config/types.js';
import type { Logger } from '../log/logger.js';
import { snapshotObjects, type ObjectDefinition } from '../audit/catalog-snapshot.js';

const TIMEOUT_MS = 5_000;

export interface CatalogReader {
  snapshot(db: DatabaseConfig, targets: readonly { schema: string; name: string }[]): Promise<Record<string, ObjectDefinition | null>>;
  /** Run one catalog query on the database's internal connection. */
  query(db: DatabaseConfig, sql: string, params: unknown[]): Promise<{ rows: Record<string, unknown>[] }>;
  /**
   * The planner's estimate of the rows a read returns: a plain `EXPLAIN (FORMAT JSON)` (the
   * statement is planned, never run) on a connection of its own whose transactions are all
   * read only, with the session's search_path; parameters as text. Rejects when PostgreSQL
   * cannot plan it there (e.g. the session's temporary tables).
   */
  estimate(db: DatabaseConfig, sql: string, params: readonly (string | null)[], searchPath: readonly string[]): Promise<number>;
  close(): Promise<void>;
}

/** A search_path as PostgreSQL reads it back: each schema a quoted identifier. */
function searchPathText(path: readonly string[]): string {
  return path.map((x) => (x === '$user' ? '"$user"' : `"${x.replace(/"/g, '""')}"`)).join(', ');
}

/** Rows the top plan node of an EXPLAIN (FORMAT JSON) result expects. */
export function planRows(rows: readonly Record<string, unknown>[]): number {
  const v = rows[0]?.['QUERY PLAN'];
  const doc = (typeof v === 'string' ? JSON.parse(v) : v) as { Plan?: { 'Plan Rows'?: unknown } }[] | undefined;
  const n = doc?.[0]?.Plan?.['Plan Rows'];
  if (typeof n !== 'number' || !Number.isFinite(n)) throw new Error('EXPLAIN returned no row estimate');
  return n;
}

export function createCatalogReader(log: Logger): CatalogReader {
  const clients = new Map<string, Promise<pg.Client>>();
  /** Estimates run on connections of their own (`warden:estimate`, read only), one at a time each. */
  const estimators = new Map<string, Promise<pg.Client>>();
  const estimating = new Map<string, Promise<unknown>>();
  /** The search_path each estimate connection has now (set only when it changes). */
  const estimatePath = new WeakMap<pg.Client, string>();

  const connect = (db: DatabaseConfig, pool = clients, name = 'warden:catalog'): Promise<pg.Client> => {
    let p = pool.get(db.name);
    if (!p) {
      const c = new pg.Client({
        host: db.upstream.host,
        port: db.upstream.port,
        user: db.upstream.user,
        password: db.upstream.password,
        database: db.upstream.database,
        application_name: name,
        // Estimates: nothing planned there may write (a function wrongly marked immutable runs at plan time).
        ...(pool === estimators ? { options: '-c default_transaction_read_only=on' } : {}),
        ssl: db.tls === 'disable' ? false : { rejectUnauthorized: db.tls === 'verify-full', ca: db.ca ? readFileSync(db.ca) : undefined },
        statement_timeout: TIMEOUT_MS,
        connectionTimeoutMillis: TIMEOUT_MS,
      });
      c.on('error', (err) => {
        log.warn({ database: db.name, reason: err.message }, 'catalog connection failed');
        pool.delete(db.name);
      });
      p = c.connect().then(
        () => c,
        (err: Error) => {
          pool.delete(db.name);
          throw new Error(`cannot read the catalog of ${db.name}: ${err.message}`);
        },
      );
      pool.set(db.name, p);
      const mine = p;
      // Ended (after a timeout, or by the server): the next query opens a new connection.
      c.on('end', () => {
        if (pool.get(db.name) === mine) pool.delete(db.name);
      });
    }
    return p;
  };

  /** One query, failing after TIMEOUT_MS + 1 s however the upstream behaves; a timed-out connection is not reused. */
  /** `extended`: always the extended protocol (one statement, never a string of several). */
  const timed = async (db: DatabaseConfig, c: pg.Client, sql: string, params: unknown[], extended = false): Promise<pg.QueryResult<Record<string, unknown>>> => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        void c.end().catch(() => undefined);
        reject(new Error(`reading the catalog of ${db.name} timed out after ${(TIMEOUT_MS + 1_000) / 1000} s`));
      }, TIMEOUT_MS + 1_000);
    });
    try {
      // `queryMode` is pg's (8.x), not in its type definitions yet.
      const config = { text: sql, values: params, queryMode: 'extended' } as pg.QueryConfig;
      const q = extended ? c.query<Record<string, unknown>>(config) : c.query<Record<string, unknown>>(sql, params);
      return await Promise.race([q, timeout]);
    } finally {
      clearTimeout(timer);
    }
  };

  return {
    async snapshot(db, targets) {
      const c = await connect(db);
      return snapshotObjects((sql, params) => timed(db, c, sql, params), targets);
    },
    async query(db, sql, params) {
      const c = await connect(db);
      return timed(db, c, sql, params);
    },
    estimate(db, sql, params, searchPath) {
      const prior = estimating.get(db.name) ?? Promise.resolve();
      const run = prior.then(async () => {
        const c = await connect(db, estimators, 'warden:estimate');
        const path = searchPathText(searchPath);
        if (estimatePath.get(c) !== path) {
          estimatePath.delete(c);
          await timed(db, c, "SELECT set_config('search_path', $1, false)", [path]);
          estimatePath.set(c, path);
        }
        // One statement (PostgreSQL's own split of the client's string), on the extended protocol: nothing else can ride along.
        return planRows((await timed(db, c, `EXPLAIN (FORMAT JSON) ${sql}`, [...params], true)).rows);
      });
      estimating.set(db.name, run.catch(() => undefined));
      return run;
    },
    async close() {
      const all = [...clients.values(), ...estimators.values()];
      clients.clear();
      estimators.clear();
      await Promise.all(all.map((p) => p.then((c) => c.end()).catch(() => undefined)));
    },
  };
}
