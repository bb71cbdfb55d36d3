/**
 * Public types of Warden's statement analysis (`analyzeSql`).
 *
 * Everything here is plain data. Analyses are cached and shared between
 * sessions, so treat every object as read-only (arrays are frozen; sets are
 * not freezable in JavaScript but must not be mutated either). Use
 * {@link analysisToJSON} (src/sql/json.ts) for a JSON-serializable form.
 *
 * @module
 */

/** Statement kinds of the spec (`match.statement`). Every statement has exactly one. */
export const STATEMENT_KINDS = [
  'select',
  'insert',
  'update',
  'delete',
  'merge',
  'copy',
  'create',
  'alter',
  'drop',
  'truncate',
  'grant',
  'revoke',
  'set',
  'call',
  'do',
  'explain',
  'transaction',
  'other',
] as const;

/** One statement kind, e.g. `select` or `drop`. */
export type StatementKind = (typeof STATEMENT_KINDS)[number];

/**
 * Groups of the spec. `read`: changes nothing; `write`: changes rows;
 * `ddl`: create, alter, drop, truncate, comment, grant, revoke; `opaque`: an
 * effect Warden cannot see.
 */
export const STATEMENT_GROUPS = ['read', 'write', 'ddl', 'opaque'] as const;
export type StatementGroup = (typeof STATEMENT_GROUPS)[number];

/**
 * Extra class names Warden understands beyond the spec's kinds and groups.
 * `comment`: COMMENT ON (kind `other`, group `ddl`).
 * `lock`: LOCK TABLE and SELECT ... FOR UPDATE/SHARE (group `write`: they block other sessions).
 * `maintenance`: VACUUM, ANALYZE, CLUSTER, REINDEX, REFRESH MATERIALIZED VIEW, CHECKPOINT
 * (kind `other`, group `write`: they rewrite a relation's storage, indexes or statistics).
 * `code`: defines code that runs later (CREATE FUNCTION | PROCEDURE | TRIGGER | RULE |
 * EVENT TRIGGER | POLICY | VIEW | MATERIALIZED VIEW, kind `create`, group `ddl`); the
 * statement also carries what that code would do (see {@link StatementAnalysis.body}).
 */
export const STATEMENT_EXTRA_CLASSES = ['comment', 'lock', 'maintenance', 'code'] as const;

/** A name `match.statement` may use: a kind, a group, or an extra class. */
export type StatementClass = StatementKind | StatementGroup | (typeof STATEMENT_EXTRA_CLASSES)[number];

/** Every valid statement class name. */
export const STATEMENT_CLASSES: readonly StatementClass[] = [
  ...STATEMENT_KINDS,
  ...STATEMENT_GROUPS,
  ...STATEMENT_EXTRA_CLASSES,
];

/**
 * A relation (table, view, sequence, ...) a statement touches.
 *
 * A schema-qualified reference is exact. An unqualified one is resolved with the
 * session's search_path: `schema` is the first schema of the path that could hold
 * it, and `candidates` lists every schema that could hold it (`*` = any schema,
 * when the search_path is unknown). Rules match it fail-closed: a pattern that
 * matches any candidate "possibly" matches (see docs/policy.md).
 */
export interface RelationRef {
  /** Display name `schema.table`, each part quoted like quote_ident when needed. */
  readonly name: string;
  /** Schema (after identifier folding), the most likely one for an unqualified name. */
  readonly schema: string;
  /** Relation name (after folding); `*` means every relation of `schema` (DROP SCHEMA, GRANT ... ALL TABLES IN SCHEMA). */
  readonly table: string;
  /** True when the SQL named the schema. */
  readonly qualified: boolean;
  /** Schemas the reference could resolve to (at least `schema`); `*` = unknown, any schema. */
  readonly candidates: readonly string[];
}

/** Where a column is referenced. */
export type ColumnUsage =
  | 'projection'
  | 'predicate'
  | 'join'
  | 'group'
  | 'order'
  | 'function-arg'
  | 'assignment'
  | 'returning';

/** A column reference. `column` is `*` for `*` / `t.*` / an INSERT without a column list. */
export interface ColumnRef {
  readonly column: string;
  readonly usage: ColumnUsage;
  /**
   * The clause the reference sits in, for leak checks: like `usage`, but a reference
   * inside a function's arguments or a subquery keeps the clause around it
   * (`WHERE lower(email) = 'x'` is a `predicate`, `SELECT lower(email)` a `projection`).
   */
  readonly clause: ColumnUsage;
  /** Display name of the base relation when it resolved to exactly one. */
  readonly relation?: string;
  /**
   * Base relations the column could belong to. Empty when unknown (a column of a
   * CTE, subquery or function result, or an unresolvable name): rules then match
   * it by column name only, fail-closed.
   */
  readonly from: readonly RelationRef[];
}

/** A run-time setting changed by SET / RESET / set_config / ALTER SYSTEM / ... */
export interface SettingChange {
  /** Lower-cased GUC name (`role`, `session_authorization`, `search_path`, `warden.ticket`); `*` = unknown or all. */
  readonly name: string;
  /** New value as text; `null` = reset to default; absent when not a constant. */
  readonly value?: string | null;
  /** SET LOCAL / set_config(..., true). */
  readonly local: boolean;
  readonly via: 'set' | 'reset' | 'reset-all' | 'set_config' | 'discard-all' | 'alter-system' | 'alter-role' | 'alter-database';
}

/** What kind of object a {@link DdlTarget} is. */
export type DdlObjectKind = 'relation' | 'routine' | 'type' | 'schema';

/** An object whose definition a DDL statement creates, changes or drops. */
export interface DdlTarget {
  /** `relation`: a table, view, sequence, index, ... (anything of pg_class); `schema`: the schema itself (`name` is `*`). */
  readonly kind: DdlObjectKind;
  /**
   * Its schema as named, or the one an unqualified relation resolved to; absent
   * for an unqualified routine or type (it lives where CREATE puts it: the first
   * schema of the search_path that exists, which the analysis cannot know).
   * `*` with name `*`: every relation (DROP OWNED, REASSIGN OWNED, ...).
   */
  readonly schema?: string;
  readonly name: string;
}

/** The analysis of one statement of a query string. */
export interface StatementAnalysis {
  /** 0-based position in the query string. */
  readonly index: number;
  /** The statement's source text (trimmed). */
  readonly text: string;
  readonly kind: StatementKind;
  /** The kind, its groups, and every kind/group the statement touches (nested writes, DO body, ...). */
  readonly classes: ReadonlySet<StatementClass>;
  /** Warden cannot see the full effect; for matching it counts as every class. */
  readonly opaque: boolean;
  /** Why it is opaque (empty when not). */
  readonly opaqueReasons: readonly string[];
  /** Relations whose rows are read. */
  readonly reads: readonly RelationRef[];
  /** Relations whose rows or definition are changed (DML targets and DDL/maintenance targets). */
  readonly writes: readonly RelationRef[];
  readonly columns: readonly ColumnRef[];
  /** Functions called, as written (folded, lower case unless quoted), schema-qualified when the SQL qualified them. */
  readonly functions: readonly string[];
  /** Settings changed. */
  readonly sets: readonly SettingChange[];
  /** SET ROLE / SET SESSION AUTHORIZATION / RESET ROLE / set_config('role'|'session_authorization') / DISCARD ALL / an unknown set_config name. */
  readonly roleChange: boolean;
  /** RESET ALL / DISCARD ALL. */
  readonly resetAll: boolean;
  /** ALTER SYSTEM. */
  readonly alterSystem: boolean;
  /** A join condition (JOIN ... ON / USING) compares with a constant or a parameter. */
  readonly joinConstant: boolean;
  /** For PREPARE: the name and the analysis of the prepared statement (also what `kind`/`classes` describe). */
  readonly prepare?: { readonly name: string; readonly statement: StatementAnalysis };
  /** For EXECUTE: the prepared statement name and whether it was known. */
  readonly execute?: { readonly name: string; readonly found: boolean };
  /** For DEALLOCATE (name `null` = ALL) and DISCARD ALL (name `null`). */
  readonly deallocate?: { readonly name: string | null };
  /**
   * Set when the statement changes the search_path: the new path, or `null` when
   * the new value is unknown (RESET, DEFAULT, non-constant set_config).
   */
  readonly searchPath?: readonly string[] | null;
  /** Human-readable notes on how the statement was classified. */
  readonly notes: readonly string[];
  /**
   * For a statement that defines code (class `code`: CREATE FUNCTION / PROCEDURE,
   * CREATE RULE): what that code does when it runs, as a statement of kind `do`
   * (its classes, relations, columns, calls). Already merged into this
   * statement's own classes and relations.
   */
  readonly body?: StatementAnalysis;
  /** For CREATE FUNCTION / PROCEDURE: the routine's name as written (`pay.refund`, `pg_temp.f`, `f`). */
  readonly defines?: string;
  /**
   * For a statement of class `ddl` or `drop` (TRUNCATE excepted: it changes rows,
   * not definitions): the objects whose definitions it may change, in order,
   * without duplicates: every relation of `writes` (a schema as `name: '*'`),
   * then what `writes` cannot say: the index of CREATE INDEX, the new name of a
   * renamed relation, routines (CREATE / ALTER / DROP / COMMENT ON / GRANT ON
   * FUNCTION, PROCEDURE, AGGREGATE) and types (CREATE TYPE / DOMAIN, ALTER /
   * DROP TYPE, ...). Empty for other statements.
   */
  readonly ddlTargets: readonly DdlTarget[];
  /**
   * The code the statement runs that Warden read (function and procedure bodies, triggers'
   * functions, rules), as added by `withCodeEffects` (sql/code.ts): how the statement reaches
   * each (`pg_temp.f()`, `trigger t on public.orders → public.audit()`) and what it does.
   * Absent when none. Masking uses it to tell the columns code reads from the statement's own
   * (masking/session-code.ts).
   */
  readonly code?: readonly CodeRun[];
}

/** One piece of code a statement runs: see {@link StatementAnalysis.code}. */
export interface CodeRun {
  readonly via: string;
  readonly body: StatementAnalysis;
}

/** A successfully parsed query string. */
export interface AnalysisOk {
  readonly ok: true;
  readonly sql: string;
  readonly statements: readonly StatementAnalysis[];
  /** Union of the statements' classes. */
  readonly classes: ReadonlySet<StatementClass>;
  /** Some statement is opaque. */
  readonly opaque: boolean;
  /** Union of the statements' reads / writes (deduplicated). */
  readonly reads: readonly RelationRef[];
  readonly writes: readonly RelationRef[];
  readonly functions: readonly string[];
  /** The analysis depended on the prepared statements of the session (EXECUTE): not cacheable by text alone. */
  readonly usesPrepared: boolean;
}

/** A query string PostgreSQL's parser rejected. */
export interface AnalysisError {
  readonly ok: false;
  readonly sql: string;
  /** The parser's message with its position, e.g. `syntax error at or near "frm" (position 10)`. */
  readonly error: string;
  /** 1-based character position of the error, as PostgreSQL's ErrorResponse `P` field. */
  readonly position?: number;
}

/** The result of {@link analyzeSql}. */
export type Analysis = AnalysisOk | AnalysisError;

/** Session facts the analysis needs. */
export interface AnalyzeContext {
  /**
   * The session's search_path, in order: ideally `current_schemas(true)` of the
   * upstream session (existing schemas only, pg_catalog/pg_temp explicit), or the
   * parsed `search_path` setting (see {@link parseSearchPath}). `$user` entries
   * resolve to `user` when given and are skipped otherwise; `null` = unknown.
   */
  readonly searchPath: readonly string[] | null;
  /** The upstream role name, for `$user` in the search_path. */
  readonly user?: string;
  /** Path assumed after RESET search_path / SET search_path TO DEFAULT; unknown when absent. */
  readonly defaultSearchPath?: readonly string[];
  /**
   * The session's prepared statements (SQL PREPARE and protocol Parse share one
   * namespace in PostgreSQL), by name. EXECUTE of a name not in the map is opaque.
   */
  readonly preparedStatements?: ReadonlyMap<string, Analysis>;
}
