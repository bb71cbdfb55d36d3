/**
 * PGlite (PostgreSQL compiled to WebAssembly, in memory) as an embedded
 * upstream, for the demo on machines without PostgreSQL's binaries. It runs on
 * a worker thread and is reached over TCP like any PostgreSQL: through PGlite's
 * socket server, behind the turn gate that makes its one backend serve one
 * session at a time (pglite-gate.ts).
 */
import { Worker } from 'node:worker_threads';
import { workerScript } from '../util/worker-script.js';
import type { PgliteWorkerData, PgliteWorkerMessage } from './pglite-worker.js';

export interface EmbeddedPglite {
  readonly host: string;
  readonly port: number;
  /** PostgreSQL's version inside PGlite (e.g. 18.6). */
  readonly version: string;
  /** A connection URL (PGlite has one database and trusts every user). */
  url(): string;
  stop(): Promise<void>;
}

export async function startPglite(o: { port?: number; onWarning?: (message: string) => void; timeoutMs?: number } = {}): Promise<EmbeddedPglite> {
  const host = '127.0.0.1';
  const data: PgliteWorkerData = { host, port: o.port ?? 0 };
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
  });
  return {
    host,
    port: ready.port,
    version: ready.version,
    url: () => `postgres://postgres@${host}:${ready.port}/postgres`,
    stop: () =>
      (stopped ??= new Promise<void>((resolve) => {
        const done = (): void => {
          void worker.terminate().then(() => resolve());
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
