/**
 * The worker thread that runs PGlite (see pglite.ts): PGlite executes SQL
 * synchronously in WebAssembly, so on the main thread a slow statement would
 * stall Warden itself. Here it stalls only this thread. Runs PGlite in memory,
 * its socket server on a Unix socket in a private directory, and the turn
 * gate (TCP, with a password) in front of it.
 */
import path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { startTurnGate } from './pglite-gate.js';
import { initSqlParser } from '../sql/parser.js';

export interface PgliteWorkerData {
  host: string;
  port: number;
  /** The password clients log in to the gate with. */
  password: string;
  /** A private directory (0700) for PGlite's own socket, which asks for no password. */
  socketDir: string;
}

export type PgliteWorkerMessage =
  | { type: 'ready'; port: number; version: string }
  | { type: 'warning'; message: string }
  | { type: 'failed'; message: string }
  | { type: 'stopped' };

const port = parentPort;
if (!port) throw new Error('pglite-worker.js runs as a worker thread');
const send = (m: PgliteWorkerMessage): void => port.postMessage(m);

try {
  const { host, port: listenPort, password, socketDir } = workerData as PgliteWorkerData;
  await initSqlParser();
  const db = await PGlite.create();
  const version = (await db.query<{ v: string }>("SELECT pg_catalog.current_setting('server_version') AS v")).rows[0]?.v ?? '';
  // Connections wait for their turn at the gate, so PGlite's own limit is never what stops them.
  const socketPath = path.join(socketDir, '.s.PGLITE');
  const sockets = new PGLiteSocketServer({ db, path: socketPath, maxConnections: 10_000 });
  await sockets.start();
  const gate = await startTurnGate({
    upstream: { path: socketPath },
    password,
    host,
    port: listenPort,
    onWarning: (message) => send({ type: 'warning', message }),
  });
  port.on('message', (m: { type: string }) => {
    if (m.type !== 'stop') return;
    void (async () => {
      await gate.close();
      await sockets.stop();
      await db.close();
      send({ type: 'stopped' });
      port.close();
    })();
  });
  send({ type: 'ready', port: gate.port, version });
} catch (err) {
  send({ type: 'failed', message: (err as Error).message });
}
