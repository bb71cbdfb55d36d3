/**
 * What a statement runs besides its own text: the bodies of the user functions
 * and procedures it calls, and the triggers and rules of the tables it writes,
 * read from the upstream's catalog and analysed with the statement analyser
 * (src/sql/code.ts), recursively to a bounded depth. The result is the
 * statement's analysis with those effects added ("writes pay.ledger via
 * pay.refund()"), or made opaque with a reason that names the code Warden could
 * not see and how an operator can vouch for it (`trusted_functions`).
 *
 * Cost. A statement that calls no function outside `pg_catalog.` and writes no
 * table is returned as it is, with no lookup. Otherwise a per-database index
 * answers synchronously once loaded, in three parts read together when missing:
 * built-in function names (read once), functions outside
 * pg_catalog/information_schema, and tables with enabled triggers, rules or
 * expressions calling user functions. Function definitions and their analyses
 * are cached, and so is each analysis' enriched form. DDL through Warden drops
 * the table part, or everything when it may touch routines (a new catalog
 * version; see statement-policy.ts); everything is dropped at the latest
 * `CODE_CACHE_TTL_MS` after the routines were read, for changes made around
 * Warden.
 *
 * Fail closed: a name not in the catalog (e.g. a function created in a
 * transaction that is still open, which Warden's catalog connection cannot
 * see), a `pg_temp` function, a body in a language Warden cannot read, dynamic
 * SQL, a nesting deeper than {@link MAX_CODE_DEPTH}, or a catalog that cannot be
 * read makes the statement opaque.
 *
 * @module
 */
import type { DatabaseConfig } from '../config/types.js';
import type { Logger } from '../log/logger.js';
import { analyzeSql, parseSearchPath, quoteIdent, type Analysis, type AnalysisOk, type AnalyzeContext, type StatementAnalysis } from '../sql/index.js';
import { READABLE_LANGUAGES, withCodeEffects, type CodeEffect } from '../sql/code.js';
import { parseStatements, type ParseNode } from '../sql/parser.js';

/** Calls followed into function bodies at most this deep. */
export const MAX_CODE_DEPTH = 8;
/** Cached catalog facts are read again at the latest after this long (ms). */
export const CODE_CACHE_TTL_MS = 30_000;

/**
 * A function or procedure the session defined through Warden whose definition the catalog
 * connection may not see yet (created in the open transaction, or in `pg_temp`): its body as
 * analysed when it was created.
 */
export interface LocalRoutine {
  /** The schema the CREATE named; null when unqualified (any schema of the path). */
  readonly schema: string | null;
  readonly name: string;
  readonly body: StatementAnalysis;
}

/** The session's {@link LocalRoutine}s by bare name. */
export type LocalRoutines = ReadonlyMap<string, readonly LocalRoutine[]>;

/** The routine a statement defines (CREATE FUNCTION / PROCEDURE), as a {@link LocalRoutine}. */
export function localRoutineOf(s: StatementAnalysis): LocalRoutine | undefined {
  if (s.defines === undefined || !s.body) return undefined;
  const { schema, bare } = splitName(s.defines);
  return { schema: schema ?? null, name: bare, body: s.body };
}

/** What a change can have made stale: every routine and table fact, or only the tables' triggers, rules and expressions. */
export type InvalidationScope = 'all' | 'tables';

/** Runs a (multi-statement, simple-protocol) catalog query on the database's internal connection. */
export type CatalogQueryFn = (db: DatabaseConfig, sql: string) => Promise<unknown>;

export interface CodeCatalog {
  /**
   * The analysis with the effects of the code it runs; the same object when it
   * runs none; a Promise when the catalog must be read first.
   */
  resolve(db: DatabaseConfig, analysis: Analysis, ctx: AnalyzeContext, local?: LocalRoutines): Analysis | Promise<Analysis>;
  /**
   * Drops what is cached for a database (a new catalog version): everything, or (`tables`)
   * only the triggers, rules and table expressions, for DDL that cannot change routines.
   */
  invalidate(database: string, scope?: InvalidationScope): void;
  /** The database's catalog version: changes whenever its cached facts are dropped. */
  version(database: string): number;
  /** Catalog queries sent since start. */
  readonly stats: { queries: number };
}

interface FnDef {
  readonly schema: string;
  readonly name: string;
  readonly oid: string;
  readonly language: string;
  /** prokind: f function, p procedure, a aggregate, w window. */
  readonly kind: string;
  readonly definer: boolean;
  readonly config: readonly string[];
  /** pg_get_functiondef() for SQL and PL/pgSQL functions and procedures. */
  readonly def: string | null;
  readonly args: string;
}

interface TableCode {
  /**
   * A trigger, a rule, an expression of the table that calls a user function when a row is
   * written, or a foreign key of another table that references it (`cascade`).
   */
  readonly kind: 'trigger' | 'rule' | 'default' | 'constraint' | 'policy' | 'index' | 'cascade' | 'view' | 'inherits';
  readonly name: string;
  readonly relation: string;
  /** The trigger's function. */
  readonly fn?: { readonly schema: string; readonly name: string };
  /** The rule's actions, or why they cannot be read. */
  readonly rule?: StatementAnalysis | string;
  /** For `cascade`: the referencing table and what a DELETE, an UPDATE or a TRUNCATE of the referenced one does to it. */
  readonly cascade?: Cascade;
  /**
   * For `view`: a relation an updatable view writes when it is written (PostgreSQL writes through
   * it); for `inherits`: an inheritance parent or child (partitions too), whose rows a write changes.
   */
  readonly view?: ViewWrite;
  /** For `inherits`: `child` when the relation written is the parent (TRUNCATE empties the child too). */
  readonly side?: 'child' | 'parent';
}

/** A write through an updatable view is a write of the relations under it; analyses made on first use. */
class ViewWrite {
  private made?: { insert?: StatementAnalysis; update?: StatementAnalysis; delete?: StatementAnalysis; truncate?: StatementAnalysis };
  /** @param base the relation under the view, quoted */
  constructor(readonly base: string) {}
  on(event: 'insert' | 'update' | 'delete' | 'truncate'): StatementAnalysis | undefined {
    if (!this.made) {
      const as = (sql: string): StatementAnalysis | undefined => {
        const a = analyzeSql(sql, { searchPath: ['pg_catalog'] });
        return a.ok ? a.statements[0] : undefined;
      };
      // The columns written are the view's, renamed: recorded as `*` (any column), fail-closed.
      const update = as(`UPDATE ${this.base} SET "*" = NULL`);
      this.made = {
        insert: as(`INSERT INTO ${this.base} DEFAULT VALUES`),
        update: update && Object.freeze({ ...update, columns: Object.freeze(update.columns.map((c) => Object.freeze({ ...c, column: '*' }))) }),
        delete: as(`DELETE FROM ${this.base}`),
        truncate: as(`TRUNCATE ${this.base}`),
      };
    }
    return this.made[event];
  }
}

/** A foreign key's effect on the referencing table; its analyses are made on first use (a schema may have thousands of keys). */
class Cascade {
  private made?: { delete?: StatementAnalysis; update?: StatementAnalysis; truncate?: StatementAnalysis };
  /**
   * @param child the referencing table, quoted
   * @param actions confdeltype and confupdtype: c cascade, n set null, d set default, a/r none
   */
  constructor(
    private readonly child: string,
    private readonly actions: string,
  ) {}
  /** What `event` (`delete`, `update`, `truncate`) of the referenced table does to the referencing one. */
  on(event: 'delete' | 'update' | 'truncate'): StatementAnalysis | undefined {
    if (!this.made) {
      const as = (sql: string): StatementAnalysis | undefined => {
        const a = analyzeSql(sql, { searchPath: ['pg_catalog'] });
        return a.ok ? a.statements[0] : undefined;
      };
      const sets = (x: string | undefined) => x === 'c' || x === 'n' || x === 'd';
      // SET NULL / SET DEFAULT assign the key columns: recorded as `*` (any column), fail-closed.
      const set = sets(this.actions[0]) || sets(this.actions[1]) ? as(`UPDATE ${this.child} SET "*" = NULL`) : undefined;
      const update = set && Object.freeze({ ...set, columns: Object.freeze(set.columns.map((c) => Object.freeze({ ...c, column: '*' }))) });
      const onDelete = this.actions[0] === 'c' ? as(`DELETE FROM ${this.child}`) : sets(this.actions[0]) ? update : undefined;
      this.made = {
        ...(onDelete ? { delete: onDelete } : {}),
        ...(sets(this.actions[1]) && update ? { update } : {}),
        ...((): { truncate?: StatementAnalysis } => {
          const t = as(`TRUNCATE ${this.child}`);
          return t ? { truncate: t } : {};
        })(),
      };
    }
    return this.made[event];
  }
}

interface Routines {
  /** `schema\0name` of functions every overload of which belongs to an installed extension: treated as built-ins. */
  readonly extension: ReadonlySet<string>;
  /** Function name → schemas (other than pg_catalog, information_schema and temporary ones) that have one. */
  readonly user: ReadonlyMap<string, readonly string[]>;
}

interface Tables {
  /** `schema\0table` → its enabled triggers and rules. */
  readonly tables: ReadonlyMap<string, readonly TableCode[]>;
  /** `table` → the same, for names whose schema is unknown. */
  readonly tablesByName: ReadonlyMap<string, readonly TableCode[]>;
}

interface Index extends Routines, Tables {
  /** Function names in pg_catalog / information_schema. */
  readonly builtin: ReadonlySet<string>;
}

interface DbState {
  readonly version: number;
  routines?: Routines;
  /** When `routines` was read (ms since the epoch): the TTL counts from the oldest part. */
  routinesAt?: number;
  tables?: Tables;
  loading?: Promise<void>;
  readonly fns: Map<string, readonly FnDef[]>;
  readonly fnLoading: Map<string, Promise<void>>;
  /** `oid\0search_path` → the body's effect, or why it cannot be seen. */
  readonly bodies: Map<string, StatementAnalysis | string>;
  readonly enriched: WeakMap<Analysis, { readonly pathKey: string; readonly result: Analysis }>;
  timer?: NodeJS.Timeout;
}

const BUILTIN_SCHEMAS = new Set(['pg_catalog', 'information_schema']);

const NO_LOCAL: LocalRoutines = new Map();

/** `local` plus one routine (a newer definition of the same schema and name replaces the older). */
export function withLocal(local: LocalRoutines, r: LocalRoutine): LocalRoutines {
  const next = new Map(local);
  next.set(r.name, [...(local.get(r.name) ?? []).filter((x) => x.schema !== r.schema), r]);
  return next;
}

function isTempSchema(s: string): boolean {
  return s === 'pg_temp' || s.startsWith('pg_temp_');
}

/** A DML statement: fires triggers and rules of the tables it writes. */
function firesTriggers(s: StatementAnalysis): boolean {
  if (s.writes.length === 0) return false;
  const c = s.classes;
  return c.has('insert') || c.has('update') || c.has('delete') || c.has('merge') || c.has('truncate') || (c.has('copy') && c.has('write'));
}

/** A RangeVar's name as SQL: `"schema"."rel"`, or `"rel"` when unqualified. */
function quotedRelation(rv: ParseNode): string {
  const rel = quoteIdent(String(rv.relname));
  return typeof rv.schemaname === 'string' && rv.schemaname !== '' ? `${quoteIdent(rv.schemaname)}.${rel}` : rel;
}

const VIEW_BASES = new Map<string, string | null>();

/**
 * The relation a view this statement creates would write when written (`CREATE [OR REPLACE]
 * [TEMP] VIEW v AS SELECT ... FROM t`), quoted as written: a view PostgreSQL can update on its
 * own has one relation in FROM and no WITH, DISTINCT, GROUP BY, HAVING, LIMIT, OFFSET or set
 * operation (aggregates are not told apart: counted, fail-closed). Null for anything else.
 */
export function updatableViewBase(s: StatementAnalysis): string | null {
  if (s.kind !== 'create' || !s.classes.has('code') || !/\bview\b/i.test(s.text)) return null;
  let hit = VIEW_BASES.get(s.text);
  if (hit !== undefined) return hit;
  hit = null;
  const parsed = parseStatements(s.text);
  const view = parsed.ok && parsed.statements.length === 1 ? (parsed.statements[0]!.stmt.ViewStmt as ParseNode | undefined) : undefined;
  const sel = view && typeof view.query === 'object' && view.query !== null ? ((view.query as ParseNode).SelectStmt as ParseNode | undefined) : undefined;
  const from = Array.isArray(sel?.fromClause) ? (sel!.fromClause as ParseNode[]) : [];
  const rv = from.length === 1 ? (from[0]!.RangeVar as ParseNode | undefined) : undefined;
  const simple =
    sel &&
    (sel.op === undefined || sel.op === 'SETOP_NONE') &&
    !sel.withClause && !sel.distinctClause && !sel.groupClause && !sel.havingClause && !sel.limitCount && !sel.limitOffset && !sel.valuesLists;
  if (simple && rv && typeof rv.relname === 'string') {
    hit = quotedRelation(rv);
  }
  if (VIEW_BASES.size > 1000) VIEW_BASES.clear();
  VIEW_BASES.set(s.text, hit);
  return hit;
}

const LINKS = new Map<string, readonly string[]>();

/**
 * The relations whose rows an inheritance or partition bond this statement makes or breaks
 * ties together (`ALTER TABLE c INHERIT p`, `NO INHERIT`, `ATTACH` / `DETACH PARTITION`,
 * `CREATE TABLE c (...) INHERITS (p)`, `CREATE TABLE c PARTITION OF p`), quoted as written:
 * afterwards a write of one changes the other's rows.
 */
export function inheritanceLinks(s: StatementAnalysis): readonly string[] {
  if ((s.kind !== 'alter' && s.kind !== 'create') || !/\b(inherit|inherits|partition)\b/i.test(s.text)) return [];
  let hit = LINKS.get(s.text);
  if (hit) return hit;
  const out: string[] = [];
  const name = (rv: unknown): void => {
    const r = rv !== null && typeof rv === 'object' ? (((rv as ParseNode).RangeVar as ParseNode | undefined) ?? (rv as ParseNode)) : undefined;
    if (!r || typeof r.relname !== 'string') return;
    out.push(quotedRelation(r));
  };
  const parsed = parseStatements(s.text);
  for (const st of parsed.ok ? parsed.statements : []) {
    const alter = st.stmt.AlterTableStmt as ParseNode | undefined;
    const create = st.stmt.CreateStmt as ParseNode | undefined;
    if (alter) {
      for (const c of Array.isArray(alter.cmds) ? (alter.cmds as ParseNode[]) : []) {
        const cmd = c.AlterTableCmd as ParseNode | undefined;
        const sub = String(cmd?.subtype ?? '');
        if (sub === 'AT_AddInherit' || sub === 'AT_DropInherit') {
          name(alter.relation);
          name(cmd!.def);
        } else if (sub === 'AT_AttachPartition' || sub === 'AT_DetachPartition' || sub === 'AT_DetachPartitionFinalize') {
          name(alter.relation);
          name(((cmd!.def as ParseNode | undefined)?.PartitionCmd as ParseNode | undefined)?.name);
        }
      }
    } else if (create && Array.isArray(create.inhRelations)) {
      for (const p of create.inhRelations as ParseNode[]) name(p);
    }
  }
  hit = [...new Set(out)];
  if (LINKS.size > 1000) LINKS.clear();
  LINKS.set(s.text, hit);
  return hit;
}

const RENAMED = new Map<string, readonly string[]>();
const RENAMED_RELATIONS = new Set(['OBJECT_TABLE', 'OBJECT_VIEW', 'OBJECT_MATVIEW', 'OBJECT_FOREIGN_TABLE', 'OBJECT_COLUMN']);

/**
 * The relations a statement renames or moves (`ALTER TABLE t RENAME [COLUMN c] TO ...`, `ALTER
 * TABLE t SET SCHEMA s`, `ALTER SCHEMA s RENAME TO ...` as `"s"."*"`), quoted as written:
 * rules name relations and columns, so afterwards their rows are written under a name no rule
 * may name.
 */
export function renamedRelations(s: StatementAnalysis): readonly string[] {
  if (s.kind !== 'alter' || !/\b(rename|schema)\b/i.test(s.text)) return [];
  let hit = RENAMED.get(s.text);
  if (hit) return hit;
  const out: string[] = [];
  const parsed = parseStatements(s.text);
  for (const st of parsed.ok ? parsed.statements : []) {
    const n = (st.stmt.RenameStmt ?? st.stmt.AlterObjectSchemaStmt) as ParseNode | undefined;
    if (!n) continue;
    const type = String(n.renameType ?? n.objectType ?? '');
    const rv = n.relation as ParseNode | undefined;
    if (type === 'OBJECT_SCHEMA' && typeof n.subname === 'string') out.push(`${quoteIdent(n.subname)}."*"`);
    else if (RENAMED_RELATIONS.has(type) && rv && typeof rv.relname === 'string') {
      out.push(quotedRelation(rv));
    }
  }
  hit = [...new Set(out)];
  if (RENAMED.size > 1000) RENAMED.clear();
  RENAMED.set(s.text, hit);
  return hit;
}

const REWRITES = new Set(['AT_AlterColumnType', 'AT_DropColumn', 'AT_SetExpression']);
const REWRITTEN = new Map<string, readonly string[]>();

/**
 * The tables an ALTER TABLE changes the stored values of, quoted as written: `ALTER COLUMN ...
 * TYPE` (every value converted, or computed by `USING`), `DROP COLUMN` (its values gone), `SET
 * EXPRESSION` (a generated column recomputed), `ADD COLUMN` with a default, a generated
 * expression or an identity (a value set in every row).
 */
export function rewrittenRelations(s: StatementAnalysis): readonly string[] {
  if (s.kind !== 'alter' || !/\b(type|drop|expression|default|generated|identity|serial|bigserial|smallserial)\b/i.test(s.text)) return [];
  let hit = REWRITTEN.get(s.text);
  if (hit) return hit;
  const out: string[] = [];
  const parsed = parseStatements(s.text);
  for (const st of parsed.ok ? parsed.statements : []) {
    const alter = st.stmt.AlterTableStmt as ParseNode | undefined;
    const rv = alter?.relation as ParseNode | undefined;
    if (!alter || alter.objtype !== 'OBJECT_TABLE' || !rv || typeof rv.relname !== 'string') continue;
    const rewrites = (Array.isArray(alter.cmds) ? (alter.cmds as ParseNode[]) : []).some((c) => {
      const cmd = c.AlterTableCmd as ParseNode | undefined;
      const sub = String(cmd?.subtype ?? '');
      if (REWRITES.has(sub)) return true;
      if (sub !== 'AT_AddColumn') return false;
      const def = (cmd?.def as ParseNode | undefined)?.ColumnDef as ParseNode | undefined;
      const type = JSON.stringify(def?.typeName ?? '').toLowerCase();
      const cons = Array.isArray(def?.constraints) ? (def!.constraints as ParseNode[]) : [];
      return /serial/.test(type) || cons.some((x) => ['CONSTR_DEFAULT', 'CONSTR_GENERATED', 'CONSTR_IDENTITY'].includes(String((x.Constraint as ParseNode | undefined)?.contype)));
    });
    if (rewrites) out.push(quotedRelation(rv));
  }
  hit = [...new Set(out)];
  if (REWRITTEN.size > 1000) REWRITTEN.clear();
  REWRITTEN.set(s.text, hit);
  return hit;
}

/**
 * Relations a statement makes a new way to write, or rewrites: the table under a view it
 * creates, the relations an inheritance bond ties, a relation it renames or moves, a table whose
 * stored values an ALTER TABLE changes.
 */
/** A DO block or a definition whose code runs DDL (judged fail-closed: see effectsOf). */
const NO_PATHS: readonly string[] = Object.freeze([]);

function ddlInCode(s: StatementAnalysis): boolean {
  const code = s.kind === 'do' ? s : s.body;
  return code !== undefined && code.classes.has('ddl');
}

function writePaths(s: StatementAnalysis): readonly string[] {
  // Only CREATE (a view, a child or partition) and ALTER (renames, bonds, rewrites) make such paths:
  // the per-statement check costs nothing for the rest.
  if (s.kind !== 'alter' && s.kind !== 'create') return NO_PATHS;
  const v = updatableViewBase(s);
  const l = [...inheritanceLinks(s), ...renamedRelations(s), ...rewrittenRelations(s)];
  return v === null ? l : [v, ...l];
}

function callsUserCode(s: StatementAnalysis): boolean {
  for (const f of s.functions) if (!f.startsWith('pg_catalog.') && !f.startsWith('information_schema.')) return true;
  return false;
}

/** Whether any statement may run code: calls a function not qualified with pg_catalog, or writes rows. */
export function mayRunCode(a: Analysis): boolean {
  if (!a.ok) return false;
  for (const s of a.statements) if (callsUserCode(s) || firesTriggers(s) || writePaths(s).length > 0 || ddlInCode(s)) return true;
  return false;
}

function splitName(name: string): { schema?: string; bare: string } {
  const i = name.lastIndexOf('.');
  if (i < 0) return { bare: name };
  const head = name.slice(0, i);
  const j = head.lastIndexOf('.');
  return { schema: j < 0 ? head : head.slice(j + 1), bare: name.slice(i + 1) };
}

/** A `trusted_functions` pattern (`util.*`, `pay.refund`, `*.slugify`) as a matcher of `schema.name`. */
export function trustedMatcher(patterns: readonly string[] | undefined): (schema: string, name: string) => boolean {
  if (!patterns || patterns.length === 0) return () => false;
  const res = patterns.map((p) => {
    const esc = p.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^.]*');
    return new RegExp(`^${esc}$`);
  });
  return (schema, name) => {
    const full = `${schema}.${name}`;
    return res.some((r) => r.test(full));
  };
}

function sqlLiteral(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

/** The SELECT results of a multi-statement simple query, in order. */
function selects(res: unknown): Record<string, unknown>[][] {
  const list = Array.isArray(res) ? res : [res];
  const out: Record<string, unknown>[][] = [];
  for (const r of list as { command?: string; rows?: Record<string, unknown>[] }[]) {
    if (r && r.command === 'SELECT') out.push(r.rows ?? []);
  }
  return out;
}

// Every query first sets search_path to pg_catalog for its implicit transaction,
// so pg_get_functiondef / pg_get_ruledef qualify every name they print.
const PIN_PATH = "SELECT pg_catalog.set_config('search_path', 'pg_catalog', true);";

/**
 * Built-in function names. Read once per database and kept: a function added to
 * pg_catalog later is unknown to Warden (calls of it are opaque, fail-closed),
 * and one removed cannot be called.
 */
const BUILTIN_SQL = `SELECT DISTINCT p.proname AS name FROM pg_catalog.pg_proc p
 WHERE p.pronamespace IN ('pg_catalog'::pg_catalog.regnamespace, 'information_schema'::pg_catalog.regnamespace);`;

/** Functions outside the built-in schemas. */
const ROUTINES_SQL = `SELECT p.proname AS name, n.nspname AS schema,
       pg_catalog.bool_and(EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                                    WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                                      AND d.objid = p.oid AND d.deptype = 'e')) AS extension
  FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname NOT LIKE 'pg\\_temp\\_%' AND n.nspname NOT LIKE 'pg\\_toast%'
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
 GROUP BY 1, 2;`;

/** Triggers, rules, and the user functions tables' defaults, constraints, index expressions and policies call. */
const TABLES_SQL = `SELECT n.nspname AS schema, c.relname AS rel, 'trigger' AS what, t.tgname AS name,
       fn.nspname AS fschema, f.proname AS fname, NULL::text AS def
  FROM pg_catalog.pg_trigger t
  JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_proc f ON f.oid = t.tgfoid JOIN pg_catalog.pg_namespace fn ON fn.oid = f.pronamespace
 WHERE NOT t.tgisinternal AND t.tgenabled <> 'D'
UNION ALL
SELECT n.nspname, c.relname, 'rule', r.rulename, NULL, NULL, pg_catalog.pg_get_ruledef(r.oid)
  FROM pg_catalog.pg_rewrite r
  JOIN pg_catalog.pg_class c ON c.oid = r.ev_class JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE r.rulename <> '_RETURN' AND r.ev_enabled <> 'D'
UNION ALL
SELECT n.nspname, c.relname,
       CASE d.classid WHEN 'pg_catalog.pg_attrdef'::pg_catalog.regclass THEN 'default'
                      WHEN 'pg_catalog.pg_constraint'::pg_catalog.regclass THEN 'constraint'
                      WHEN 'pg_catalog.pg_policy'::pg_catalog.regclass THEN 'policy' ELSE 'index' END,
       NULL, fn.nspname, f.proname, NULL
  FROM pg_catalog.pg_depend d
  JOIN pg_catalog.pg_proc f ON f.oid = d.refobjid JOIN pg_catalog.pg_namespace fn ON fn.oid = f.pronamespace
  JOIN pg_catalog.pg_class c ON c.oid = CASE d.classid
         WHEN 'pg_catalog.pg_attrdef'::pg_catalog.regclass THEN (SELECT a.adrelid FROM pg_catalog.pg_attrdef a WHERE a.oid = d.objid)
         WHEN 'pg_catalog.pg_constraint'::pg_catalog.regclass THEN (SELECT k.conrelid FROM pg_catalog.pg_constraint k WHERE k.oid = d.objid)
         WHEN 'pg_catalog.pg_policy'::pg_catalog.regclass THEN (SELECT p.polrelid FROM pg_catalog.pg_policy p WHERE p.oid = d.objid)
         ELSE (SELECT i.indrelid FROM pg_catalog.pg_index i WHERE i.indexrelid = d.objid) END
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass
   AND d.classid IN ('pg_catalog.pg_attrdef'::pg_catalog.regclass, 'pg_catalog.pg_constraint'::pg_catalog.regclass,
                     'pg_catalog.pg_policy'::pg_catalog.regclass, 'pg_catalog.pg_class'::pg_catalog.regclass)
   AND fn.nspname NOT IN ('pg_catalog', 'information_schema')
UNION ALL
SELECT DISTINCT vn.nspname, v.relname, 'view', v.relname, bn.nspname, b.relname, NULL
  FROM pg_catalog.pg_rewrite r
  JOIN pg_catalog.pg_class v ON v.oid = r.ev_class JOIN pg_catalog.pg_namespace vn ON vn.oid = v.relnamespace
  JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = r.oid
   AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid <> r.ev_class
  JOIN pg_catalog.pg_class b ON b.oid = d.refobjid JOIN pg_catalog.pg_namespace bn ON bn.oid = b.relnamespace
 WHERE r.rulename = '_RETURN' AND v.relkind = 'v' AND b.relkind IN ('r', 'p', 'v', 'f')
   AND pg_catalog.pg_relation_is_updatable(v.oid, false) <> 0
UNION ALL
SELECT pn.nspname, p.relname, 'inherits', 'child', cn.nspname, c.relname, NULL
  FROM pg_catalog.pg_inherits i
  JOIN pg_catalog.pg_class p ON p.oid = i.inhparent JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace
  JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid JOIN pg_catalog.pg_namespace cn ON cn.oid = c.relnamespace
 WHERE p.relkind IN ('r', 'p', 'f') AND c.relkind IN ('r', 'p', 'f')
UNION ALL
SELECT cn.nspname, c.relname, 'inherits', 'parent', pn.nspname, p.relname, NULL
  FROM pg_catalog.pg_inherits i
  JOIN pg_catalog.pg_class p ON p.oid = i.inhparent JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace
  JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid JOIN pg_catalog.pg_namespace cn ON cn.oid = c.relnamespace
 WHERE p.relkind IN ('r', 'p', 'f') AND c.relkind IN ('r', 'p', 'f')
UNION ALL
SELECT pn.nspname, pc.relname, 'cascade', k.conname, cn.nspname, cc.relname, k.confdeltype::pg_catalog.text || k.confupdtype::pg_catalog.text
  FROM pg_catalog.pg_constraint k
  JOIN pg_catalog.pg_class pc ON pc.oid = k.confrelid JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace
  JOIN pg_catalog.pg_class cc ON cc.oid = k.conrelid JOIN pg_catalog.pg_namespace cn ON cn.oid = cc.relnamespace
 WHERE k.contype = 'f';`;

function functionsSql(keys: readonly { schema: string; name: string }[]): string {
  const json = JSON.stringify(keys.map((k) => [k.schema, k.name]));
  return `${PIN_PATH}
SELECT n.nspname AS schema, p.proname AS name, p.oid::text AS oid, l.lanname AS language, p.prokind::text AS kind,
       p.prosecdef AS definer, p.proconfig AS config, pg_catalog.pg_get_function_identity_arguments(p.oid) AS args,
       CASE WHEN p.prokind IN ('f', 'p') AND l.lanname IN ('sql', 'plpgsql') THEN pg_catalog.pg_get_functiondef(p.oid) END AS def
  FROM pg_catalog.pg_proc p
  JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
  JOIN pg_catalog.pg_language l ON l.oid = p.prolang
 WHERE (n.nspname, p.proname) IN (SELECT x->>0, x->>1 FROM pg_catalog.json_array_elements(${sqlLiteral(json)}::pg_catalog.json) x);`;
}

/** The hint every opaque reason ends with. */
function vouch(db: DatabaseConfig, what: string): string {
  return `an operator can vouch for it with databases.${db.name}.trusted_functions: ["${what}"]`;
}

function routinesOf(rows: readonly Record<string, unknown>[]): Routines {
  const extension = new Set<string>();
  const user = new Map<string, string[]>();
  for (const r of rows) {
    const name = String(r['name']);
    const schema = String(r['schema']);
    if (r['extension'] === true) extension.add(`${schema}\u0000${name}`);
    const l = user.get(name);
    if (l) l.push(schema);
    else user.set(name, [schema]);
  }
  return { extension, user };
}

function tablesOf(rows: readonly Record<string, unknown>[]): Tables {
  const tables = new Map<string, TableCode[]>();
  const tablesByName = new Map<string, TableCode[]>();
  for (const r of rows) {
    const schema = String(r['schema']);
    const rel = String(r['rel']);
    const relation = `${schema}.${rel}`;
    let tc: TableCode;
    const what = String(r['what']);
    if (what === 'cascade') {
      // ON DELETE/UPDATE CASCADE (c), SET NULL (n), SET DEFAULT (d) change the referencing table; TRUNCATE ... CASCADE empties it.
      const child = `${quoteIdent(String(r['fschema']))}.${quoteIdent(String(r['fname']))}`;
      tc = { kind: 'cascade', name: String(r['name']), relation, cascade: new Cascade(child, String(r['def'] ?? '')) };
    } else if (what === 'view') {
      // An updatable view: writing it writes the relations under it (auto-updatable views and their rules).
      const base = `${quoteIdent(String(r['fschema']))}.${quoteIdent(String(r['fname']))}`;
      tc = { kind: 'view', name: `${String(r['fschema'])}.${String(r['fname'])}`, relation, view: new ViewWrite(base) };
    } else if (what === 'inherits') {
      // An inheritance parent shows its children's rows (partitions are children): writing one changes the other's rows.
      const other = `${quoteIdent(String(r['fschema']))}.${quoteIdent(String(r['fname']))}`;
      const side = String(r['name']) === 'child' ? 'child' : 'parent';
      tc = { kind: 'inherits', name: `${String(r['fschema'])}.${String(r['fname'])}`, relation, view: new ViewWrite(other), side };
    } else if (what !== 'rule') {
      const kind = what as TableCode['kind'];
      tc = { kind, name: r['name'] === null ? `${kind} expression` : String(r['name']), relation, fn: { schema: String(r['fschema']), name: String(r['fname']) } };
    } else {
      const a = analyzeSql(String(r['def'] ?? ''), { searchPath: ['pg_catalog'] });
      const body = a.ok ? a.statements[0]?.body : undefined;
      tc = { kind: 'rule', name: String(r['name']), relation, rule: body ?? `rule ${String(r['name'])} on ${relation} cannot be read (${a.ok ? 'no actions found' : a.error})` };
    }
    const k = `${schema}\u0000${rel}`;
    tables.set(k, [...(tables.get(k) ?? []), tc]);
    tablesByName.set(rel, [...(tablesByName.get(rel) ?? []), tc]);
  }
  return { tables, tablesByName };
}

export interface CodeCatalogOptions {
  readonly query: CatalogQueryFn;
  readonly log?: Logger;
  /** Default {@link CODE_CACHE_TTL_MS}. */
  readonly ttlMs?: number;
}

export function createCodeCatalog(options: CodeCatalogOptions): CodeCatalog {
  const ttl = options.ttlMs ?? CODE_CACHE_TTL_MS;
  const states = new Map<string, DbState>();
  const versions = new Map<string, number>();
  const stats = { queries: 0 };
  const trusted = new Map<string, (schema: string, name: string) => boolean>();

  const trustOf = (db: DatabaseConfig) => {
    let t = trusted.get(db.name);
    if (!t) {
      t = trustedMatcher(db.trustedFunctions);
      trusted.set(db.name, t);
    }
    return t;
  };

  const version = (name: string): number => versions.get(name) ?? 0;

  /** Built-in function names per database (see BUILTIN_SQL): read once. */
  const builtins = new Map<string, ReadonlySet<string>>();

  const invalidate = (name: string, scope: InvalidationScope = 'all'): void => {
    const st = states.get(name);
    if (st?.timer) clearTimeout(st.timer);
    states.delete(name);
    versions.set(name, version(name) + 1);
    if (scope === 'tables' && st?.routines) {
      // Routines stay: a fresh state that keeps them, their definitions and analyses, and their age.
      const next: DbState = {
        version: version(name),
        routines: st.routines,
        ...(st.routinesAt !== undefined ? { routinesAt: st.routinesAt } : {}),
        fns: st.fns,
        fnLoading: st.fnLoading,
        bodies: st.bodies,
        enriched: new WeakMap(),
      };
      states.set(name, next);
      arm(name, next);
    }
  };

  const stateOf = (db: DatabaseConfig): DbState => {
    let st = states.get(db.name);
    if (!st) {
      st = { version: version(db.name), fns: new Map(), fnLoading: new Map(), bodies: new Map(), enriched: new WeakMap() };
      states.set(db.name, st);
    }
    return st;
  };

  /** Drops a state at the latest `ttl` after its oldest routine facts were read. */
  const arm = (name: string, st: DbState): void => {
    if (st.timer || states.get(name) !== st || st.routinesAt === undefined) return;
    st.timer = setTimeout(
      () => {
        if (states.get(name) === st) invalidate(name);
      },
      Math.max(0, st.routinesAt + ttl - Date.now()),
    );
    st.timer.unref?.();
  };

  const run = async (db: DatabaseConfig, sql: string): Promise<Record<string, unknown>[][]> => {
    stats.queries++;
    // The first result is PIN_PATH's.
    return selects(await options.query(db, sql)).slice(1);
  };

  /** The index, or undefined when a part is missing (then `load` reads the missing parts). */
  const indexOf = (db: DatabaseConfig, st: DbState): Index | undefined => {
    const builtin = builtins.get(db.name);
    if (!builtin || !st.routines || !st.tables) return undefined;
    return { builtin, ...st.routines, ...st.tables };
  };

  /** Reads the missing parts of the index in one round trip. */
  const loadIndex = (db: DatabaseConfig, st: DbState): Promise<void> => {
    if (st.loading) return st.loading;
    const parts: ('builtin' | 'routines' | 'tables')[] = [];
    if (!builtins.has(db.name)) parts.push('builtin');
    if (!st.routines) parts.push('routines');
    if (!st.tables) parts.push('tables');
    const sql = parts.map((p) => (p === 'builtin' ? BUILTIN_SQL : p === 'routines' ? ROUTINES_SQL : TABLES_SQL)).join('\n');
    const p = run(db, `${PIN_PATH}\n${sql}`).then(
      (results) => {
        parts.forEach((part, i) => {
          const rows = results[i] ?? [];
          if (part === 'builtin') builtins.set(db.name, new Set(rows.map((r) => String(r['name']))));
          else if (part === 'routines') {
            st.routines = routinesOf(rows);
            st.routinesAt = Date.now();
          } else st.tables = tablesOf(rows);
        });
        st.loading = undefined;
        arm(db.name, st);
      },
      (err: Error) => {
        st.loading = undefined;
        throw err;
      },
    );
    st.loading = p;
    return p;
  };

  const loadFunctions = (db: DatabaseConfig, st: DbState, keys: readonly string[]): Promise<void> => {
    const todo = keys.filter((k) => !st.fns.has(k) && !st.fnLoading.has(k));
    const waits = keys.map((k) => st.fnLoading.get(k)).filter((p): p is Promise<void> => p !== undefined);
    if (todo.length > 0) {
      const parsed = todo.map((k) => {
        const i = k.indexOf('\u0000');
        return { schema: k.slice(0, i), name: k.slice(i + 1) };
      });
      const p = run(db, functionsSql(parsed)).then(
        ([rows = []]) => {
          for (const k of todo) st.fns.set(k, []);
          for (const r of rows) {
            const d: FnDef = {
              schema: String(r['schema']),
              name: String(r['name']),
              oid: String(r['oid']),
              language: String(r['language']),
              kind: String(r['kind']),
              definer: r['definer'] === true,
              config: Array.isArray(r['config']) ? (r['config'] as unknown[]).map(String) : [],
              def: typeof r['def'] === 'string' ? r['def'] : null,
              args: String(r['args'] ?? ''),
            };
            const k = `${d.schema}\u0000${d.name}`;
            st.fns.set(k, [...(st.fns.get(k) ?? []), d]);
          }
          for (const k of todo) st.fnLoading.delete(k);
        },
        (err: Error) => {
          for (const k of todo) st.fnLoading.delete(k);
          throw err;
        },
      );
      for (const k of todo) st.fnLoading.set(k, p);
      waits.push(p);
    }
    return Promise.all(waits).then(() => undefined);
  };

  /** What a function's body does (cached per search_path), or why Warden cannot see it. */
  const bodyOf = (st: DbState, db: DatabaseConfig, d: FnDef, ctx: AnalyzeContext, pathKey: string): StatementAnalysis | string => {
    const what = `${d.schema}.${d.name}`;
    if (d.kind === 'a' || d.kind === 'w') return `calls ${what}(${d.args}): a user-defined ${d.kind === 'a' ? 'aggregate' : 'window function'} runs code Warden does not read; ${vouch(db, what)}`;
    if (!READABLE_LANGUAGES.has(d.language)) return `calls ${what}(${d.args}): LANGUAGE ${d.language}, which Warden cannot read; ${vouch(db, what)}`;
    if (d.def === null) return `calls ${what}(${d.args}): its definition could not be read; ${vouch(db, what)}`;
    const fixed = d.config.find((c) => c.toLowerCase().startsWith('search_path='));
    const path = fixed !== undefined ? parseSearchPath(fixed.slice('search_path='.length)) : ctx.searchPath;
    const key = `${d.oid}\u0000${fixed !== undefined ? `=${fixed}` : pathKey}`;
    const hit = st.bodies.get(key);
    if (hit !== undefined) return hit;
    const a = analyzeSql(d.def, { searchPath: path, ...(ctx.user !== undefined ? { user: ctx.user } : {}) });
    let body = a.ok ? a.statements[0]?.body : undefined;
    // What the body does that Warden cannot see: say how to vouch for the function.
    if (body?.opaque) body = Object.freeze({ ...body, opaqueReasons: Object.freeze(body.opaqueReasons.map((r) => `${r}; ${vouch(db, what)}`)) });
    const out: StatementAnalysis | string = body ?? `calls ${what}(${d.args}): Warden cannot analyse its definition (${a.ok ? 'no body' : a.error}); ${vouch(db, what)}`;
    st.bodies.set(key, out);
    return out;
  };

  interface Need {
    index: boolean;
    fns: Set<string>;
  }

  /** The code effects of one statement; records in `need` what must be read first. */
  const effectsOf = (
    st: DbState,
    db: DatabaseConfig,
    s: StatementAnalysis,
    ctx: AnalyzeContext,
    pathKey: string,
    need: Need,
    failure: string | undefined,
    local: LocalRoutines,
  ): { effects: CodeEffect[]; lift: string[] } => {
    const effects: CodeEffect[] = [];
    const lift: string[] = [];
    const index = indexOf(db, st);
    const trust = trustOf(db);
    const seen = new Set<string>();
    const notReadable = (via: string) => `${via}: Warden could not read the catalog of ${db.name} to see what it does (${failure})`;
    if (!index) {
      if (failure !== undefined) {
        if (callsUserCode(s)) effects.push({ via: 'functions', opaque: notReadable(`calls ${s.functions.join(', ')}`) });
        if (firesTriggers(s)) effects.push({ via: 'triggers', opaque: notReadable(`writes ${s.writes.map((r) => r.name).join(', ')}, whose triggers and rules`) });
        const paths = writePaths(s);
        if (paths.length > 0) effects.push({ via: 'triggers', opaque: notReadable(`makes a new way to write ${paths.join(', ')}, whose triggers and rules`) });
      } else need.index = true;
      return { effects, lift };
    }
    const inPath = (schema: string): boolean => {
      const p = ctx.searchPath;
      if (p === null) return true;
      return p.some((x) => x === schema || (x === '$user' && ctx.user === schema));
    };

    /** Follows the code `sa` runs (calls and triggers), `depth` calls deep. */
    const follow = (sa: StatementAnalysis, depth: number): void => {
      for (const f of sa.functions) call(f, depth);
      if (firesTriggers(sa)) for (const r of sa.writes) triggersOf(r.schema, r.table, r.qualified ? [r.schema] : r.candidates, depth, sa.classes);
    };

    const runFunction = (schema: string, name: string, via: string, depth: number): boolean => {
      const key = `${schema}\u0000${name}`;
      const what = `${schema}.${name}`;
      if (index.extension.has(key)) return true;
      if (trust(schema, name)) {
        effects.push({ via, note: `${what}() is trusted by the configuration (trusted_functions): its body is not judged` });
        return true;
      }
      if (seen.has(key)) return true;
      const defs = st.fns.get(key);
      if (defs === undefined) {
        if (failure !== undefined) effects.push({ via, opaque: notReadable(`calls ${what}()`) });
        else need.fns.add(key);
        return false;
      }
      seen.add(key);
      if (defs.length === 0) {
        effects.push({ via, opaque: `calls ${what}(), which is not in the catalog Warden reads (created in a transaction that is still open?); ${vouch(db, what)}` });
        return false;
      }
      if (depth >= MAX_CODE_DEPTH) {
        effects.push({ via, opaque: `calls ${what}() more than ${MAX_CODE_DEPTH} calls deep; ${vouch(db, what)}` });
        return false;
      }
      let ok = true;
      for (const d of defs) {
        const body = bodyOf(st, db, d, ctx, pathKey);
        const dvia = `${via}${d.definer ? ' (SECURITY DEFINER)' : ''}`;
        if (typeof body === 'string') {
          effects.push({ via: dvia, opaque: body });
          ok = false;
          continue;
        }
        effects.push({ via: dvia, body });
        follow(body, depth + 1);
      }
      return ok;
    };

    /** Routines the session defined that this call may reach; their bodies' effects are added. */
    const localCall = (fname: string, schema: string | undefined, bare: string, depth: number): boolean => {
      const hits = (local.get(bare) ?? []).filter((l) =>
        schema === undefined
          ? l.schema === null || inPath(l.schema)
          : l.schema === schema || (isTempSchema(schema) && l.schema !== null && isTempSchema(l.schema)) || (l.schema === null && inPath(schema)),
      );
      for (const l of hits) {
        const key = `local\u0000${l.schema ?? ''}\u0000${l.name}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const via = `${l.schema !== null ? `${l.schema}.` : ''}${l.name}() (as defined in this session)`;
        if (trust(l.schema ?? schema ?? '*', l.name)) continue;
        effects.push({ via, body: l.body });
        if (depth < MAX_CODE_DEPTH) follow(l.body, depth + 1);
        else effects.push({ via, opaque: `calls ${fname}() more than ${MAX_CODE_DEPTH} calls deep` });
      }
      return hits.length > 0;
    };

    const call = (fname: string, depth: number): void => {
      const { schema, bare } = splitName(fname);
      if (schema !== undefined && BUILTIN_SCHEMAS.has(schema)) return;
      const defined = local.size > 0 && localCall(fname, schema, bare, depth);
      if (schema !== undefined) {
        if (isTempSchema(schema)) {
          if (defined) return liftCall(fname);
          if (trust('pg_temp', bare)) return liftCall(fname);
          effects.push({
            via: `${fname}()`,
            opaque: `calls ${fname}(), a function in the session's temporary schema, which Warden's catalog connection cannot see; ${vouch(db, `pg_temp.${bare}`)}`,
          });
          return;
        }
        if (!(index.user.get(bare) ?? []).includes(schema)) {
          if (defined || trust(schema, bare)) return liftCall(fname);
          effects.push({ via: `${fname}()`, opaque: `calls ${fname}(), which is not in the catalog Warden reads (created in a transaction that is still open?); ${vouch(db, `${schema}.${bare}`)}` });
          return;
        }
        if (index.extension.has(`${schema}\u0000${bare}`)) return liftCall(fname);
        if (runFunction(schema, bare, `${schema}.${bare}()`, depth)) liftCall(fname);
        return;
      }
      // Functions of installed extensions count as built-ins (side-effect ones are known by name: sql/functions.ts).
      const schemas = (index.user.get(bare) ?? []).filter((sch) => inPath(sch) && !index.extension.has(`${sch}\u0000${bare}`));
      if (schemas.length === 0 && (index.user.get(bare) ?? []).some(inPath)) return liftCall(fname);
      if (schemas.length === 0) {
        if (defined || index.builtin.has(bare)) return liftCall(fname);
        effects.push({ via: `${bare}()`, opaque: `calls ${bare}(), which is not in the catalog Warden reads (created in a transaction that is still open?); ${vouch(db, `<schema>.${bare}`)}` });
        return;
      }
      let all = true;
      for (const sch of schemas) all = runFunction(sch, bare, `${sch}.${bare}()`, depth) && all;
      if (all) liftCall(fname);
    };

    /** A CALL whose procedure Warden could read is no longer opaque for that reason. */
    const liftCall = (fname: string): void => {
      lift.push(`CALL ${fname}(): a procedure's body is not visible`);
    };

    const triggersOf = (schema: string, table: string, candidates: readonly string[], depth: number, events: ReadonlySet<string>): void => {
      const codes: TableCode[] = [];
      if (candidates.includes('*') || table === '*') {
        for (const c of table === '*' ? [...index.tables.entries()].filter(([k]) => candidates.includes('*') || candidates.includes(k.split('\u0000')[0]!)).flatMap(([, v]) => v) : (index.tablesByName.get(table) ?? [])) codes.push(c);
      } else {
        for (const c of candidates.length ? candidates : [schema]) codes.push(...(index.tables.get(`${c}\u0000${table}`) ?? []));
      }
      for (const c of codes) {
        const key = `${c.kind}\u0000${c.relation}\u0000${c.name}\u0000${c.fn?.schema ?? ''}\u0000${c.fn?.name ?? ''}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const via =
          c.kind === 'trigger' || c.kind === 'rule'
            ? `${c.kind} ${c.name} on ${c.relation}`
            : c.kind === 'cascade'
              ? `foreign key ${c.name} referencing ${c.relation}`
              : c.kind === 'view'
                ? `the view ${c.relation}, which writes ${c.name}`
                : c.kind === 'inherits'
                  ? `the inheritance ${c.side} ${c.name} of ${c.relation}, whose rows it shares`
                  : `a ${c.name} of ${c.relation}`;
        if (c.kind === 'cascade') {
          // Only the events that cascade: an INSERT into the referenced table changes nothing else.
          const bodies = [
            events.has('delete') ? c.cascade?.on('delete') : undefined,
            events.has('update') ? c.cascade?.on('update') : undefined,
            events.has('truncate') ? c.cascade?.on('truncate') : undefined,
          ].filter((b): b is StatementAnalysis => b !== undefined);
          if (bodies.length === 0) seen.delete(key);
          for (const body of bodies) {
            effects.push({ via, body });
            if (depth < MAX_CODE_DEPTH) follow(body, depth + 1);
            else effects.push({ via, opaque: `${via} cascades more than ${MAX_CODE_DEPTH} levels deep` });
          }
        } else if (c.kind === 'view' || c.kind === 'inherits') {
          // Only what the statement does: an INSERT through a view inserts into its table; a
          // TRUNCATE of a parent empties its children, of a child deletes rows of its parent.
          const merge = events.has('merge');
          const truncate = events.has('truncate') && c.kind === 'inherits';
          const bodies = [
            events.has('insert') || merge ? c.view?.on('insert') : undefined,
            events.has('update') || merge ? c.view?.on('update') : undefined,
            events.has('delete') || merge || (truncate && c.side === 'parent') ? c.view?.on('delete') : undefined,
            truncate && c.side === 'child' ? c.view?.on('truncate') : undefined,
          ].filter((b): b is StatementAnalysis => b !== undefined);
          if (bodies.length === 0) seen.delete(key);
          for (const body of bodies) {
            effects.push({ via, body });
            if (depth < MAX_CODE_DEPTH) follow(body, depth + 1);
            else effects.push({ via, opaque: `${via} is nested more than ${MAX_CODE_DEPTH} levels deep` });
          }
        } else if (c.kind === 'rule') {
          if (typeof c.rule === 'string') effects.push({ via, opaque: c.rule });
          else if (c.rule) {
            effects.push({ via, body: c.rule });
            if (depth < MAX_CODE_DEPTH) follow(c.rule, depth + 1);
            else effects.push({ via, opaque: `${via} is nested more than ${MAX_CODE_DEPTH} levels deep` });
          }
        } else if (c.fn) {
          runFunction(c.fn.schema, c.fn.name, `${via} → ${c.fn.schema}.${c.fn.name}()`, depth);
        }
      }
    };

    follow(s, 0);
    // A view PostgreSQL can update is a way to write its table later, from any session that can
    // see it (a TEMP view, or one made in a transaction, never reaches the catalog Warden reads),
    // and so is an inheritance or partition bond (a write of the parent changes the child's rows,
    // and the other way round): making one carries those writes now, as creating a rule or a
    // trigger carries its actions.
    // DDL inside code (a DO block, a function's body, created now or called) is not parsed
    // statement by statement: a rename, a view, a bond or a rewrite it makes may be any of them,
    // so it carries the writes of every relation it acts on (fail closed).
    const coded = [...(s.kind === 'do' ? [s] : s.body ? [s.body] : []), ...effects.map((e) => e.body).filter((b): b is StatementAnalysis => b !== undefined)];
    for (const b of coded) {
      if (!b.classes.has('ddl')) continue;
      for (const r of b.writes) {
        const name = r.table === '*' ? `${quoteIdent(r.schema)}."*"` : r.qualified ? `${quoteIdent(r.schema)}.${quoteIdent(r.table)}` : quoteIdent(r.table);
        const via = `DDL in code, on ${r.name}`;
        for (const sql of [`INSERT INTO ${name} DEFAULT VALUES`, `UPDATE ${name} SET "*" = NULL`, `DELETE FROM ${name}`]) {
          const w = analyzeSql(sql, ctx);
          const body = w.ok ? w.statements[0] : undefined;
          if (body) effects.push({ via, body });
        }
      }
    }
    const view = updatableViewBase(s);
    const rewritten = rewrittenRelations(s);
    for (const base of writePaths(s)) {
      const via =
        base === view
          ? `the view it creates, which writes ${base} when it is written`
          : renamedRelations(s).includes(base)
            ? `the rename, after which ${base} is written under another name`
            : inheritanceLinks(s).includes(base)
              ? `the inheritance or partition bond it changes, through which ${base} is written`
              : `ALTER TABLE, which changes the values stored in ${base}`;
      // A rewrite only updates the rows (as an UPDATE of every row would); the other paths may do anything.
      const only = rewritten.includes(base) && base !== view && !renamedRelations(s).includes(base) && !inheritanceLinks(s).includes(base);
      for (const sql of only ? [`UPDATE ${base} SET "*" = NULL`] : [`INSERT INTO ${base} DEFAULT VALUES`, `UPDATE ${base} SET "*" = NULL`, `DELETE FROM ${base}`]) {
        const w = analyzeSql(sql, ctx);
        const body = w.ok ? w.statements[0] : undefined;
        if (!body) continue;
        effects.push({ via, body });
        follow(body, 1);
      }
    }
    return { effects, lift };
  };

  const compute = (
    st: DbState,
    db: DatabaseConfig,
    a: AnalysisOk,
    ctx: AnalyzeContext,
    pathKey: string,
    need: Need,
    sessionLocal: LocalRoutines,
    failure?: string,
  ): Analysis => {
    const per = new Map<number, CodeEffect[]>();
    const lifts = new Map<number, string[]>();
    // Routines defined by earlier statements of the same string count as defined in the session.
    let local = sessionLocal;
    for (const s of a.statements) {
      const defined = localRoutineOf(s);
      if (!callsUserCode(s) && !firesTriggers(s) && writePaths(s).length === 0 && !ddlInCode(s)) {
        if (defined) local = withLocal(local, defined);
        continue;
      }
      const { effects, lift } = effectsOf(st, db, s, ctx, pathKey, need, failure, local);
      if (defined) local = withLocal(local, defined);
      if (effects.length) per.set(s.index, effects);
      if (lift.length) lifts.set(s.index, lift);
    }
    return withCodeEffects(a, per, lifts);
  };

  const resolve = (db: DatabaseConfig, analysis: Analysis, ctx: AnalyzeContext, local: LocalRoutines = NO_LOCAL): Analysis | Promise<Analysis> => {
    if (!analysis.ok || !mayRunCode(analysis)) return analysis;
    const pathKey = ctx.searchPath === null ? '\u0001' : ctx.searchPath.join('\u0000');
    // The session's own routines make the result the session's: not cached.
    const cacheable = local.size === 0;
    const attempt = (round: number): Analysis | Promise<Analysis> => {
      const st = stateOf(db);
      const hit = cacheable ? st.enriched.get(analysis) : undefined;
      if (hit && hit.pathKey === pathKey) return hit.result;
      const need: Need = { index: false, fns: new Set() };
      const result = compute(st, db, analysis, ctx, pathKey, need, local);
      if (!need.index && need.fns.size === 0) {
        if (cacheable) st.enriched.set(analysis, { pathKey, result });
        return result;
      }
      const load = need.index ? loadIndex(db, st) : loadFunctions(db, st, [...need.fns]);
      return load.then(
        () => (round >= 2 * MAX_CODE_DEPTH + 2 ? compute(st, db, analysis, ctx, pathKey, need, local, 'too many catalog reads for one statement') : attempt(round + 1)),
        (err: Error) => {
          options.log?.warn({ database: db.name, reason: err.message }, 'reading functions, triggers and rules from the catalog failed');
          return compute(st, db, analysis, ctx, pathKey, { index: false, fns: new Set() }, local, err.message);
        },
      );
    };
    return attempt(0);
  };

  return { resolve, invalidate, version, stats };
}
