/**
 * Thin wrapper around libpg-query (PostgreSQL 18's own parser compiled to WASM).
 *
 * Call {@link initSqlParser} once at start-up (it loads the WASM module); every
 * other function of src/sql is synchronous and throws if the parser is not loaded.
 *
 * @module
 */
import { loadModule, parseSync, parsePlPgSQLSync, scanSync } from 'libpg-query';

let ready = false;
let loading: Promise<void> | undefined;

/** Loads the parser's WASM module. Idempotent; safe to call concurrently. */
export function initSqlParser(): Promise<void> {
  if (ready) return Promise.resolve();
  loading ??= loadModule().then(() => {
    ready = true;
  });
  return loading;
}

/** Whether {@link initSqlParser} has completed. */
export function isSqlParserReady(): boolean {
  return ready;
}

function assertReady(): void {
  if (!ready) throw new Error('SQL parser not loaded: await initSqlParser() first');
}

/** A JSON object node of the parse tree. */
export type ParseNode = { [key: string]: unknown };

/** One raw statement of a parse result. */
export interface RawStatement {
  readonly stmt: ParseNode;
  /** Byte offset in the UTF-8 query text. */
  readonly location: number;
  /** Byte length; 0 = to the end of the text. */
  readonly length: number;
}

/** A parse failure, with PostgreSQL's message and 1-based character position. */
export interface ParseFailure {
  readonly message: string;
  readonly position?: number;
}

/** Result of {@link parseStatements}. */
export type ParseOutcome =
  | { readonly ok: true; readonly statements: readonly RawStatement[] }
  | { readonly ok: false; readonly failure: ParseFailure };

function failureOf(err: unknown): ParseFailure {
  if (err instanceof Error) {
    const details = (err as Error & { sqlDetails?: { message?: string; cursorPosition?: number } }).sqlDetails;
    const message = details?.message ?? err.message;
    const cursor = details?.cursorPosition;
    // libpg-query reports a 0-based character offset; PostgreSQL's `P` field is 1-based.
    return typeof cursor === 'number' && cursor >= 0 ? { message, position: cursor + 1 } : { message };
  }
  return { message: String(err) };
}

/** Parses a query string into its raw statements. Never throws on bad SQL. */
export function parseStatements(sql: string): ParseOutcome {
  assertReady();
  // libpg-query rejects an empty string; PostgreSQL answers it with EmptyQueryResponse.
  if (sql === '') return { ok: true, statements: [] };
  let result: { stmts?: unknown[] };
  try {
    result = parseSync(sql) as { stmts?: unknown[] };
  } catch (err) {
    return { ok: false, failure: failureOf(err) };
  }
  const statements: RawStatement[] = [];
  for (const raw of result.stmts ?? []) {
    const r = raw as { stmt?: ParseNode; stmt_location?: number; stmt_len?: number };
    if (!r.stmt) continue;
    statements.push({ stmt: r.stmt, location: r.stmt_location ?? 0, length: r.stmt_len ?? 0 });
  }
  return { ok: true, statements };
}

/** Parses a PL/pgSQL `CREATE FUNCTION` statement; returns the function node or a failure. */
export function parsePlpgsqlFunction(createFunctionSql: string): { ok: true; fn: ParseNode } | { ok: false; failure: ParseFailure } {
  assertReady();
  try {
    const res = parsePlPgSQLSync(createFunctionSql) as unknown as { plpgsql_funcs?: { PLpgSQL_function?: ParseNode }[] };
    const fn = res.plpgsql_funcs?.[0]?.PLpgSQL_function;
    if (!fn) return { ok: false, failure: { message: 'no PL/pgSQL function in parse result' } };
    return { ok: true, fn };
  } catch (err) {
    return { ok: false, failure: failureOf(err) };
  }
}

/** A lexical token: its text and byte offsets. */
export interface SqlToken {
  readonly text: string;
  readonly start: number;
  readonly end: number;
}

/** Splits SQL into lexical tokens (comments and whitespace dropped). Throws on unterminated input. */
export function scanTokens(sql: string): SqlToken[] {
  assertReady();
  return scanSync(sql).tokens.map((t) => ({ text: t.text, start: t.start, end: t.end }));
}

/** Slices a string by UTF-8 byte offsets (libpg-query reports byte offsets). */
export function sliceBytes(text: string, start: number, end?: number): string {
  // Fast path: pure ASCII text has equal byte and character offsets.
  // eslint-disable-next-line no-control-regex
  if (/^[\x00-\x7f]*$/.test(text)) return text.slice(start, end);
  return Buffer.from(text, 'utf8').subarray(start, end).toString('utf8');
}
