/**
 * Statement analysis: what a query string does, from PostgreSQL's own parse tree.
 *
 * {@link analyzeSql} splits a query string into statements and, for each one,
 * finds its kind and classes, the relations it reads and writes (resolved with
 * the session's search_path), the columns it references and where, the
 * functions it calls, the settings it changes, and whether its effect is
 * `opaque` (cannot be seen). Statements are analysed in order and later
 * statements see the effects of earlier ones in the same string
 * (`SET search_path`, `PREPARE`, `DEALLOCATE`).
 *
 * This module is the entry point and the dispatcher; each family of statements
 * has a module of its own:
 * - `analyze-dml.ts`: SELECT, INSERT, UPDATE, DELETE, MERGE, COPY, and the
 *   expression walker (columns, function calls, subqueries);
 * - `analyze-ddl.ts`: CREATE, ALTER, DROP, GRANT, COMMENT, TRUNCATE, ...;
 * - `analyze-code.ts`: DO, CALL, CREATE FUNCTION / PROCEDURE / RULE (bodies);
 * - `analyze-utility.ts`: SET, PREPARE / EXECUTE, transactions, cursors,
 *   EXPLAIN, LOCK, maintenance;
 * - `ddl-targets.ts`: the objects a DDL statement names that are not relations
 *   (routines, types, a new index or name), for StatementAnalysis.ddlTargets;
 * - `builder.ts`: the per-statement {@link Builder}, scopes and environment;
 *   `tree.ts`: parse-tree helpers.
 *
 * The classification rules are documented in docs/policy.md ("How statements
 * are classified") together with the limits of static analysis.
 *
 * Pure: no I/O. Requires {@link initSqlParser} to have completed.
 *
 * @module
 */
import { analysisOfStatement, aggregate, Builder, PreparedOverlay, type Env, type StatementHandler, type StatementHandlers } from './builder.js';
import { CODE_STATEMENTS } from './analyze-code.js';
import { DDL_STATEMENTS, otherStatement } from './analyze-ddl.js';
import { DML_STATEMENTS } from './analyze-dml.js';
import { DDL_NAMED_OBJECTS } from './ddl-targets.js';
import { UTILITY_STATEMENTS } from './analyze-utility.js';
import { parseStatements, sliceBytes } from './parser.js';
import { unwrap, type Obj } from './tree.js';
import type { Analysis, AnalyzeContext, StatementAnalysis } from './types.js';

export { initSqlParser, isSqlParserReady } from './parser.js';
export { analysisOfStatement } from './builder.js';
export { RELATION_OBJECTS } from './analyze-ddl.js';

/** Every statement handler by parse-node type (a type is in one family only). */
const STATEMENTS: ReadonlyMap<string, StatementHandler> = (() => {
  const all = new Map<string, StatementHandler>();
  const families: StatementHandlers[] = [DML_STATEMENTS, DDL_STATEMENTS, CODE_STATEMENTS, UTILITY_STATEMENTS];
  for (const family of families) {
    for (const [type, handler] of Object.entries(family)) {
      if (all.has(type)) throw new Error(`statement type ${type} has two handlers`);
      all.set(type, handler);
    }
  }
  return all;
})();

/** Classifies one statement node into `b`, by its family's handler; then records the objects a DDL statement names besides relations. */
function analyzeNode(stmt: Obj, b: Builder, text: string): void {
  const u = unwrap(stmt);
  if (!u) {
    b.kind = 'other';
    b.opaque('unrecognised parse tree');
    return;
  }
  const [type, n] = u;
  (STATEMENTS.get(type) ?? otherStatement)(n, b, text, type);
  DDL_NAMED_OBJECTS[type]?.(n, b);
}

/**
 * Analyses a query string.
 *
 * @param sql the query text as the client sent it (Query or Parse message)
 * @param ctx session facts: search_path, upstream user, prepared statements
 * @returns `{ ok: true, statements, ... }`, or `{ ok: false, error }` when
 *   PostgreSQL's parser rejects the text (the whole string: nothing of it runs)
 * @throws when the parser is not loaded ({@link initSqlParser})
 */
export function analyzeSql(sql: string, ctx: AnalyzeContext): Analysis {
  const parsed = parseStatements(sql);
  if (!parsed.ok) {
    const { message, position } = parsed.failure;
    return Object.freeze({
      ok: false as const,
      sql,
      error: position !== undefined ? `${message} (at character ${position})` : message,
      ...(position !== undefined ? { position } : {}),
    });
  }
  const env: Env = {
    searchPath: ctx.searchPath,
    ...(ctx.user !== undefined ? { user: ctx.user } : {}),
    ...(ctx.defaultSearchPath !== undefined ? { defaultSearchPath: ctx.defaultSearchPath } : {}),
    prepared: new PreparedOverlay(ctx.preparedStatements),
    usesPrepared: false,
    depth: 0,
    analyzeNode,
  };
  let statements: StatementAnalysis[];
  try {
    statements = parsed.statements.map((raw, i) => {
      const b = new Builder(env);
      const text = sliceBytes(sql, raw.location, raw.length ? raw.location + raw.length : undefined).trim();
      analyzeNode(raw.stmt, b, text);
      return b.finish(i, text);
    });
  } catch (err) {
    // A parse tree too deep to walk (stack overflow), or an unexpected tree shape: the
    // statement is treated like an unparsable one (denied when any rule could apply).
    const message = err instanceof Error ? err.message : String(err);
    const error =
      err instanceof RangeError
        ? `statement too complex for Warden to analyse (${message})`
        : `Warden could not analyse the statement (${message})`;
    return Object.freeze({ ok: false as const, sql, error });
  }
  return aggregate(sql, statements, env.usesPrepared);
}

/**
 * The session's prepared statements after a query string ran.
 *
 * @param prev the map before
 * @param analysis the analysed string
 * @param succeeded whether the whole string completed without error. When it
 *   failed, every name it PREPAREs or DEALLOCATEs becomes unknown (EXECUTE of it is
 *   then opaque) since Warden cannot tell which statements ran; prepared
 *   statements are not transactional in PostgreSQL.
 */
export function preparedStatementsAfter(
  prev: ReadonlyMap<string, Analysis>,
  analysis: Analysis,
  succeeded: boolean,
): Map<string, Analysis> {
  const next = new Map(prev);
  if (!analysis.ok) return next;
  for (const s of analysis.statements) {
    if (s.prepare) {
      if (succeeded) {
        if (!next.has(s.prepare.name)) next.set(s.prepare.name, analysisOfStatement(s.prepare.statement));
      } else next.delete(s.prepare.name);
    }
    if (s.deallocate) {
      if (s.deallocate.name === null) {
        if (succeeded) next.clear();
      } else next.delete(s.deallocate.name);
    }
  }
  return next;
}
