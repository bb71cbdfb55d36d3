/**
 * Which result columns are sensitive, by the table OID and attribute number a
 * RowDescription reports — PostgreSQL resolves those through aliases,
 * subqueries and CTEs to the base column.
 *
 * The map is read from one database's catalog: every user column whose
 * `schema.table.column` matches `sensitive.columns`. A view (or materialized
 * view) that depends on a sensitive column — directly or through other views —
 * has *all* its columns treated as sensitive (its column lineage is not known
 * here): a column with the same name as a sensitive column it uses gets that
 * type, the others the view's only sensitive type, or `text` when it has
 * several. Over-masking a view is the fail-closed choice.
 */
import type { RelationRef } from '../sql/types.js';
import { matchRelation, YES } from '../policy/patterns.js';
import type { CompiledSensitive } from '../policy/sensitive.js';
import { viewMaskedColumns } from './allowlist.js';
import { definitionReadsMasked } from './session-code.js';

export type Querier = (sql: string, params: unknown[]) => Promise<{ rows: Record<string, unknown>[] }>;

export interface SensitiveColumnMap {
  /** The sensitive type of a column; null: not sensitive; undefined: relation unknown to the map. */
  lookup(relid: number, attnum: number): string | null | undefined;
  /** Relations known, by `schema.table` (unquoted, lower-case as stored). */
  hasRelation(schema: string, table: string): boolean;
  /**
   * The columns (name → type) that carry masked values in the relations named `table` in
   * `schema` (`*`: in any schema): a table's sensitive columns; a view's columns that are, or
   * are computed from, masked columns according to its definition (every column when Warden
   * cannot follow it); undefined: none.
   */
  maskedColumns(schema: string, table: string): ReadonlyMap<string, string> | undefined;
  /** When it was read (ms since epoch). */
  readonly loadedAt: number;
  /** A view built (directly or through other views) over the column statistics (pg_statistic, pg_statistic_ext_data); `*`: any schema. */
  readsStatistics?(schema: string, table: string): boolean;
  /**
   * The columns of a relation in order, with the type a result column from it is masked as
   * (as `lookup` gives it: null when not sensitive) — COPY's fields; undefined: relation unknown.
   */
  columnsOf?(schema: string, table: string): readonly { readonly name: string; readonly type: string | null }[] | undefined;
}

const COLUMNS_SQL = `
SELECT c.oid::int8 AS relid, n.nspname AS schema, c.relname AS rel, c.relkind::text AS kind, a.attnum::int AS attnum, a.attname AS col
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'`;

/**
 * Inheritance and partitioning: a parent shows its children's rows and a child holds rows its
 * parent shows, under the same column names (an inherited column cannot be renamed alone).
 */
const INHERITS_SQL = 'SELECT inhrelid::int8 AS child, inhparent::int8 AS parent FROM pg_catalog.pg_inherits';

/** The definitions of views over sensitive columns (which of their columns carry masked values). */
const VIEW_DEFS_SQL = 'SELECT c.oid::int8 AS relid, pg_catalog.pg_get_viewdef(c.oid) AS def FROM pg_catalog.pg_class c WHERE c.oid = ANY($1::oid[])';

const VIEW_DEPS_SQL = `
SELECT DISTINCT r.ev_class::int8 AS viewid, d.refobjid::int8 AS relid, d.refobjsubid::int AS attnum
FROM pg_catalog.pg_depend d
JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass
  AND d.refclassid = 'pg_catalog.pg_class'::regclass
  AND d.refobjsubid > 0 AND d.refobjid <> r.ev_class`;

/**
 * Functions outside the system schemas that views call (their rewrite rules depend on them),
 * with the definitions of SQL and PL/pgSQL functions and procedures.
 */
const VIEW_FUNCTIONS_SQL = `
SELECT DISTINCT r.ev_class::int8 AS viewid, n.nspname AS schema, p.proname AS name,
  CASE WHEN l.lanname IN ('sql', 'plpgsql') AND p.prokind IN ('f', 'p') THEN pg_catalog.pg_get_functiondef(p.oid) END AS def
FROM pg_catalog.pg_depend d
JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
JOIN pg_catalog.pg_proc p ON p.oid = d.refobjid
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
JOIN pg_catalog.pg_language l ON l.oid = p.prolang
WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.refclassid = 'pg_catalog.pg_proc'::regclass
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')`;

/**
 * Views over the column statistics, through other views too (back-doors.ts refuses them for
 * masked identities). The catalog's own views (pg_stats, ...) start the walk: initdb records no
 * dependencies of theirs.
 */
const STATS_VIEWS_SQL = `
WITH RECURSIVE base(oid) AS (
  SELECT x FROM (VALUES (to_regclass('pg_catalog.pg_statistic')), (to_regclass('pg_catalog.pg_statistic_ext_data')),
    (to_regclass('pg_catalog.pg_stats')), (to_regclass('pg_catalog.pg_stats_ext')), (to_regclass('pg_catalog.pg_stats_ext_exprs'))) t(x)
  WHERE x IS NOT NULL
), v(oid) AS (
  SELECT DISTINCT r.ev_class FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
  WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass
    AND d.refobjid IN (SELECT oid FROM base) AND r.ev_class <> d.refobjid
  UNION
  SELECT r.ev_class FROM v JOIN pg_catalog.pg_depend d ON d.refobjid = v.oid
  JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
  WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass AND r.ev_class <> v.oid
)
SELECT n.nspname AS schema, c.relname AS rel FROM v JOIN pg_catalog.pg_class c ON c.oid = v.oid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace`;

function typeFor(sensitive: CompiledSensitive, schema: string, table: string, column: string): string | null {
  const ref: RelationRef = { name: `${schema}.${table}`, schema, table, qualified: true, candidates: [schema] };
  for (const e of sensitive.entries) {
    if (e.pattern.column?.test(column) && matchRelation(e.pattern, ref) === YES) return e.type;
  }
  return null;
}

/** Reads the map for one database. */
export async function loadSensitiveMap(q: Querier, sensitive: CompiledSensitive): Promise<SensitiveColumnMap> {
  const cols = (await q(COLUMNS_SQL, [])).rows;
  const byRel = new Map<number, { kind: string; schema: string; rel: string; columns: Map<number, { name: string; type: string | null }> }>();
  const names = new Set<string>();
  const relIds = new Map<string, number>();
  for (const r of cols) {
    const relid = Number(r.relid);
    const schema = String(r.schema);
    const rel = String(r.rel);
    names.add(`${schema}\u0000${rel}`);
    relIds.set(`${schema}\u0000${rel}`, relid);
    let e = byRel.get(relid);
    if (!e) {
      e = { kind: String(r.kind), schema, rel, columns: new Map() };
      byRel.set(relid, e);
    }
    const col = String(r.col);
    e.columns.set(Number(r.attnum), { name: col, type: sensitive.entries.length > 0 ? typeFor(sensitive, schema, rel, col) : null });
  }
  // A sensitive column is sensitive in every relation of its inheritance tree (parents and
  // children, partitions included): `SELECT ssn FROM customers_2024` reads rows of `customers`,
  // and a parent reads its children's. Propagated by name until nothing changes.
  if (sensitive.entries.length > 0) {
    const edges = (await q(INHERITS_SQL, [])).rows.map((r) => [Number(r.child), Number(r.parent)] as const);
    for (let round = 0; round < 64 && edges.length > 0; round++) {
      let changed = false;
      for (const [a, b] of edges) {
        for (const [from, to] of [
          [a, b],
          [b, a],
        ] as const) {
          const src = byRel.get(from);
          const dst = byRel.get(to);
          if (!src || !dst) continue;
          for (const c of src.columns.values()) {
            if (!c.type) continue;
            for (const d of dst.columns.values()) {
              if (d.name === c.name && d.type === null) {
                d.type = c.type;
                changed = true;
              }
            }
          }
        }
      }
      if (!changed) break;
    }
  }
  // Views that call functions reading masked columns (or whose bodies Warden cannot read):
  // every column masked, and not refined through the view's definition (a function's output
  // has no column to follow). Views of such views follow below.
  const callsCode = new Set<number>();
  if (sensitive.entries.length > 0) {
    const readers = new Map<string, string | null>();
    for (const r of (await q(VIEW_FUNCTIONS_SQL, [])).rows) {
      const key = `${String(r.schema)}.${String(r.name)}\u0000${typeof r.def === 'string' ? r.def : ''}`;
      if (!readers.has(key)) readers.set(key, definitionReadsMasked(typeof r.def === 'string' ? r.def : null, sensitive));
      if (readers.get(key) === null) continue;
      const v = byRel.get(Number(r.viewid));
      if (!v) continue;
      callsCode.add(Number(r.viewid));
      for (const c of v.columns.values()) c.type ??= 'text';
    }
  }
  // Views: propagate through dependencies until nothing changes (views of views).
  if (sensitive.entries.length > 0) {
    const deps = (await q(VIEW_DEPS_SQL, [])).rows.map((r) => ({ view: Number(r.viewid), rel: Number(r.relid), attnum: Number(r.attnum) }));
    for (let round = 0; round < 16; round++) {
      let changed = false;
      const used = new Map<number, Map<string, string>>(); // view → sensitive column name → type
      for (const d of deps) {
        const t = byRel.get(d.rel)?.columns.get(d.attnum);
        if (!t?.type) continue;
        let m = used.get(d.view);
        if (!m) used.set(d.view, (m = new Map()));
        m.set(t.name, t.type);
      }
      for (const [view, m] of used) {
        const v = byRel.get(view);
        if (!v) continue;
        const only = new Set(m.values());
        for (const c of v.columns.values()) {
          const t = m.get(c.name) ?? (only.size === 1 ? [...only][0]! : 'text');
          if (c.type === null) {
            c.type = t;
            changed = true;
          }
        }
      }
      if (!changed) break;
    }
  }
  // Masked columns by relation name, for the strict-mode allowlist (masking/allowlist.ts). A view's
  // output masking stays whole (above); which of its columns carry masked values — and so may not
  // be filtered, joined or computed on — comes from its definition, read here, followed lazily.
  interface Masked {
    readonly relid: number;
    cols: Map<string, string>;
    readonly names: string[];
    refined: boolean;
  }
  const masked = new Map<string, Map<string, Masked>>(); // table → schema → its masked columns
  const views: number[] = [];
  for (const [relid, e] of byRel) {
    const cols = new Map<string, string>();
    for (const c of e.columns.values()) if (c.type) cols.set(c.name, c.type);
    if (cols.size === 0) continue;
    let bySchema = masked.get(e.rel);
    if (!bySchema) masked.set(e.rel, (bySchema = new Map()));
    const isView = e.kind === 'v' || e.kind === 'm';
    if (isView) views.push(relid);
    const names = [...e.columns.entries()].sort((x, y) => x[0] - y[0]).map(([, c]) => c.name);
    bySchema.set(e.schema, { relid, cols, names, refined: !isView || callsCode.has(relid) });
  }
  const defs = new Map<number, string>();
  if (views.length > 0) {
    const rows = (await q(VIEW_DEFS_SQL, [views])).rows;
    for (const r of rows) if (typeof r.def === 'string') defs.set(Number(r.relid), r.def);
  }
  const inProgress = new Set<number>();
  const columnsOf = (v: Masked): Map<string, string> => {
    if (v.refined || inProgress.has(v.relid)) return v.cols;
    const def = defs.get(v.relid);
    inProgress.add(v.relid);
    try {
      if (def !== undefined) v.cols = new Map(viewMaskedColumns(def, v.names, v.cols, sensitive, (ref) => union(ref.candidates, ref.table)));
    } finally {
      inProgress.delete(v.relid);
    }
    v.refined = true;
    return v.cols;
  };
  const union = (schemas: readonly string[], table: string): Map<string, string> | undefined => {
    const bySchema = masked.get(table);
    if (!bySchema) return undefined;
    let out: Map<string, string> | undefined;
    for (const [schema, v] of bySchema) {
      if (!schemas.includes('*') && !schemas.includes(schema)) continue;
      out ??= new Map();
      for (const [c, t] of columnsOf(v)) if (!out.has(c)) out.set(c, t);
    }
    return out;
  };
  const statsViews = new Set<string>();
  const statsTables = new Set<string>();
  for (const r of (await q(STATS_VIEWS_SQL, [])).rows) {
    statsViews.add(`${String(r.schema)}\u0000${String(r.rel)}`);
    statsTables.add(String(r.rel));
  }
  return {
    loadedAt: Date.now(),
    columnsOf(schema, table) {
      let id = relIds.get(`${schema}\u0000${table}`);
      if (schema === '*') {
        // Any schema: only when one relation has that name.
        const ids = [...relIds].filter(([k]) => k.endsWith(`\u0000${table}`)).map(([, v]) => v);
        id = ids.length === 1 ? ids[0] : undefined;
      }
      const e = byRel.get(id ?? -1);
      return e ? [...e.columns.entries()].sort((a, b) => a[0] - b[0]).map(([, c]) => ({ name: c.name, type: c.type })) : undefined;
    },
    readsStatistics(schema, table) {
      return schema === '*' ? statsTables.has(table) : statsViews.has(`${schema}\u0000${table}`);
    },
    maskedColumns(schema, table) {
      return union([schema], table);
    },
    lookup(relid, attnum) {
      const e = byRel.get(relid);
      if (!e) return undefined;
      return e.columns.get(attnum)?.type ?? null;
    },
    hasRelation(schema, table) {
      return names.has(`${schema}\u0000${table}`);
    },
  };
}
