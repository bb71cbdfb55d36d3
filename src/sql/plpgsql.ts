/**
 * Extraction of the SQL inside a PL/pgSQL DO body.
 *
 * PostgreSQL's PL/pgSQL parser (libpg-query `parsePlPgSQLSync`) only accepts a
 * `CREATE FUNCTION`, so the body is wrapped in one (returning void, like a DO
 * block) under a dollar-quote tag that does not occur in the body. Every SQL
 * expression and statement of the body is returned as a {@link PlpgsqlPiece};
 * dynamic SQL (`EXECUTE`, `FOR ... IN EXECUTE`, `OPEN ... FOR EXECUTE`,
 * `RETURN QUERY EXECUTE`) is returned as a `dynamic` piece holding the
 * expression that computes the command string.
 *
 * @module
 */
import { parsePlpgsqlFunction, type ParseNode } from './parser.js';

/** One piece of SQL found in a PL/pgSQL body. */
export interface PlpgsqlPiece {
  /**
   * `statement`: a full SQL statement (`DELETE ...`, `SELECT ...` with INTO removed);
   * `expression`: an expression (`x > 1`); `assignment`: `target := expression`;
   * `dynamic`: the expression computing an EXECUTEd command string.
   */
  readonly mode: 'statement' | 'expression' | 'assignment' | 'dynamic';
  readonly sql: string;
}

/** Result of {@link extractPlpgsql}. */
export type PlpgsqlExtraction =
  | { readonly ok: true; readonly pieces: readonly PlpgsqlPiece[]; readonly variables: ReadonlySet<string> }
  | { readonly ok: false; readonly error: string };

function isObj(v: unknown): v is ParseNode {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Picks a dollar-quote tag absent from `body`. */
export function dollarTag(body: string): string {
  for (let i = 0; ; i++) {
    const tag = `$warden_${i}$`;
    if (!body.includes(tag)) return tag;
  }
}

const DYNAMIC_KEYS = new Set(['dynquery']);

/**
 * Parses a DO body written in PL/pgSQL and lists the SQL it contains.
 *
 * @param body the DO block's code (the string after `DO`)
 */
export function extractPlpgsql(body: string): PlpgsqlExtraction {
  const tag = dollarTag(body);
  return extractPlpgsqlFunction(`CREATE FUNCTION pg_temp.warden_do() RETURNS void LANGUAGE plpgsql AS ${tag}${body}${tag}`);
}

/**
 * Parses a whole `CREATE [OR REPLACE] FUNCTION | PROCEDURE ... LANGUAGE plpgsql`
 * statement (its signature declares the parameters, and `RETURNS trigger` the
 * trigger variables) and lists the SQL of its body, like {@link extractPlpgsql}.
 */
export function extractPlpgsqlFunction(createSql: string): PlpgsqlExtraction {
  const res = parsePlpgsqlFunction(createSql);
  if (!res.ok) return { ok: false, error: res.failure.message };
  const pieces: PlpgsqlPiece[] = [];
  const variables = new Set<string>();

  const exprText = (v: unknown): string | undefined => {
    if (!isObj(v)) return undefined;
    const e = v['PLpgSQL_expr'];
    if (!isObj(e)) return undefined;
    return typeof e['query'] === 'string' ? e['query'] : '';
  };

  const visit = (node: unknown, dynamicContext: boolean): void => {
    if (Array.isArray(node)) {
      for (const x of node) visit(x, dynamicContext);
      return;
    }
    if (!isObj(node)) return;
    for (const [key, value] of Object.entries(node)) {
      if (key === 'PLpgSQL_expr' && isObj(value)) {
        const q = typeof value['query'] === 'string' ? value['query'] : '';
        const mode = typeof value['parseMode'] === 'number' ? value['parseMode'] : 0;
        if (dynamicContext) pieces.push({ mode: 'dynamic', sql: q });
        else if (mode === 0) pieces.push({ mode: 'statement', sql: q });
        else if (mode === 2) pieces.push({ mode: 'expression', sql: q });
        else if (mode >= 3) pieces.push({ mode: 'assignment', sql: q });
        // mode 1 (a type name) carries no SQL.
        continue;
      }
      if ((key === 'PLpgSQL_var' || key === 'PLpgSQL_rec') && isObj(value) && typeof value['refname'] === 'string') {
        variables.add(value['refname']);
      }
      if (key === 'PLpgSQL_row' && isObj(value) && Array.isArray(value['fields'])) {
        for (const f of value['fields']) if (isObj(f) && typeof f['name'] === 'string') variables.add(f['name']);
      }
      if (key === 'PLpgSQL_stmt_commit') pieces.push({ mode: 'statement', sql: 'COMMIT' });
      if (key === 'PLpgSQL_stmt_rollback') pieces.push({ mode: 'statement', sql: 'ROLLBACK' });
      if ((key === 'PLpgSQL_stmt_dynexecute' || key === 'PLpgSQL_stmt_dynfors') && isObj(value)) {
        // `query` is the command-string expression; params, body, etc. are ordinary.
        const q = exprText(value['query']);
        pieces.push({ mode: 'dynamic', sql: q ?? '' });
        for (const [k, v] of Object.entries(value)) if (k !== 'query') visit(v, false);
        continue;
      }
      if (DYNAMIC_KEYS.has(key)) {
        visit(value, true);
        continue;
      }
      visit(value, false);
    }
  };
  visit(res.fn, false);
  return { ok: true, pieces, variables };
}
