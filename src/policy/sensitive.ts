/**
 * Which sensitive types a statement touches, from `sensitive.columns`
 * (`schema.table.column` patterns → type).
 *
 * A column reference counts when its column name matches and one of the
 * relations it could belong to matches. It is `certain` when the match holds
 * whatever the catalog says, otherwise only possible (`*`, unqualified names
 * with several candidate schemas or tables): rules treat possible types as
 * present, fail-closed. An opaque statement possibly touches every configured
 * type. A column whose relation is unknown (`from` empty) counts for nothing:
 * the relation columns feeding a CTE or subquery are recorded where they are read.
 *
 * @module
 */
import type { Analysis, ColumnRef, StatementAnalysis } from '../sql/types.js';
import { columnPattern, matchRelation, MAYBE, NO, YES, type RelationPattern, type Tri } from './patterns.js';

/** Compiled `sensitive.columns`. */
export interface CompiledSensitive {
  readonly entries: readonly { readonly pattern: RelationPattern; readonly type: string }[];
  /** Every configured type. */
  readonly types: ReadonlySet<string>;
}

/** Compiles `sensitive.columns` (pattern → type). Throws PolicyError for a bad pattern. */
export function compileSensitive(columns: Readonly<Record<string, string>> | undefined): CompiledSensitive {
  const entries = Object.entries(columns ?? {}).map(([p, type]) => ({ pattern: columnPattern(p), type }));
  return { entries, types: new Set(entries.map((e) => e.type)) };
}

/** One sensitive column reference. */
export interface SensitiveHit {
  readonly type: string;
  readonly pattern: string;
  readonly column: ColumnRef;
  readonly certain: boolean;
}

/** How a column reference matches a column pattern (see module doc). */
export function matchColumn(p: RelationPattern, c: ColumnRef): Tri {
  const colGlob = p.column!;
  let colTri: Tri;
  if (c.column === '*') colTri = colGlob.any ? YES : MAYBE;
  else colTri = colGlob.test(c.column) ? YES : NO;
  if (colTri === NO || c.from.length === 0) return NO;
  let some = false;
  let all = true;
  for (const r of c.from) {
    const t = matchRelation(p, r);
    if (t !== NO) some = true;
    if (t !== YES) all = false;
  }
  if (!some) return NO;
  return (all ? colTri : MAYBE) as Tri;
}

/** The sensitive columns a statement references. */
export function sensitiveHits(stmt: StatementAnalysis, sensitive: CompiledSensitive): SensitiveHit[] {
  const hits: SensitiveHit[] = [];
  for (const c of stmt.columns) {
    for (const e of sensitive.entries) {
      const t = matchColumn(e.pattern, c);
      if (t !== NO) hits.push({ type: e.type, pattern: e.pattern.text, column: c, certain: t === YES });
    }
  }
  return hits;
}

/** Sensitive types of one statement: type → certain (true) or possible (false). */
export function sensitiveTypesOfStatement(stmt: StatementAnalysis, sensitive: CompiledSensitive): Map<string, boolean> {
  const out = new Map<string, boolean>();
  if (stmt.opaque) for (const t of sensitive.types) out.set(t, false);
  for (const h of sensitiveHits(stmt, sensitive)) out.set(h.type, (out.get(h.type) ?? false) || h.certain);
  return out;
}

/**
 * Every sensitive type an analysed query string could touch (certain or
 * possible), e.g. `{ 'email', 'ssn' }`. An unparsable string could touch any.
 *
 * @param sensitive `sensitive.columns` of the config, or its compiled form
 */
export function sensitiveTypesOf(
  analysis: Analysis | StatementAnalysis,
  sensitive: Readonly<Record<string, string>> | CompiledSensitive | undefined,
): Set<string> {
  const compiled = isCompiled(sensitive) ? sensitive : compileSensitive(sensitive);
  if ('ok' in analysis && !analysis.ok) return new Set(compiled.types);
  const stmts = 'ok' in analysis ? analysis.statements : [analysis];
  const out = new Set<string>();
  for (const s of stmts) for (const t of sensitiveTypesOfStatement(s, compiled).keys()) out.add(t);
  return out;
}

function isCompiled(s: unknown): s is CompiledSensitive {
  return typeof s === 'object' && s !== null && Array.isArray((s as { entries?: unknown }).entries) && (s as { types?: unknown }).types instanceof Set;
}
