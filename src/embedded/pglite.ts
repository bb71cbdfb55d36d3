/**
 * PGlite (PostgreSQL compiled to WebAssembly, in memory) as an embedded
 * upstream, for the demo on machines without PostgreSQL's binaries. It runs on
 * a worker thread and is reached over TCP like any PostgreSQL, with a random
 * password: through the turn gate that makes its one backend serve one session
 * at a time (pglite-gate.ts), in front of PGlite's socket server (on a Unix
 * socket in a private directory, removed on stop).
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { workerScript } from '../util/worker-script.js';
import type { PgliteWorkerData, PgliteWorkerMessage } from './pglite-worker.js';

export interface EmbeddedPglite {
  readonly host: string;
  readonly port: number;
  /** PostgreSQL's version inside PGlite (e.g. 18.6). */
  readonly version: string;
  /** What clients log in with (SCRAM-SHA-256; any user name: PGlite has one user and one database). */
  readonly password: string;
  /** A connection URL, password included. */
  url(): string;
  stop(): Promise<void>;
}

export async function startPglite(o: { port?: number; onWarning?: (message: string) => void; timeoutMs?: number } = {}): Promise<EmbeddedPglite> {
  const host = '127.0.0.1';
  const password = randomBytes(18).toString('base64url');
  const socketDir = mkdtempSync(path.join(os.tmpdir(), 'warden-pglite-'));
  chmodSync(socketDir, 0o700);
  const removeDir = (): void => rmSync(socketDir, { recursive: true, force: true });
  const data: PgliteWorkerData = { host, port: o.port ?? 0, password, socketDir };
  const worker = new Worker(workerScript(import.meta.url, 'pglite-worker.js', 'embedded', 'PGlite worker script'), { workerData: data });
  let stopped: Promise<void> | null = null;
  const ready = await new Promise<{ port: number; version: string }>((resolve, reject) => {
    const timer = setTimeout(() => {
      void worker.terminate();
      reject(new Error(`PGlite did not start within ${(o.timeoutMs ?? 60_000) / 1000} s`));
    }, o.timeoutMs ?? 60_000);
    worker.on('message', (m: PgliteWorkerMessage) => {
      if (m.type === 'ready') {
        clearTimeout(timer);
        resolve(m);
      } else if (m.type === 'failed') {
        clearTimeout(timer);
        void worker.terminate();
        reject(new Error(`PGlite could not start: ${m.message}`));
      } else if (m.type === 'warning') o.onWarning?.(m.message);
    });
    worker.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`PGlite could not start: ${err.message}`));
    });
    worker.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`PGlite's worker exited (code ${code}) before it was ready`));
    });
  }).catch((err: unknown) => {
    removeDir();
    throw err;
  });
  return {
    host,
    port: ready.port,
    version: ready.version,
    url: () => `postgres://postgres:${password}@${host}:${ready.port}/postgres`,
    password,
    stop: () =>
      (stopped ??= new Promise<void>((resolve) => {
        const done = (): void => {
          void worker.terminate().then(() => {
            removeDir();
            resolve();
          });
        };
        // An orderly stop first (connections closed, PGlite shut down), then the thread ends either way.
        const t = setTimeout(done, 5_000);
        worker.on('message', (m: PgliteWorkerMessage) => {
          if (m.type === 'stopped') {
            clearTimeout(t);
            done();
          }
        });
        worker.postMessage({ type: 'stop' });
      })),
  };
}
