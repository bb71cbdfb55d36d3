/**
 * Where masking cannot follow a sensitive column (strict mode): a statement
 * that uses a masked column other than by returning it is refused, because the
 * result would reveal something about the real value even with every output
 * masked — a comparison with a literal or parameter (`WHERE ssn = $1`,
 * `email LIKE 'a%'`), an ordering, a grouping, a window's partition or order,
 * RETURNING, an argument of a function in FROM, COPY ... TO.
 *
 * Allowed: returning the column (masked on the way out), computing from it in
 * the select list (the computed output is masked as a whole), assigning to it,
 * and a join condition between masked columns only (it reveals equality, as the
 * deterministic fakes do).
 *
 * A reference whose relation is unknown (a column of a CTE or subquery) counts
 * as sensitive when its name matches a sensitive column pattern's column part
 * and the statement reads sensitive columns somewhere: fail-closed.
 *
 * Pure.
 */
import type { AnalysisOk, ColumnRef, ColumnUsage, StatementAnalysis } from '../sql/types.js';
import { matchColumn, type CompiledSensitive } from '../policy/sensitive.js';
import { NO } from '../policy/patterns.js';

export type LeakCheck =
  | {
      readonly ok: true;
      /** Some sensitive value is returned or computed into the output (or may be: opaque). */
      readonly sensitiveOutput: boolean;
      /** Sensitive types involved (certain or possible). */
      readonly types: readonly string[];
    }
  | { readonly ok: false; readonly reason: string };

const CLAUSE_WORDS: Partial<Record<ColumnUsage, string>> = {
  predicate: 'is compared or filtered on (WHERE, HAVING, ON, a condition, LIMIT)',
  order: 'orders the result (ORDER BY, or a window ORDER BY)',
  group: 'groups the result (GROUP BY, DISTINCT ON, or a window PARTITION BY)',
  returning: 'is returned by RETURNING, which masking does not cover',
  'function-arg': 'is passed to a function in FROM',
};

function typeOfRef(c: ColumnRef, sensitive: CompiledSensitive, nameOnly: boolean): string | null {
  for (const e of sensitive.entries) {
    if (c.from.length > 0) {
      if (matchColumn(e.pattern, c) !== NO) return e.type;
    } else if (nameOnly && c.column !== '*' && e.pattern.column?.test(c.column)) {
      return e.type;
    }
  }
  return null;
}

function describeRef(c: ColumnRef): string {
  const only = c.from.length === 1 ? c.from[0]! : undefined;
  if (only && !only.qualified) return `${only.table}.${c.column}`;
  return c.relation ? `${c.relation}.${c.column}` : c.column;
}

/** Checks one analysed query string for uses of sensitive columns that masking cannot cover. */
export function checkMaskable(analysis: AnalysisOk, sensitive: CompiledSensitive): LeakCheck {
  const types = new Set<string>();
  let sensitiveOutput = false;
  for (const st of analysis.statements) {
    const r = checkStatement(st, sensitive, types);
    if (!r.ok) return r;
    sensitiveOutput ||= r.output;
  }
  return { ok: true, sensitiveOutput, types: [...types].sort() };
}

function checkStatement(st: StatementAnalysis, sensitive: CompiledSensitive, types: Set<string>): { ok: true; output: boolean } | { ok: false; reason: string } {
  if (st.opaque) {
    for (const t of sensitive.types) types.add(t);
    if (st.kind === 'copy' && !st.classes.has('write')) {
      return { ok: false, reason: 'COPY ... TO of a statement Warden cannot see into could carry sensitive values, and COPY output is not masked' };
    }
    return { ok: true, output: sensitive.types.size > 0 };
  }
  // First pass: references to known sensitive relations' columns.
  const hits = new Map<ColumnRef, string>();
  for (const c of st.columns) {
    const t = typeOfRef(c, sensitive, false);
    if (t !== null) hits.set(c, t);
  }
  // Second pass: names only, when the statement reads sensitive data at all.
  if (hits.size > 0) {
    for (const c of st.columns) {
      if (c.from.length > 0 || hits.has(c)) continue;
      const t = typeOfRef(c, sensitive, true);
      if (t !== null) hits.set(c, t);
    }
  }
  if (hits.size === 0) return { ok: true, output: false };
  for (const t of hits.values()) types.add(t);

  if (st.kind === 'copy') {
    const first = [...hits.keys()][0]!;
    if (!st.classes.has('write')) return { ok: false, reason: `COPY ... TO would copy the sensitive column ${describeRef(first)} (${hits.get(first)}) unmasked; select it with a query instead` };
  }
  const joinRefs = st.columns.filter((c) => c.clause === 'join');
  // Equality between masked columns is what deterministic fakes reveal anyway; a join
  // condition that compares a masked column with a constant, a parameter or a column
  // that is not masked: refused.
  const joinAllSensitive = !st.joinConstant && joinRefs.every((c) => hits.has(c));
  let output = false;
  for (const [c, type] of hits) {
    switch (c.clause) {
      case 'projection':
        output = true;
        break;
      case 'assignment':
        break;
      case 'join':
        if (!joinAllSensitive) {
          return { ok: false, reason: `the sensitive column ${describeRef(c)} (${type}) is joined with a column that is not masked, which would reveal its values` };
        }
        break;
      default:
        return { ok: false, reason: `the sensitive column ${describeRef(c)} (${type}) ${CLAUSE_WORDS[c.clause] ?? `is used as ${c.clause}`}: masking cannot cover that, so the statement would reveal the real values` };
    }
  }
  return { ok: true, output };
}
