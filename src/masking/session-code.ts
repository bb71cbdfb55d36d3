/**
 * Objects and code made in the session, for identities with masked columns (docs/masking.md,
 * "Objects and code").
 *
 * Masking recognises a masked value by the column it comes from (the table OID and attribute
 * number of a RowDescription, and views over masked columns through the catalog). Code and
 * objects hide that origin: a function's result, a rule's or trigger's rows, a view, a
 * materialized view or a table made from a query in a transaction that is still open (or in
 * `pg_temp`) are not in the catalog Warden reads, and a function's output has no column at all.
 * So, for a statement under a `mask` decision (strict or relaxed):
 *
 * 1. **Creating** a view, materialized view, table from a query (CREATE TABLE AS, SELECT INTO),
 *    function, procedure, rule, trigger or policy whose definition reads a masked column — or
 *    runs code that does (a trigger's function) — is refused, in any schema, naming the column
 *    and the object.
 * 2. **Running code** that reads a masked column (a function or procedure body, a trigger's
 *    function, a rule's actions, a DO block): refused in strict mode (the code's errors, row
 *    counts and side effects reveal the value even when its output is masked); in relaxed mode
 *    allowed when the statement writes nothing (outputs are then masked whole, computed), and
 *    refused when it writes (the value would be stored where it is no longer masked).
 * 3. **Code Warden cannot see** (an opaque statement: dynamic SQL, another language, a `pg_temp`
 *    function not seen created, a function not in the catalog, ...) is refused (fail closed),
 *    with the reasons, which name the `trusted_functions` entry that would vouch for a function.
 *
 * The columns code reads come from {@link StatementAnalysis.code} (added by sql/code.ts
 * `withCodeEffects`), from a DO block's own analysis, and from a definition's `body`.
 *
 * Pure.
 */
import type { AnalysisOk, ColumnRef, RelationRef, StatementAnalysis } from '../sql/types.js';
import { parseStatements, type ParseNode } from '../sql/parser.js';
import { obj } from '../sql/tree.js';
import { analyzeSql } from '../sql/analyze.js';
import { matchColumn } from '../policy/sensitive.js';
import type { CompiledSensitive } from '../policy/sensitive.js';
import { matchRelation, NO } from '../policy/patterns.js';
import type { RelationColumns } from './allowlist.js';

export type SessionCodeVerdict =
  | {
      readonly ok: true;
      /** Relaxed mode: code the statement runs reads masked columns; computed outputs must be masked whole. */
      readonly computedMasked: boolean;
    }
  | { readonly ok: false; readonly reason: string; readonly column: string; readonly object: string };

export interface SessionCodeOptions {
  /** Strict mode (the default of mask rules); false when every mask rule that applies says `strict: false`. */
  readonly strict: boolean;
  /** The database's name in the configuration (for `databases.<name>.trusted_functions`). */
  readonly database: string;
  /** Masked columns the catalog knows (views over sensitive columns). */
  readonly relationColumns?: RelationColumns;
}

interface MaskedRef {
  /** `customers.ssn (ssn)`. */
  readonly display: string;
}

const OK: SessionCodeVerdict = Object.freeze({ ok: true, computedMasked: false });

function names(n: unknown): string {
  const items = Array.isArray(n) ? n : [];
  return items
    .map((x) => obj(obj(x)?.String)?.sval)
    .filter((x): x is string => typeof x === 'string')
    .join('.');
}
function relName(n: unknown): string {
  const r = obj(n);
  if (!r) return '?';
  return [r.schemaname, r.relname].filter((x): x is string => typeof x === 'string' && x !== '').join('.');
}

/**
 * The object a statement creates, when it is one whose rows or results escape masking by
 * column: `the view v`, `the function pg_temp.f`, ...; null for any other statement.
 */
export function createdObject(text: string): string | null {
  const parsed = parseStatements(text);
  if (!parsed.ok || parsed.statements.length !== 1) return null;
  const [kind, body] = Object.entries(parsed.statements[0]!.stmt)[0] ?? [];
  const n = obj(body);
  if (!kind || !n) return null;
  switch (kind) {
    case 'ViewStmt':
      return `the view ${relName(n.view)}`;
    case 'CreateTableAsStmt': {
      const into = obj(n.into);
      const what = n.objtype === 'OBJECT_MATVIEW' ? 'materialized view' : 'table (CREATE TABLE AS)';
      return `the ${what} ${relName(into?.rel)}`;
    }
    case 'SelectStmt':
      return n.intoClause ? `the table ${relName(obj(n.intoClause)?.rel)} (SELECT INTO)` : null;
    case 'CreateFunctionStmt':
      return `the ${n.is_procedure ? 'procedure' : 'function'} ${names(n.funcname)}`;
    case 'RuleStmt':
      return `the rule ${String(n.rulename)} on ${relName(n.relation)}`;
    case 'CreateTrigStmt':
      return `the trigger ${String(n.trigname)} on ${relName(n.relation)}`;
    case 'CreatePolicyStmt':
    case 'AlterPolicyStmt':
      return `the policy ${String(n.policy_name)} on ${relName(n.table)}`;
    default:
      return null;
  }
}

class MaskedColumns {
  constructor(
    private readonly sensitive: CompiledSensitive,
    private readonly relationColumns: RelationColumns | undefined,
  ) {}

  /** Some column of the relation is (or may be) masked. */
  relationMasked(r: RelationRef): boolean {
    if (this.sensitive.entries.some((e) => matchRelation(e.pattern, r) !== NO)) return true;
    return (this.relationColumns?.(r)?.size ?? 0) > 0;
  }

  /** Some masked column of a relation (name, type) for messages. */
  private anyOf(r: RelationRef): [string, string] {
    const e = this.sensitive.entries.find((x) => matchRelation(x.pattern, r) !== NO);
    if (e) return [e.pattern.column?.text ?? '*', e.type];
    const first = this.relationColumns?.(r) ? [...this.relationColumns(r)!][0] : undefined;
    return first ?? ['*', 'text'];
  }

  /**
   * The first masked column the references read (assignments are not reads). A reference
   * whose relation is unknown counts when its name is a masked column's and `reads` holds a
   * relation with masked columns: fail closed.
   */
  read(cols: readonly ColumnRef[], reads: readonly RelationRef[]): MaskedRef | null {
    for (const c of cols) {
      if (c.usage === 'assignment' || c.from.length === 0) continue;
      const table = c.from[0]!.table;
      for (const e of this.sensitive.entries) {
        if (matchColumn(e.pattern, c) !== NO) return { display: `${table}.${c.column} (${e.type})` };
      }
      for (const r of c.from) {
        const m = this.relationColumns?.(r);
        if (!m || m.size === 0) continue;
        if (c.column === '*') {
          const [name, type] = [...m][0]!;
          return { display: `${r.table}.${name} (${type})` };
        }
        const type = m.get(c.column);
        if (type !== undefined) return { display: `${r.table}.${c.column} (${type})` };
      }
    }
    const masked = reads.filter((r) => this.relationMasked(r));
    if (masked.length === 0) return null;
    for (const c of cols) {
      if (c.usage === 'assignment' || c.from.length > 0) continue;
      // A row no relation in scope owns (`NEW.*`, whole-row `NEW` / `OLD` in a rule's actions or a
      // trigger's function): the row of the relation the code is on, which may be a masked one.
      if (c.column === '*' || c.column === 'new' || c.column === 'old') {
        const [name, type] = this.anyOf(masked[0]!);
        return { display: `${masked[0]!.table}.${name} (${type}), in a whole row of ${masked.map((r) => r.table).join(' or ')}` };
      }
      const e = this.sensitive.entries.find((x) => x.pattern.column?.test(c.column));
      if (e) return { display: `${c.column} (${e.type}), a column of ${masked.map((r) => r.table).join(' or ')}` };
      for (const r of masked) {
        const type = this.relationColumns?.(r)?.get(c.column);
        if (type !== undefined) return { display: `${r.table}.${c.column} (${type})` };
      }
    }
    return null;
  }
}

/**
 * What a function's definition (`pg_get_functiondef`) reads of the masked columns: the first
 * one's display (`customers.ssn (ssn)`), `unreadable` when Warden cannot see its body (no
 * definition: another language or an aggregate; unparsable; dynamic SQL), null when it reads
 * none. Unqualified names count in any schema (fail closed). Used for views that call
 * functions (masking/sensitive-catalog.ts). Functions it calls in turn are not followed.
 */
export function definitionReadsMasked(def: string | null, sensitive: CompiledSensitive): string | null {
  if (def === null) return 'unreadable';
  const a = analyzeSql(def, { searchPath: null });
  const body = a.ok && a.statements.length === 1 ? a.statements[0]!.body : undefined;
  if (!body || body.opaque) return 'unreadable';
  return new MaskedColumns(sensitive, undefined).read(body.columns, body.reads)?.display ?? null;
}

/** What a statement runs: its code runs, and a DO block itself. */
function runsOf(st: StatementAnalysis): { via: string; body: StatementAnalysis }[] {
  const runs = [...(st.code ?? [])];
  if (st.kind === 'do') runs.unshift({ via: 'the DO block', body: st });
  return runs;
}

function writes(b: StatementAnalysis): boolean {
  return b.writes.length > 0 || b.classes.has('write');
}

/**
 * Checks an analysed text (after the code it runs was added) for objects and code that would
 * carry masked values past masking; see the module comment.
 */
export function checkSessionCode(analysis: AnalysisOk, sensitive: CompiledSensitive, o: SessionCodeOptions): SessionCodeVerdict {
  if (sensitive.entries.length === 0) return OK;
  // Fast path (most statements): no code, no definitions, nothing opaque.
  if (!analysis.opaque && analysis.statements.every((st) => st.code === undefined && st.kind !== 'do' && !st.classes.has('ddl') && !st.classes.has('code'))) return OK;
  const masked = new MaskedColumns(sensitive, o.relationColumns);
  let computedMasked = false;
  for (const st of analysis.statements) {
    if (st.opaque) {
      const reasons = st.opaqueReasons.join('; ');
      return {
        ok: false,
        column: '',
        object: '',
        reason:
          `Warden cannot see everything the statement runs (${reasons}), so it cannot tell which masked columns it reads; ` +
          `for an identity with masked columns such a statement does not run (fail closed). ` +
          `An operator can vouch for a function or procedure with databases.${o.database}.trusted_functions (its body is then not judged); ` +
          `a DO block cannot be vouched for: write it without dynamic SQL, or run it as an identity without a mask rule`,
      };
    }
    const runs = runsOf(st);
    if (st.classes.has('ddl') || st.classes.has('code')) {
      const object = createdObject(st.text);
      if (object) {
        // The relation a rule, trigger or policy is on (among the statement's writes) is read
        // through NEW, OLD and unqualified names in its actions, function and expressions.
        const own = masked.read([...st.columns, ...(st.body?.columns ?? [])], [...st.reads, ...st.writes, ...(st.body?.reads ?? [])]);
        const run = own ? undefined : runs.map((r) => ({ r, m: masked.read(r.body.columns, [...r.body.reads, ...st.writes]) })).find((x) => x.m);
        const m = own ?? run?.m;
        if (m) {
          return {
            ok: false,
            column: m.display,
            object,
            reason:
              `creating ${object} would read the masked column ${m.display}${run ? ` (through ${run.r.via})` : ''}: ` +
              `an identity with masked columns may not create views, materialized views, tables from queries, functions, procedures, rules, triggers or policies that read them, ` +
              `because what they return or store is no longer masked by column; create it without the masked column, or ask an identity without a mask rule to create it`,
          };
        }
      }
    }
    for (const r of runs) {
      // Triggers and rules fired by a write read the written rows through NEW and OLD.
      const m = masked.read(r.body.columns, [...r.body.reads, ...st.writes]);
      if (!m) continue;
      if (o.strict) {
        return {
          ok: false,
          column: m.display,
          object: r.via,
          reason:
            `${r.via} reads the masked column ${m.display}, and Warden cannot mask what code computes from it: in strict mode a masked identity cannot run functions, procedures, triggers, rules or DO blocks that read masked columns ` +
            `(their results, errors and row counts would reveal the values); select the columns directly (they come back masked)`,
        };
      }
      if (writes(st) || writes(r.body)) {
        return {
          ok: false,
          column: m.display,
          object: r.via,
          reason: `${r.via} reads the masked column ${m.display} in a statement that writes, so the value could be stored where it is no longer masked`,
        };
      }
      computedMasked = true;
    }
  }
  return computedMasked ? { ok: true, computedMasked } : OK;
}
