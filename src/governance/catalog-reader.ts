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
  close(): Promise<void>;
}

export function createCatalogReader(log: Logger): CatalogReader {
  const clients = new Map<string, Promise<pg.Client>>();

  const connect = (db: DatabaseConfig): Promise<pg.Client> => {
    let p = clients.get(db.name);
    if (!p) {
      const c = new pg.Client({
        host: db.upstream.host,
        port: db.upstream.port,
        user: db.upstream.user,
        password: db.upstream.password,
        database: db.upstream.database,
        application_name: 'warden:catalog',
        ssl: db.tls === 'disable' ? false : { rejectUnauthorized: db.tls === 'verify-full', ca: db.ca ? readFileSync(db.ca) : undefined },
        statement_timeout: TIMEOUT_MS,
        connectionTimeoutMillis: TIMEOUT_MS,
      });
      c.on('error', (err) => {
        log.warn({ database: db.name, reason: err.message }, 'catalog connection failed');
        clients.delete(db.name);
      });
      p = c.connect().then(
        () => c,
        (err: Error) => {
          clients.delete(db.name);
          throw new Error(`cannot read the catalog of ${db.name}: ${err.message}`);
        },
      );
      clients.set(db.name, p);
      const mine = p;
      // Ended (after a timeout, or by the server): the next query opens a new connection.
      c.on('end', () => {
        if (clients.get(db.name) === mine) clients.delete(db.name);
      });
    }
    return p;
  };

  /** One query, failing after TIMEOUT_MS + 1 s however the upstream behaves; a timed-out connection is not reused. */
  const timed = async (db: DatabaseConfig, c: pg.Client, sql: string, params: unknown[]): Promise<pg.QueryResult<Record<string, unknown>>> => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        void c.end().catch(() => undefined);
        reject(new Error(`reading the catalog of ${db.name} timed out after ${(TIMEOUT_MS + 1_000) / 1000} s`));
      }, TIMEOUT_MS + 1_000);
    });
    try {
      return await Promise.race([c.query(sql, params), timeout]);
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
    async close() {
      const all = [...clients.values()];
      clients.clear();
      await Promise.all(all.map((p) => p.then((c) => c.end()).catch(() => undefined)));
    },
  };
}
