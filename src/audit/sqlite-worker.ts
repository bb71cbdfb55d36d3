/**
 * Worker thread that owns the SQLite audit database's write connection, so
 * that each group commit's fsync happens off the proxy's event loop.
 *
 * Messages in: `{ id, records }`; out: `{ id, ok: true }` or `{ id, ok: false, error, code? }`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { AuditRecord } from './chain.js';
import { SqliteAuditDb } from './sqlite-db.js';

interface Request {
  id: number;
  records: AuditRecord[];
}

const port = parentPort;
if (!port) throw new Error('sqlite-worker must run in a worker thread');
const { path } = workerData as { path: string };
let db: SqliteAuditDb | undefined;
let openError: string | undefined;
try {
  db = new SqliteAuditDb(path);
} catch (err) {
  openError = (err as Error).message;
}

port.on('message', (m: Request) => {
  try {
    if (!db) {
      // The database could not be opened: retry, it may have become writable.
      db = new SqliteAuditDb(path);
      openError = undefined;
    }
    db.append(m.records);
    port.postMessage({ id: m.id, ok: true });
  } catch (err) {
    const e = err as Error & { code?: string };
    port.postMessage({ id: m.id, ok: false, error: e.message || openError || 'audit write failed', code: e.code, name: e.name });
  }
});
