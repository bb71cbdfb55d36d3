/**
 * Reads an upstream database's catalog (object definitions for the audit of
 * DDL, sensitive columns for masking), over one internal connection per database (service credentials,
 * application_name `warden:catalog`), opened on first use and reopened after
 * an error. Queries are serialized per connection and time-limited.
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
    }
    return p;
  };

  return {
    async snapshot(db, targets) {
      const c = await connect(db);
      return snapshotObjects((sql, params) => c.query(sql, params), targets);
    },
    async query(db, sql, params) {
      const c = await connect(db);
      return c.query(sql, params);
    },
    async close() {
      const all = [...clients.values()];
      clients.clear();
      await Promise.all(all.map((p) => p.then((c) => c.end()).catch(() => undefined)));
    },
  };
}
