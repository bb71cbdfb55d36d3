/**
 * Catalog snapshots of the objects a DDL statement touches, for the audit log.
 *
 * For each DDL statement Warden records the affected objects' definitions
 * before and after it runs, read from the PostgreSQL catalog, so that "who
 * changed this table, when and why" is one query over the audit log.
 *
 * - {@link ddlTargets} lists the objects (schema + name; name `*` = the schema
 *   itself) the DDL statements of an analysis touch, from the analysis
 *   (StatementAnalysis.ddlTargets: the SQL is not parsed again).
 * - {@link snapshotObjects} reads their definitions ({@link ObjectDefinition},
 *   plain JSON, `null` when the object does not exist) through a {@link Querier}
 *   (a `pg.Client#query` fits), with the queries of `catalog-queries.ts`: one
 *   parameterized statement each; a target costs two round trips (resolve,
 *   then describe).
 * - `catalog-diff.ts` turns a before/after pair into short human-readable
 *   change lines for `warden audit`.
 *
 * Notes:
 * - Rendered expressions (`format_type`, `pg_get_expr`, `pg_get_indexdef`, ...)
 *   qualify names that are not visible on the querying session's search_path:
 *   take the before and after snapshots on the same session with the same
 *   search_path (the session running the DDL also sees its uncommitted changes).
 * - A failing catalog query inside a transaction block aborts that transaction;
 *   the queries are written not to fail on any name, but prefer an autocommit
 *   session when one is available.
 * - NOT NULL constraints are reported on the columns (`not_null`), never in
 *   `constraints` (PostgreSQL 18 also lists them in pg_constraint).
 *
 * @module
 */
import type { JsonValue } from './canonical.js';
import { FUNCTION_SQL, RELATION_SQL, RESOLVE_SQL, SCHEMA_SQL, TYPE_SQL } from './catalog-queries.js';
import { creationSchema, relationName } from '../sql/search-path.js';
import type { StatementAnalysis } from '../sql/types.js';

/** Runs one parameterized SQL statement; `pg.Client#query` fits. */
export type Querier = (sql: string, params: unknown[]) => Promise<{ rows: Record<string, unknown>[] }>;

/** What a snapshotted object is. */
export type ObjectKind =
  | 'table'
  | 'partitioned_table'
  | 'foreign_table'
  | 'view'
  | 'materialized_view'
  | 'sequence'
  | 'index'
  | 'partitioned_index'
  | 'toast_table'
  | 'function'
  | 'type'
  | 'schema';

/**
 * The definition of one object, as read from the catalog. Plain JSON only
 * (strings, booleans, null, arrays, plain objects; catalog numbers such as
 * sequence bounds are strings, so 64-bit values stay exact), safe for
 * canonical JSON hashing.
 *
 * Common members: `kind`, `schema`, `name`, `owner`. Further members by kind
 * (absent members are not applicable; `null` = not set):
 * - tables (`table`, `partitioned_table`, `foreign_table`): `persistence`,
 *   `columns` ({@link ColumnDefinition}[] in attnum order), `constraints`,
 *   `indexes`, `triggers` (non-internal) as {@link NamedDefinition}[] sorted by
 *   name, `rls_enabled`, `rls_forced`, `policies` ({@link PolicyDefinition}[]),
 *   `options` (reloptions), `inherits`, `partition_of`, `partition_bound`,
 *   `partition_key` / `partitions` (partitioned), `foreign` (server, options),
 *   `privileges` (relacl as text), `comment`;
 * - `view` / `materialized_view`: `definition` (pg_get_viewdef), `columns`,
 *   `options`, `triggers` (views) or `indexes` (materialized views), `privileges`, `comment`;
 * - `sequence`: `persistence`, `sequence` (type, start, increment, min, max,
 *   cache as strings, cycle), `owned_by`, `privileges`, `comment`;
 * - `index` / `partitioned_index`: `definition` (pg_get_indexdef), `table`,
 *   `partition_of`, `options`, `comment`;
 * - `function`: `overloads` ({@link FunctionOverload}[], every function,
 *   procedure or aggregate of the name, sorted by signature);
 * - `type`: `type_kind` (composite, enum, domain, range, ...), `columns`
 *   (composite), `labels` (enum), `base_type` / `not_null` / `default` /
 *   `constraints` (domain), `subtype` (range), `privileges`, `comment`;
 * - `schema`: `privileges`, `comment`, `relation_count`, `relations` (names
 *   of its tables, views, sequences, ... sorted; at most `SCHEMA_RELATIONS_LIMIT` of catalog-queries.ts).
 */
export interface ObjectDefinition {
  readonly kind: ObjectKind;
  readonly schema: string;
  readonly name: string;
  readonly owner: string | null;
  readonly [member: string]: JsonValue;
}

/** A column of a table, view or composite type. */
export type ColumnDefinition = {
  name: string;
  /** format_type(atttypid, atttypmod). */
  type: string;
  not_null: boolean;
  /** pg_get_expr of the default (not of a generation expression). */
  default: string | null;
  /** `always` / `by default` for an identity column. */
  identity: string | null;
  /** The generation expression of a generated column. */
  generated: string | null;
  /** Qualified collation name, only when not the type's default. */
  collation: string | null;
  comment: string | null;
};

/** A constraint, index or trigger: its name and rendered definition. */
export type NamedDefinition = { name: string; definition: string; enabled?: string };

/** A row-level security policy (from pg_policies). */
export type PolicyDefinition = {
  name: string;
  permissive: string;
  cmd: string;
  roles: string[];
  qual: string | null;
  with_check: string | null;
};

/** One overload of a function name. */
export type FunctionOverload = {
  /** pg_get_function_identity_arguments. */
  signature: string;
  /** function, procedure, aggregate or window. */
  routine_kind: string;
  result: string | null;
  owner: string;
  /** pg_get_functiondef (null for aggregates). */
  definition: string | null;
  privileges: string | null;
  comment: string | null;
};

/** Default cap of {@link snapshotObjects}. */
const DEFAULT_MAX_OBJECTS = 20;

// ---------------------------------------------------------------------------
// Snapshots

/** A JSON object (of a definition). */
export type JsonObject = { [key: string]: JsonValue };

export function isJsonObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parses a `json::text` column; undefined when absent or not an object/array. */
function parseJson(v: unknown): JsonValue | undefined {
  if (typeof v !== 'string') return undefined;
  try {
    return JSON.parse(v) as JsonValue;
  } catch {
    return undefined;
  }
}

function str(v: unknown): string | null {
  return typeof v === 'string' ? v : null;
}

const RELKIND: Record<string, ObjectKind> = {
  r: 'table',
  p: 'partitioned_table',
  f: 'foreign_table',
  v: 'view',
  m: 'materialized_view',
  S: 'sequence',
  i: 'index',
  I: 'partitioned_index',
  t: 'toast_table',
  c: 'type',
};

/** Members of the relation query kept for each kind (renamed: view/index_definition → definition, index_table → table). */
const RELATION_MEMBERS: Record<string, readonly string[]> = {
  table: ['persistence', 'columns', 'constraints', 'indexes', 'triggers', 'rls_enabled', 'rls_forced', 'policies', 'options',
    'inherits', 'partition_of', 'partition_bound', 'privileges', 'comment'],
  partitioned_table: ['persistence', 'columns', 'constraints', 'indexes', 'triggers', 'rls_enabled', 'rls_forced', 'policies',
    'options', 'partition_key', 'partitions', 'partition_of', 'partition_bound', 'privileges', 'comment'],
  foreign_table: ['columns', 'constraints', 'triggers', 'rls_enabled', 'rls_forced', 'policies', 'options', 'inherits',
    'partition_of', 'partition_bound', 'foreign', 'privileges', 'comment'],
  view: ['view_definition', 'columns', 'options', 'triggers', 'privileges', 'comment'],
  materialized_view: ['view_definition', 'columns', 'options', 'indexes', 'privileges', 'comment'],
  sequence: ['persistence', 'sequence', 'owned_by', 'privileges', 'comment'],
  index: ['index_definition', 'index_table', 'partition_of', 'options', 'comment'],
  partitioned_index: ['index_definition', 'index_table', 'partitions', 'partition_of', 'options', 'comment'],
  toast_table: ['options'],
  type: ['columns', 'comment'],
};

const RENAMED_MEMBERS: Record<string, string> = {
  view_definition: 'definition',
  index_definition: 'definition',
  index_table: 'table',
};

/** A server-side error (has a SQLSTATE and a severity), as opposed to a connection or client error. */
function sqlState(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { code?: unknown; severity?: unknown };
  if (typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) && typeof e.severity === 'string') return e.code;
  return undefined;
}

/**
 * SQLSTATE classes that are about the session, not the target: connection
 * exception, invalid transaction state, authorization, rollback (deadlock,
 * serialization), insufficient resources, operator intervention (cancel,
 * shutdown), system error, configuration file error.
 */
const SESSION_ERROR_CLASSES = new Set(['08', '25', '28', '40', '53', '57', '58', 'F0']);

async function rows(q: Querier, sql: string, params: unknown[]): Promise<Record<string, unknown>[]> {
  const res = await q(sql, params);
  return Array.isArray(res?.rows) ? res.rows : [];
}

function build(kind: ObjectKind, schema: string, name: string, owner: string | null, members: JsonObject): ObjectDefinition {
  return { ...members, kind, schema, name, owner };
}

async function describeRelation(q: Querier, oid: string): Promise<ObjectDefinition | null> {
  const [row] = await rows(q, RELATION_SQL, [oid]);
  if (!row) return null;
  const all = parseJson(row['def']);
  if (!isJsonObject(all)) return null;
  const kind = RELKIND[String(all['relkind'])];
  if (!kind) return null;
  const members: JsonObject = {};
  if (kind === 'type') members['type_kind'] = 'composite';
  for (const m of RELATION_MEMBERS[kind] ?? []) members[RENAMED_MEMBERS[m] ?? m] = all[m] ?? null;
  return build(kind, String(row['schema']), String(row['name']), str(all['owner']), members);
}

async function describeFunctions(q: Querier, schema: string, name: string): Promise<ObjectDefinition | null> {
  const [row] = await rows(q, FUNCTION_SQL, [schema, name]);
  const overloads = parseJson(row?.['def']);
  if (!Array.isArray(overloads) || overloads.length === 0) return null;
  const first = overloads[0];
  const owner = isJsonObject(first) ? str(first['owner']) : null;
  return build('function', schema, name, owner, { overloads });
}

async function describeType(q: Querier, oid: string): Promise<ObjectDefinition | null> {
  const [row] = await rows(q, TYPE_SQL, [oid]);
  if (!row) return null;
  const all = parseJson(row['def']);
  if (!isJsonObject(all)) return null;
  const members: JsonObject = { type_kind: all['type_kind'] ?? null };
  const typeKind = all['type_kind'];
  if (typeKind === 'enum') members['labels'] = all['labels'] ?? [];
  if (typeKind === 'domain') {
    for (const m of ['base_type', 'not_null', 'default', 'constraints']) members[m] = all[m] ?? null;
  }
  if (typeKind === 'range') members['subtype'] = all['subtype'] ?? null;
  members['privileges'] = all['privileges'] ?? null;
  members['comment'] = all['comment'] ?? null;
  return build('type', String(row['schema']), String(row['name']), str(all['owner']), members);
}

async function describeSchema(q: Querier, oid: string): Promise<ObjectDefinition | null> {
  const [row] = await rows(q, SCHEMA_SQL, [oid]);
  if (!row) return null;
  const all = parseJson(row['def']);
  if (!isJsonObject(all)) return null;
  const { owner, ...members } = all;
  const schema = String(row['schema']);
  return build('schema', schema, schema, str(owner), members);
}

/** Reads one target's definition; null when it does not exist. */
async function snapshotOne(q: Querier, schema: string, name: string): Promise<ObjectDefinition | null> {
  // Names PostgreSQL cannot hold: nothing to look up (and a NUL would make the server reject the query).
  if (!schema || !name || schema.includes('\0') || name.includes('\0')) return null;
  const [res] = await rows(q, RESOLVE_SQL, [schema, name]);
  if (!res || typeof res['nsp'] !== 'string') return null;
  if (name === '*') return describeSchema(q, res['nsp']);
  if (typeof res['rel'] === 'string') return describeRelation(q, res['rel']);
  if (res['func'] === true) return describeFunctions(q, schema, name);
  if (typeof res['typ'] === 'string') return describeType(q, res['typ']);
  return null;
}

/** The key of a target in {@link snapshotObjects}' result: `schema.name`, each part quoted like quote_ident when needed. */
export function targetKey(target: { readonly schema: string; readonly name: string }): string {
  return relationName(target.schema, target.name);
}

/**
 * Reads the definitions of `targets` from the catalog, keyed by {@link targetKey}
 * (`schema.name`; `schema.*` for a schema). A value is `null` when the object
 * does not exist (before CREATE, after DROP). `name: '*'` snapshots the schema
 * itself; otherwise the name is looked up as a relation, then as a function
 * (all overloads), then as a type.
 *
 * Targets are de-duplicated, then capped at `opts.maxObjects` (default 20): the
 * ones past the cap get no key. Never rejects because of a target (an odd
 * name, an object dropped concurrently, a catalog function failing on it: its
 * value is `null`); rejects on connection and session errors (broken
 * connection, cancel, aborted transaction, ...).
 */
export async function snapshotObjects(
  q: Querier,
  targets: readonly { schema: string; name: string }[],
  opts: { maxObjects?: number } = {},
): Promise<Record<string, ObjectDefinition | null>> {
  const max = Math.max(0, Math.floor(opts.maxObjects ?? DEFAULT_MAX_OBJECTS));
  const out: Record<string, ObjectDefinition | null> = {};
  let count = 0;
  for (const t of targets) {
    if (typeof t?.schema !== 'string' || typeof t?.name !== 'string') continue;
    const key = targetKey(t);
    if (Object.hasOwn(out, key)) continue;
    if (count >= max) break;
    count++;
    try {
      out[key] = await snapshotOne(q, t.schema, t.name);
    } catch (err) {
      const state = sqlState(err);
      if (state === undefined || SESSION_ERROR_CLASSES.has(state.slice(0, 2))) throw err;
      out[key] = null;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// Targets of DDL statements

/**
 * The objects the DDL statements of an analysis touch, de-duplicated, in order:
 * for each statement whose classes include `ddl` or `drop` (TRUNCATE excepted:
 * it changes rows, not definitions), every `writes` entry (`name: '*'` for a
 * schema), then its other {@link StatementAnalysis.ddlTargets}: the index of
 * CREATE INDEX, the new name of a renamed relation, routines and types.
 *
 * Classes and `writes` are taken as the audit sees them, with the effects of
 * the code the statement runs (a function whose body creates a table), which
 * the code catalog adds after the analysis.
 *
 * Unqualified relations take the analysis' most likely schema (`schema` of the
 * reference); unqualified routines and types take the schema CREATE would use
 * with `opts.searchPath` (default: `"$user", public` → `public` without `opts.user`).
 */
export function ddlTargets(
  statements: readonly StatementAnalysis[],
  opts: { searchPath?: readonly string[] | null; user?: string } = {},
): { schema: string; name: string }[] {
  const defaultSchema = creationSchema(opts.searchPath ?? null, opts.user) ?? 'public';
  const out: { schema: string; name: string }[] = [];
  const seen = new Set<string>();
  const add = (schema: string, name: string): void => {
    if (!schema || !name) return;
    const key = relationName(schema, name);
    if (seen.has(key)) return;
    seen.add(key);
    out.push({ schema, name });
  };
  for (const sa of statements) {
    if (!(sa.classes.has('ddl') || sa.classes.has('drop')) || sa.kind === 'truncate') continue;
    for (const w of sa.writes) add(w.schema, w.table);
    for (const t of sa.ddlTargets) add(t.schema ?? defaultSchema, t.name);
  }
  return out;
}
