/**
 * Strict masking as an allowlist (docs/masking.md, "What is refused").
 *
 * For an identity under a strict mask rule, the value of a masked column may
 * reach the client ONLY as an output cell that Warden masks. PostgreSQL
 * reports the base column (table OID + attribute number) of an output column
 * that is a plain column reference — also through aliases, derived tables and
 * CTEs — and Warden masks those cells. So the rule is:
 *
 *   A masked column may appear only as a bare column reference (`email`,
 *   `c.email`, `*`, `c.*`) in the select list of the statement's top-level
 *   query (also of a DECLARE ... CURSOR, PREPARE or EXPLAIN query), or in the
 *   select list of a derived table or CTE — whose output column then stays
 *   masked and is checked again wherever it is used (lineage). EXISTS ignores
 *   its subquery's select list. Every other use, at any depth, is refused.
 *
 * Refused uses: WHERE / HAVING / JOIN ... ON / USING / NATURAL JOIN, GROUP BY,
 * ORDER BY (also by alias, and by position when the select list outputs any
 * masked column), DISTINCT / DISTINCT ON, window definitions, LIMIT / OFFSET,
 * any expression (function and aggregate arguments, set-returning functions,
 * operators, comparisons, CASE, casts, JSON keys, array and row
 * constructors, field selection), a subquery's output used as a value
 * (scalar, IN, ANY, ARRAY), a correlated or LATERAL reference to an outer
 * query's masked column, a whole-row reference of a relation with masked
 * columns (`SELECT c FROM customers c`, `row_to_json(c)`), set operations
 * (UNION [ALL] / INTERSECT / EXCEPT), VALUES, RETURNING, INSERT ... SELECT /
 * UPDATE ... SET / MERGE / CREATE TABLE AS / SELECT INTO / CREATE VIEW (the
 * value would be stored where it is no longer masked), COPY ... TO.
 *
 * The verdict never depends on literal values (Warden shares verdicts between
 * texts that differ only in literals): an ORDER BY / GROUP BY / DISTINCT ON
 * position is refused whenever the query level outputs a masked column,
 * whatever the position.
 *
 * Which columns are masked: a base relation's column whose name and relation
 * match a `sensitive.columns` pattern (an unqualified relation name matches
 * when any schema it could resolve to matches), and the columns of relations
 * the catalog says are masked (views over sensitive columns), given by the
 * optional `relationColumns`. An unqualified column name counts as masked when
 * any relation in scope (this query level or an outer one) could hold a
 * masked column of that name: fail closed.
 *
 * Pure: works on libpg-query's parse tree of the analysed text.
 */
import type { AnalysisOk, RelationRef } from '../sql/types.js';
import { parseStatements, type ParseNode } from '../sql/parser.js';
import { nodes as list, obj, sval as str } from '../sql/tree.js';
import { matchRelation, NO } from '../policy/patterns.js';
import type { CompiledSensitive } from '../policy/sensitive.js';
import { TwoGenerationCache } from '../sql/lru.js';
import { RelationRefs } from './relation-refs.js';

export type AllowlistVerdict = { readonly ok: true } | { readonly ok: false; readonly reason: string; readonly column: string; readonly use: string };

/** Masked columns the catalog knows for a relation (views): column name → type; undefined when none/unknown. */
export type RelationColumns = (ref: RelationRef) => ReadonlyMap<string, string> | undefined;

interface Masked {
  readonly type: string;
  /** Display name of the masked base column, e.g. `customers.ssn`. */
  readonly display: string;
}

interface Source {
  /** Names a qualified reference may use: alias, or relation name. */
  readonly name: string;
  /** The masked column of that name (null: not masked, or not a column of this source). */
  column(name: string): Masked | null;
  /** Some column of this source is (or may be) masked. */
  anyMasked(): Masked | null;
}

interface Scope {
  readonly sources: Source[];
  readonly parent: Scope | null;
  readonly ctes: ReadonlyMap<string, () => Source>;
}

class Refusal {
  constructor(
    readonly column: string,
    readonly use: string,
  ) {}
}

type Mode =
  | 'client' // the statement's result: bare references are masked cells
  | 'derived' // derived table / CTE: bare references keep their lineage
  | 'exists' // EXISTS: the select list is not used
  | 'value' // a subquery used as a value
  | 'setop' // a branch of UNION / INTERSECT / EXCEPT
  | 'stored' // INSERT ... SELECT, CREATE TABLE AS, SELECT INTO, CREATE VIEW
  | 'copy'; // COPY (query) TO

const MODE_USE: Record<Mode, string> = {
  client: 'the select list',
  derived: 'the select list of a derived table or CTE',
  exists: 'an EXISTS subquery',
  value: 'the output of a subquery used as a value (scalar, IN, ANY, ARRAY)',
  setop: 'a set operation (UNION, INTERSECT or EXCEPT), which compares or merges rows',
  stored: 'a query whose rows are stored (INSERT ... SELECT, CREATE TABLE AS, SELECT INTO, CREATE VIEW), where they would no longer be masked',
  copy: 'COPY ... TO, whose output is not masked',
};

interface Output {
  readonly name: string | null;
  readonly masked: Masked | null;
}
interface QueryShape {
  readonly outputs: Output[];
  /** Sources whose columns a `*` passed through (names not listed in outputs resolve there). */
  readonly stars: Source[];
}

const CLEAN: Omit<Source, 'name'> = { column: () => null, anyMasked: () => null };


/**
 * Checks every statement of an analysed text against the allowlist.
 * `analysis.sql` is parsed again (libpg-query): call through {@link createAllowlist}'s cache.
 */
export function checkAllowlist(analysis: AnalysisOk, sensitive: CompiledSensitive, relationColumns?: RelationColumns): AllowlistVerdict {
  if (sensitive.entries.length === 0 && !relationColumns) return { ok: true };
  const parsed = parseStatements(analysis.sql);
  if (!parsed.ok) return { ok: false, reason: `the statement could not be parsed (${parsed.failure.message})`, column: '', use: 'parse' };
  const rels: RelationRef[] = [];
  for (const st of analysis.statements) rels.push(...st.reads, ...st.writes, ...(st.prepare?.statement.reads ?? []));
  const checker = new Checker(rels, sensitive, relationColumns);
  try {
    for (const st of parsed.statements) checker.statement(st.stmt, null);
  } catch (e) {
    if (e instanceof Refusal) {
      return {
        ok: false,
        column: e.column,
        use: e.use,
        reason: `the masked column ${e.column} is used in ${e.use}; in strict mode a masked column may reach the client only as a plain output column (SELECT email, c.email, c.*, * — also through derived tables and CTEs), which Warden masks`,
      };
    }
    throw e;
  }
  return { ok: true };
}

/** What the catalog says is masked, by relation name (SensitiveColumnMap.maskedColumns). */
export interface MaskedCatalog {
  maskedColumns(schema: string, table: string): ReadonlyMap<string, string> | undefined;
}

/** The masked columns the catalog gives for a reference (every schema it could resolve to). */
export function catalogColumns(catalog: MaskedCatalog): RelationColumns {
  return (ref) => {
    let out: Map<string, string> | undefined;
    for (const schema of ref.candidates) {
      const cols = catalog.maskedColumns(schema, ref.table);
      if (!cols) continue;
      if (!out) out = new Map();
      for (const [c, t] of cols) if (!out.has(c)) out.set(c, t);
    }
    return out;
  };
}

interface Caches {
  readonly byAnalysis: WeakMap<AnalysisOk, AllowlistVerdict>;
  readonly byText: TwoGenerationCache<string, AllowlistVerdict>;
}

/**
 * A cached checker: verdicts per analysis object and per text (a verdict does not depend on
 * literal values), kept per catalog object (a new catalog map starts new caches).
 */
export function createAllowlist(sensitive: CompiledSensitive, max = 2000): (analysis: AnalysisOk, catalog?: MaskedCatalog) => AllowlistVerdict {
  const none: Caches = { byAnalysis: new WeakMap(), byText: new TwoGenerationCache(max) };
  const perCatalog = new WeakMap<MaskedCatalog, Caches>();
  return (analysis, catalog) => {
    let caches = none;
    if (catalog) {
      caches = perCatalog.get(catalog) ?? { byAnalysis: new WeakMap(), byText: new TwoGenerationCache(max) };
      perCatalog.set(catalog, caches);
    }
    const hit = caches.byAnalysis.get(analysis);
    if (hit) return hit;
    const key = textKey(analysis);
    const cacheable = key.length <= 65536;
    const cached = cacheable ? caches.byText.get(key) : undefined;
    const v = cached ?? checkAllowlist(analysis, sensitive, catalog ? catalogColumns(catalog) : undefined);
    if (cacheable && !cached) caches.byText.set(key, v);
    caches.byAnalysis.set(analysis, v);
    return v;
  };
}

/**
 * Which columns of a view over sensitive columns carry masked values, from its definition
 * (`pg_get_viewdef`): a column that is a plain reference to a masked column, or an expression
 * over one. `columns` are the view's column names in order; `fallback` the types the catalog
 * gives every column (all masked). Anything Warden cannot follow (a set operation, a `*`, a
 * join or filter on masked columns inside the view, an unparsable text) keeps `fallback` whole.
 */
export function viewMaskedColumns(
  def: string,
  columns: readonly string[],
  fallback: ReadonlyMap<string, string>,
  sensitive: CompiledSensitive,
  relationColumns?: RelationColumns,
): ReadonlyMap<string, string> {
  const parsed = parseStatements(def);
  const sel = parsed.ok && parsed.statements.length === 1 ? obj(parsed.statements[0]!.stmt.SelectStmt) : undefined;
  if (!sel) return fallback;
  let outs: (Masked | null)[] | undefined;
  try {
    outs = new Checker([], sensitive, relationColumns).viewOutputs(sel);
  } catch (e) {
    if (e instanceof Refusal) return fallback;
    throw e;
  }
  if (!outs || outs.length !== columns.length) return fallback;
  const masked = new Map<string, string>();
  outs.forEach((m, i) => {
    const name = columns[i]!;
    if (m) masked.set(name, fallback.get(name) ?? (m.type || 'text'));
  });
  return masked;
}

function textKey(a: AnalysisOk): string {
  let k = a.sql;
  for (const r of [...a.reads, ...a.writes]) k += `\u0000${r.name}\u0001${r.candidates.join(',')}`;
  return k;
}

class Checker {
  readonly #rels: RelationRefs;

  constructor(
    rels: readonly RelationRef[],
    private readonly sensitive: CompiledSensitive,
    private readonly relationColumns: RelationColumns | undefined,
  ) {
    this.#rels = new RelationRefs(rels);
  }

  /**
   * The masked output columns of a view's SELECT (by position), or undefined when its
   * shape is not a plain SELECT Warden can follow (the caller then masks every column).
   */
  viewOutputs(sel: ParseNode): (Masked | null)[] | undefined {
    if ((typeof sel.op === 'string' && sel.op !== 'SETOP_NONE') || sel.valuesLists) return undefined;
    const ctes = this.withClause(obj(sel.withClause), null);
    const scope: Scope = { sources: [], parent: null, ctes };
    for (const f of list(sel.fromClause)) this.fromItem(f, scope, scope.sources);
    const out: (Masked | null)[] = [];
    for (const t of list(sel.targetList)) {
      const rt = obj(t.ResTarget);
      if (!rt) return undefined;
      const ref = obj(obj(rt.val)?.ColumnRef);
      if (ref) {
        const fields = list(ref.fields);
        if (obj(fields[fields.length - 1])?.A_Star !== undefined) return undefined;
        out.push(this.resolve(ref, scope)?.masked ?? null);
        continue;
      }
      try {
        this.use(rt.val, scope, 'a view column');
        out.push(null);
      } catch (e) {
        if (!(e instanceof Refusal)) throw e;
        out.push({ type: '', display: e.column });
      }
    }
    return out;
  }

  // ------------------------------------------------------------------ statements

  statement(node: ParseNode, scope: Scope | null): void {
    const [kind, body] = Object.entries(node)[0] ?? [];
    const n = obj(body);
    if (!kind || !n) return;
    switch (kind) {
      case 'SelectStmt':
        this.query(n, scope, n.intoClause ? 'stored' : 'client');
        return;
      case 'DeclareCursorStmt':
      case 'PrepareStmt':
      case 'ExplainStmt':
        if (obj(n.query)) this.statement(obj(n.query)!, scope);
        return;
      case 'CreateTableAsStmt':
        if (obj(n.query)) this.nested(obj(n.query)!, scope, 'stored');
        return;
      case 'ViewStmt':
        if (obj(n.query)) this.nested(obj(n.query)!, scope, 'stored');
        return;
      case 'CopyStmt':
        this.copy(n, scope);
        return;
      case 'InsertStmt':
      case 'UpdateStmt':
      case 'DeleteStmt':
      case 'MergeStmt':
        this.dml(kind, n, scope);
        return;
      default:
        // Other statements carry no query Warden evaluates here (their effect is judged elsewhere).
        return;
    }
  }

  /** A statement in a query position (a CTE, CREATE TABLE AS): a SELECT is checked in `mode`. */
  private nested(node: ParseNode, scope: Scope | null, mode: Mode): QueryShape {
    const sel = obj(node.SelectStmt);
    if (sel) return this.query(sel, scope, mode);
    const [kind, body] = Object.entries(node)[0] ?? [];
    if (kind && obj(body)) this.dml(kind, obj(body)!, scope);
    return { outputs: [], stars: [] };
  }

  private copy(n: ParseNode, scope: Scope | null): void {
    if (obj(n.query)) {
      this.nested(obj(n.query)!, scope, 'copy');
      return;
    }
    const rel = obj(n.relation);
    if (!rel) return;
    const src = this.baseSource(rel);
    const s: Scope = { sources: [src], parent: scope, ctes: new Map() };
    if (n.is_from !== true) {
      const cols = list(n.attlist).map(str).filter((x): x is string => x !== undefined);
      const m = cols.length > 0 ? cols.map((c) => src.column(c)).find((x) => x) : src.anyMasked();
      if (m) throw new Refusal(describe(m), MODE_USE.copy);
    }
    if (n.whereClause) this.use(n.whereClause, s, 'the WHERE of COPY');
  }

  private dml(kind: string, n: ParseNode, outer: Scope | null): void {
    const ctes = this.withClause(obj(n.withClause), outer);
    const scope: Scope = { sources: [], parent: outer, ctes };
    const target = obj(n.relation);
    if (target) scope.sources.push(this.baseSource(target));
    if (kind === 'InsertStmt') {
      const sel = obj(n.selectStmt);
      // The rows of INSERT ... SELECT / VALUES are stored: no masked value may be among them.
      if (sel) this.nested(sel, { sources: [], parent: outer, ctes }, 'stored');
      const oc = obj(n.onConflictClause);
      if (oc) {
        const s: Scope = { sources: [...scope.sources, { name: 'excluded', ...CLEAN }], parent: outer, ctes };
        for (const t of list(oc.targetList)) this.use(obj(t.ResTarget)?.val, s, 'ON CONFLICT DO UPDATE SET');
        if (oc.whereClause) this.use(oc.whereClause, s, 'the WHERE of ON CONFLICT DO UPDATE');
        const infer = obj(oc.infer);
        if (infer?.whereClause) this.use(infer.whereClause, s, 'the WHERE of ON CONFLICT');
      }
    } else if (kind === 'UpdateStmt') {
      for (const f of list(n.fromClause)) this.fromItem(f, scope, scope.sources);
      for (const t of list(n.targetList)) this.use(obj(t.ResTarget)?.val, scope, 'UPDATE ... SET (the value would be stored unmasked)');
      if (n.whereClause) this.use(n.whereClause, scope, 'WHERE');
    } else if (kind === 'DeleteStmt') {
      for (const f of list(n.usingClause)) this.fromItem(f, scope, scope.sources);
      if (n.whereClause) this.use(n.whereClause, scope, 'WHERE');
    } else if (kind === 'MergeStmt') {
      const src = obj(n.sourceRelation);
      if (src) this.fromItem(src, scope, scope.sources);
      if (n.joinCondition) this.use(n.joinCondition, scope, 'MERGE ... ON');
      for (const w of list(n.mergeWhenClauses)) this.use(w, scope, 'a MERGE WHEN clause');
    }
    // RETURNING (PostgreSQL 18: returningClause, with old/new naming the target's row before and after).
    const returning = obj(n.returningClause);
    if (target && returning) scope.sources.push(renamed(scope.sources[0]!, 'old', []), renamed(scope.sources[0]!, 'new', []));
    for (const r of list(n.returningList ?? returning?.exprs)) {
      const v = obj(r.ResTarget)?.val;
      const ref = obj(obj(v)?.ColumnRef);
      if (ref) {
        const m = this.resolve(ref, scope);
        if (m) throw new Refusal(describe(m.masked), 'RETURNING, which masking does not cover');
      } else this.use(v, scope, 'RETURNING');
    }
  }

  private withClause(w: ParseNode | undefined, outer: Scope | null): Map<string, () => Source> {
    const ctes = new Map<string, () => Source>(outer?.ctes ?? []);
    if (!w) return ctes;
    const recursive = w.recursive === true;
    for (const c of list(w.ctes)) {
      const cte = obj(c.CommonTableExpr);
      if (!cte || typeof cte.ctename !== 'string') continue;
      const name = cte.ctename;
      const aliases = list(cte.aliascolnames).map(str);
      if (recursive) {
        // While its own query is checked, a recursive CTE's columns are clean: every value that
        // enters it passes through its (checked) select lists.
        ctes.set(name, () => ({ name, ...CLEAN }));
      }
      const q = obj(cte.ctequery);
      const shape = q ? this.nested(q, { sources: [], parent: outer, ctes: new Map(ctes) }, 'derived') : { outputs: [], stars: [] };
      ctes.set(name, () => derivedSource(name, shape, aliases));
    }
    return ctes;
  }

  // ------------------------------------------------------------------ queries

  query(sel: ParseNode, outer: Scope | null, mode: Mode): QueryShape {
    const ctes = this.withClause(obj(sel.withClause), outer);
    const scope: Scope = { sources: [], parent: outer, ctes };
    if (typeof sel.op === 'string' && sel.op !== 'SETOP_NONE') {
      const l = this.query(obj(obj(sel.larg)?.SelectStmt ?? sel.larg) ?? {}, scope, 'setop');
      this.query(obj(obj(sel.rarg)?.SelectStmt ?? sel.rarg) ?? {}, scope, 'setop');
      const outputs = l.outputs.map((o) => ({ name: o.name, masked: null }));
      // ORDER BY / LIMIT of a set operation see its (clean) output columns.
      const s: Scope = { sources: [{ name: '', column: () => null, anyMasked: () => null }], parent: scope, ctes };
      this.tail(sel, s, outputs);
      return { outputs, stars: [] };
    }
    if (sel.valuesLists) {
      for (const row of list(sel.valuesLists)) this.use(row, scope, 'VALUES');
      const first = list(obj(list(sel.valuesLists)[0]?.List)?.items);
      return { outputs: first.map((_, i) => ({ name: `column${i + 1}`, masked: null })), stars: [] };
    }
    for (const f of list(sel.fromClause)) this.fromItem(f, scope, scope.sources);
    // The select list.
    const outputs: Output[] = [];
    const stars: Source[] = [];
    for (const t of list(sel.targetList)) {
      const rt = obj(t.ResTarget);
      if (!rt) continue;
      const ref = obj(obj(rt.val)?.ColumnRef);
      if (ref) {
        const fields = list(ref.fields);
        const last = fields[fields.length - 1];
        const isStar = last !== undefined && obj(last)?.A_Star !== undefined;
        const r = this.resolve(ref, scope);
        if (r) {
          if (mode === 'exists') continue;
          if ((mode === 'client' || mode === 'derived') && r.distance === 0 && !r.wholeRow) {
            // A bare masked column: masked on the way out (client) or carried as lineage (derived).
          } else if (r.wholeRow) {
            throw new Refusal(describe(r.masked), `${MODE_USE[mode]} as a whole-row reference (its composite value is not a masked column)`);
          } else if (r.distance > 0) {
            throw new Refusal(describe(r.masked), `${MODE_USE[mode]} as a reference to an outer query's column (correlated or LATERAL)`);
          } else {
            throw new Refusal(describe(r.masked), MODE_USE[mode]);
          }
        }
        if (isStar) {
          const q = fields.length > 1 ? str(fields[fields.length - 2]) : undefined;
          stars.push(...(q === undefined ? scope.sources : scope.sources.filter((s) => s.name === q)));
          continue;
        }
        outputs.push({ name: typeof rt.name === 'string' ? rt.name : (str(last) ?? null), masked: r && !r.wholeRow && r.distance === 0 ? r.masked : null });
        continue;
      }
      this.use(rt.val, scope, mode === 'client' ? 'an expression in the select list (only a plain column is masked)' : `an expression in ${MODE_USE[mode]}`);
      outputs.push({ name: typeof rt.name === 'string' ? rt.name : null, masked: null });
    }
    const anyOut = outputs.find((o) => o.masked)?.masked ?? stars.map((s) => s.anyMasked()).find((m) => m) ?? null;
    if (sel.whereClause) this.use(sel.whereClause, scope, 'WHERE');
    for (const g of list(sel.groupClause)) this.orderItem(g, scope, outputs, anyOut, 'GROUP BY');
    if (sel.havingClause) this.use(sel.havingClause, scope, 'HAVING');
    for (const w of list(sel.windowClause)) this.use(w, scope, 'a window definition (WINDOW)');
    const distinct = list(sel.distinctClause);
    if (Array.isArray(sel.distinctClause)) {
      const exprs = distinct.filter((d) => Object.keys(d).length > 0);
      if (exprs.length === 0 && anyOut) throw new Refusal(describe(anyOut), 'DISTINCT, which compares the rows');
      for (const d of exprs) this.orderItem(d, scope, outputs, anyOut, 'DISTINCT ON');
    }
    this.tail(sel, scope, outputs, anyOut);
    return { outputs, stars };
  }

  /** ORDER BY, LIMIT, OFFSET. */
  private tail(sel: ParseNode, scope: Scope, outputs: readonly Output[], anyOut: Masked | null = null): void {
    for (const s of list(sel.sortClause)) {
      const sb = obj(s.SortBy);
      this.orderItem(sb?.node ?? s, scope, outputs, anyOut, 'ORDER BY');
    }
    if (sel.limitCount) this.use(sel.limitCount, scope, 'LIMIT');
    if (sel.limitOffset) this.use(sel.limitOffset, scope, 'OFFSET');
  }

  /** An ORDER BY / GROUP BY / DISTINCT ON item: a position, an output name, or an expression. */
  private orderItem(item: unknown, scope: Scope, outputs: readonly Output[], anyOut: Masked | null, clause: string): void {
    const n = obj(item);
    if (!n) return;
    const c = obj(n.A_Const);
    if (c && (c.ival !== undefined || c.fval !== undefined)) {
      // By position. Refused whenever this level outputs a masked column, whatever the position:
      // the verdict must not depend on literal values.
      if (anyOut) throw new Refusal(describe(anyOut), `${clause} by position (the select list outputs a masked column)`);
      return;
    }
    const ref = obj(n.ColumnRef);
    const fields = list(ref?.fields);
    if (ref && fields.length === 1) {
      const name = str(fields[0]);
      const out = name !== undefined ? outputs.find((o) => o.name === name && o.masked) : undefined;
      if (out?.masked) throw new Refusal(describe(out.masked), `${clause} (by the output name ${name})`);
    }
    this.use(n, scope, clause);
  }

  // ------------------------------------------------------------------ FROM

  private fromItem(item: ParseNode, scope: Scope, into: Source[]): void {
    const [kind, body] = Object.entries(item)[0] ?? [];
    const n = obj(body);
    if (!kind || !n) return;
    switch (kind) {
      case 'RangeVar': {
        const alias = obj(n.alias);
        const cte = !n.schemaname && typeof n.relname === 'string' ? scope.ctes.get(n.relname) : undefined;
        if (cte) {
          const src = cte();
          const aliases = list(alias?.colnames).map(str);
          into.push(typeof alias?.aliasname === 'string' || aliases.length > 0 ? renamed(src, (alias?.aliasname as string | undefined) ?? src.name, aliases) : src);
        } else into.push(this.baseSource(n));
        return;
      }
      case 'RangeSubselect': {
        const alias = obj(n.alias);
        const sub = obj(n.subquery);
        const lateral = n.lateral === true;
        const shape = sub ? this.nested(sub, lateral ? { sources: [...into], parent: scope.parent, ctes: scope.ctes } : { sources: [], parent: scope.parent, ctes: scope.ctes }, 'derived') : { outputs: [], stars: [] };
        // A LATERAL subquery's references to the preceding items are one level up: they are uses.
        into.push(derivedSource(typeof alias?.aliasname === 'string' ? alias.aliasname : '', shape, list(alias?.colnames).map(str)));
        return;
      }
      case 'RangeFunction': {
        // Functions in FROM see the preceding items (implicitly LATERAL): every argument is a use.
        this.use(n.functions, { sources: [...into], parent: scope.parent, ctes: scope.ctes }, 'the arguments of a function in FROM');
        const alias = obj(n.alias);
        into.push({ name: typeof alias?.aliasname === 'string' ? alias.aliasname : '', ...CLEAN });
        return;
      }
      case 'RangeTableSample': {
        const rel = obj(n.relation);
        if (rel) this.fromItem(rel, scope, into);
        this.use(n.args, scope, 'TABLESAMPLE');
        this.use(n.repeatable, scope, 'TABLESAMPLE');
        return;
      }
      case 'JoinExpr': {
        const local: Source[] = [...into];
        const before = local.length;
        if (obj(n.larg)) this.fromItem(obj(n.larg)!, scope, local);
        const mid = local.length;
        if (obj(n.rarg)) this.fromItem(obj(n.rarg)!, scope, local);
        const left = local.slice(before, mid);
        const right = local.slice(mid);
        const joinScope: Scope = { sources: local, parent: scope.parent, ctes: scope.ctes };
        if (n.isNatural === true) {
          const m = [...left, ...right].map((s) => s.anyMasked()).find((x) => x);
          if (m) throw new Refusal(describe(m), 'NATURAL JOIN (its join columns are not named, and one side has masked columns)');
        }
        for (const u of list(n.usingClause)) {
          const name = str(u);
          if (name === undefined) continue;
          const m = [...left, ...right].map((s) => s.column(name)).find((x) => x);
          if (m) throw new Refusal(describe(m), 'JOIN ... USING, which compares it');
        }
        if (n.quals) this.use(n.quals, joinScope, 'JOIN ... ON');
        const alias = obj(n.alias);
        if (typeof alias?.aliasname === 'string') {
          // (a JOIN b) AS j: j's columns are both sides' (renamed by position: fail closed).
          into.push(derivedSource(alias.aliasname, { outputs: [], stars: [...left, ...right] }, list(alias.colnames).map(str)));
        } else into.push(...left, ...right);
        return;
      }
      default:
        // XMLTABLE, JSON_TABLE, ROWS FROM...: every expression in it is a use; its columns are clean.
        this.use(n, { sources: [...into], parent: scope.parent, ctes: scope.ctes }, `a ${kind} in FROM`);
        into.push({ name: typeof obj(n.alias)?.aliasname === 'string' ? (obj(n.alias)!.aliasname as string) : '', ...CLEAN });
        return;
    }
  }

  private baseSource(rv: ParseNode): Source {
    const relname = typeof rv.relname === 'string' ? rv.relname : '';
    const schema = typeof rv.schemaname === 'string' ? rv.schemaname : undefined;
    const alias = obj(rv.alias);
    const ref = this.relationRef(schema, relname);
    const display = ref.qualified ? ref.name : ref.table;
    const views = this.relationColumns?.(ref);
    const aliases = list(alias?.colnames).map(str);
    const columnOf = (name: string): Masked | null => {
      for (const e of this.sensitive.entries) {
        if (e.pattern.column?.test(name) && matchRelation(e.pattern, ref) !== NO) return { type: e.type, display: `${display}.${name}` };
      }
      const v = views?.get(name);
      return v ? { type: v, display: `${display}.${name}` } : null;
    };
    let any: Masked | null | undefined;
    const src: Source = {
      name: typeof alias?.aliasname === 'string' ? alias.aliasname : relname,
      column: columnOf,
      anyMasked: () => {
        if (any !== undefined) return any;
        any = null;
        for (const e of this.sensitive.entries) {
          if (matchRelation(e.pattern, ref) !== NO) return (any = { type: e.type, display: `${display}.${e.pattern.column?.text ?? '*'}` });
        }
        if (views && views.size > 0) {
          const [c, t] = [...views][0]!;
          any = { type: t, display: `${display}.${c}` };
        }
        return any;
      },
    };
    // Column aliases rename columns by position, which are not known here: every alias may be masked.
    if (aliases.length > 0) {
      const m = (): Masked | null => src.anyMasked();
      return { name: src.name, column: (c) => (aliases.includes(c) ? m() : columnOf(c)), anyMasked: src.anyMasked };
    }
    return src;
  }

  private relationRef(schema: string | undefined, table: string): RelationRef {
    return this.#rels.of(schema, table);
  }

  // ------------------------------------------------------------------ expressions

  /** Resolves a column reference in scope: the masked column it may be, or null. */
  private resolve(ref: ParseNode, scope: Scope): { masked: Masked; distance: number; wholeRow: boolean } | null {
    const fields = list(ref.fields);
    const last = fields[fields.length - 1];
    const star = last !== undefined && obj(last)?.A_Star !== undefined;
    const names = fields.map(str);
    if (fields.length === 1) {
      if (star) {
        const m = scope.sources.map((s) => s.anyMasked()).find((x) => x);
        return m ? { masked: m, distance: 0, wholeRow: false } : null;
      }
      const name = names[0];
      if (name === undefined) return null;
      let d = 0;
      for (let s: Scope | null = scope; s; s = s.parent, d++) {
        for (const src of s.sources) {
          const m = src.column(name);
          if (m) return { masked: m, distance: d, wholeRow: false };
        }
        // A name that is a relation's alias is a whole-row reference (when no column has that name).
        for (const src of s.sources) {
          if (src.name === name) {
            const m = src.anyMasked();
            if (m) return { masked: m, distance: d, wholeRow: true };
          }
        }
      }
      return null;
    }
    // rel.col, schema.rel.col, db.schema.rel.col (or composite.field).
    const col = star ? '*' : names[names.length - 1];
    const rel = names[names.length - 2];
    if (col === undefined || rel === undefined) return null;
    let d = 0;
    for (let s: Scope | null = scope; s; s = s.parent, d++) {
      const src = s.sources.find((x) => x.name === rel);
      if (src) {
        const m = col === '*' ? src.anyMasked() : src.column(col);
        return m ? { masked: m, distance: d, wholeRow: false } : null;
      }
    }
    // Not a relation in scope: `col.field` of a composite column.
    const head = names[0];
    if (head === undefined) return null;
    const r = this.resolve({ fields: [fields[0]] }, scope);
    return r ? { ...r, wholeRow: true } : null;
  }

  /** Every column reference inside `node` is a use in `clause`. */
  use(node: unknown, scope: Scope, clause: string, expr?: string): void {
    if (node === null || typeof node !== 'object') return;
    if (Array.isArray(node)) {
      for (const x of node) this.use(x, scope, clause, expr);
      return;
    }
    for (const [k, v] of Object.entries(node as ParseNode)) {
      const n = obj(v);
      switch (k) {
        case 'ColumnRef': {
          if (!n) break;
          const r = this.resolve(n, scope);
          if (r) throw new Refusal(describe(r.masked), `${clause}${expr ? ` (${expr})` : ''}${r.wholeRow ? ' as a whole-row reference' : ''}`);
          break;
        }
        case 'SubLink': {
          if (!n) break;
          const type = typeof n.subLinkType === 'string' ? n.subLinkType : '';
          if (n.testexpr) this.use(n.testexpr, scope, clause, 'a comparison with a subquery');
          const sub = obj(n.subselect);
          if (sub) this.nested(sub, scope, type === 'EXISTS_SUBLINK' ? 'exists' : 'value');
          break;
        }
        case 'SelectStmt':
          if (n) this.query(n, scope, 'value');
          break;
        case 'FuncCall': {
          if (!n) break;
          const name = list(n.funcname).map(str).filter(Boolean).join('.');
          this.use(n.args, scope, clause, `an argument of ${name}()`);
          this.use(n.agg_order, scope, clause, `the ORDER BY of ${name}()`);
          this.use(n.agg_filter, scope, clause, `the FILTER of ${name}()`);
          this.use(n.over, scope, clause, `the window of ${name}()`);
          break;
        }
        case 'A_Expr': {
          const op = list(n?.name).map(str).filter(Boolean).join(' ');
          this.use(v, scope, clause, `the operator ${op || String(n?.kind ?? '')}`);
          break;
        }
        case 'CaseExpr':
          this.use(v, scope, clause, 'CASE');
          break;
        case 'TypeCast':
          this.use(v, scope, clause, 'a cast');
          break;
        case 'A_Indirection':
          this.use(v, scope, clause, 'a field or subscript');
          break;
        case 'WindowDef':
          this.use(v, scope, clause, 'a window definition');
          break;
        default:
          if (k.startsWith('Json')) this.use(v, scope, clause, 'a JSON constructor');
          else this.use(v, scope, clause, expr);
      }
    }
  }
}

function describe(m: Masked): string {
  return `${m.display} (${m.type})`;
}

/** A derived table's or CTE's columns, with their lineage; `aliases` rename by position. */
function derivedSource(name: string, shape: QueryShape, aliases: readonly (string | undefined)[]): Source {
  const byName = new Map<string, Masked | null>();
  const positional = shape.stars.length === 0;
  shape.outputs.forEach((o, i) => {
    const n = (positional ? aliases[i] : undefined) ?? o.name;
    if (n !== null && n !== undefined && !byName.get(n)) byName.set(n, o.masked);
  });
  const anyStar = (): Masked | null => shape.stars.map((s) => s.anyMasked()).find((x) => x) ?? null;
  const anyOut = (): Masked | null => shape.outputs.find((o) => o.masked)?.masked ?? null;
  return {
    name,
    column(c) {
      // With a `*` in the select list, positions (and so aliases) are unknown: fail closed.
      if (!positional && aliases.includes(c)) return anyOut() ?? anyStar();
      if (byName.has(c)) return byName.get(c) ?? null;
      for (const s of shape.stars) {
        const m = s.column(c);
        if (m) return m;
      }
      return null;
    },
    anyMasked: () => anyOut() ?? anyStar(),
  };
}

function renamed(src: Source, name: string, aliases: readonly (string | undefined)[]): Source {
  if (aliases.length === 0) return { name, column: (c) => src.column(c), anyMasked: () => src.anyMasked() };
  // Renamed by position: fail closed, an alias may be any masked column.
  return { name, column: (c) => (aliases.includes(c) ? src.anyMasked() : src.column(c)), anyMasked: () => src.anyMasked() };
}
