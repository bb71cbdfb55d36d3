/**
 * Worker thread that analyses large SQL texts (see analysis-pool.ts), so that
 * parsing megabytes of SQL never stalls the sessions on the main thread. It
 * runs the same `analyzeSql` as the main thread, with its own copy of
 * PostgreSQL's parser (and its own WebAssembly memory, which is released when
 * the pool ends an idle worker).
 */
import { parentPort } from 'node:worker_threads';
import { analyzeSql, initSqlParser } from './analyze.js';
import type { Analysis, AnalyzeContext } from './types.js';

export interface AnalyzeRequest {
  readonly id: number;
  readonly sql: string;
  readonly ctx: {
    readonly searchPath: readonly string[] | null;
    readonly user?: string;
    readonly defaultSearchPath?: readonly string[];
    readonly preparedStatements?: ReadonlyMap<string, Analysis>;
  };
}

export type AnalyzeResponse = { readonly id: number; readonly analysis: Analysis } | { readonly id: number; readonly error: string };

const ready = initSqlParser();

parentPort?.on('message', (m: AnalyzeRequest) => {
  void ready
    .then(() => {
      const ctx: AnalyzeContext = m.ctx;
      parentPort!.postMessage({ id: m.id, analysis: analyzeSql(m.sql, ctx) } satisfies AnalyzeResponse);
    })
    .catch((err: Error) => parentPort!.postMessage({ id: m.id, error: err.message } satisfies AnalyzeResponse));
});
