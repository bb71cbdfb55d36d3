/**
 * Worker thread that owns the SQLite audit database's write connection, so
 * that each group commit's fsync happens off the proxy's event loop.
 *
 * Messages in: `{ id, rows }`; out: `{ id, ok: true }` or `{ id, ok: false, error, code? }`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { SqliteAuditDb, type StoredRow } from './sqlite-db.js';

interface Request {
  id: number;
  rows: StoredRow[];
}

const port = parentPort;
if (!port) throw new Error('sqlite-worker must run in a worker thread');
const { path, durability } = workerData as { path: string; durability: 'fsync' | 'os' };
let db: SqliteAuditDb | undefined;
let openError: string | undefined;
try {
  db = new SqliteAuditDb(path, { durability });
} catch (err) {
  openError = (err as Error).message;
}

port.on('message', (m: Request) => {
  try {
    if (!db) {
      // The database could not be opened: retry, it may have become writable.
      db = new SqliteAuditDb(path, { durability });
      openError = undefined;
    }
    db.appendRows(m.rows);
    port.postMessage({ id: m.id, ok: true });
  } catch (err) {
    const e = err as Error & { code?: string };
    port.postMessage({ id: m.id, ok: false, error: e.message || openError || 'audit write failed', code: e.code, name: e.name });
  }
});
