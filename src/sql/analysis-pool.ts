/**
 * Analysis of large SQL texts off the event loop. PostgreSQL's parser runs
 * synchronously: a 10 MB statement parsed on the main thread would stop every
 * session for seconds. Texts of at least {@link OFF_THREAD_CHARS} characters
 * are analysed by a worker thread instead, one at a time, while the session
 * that sent one waits (its verdict is pending) and the others go on.
 *
 * The worker's parser keeps the WebAssembly memory its largest statement
 * needed (it can grow, never shrink): the pool ends a worker once it has been
 * idle for {@link IDLE_MS}, so the process returns to its baseline memory.
 */
import { Worker } from 'node:worker_threads';
import { workerScript } from '../util/worker-script.js';
import type { Analysis, AnalyzeContext } from './types.js';
import type { AnalyzeRequest, AnalyzeResponse } from './analyze-worker.js';

/** Texts of at least this many characters are analysed off the main thread. */
export const OFF_THREAD_CHARS = 256 * 1024;
/** An idle worker is ended after this long (its memory goes with it). */
export const IDLE_MS = 5_000;

export class AnalysisPool {
  private worker: Worker | null = null;
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (a: Analysis) => void; reject: (e: Error) => void }>();
  private idle: NodeJS.Timeout | null = null;

  /** The analysis of `sql`, computed by the worker. Rejects when the worker fails. */
  analyze(sql: string, ctx: AnalyzeContext): Promise<Analysis> {
    const w = this.ensure();
    const id = this.nextId++;
    if (this.idle) {
      clearTimeout(this.idle);
      this.idle = null;
    }
    return new Promise<Analysis>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      const prepared = ctx.preparedStatements;
      const req: AnalyzeRequest = {
        id,
        sql,
        ctx: {
          searchPath: ctx.searchPath,
          ...(ctx.user !== undefined ? { user: ctx.user } : {}),
          ...(ctx.defaultSearchPath !== undefined ? { defaultSearchPath: ctx.defaultSearchPath } : {}),
          ...(prepared !== undefined && prepared.size > 0 ? { preparedStatements: new Map(prepared) } : {}),
        },
      };
      w.postMessage(req);
    });
  }

  private ensure(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(workerScript(import.meta.url, 'analyze-worker.js', 'sql', 'the SQL analysis worker script'));
    w.unref();
    w.on('message', (m: AnalyzeResponse) => {
      const p = this.waiting.get(m.id);
      if (!p) return;
      this.waiting.delete(m.id);
      if ('error' in m) p.reject(new Error(m.error));
      else p.resolve(m.analysis);
      if (this.waiting.size === 0) this.scheduleIdle();
    });
    const fail = (err: Error): void => {
      if (this.worker === w) this.worker = null;
      for (const [, p] of this.waiting) p.reject(err);
      this.waiting.clear();
    };
    w.on('error', fail);
    w.on('exit', (code) => fail(new Error(`the SQL analysis worker exited (${code})`)));
    this.worker = w;
    return w;
  }

  private scheduleIdle(): void {
    if (this.idle) clearTimeout(this.idle);
    this.idle = setTimeout(() => {
      this.idle = null;
      if (this.waiting.size === 0 && this.worker) {
        const w = this.worker;
        this.worker = null;
        void w.terminate();
      }
    }, IDLE_MS);
    this.idle.unref();
  }

  /** End the worker (pending analyses reject). */
  async close(): Promise<void> {
    if (this.idle) clearTimeout(this.idle);
    const w = this.worker;
    this.worker = null;
    if (w) await w.terminate();
  }
}
