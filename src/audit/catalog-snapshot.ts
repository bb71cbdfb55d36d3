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
 *   (a `pg.Client#query` fits). Each catalog query is one parameterized
 *   statement; a target costs two round trips (resolve, then describe).
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
 *   of its tables, views, sequences, ... sorted; at most {@link SCHEMA_RELATIONS_LIMIT}).
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

/** The most relation names a schema snapshot lists. */
export const SCHEMA_RELATIONS_LIMIT = 1000;

/** Default cap of {@link snapshotObjects}. */
const DEFAULT_MAX_OBJECTS = 20;

// ---------------------------------------------------------------------------
// Catalog queries (each one parameterized statement, $1/$2 only)

/** Resolves schema ($1) + name ($2): no row = no such schema. */
const RESOLVE_SQL = `
SELECT n.oid::text AS nsp,
  (SELECT c.oid::text FROM pg_catalog.pg_class c WHERE c.relnamespace = n.oid AND c.relname = $2::text) AS rel,
  EXISTS (SELECT 1 FROM pg_catalog.pg_proc p WHERE p.pronamespace = n.oid AND p.proname = $2::text) AS func,
  (SELECT t.oid::text FROM pg_catalog.pg_type t WHERE t.typnamespace = n.oid AND t.typname = $2::text) AS typ
FROM pg_catalog.pg_namespace n WHERE n.nspname = $1::text`;

/** Describes the relation of oid $1. */
const RELATION_SQL = `
SELECT n.nspname AS schema, c.relname AS name, pg_catalog.json_build_object(
  'relkind', c.relkind::text,
  'owner', pg_catalog.pg_get_userbyid(c.relowner),
  'persistence', CASE c.relpersistence WHEN 'p' THEN 'permanent' WHEN 'u' THEN 'unlogged' WHEN 't' THEN 'temporary' END,
  'columns', CASE WHEN c.relkind IN ('r', 'p', 'f', 'v', 'm', 'c') THEN COALESCE((
    SELECT pg_catalog.json_agg(pg_catalog.json_build_object(
      'name', a.attname,
      'type', pg_catalog.format_type(a.atttypid, a.atttypmod),
      'not_null', a.attnotnull,
      'default', CASE WHEN a.attgenerated = '' THEN pg_catalog.pg_get_expr(d.adbin, d.adrelid) END,
      'identity', CASE a.attidentity WHEN 'a' THEN 'always' WHEN 'd' THEN 'by default' END,
      'generated', CASE WHEN a.attgenerated <> '' THEN pg_catalog.pg_get_expr(d.adbin, d.adrelid) END,
      'collation', CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation THEN (
        SELECT pg_catalog.quote_ident(cn.nspname) || '.' || pg_catalog.quote_ident(co.collname)
        FROM pg_catalog.pg_collation co JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
        WHERE co.oid = a.attcollation) END,
      'comment', pg_catalog.col_description(c.oid, a.attnum)
    ) ORDER BY a.attnum)
    FROM pg_catalog.pg_attribute a
    LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    LEFT JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '[]') END,
  'constraints', COALESCE((
    SELECT pg_catalog.json_agg(pg_catalog.json_build_object('name', k.conname, 'definition', pg_catalog.pg_get_constraintdef(k.oid, true))
      ORDER BY k.conname)
    FROM pg_catalog.pg_constraint k WHERE k.conrelid = c.oid AND k.contype <> 'n'), '[]'),
  'indexes', COALESCE((
    SELECT pg_catalog.json_agg(pg_catalog.json_build_object('name', ic.relname, 'definition', pg_catalog.pg_get_indexdef(i.indexrelid))
      ORDER BY ic.relname)
    FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = c.oid), '[]'),
  'triggers', COALESCE((
    SELECT pg_catalog.json_agg(pg_catalog.json_build_object('name', g.tgname, 'definition', pg_catalog.pg_get_triggerdef(g.oid, true),
      'enabled', CASE g.tgenabled WHEN 'O' THEN 'origin' WHEN 'D' THEN 'disabled' WHEN 'R' THEN 'replica' WHEN 'A' THEN 'always' END)
      ORDER BY g.tgname)
    FROM pg_catalog.pg_trigger g WHERE g.tgrelid = c.oid AND NOT g.tgisinternal), '[]'),
  'rls_enabled', c.relrowsecurity,
  'rls_forced', c.relforcerowsecurity,
  'policies', COALESCE((
    SELECT pg_catalog.json_agg(pg_catalog.json_build_object('name', pol.policyname, 'permissive', pol.permissive, 'cmd', pol.cmd,
      'roles', pg_catalog.to_json(pol.roles), 'qual', pol.qual, 'with_check', pol.with_check) ORDER BY pol.policyname)
    FROM pg_catalog.pg_policies pol WHERE pol.schemaname = n.nspname AND pol.tablename = c.relname), '[]'),
  'options', pg_catalog.to_json(c.reloptions),
  'inherits', COALESCE((
    SELECT pg_catalog.json_agg(pg_catalog.quote_ident(pn.nspname) || '.' || pg_catalog.quote_ident(pc.relname) ORDER BY h.inhseqno)
    FROM pg_catalog.pg_inherits h JOIN pg_catalog.pg_class pc ON pc.oid = h.inhparent
    JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace
    WHERE h.inhrelid = c.oid AND NOT c.relispartition), '[]'),
  'partition_of', (
    SELECT pg_catalog.quote_ident(pn.nspname) || '.' || pg_catalog.quote_ident(pc.relname)
    FROM pg_catalog.pg_inherits h JOIN pg_catalog.pg_class pc ON pc.oid = h.inhparent
    JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace
    WHERE h.inhrelid = c.oid AND c.relispartition LIMIT 1),
  'partition_bound', CASE WHEN c.relispartition AND c.relkind IN ('r', 'p', 'f') THEN pg_catalog.pg_get_expr(c.relpartbound, c.oid) END,
  'partition_key', CASE WHEN c.relkind = 'p' THEN pg_catalog.pg_get_partkeydef(c.oid) END,
  'partitions', CASE WHEN c.relkind IN ('p', 'I') THEN COALESCE((
    SELECT pg_catalog.json_agg(x.q ORDER BY x.q COLLATE "C") FROM (
      SELECT pg_catalog.quote_ident(pn.nspname) || '.' || pg_catalog.quote_ident(pc.relname) AS q
      FROM pg_catalog.pg_inherits h JOIN pg_catalog.pg_class pc ON pc.oid = h.inhrelid
      JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace
      WHERE h.inhparent = c.oid) x), '[]') END,
  'view_definition', CASE WHEN c.relkind IN ('v', 'm') THEN pg_catalog.pg_get_viewdef(c.oid, true) END,
  'index_definition', CASE WHEN c.relkind IN ('i', 'I') THEN pg_catalog.pg_get_indexdef(c.oid) END,
  'index_table', (
    SELECT pg_catalog.quote_ident(tn.nspname) || '.' || pg_catalog.quote_ident(tc.relname)
    FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class tc ON tc.oid = i.indrelid
    JOIN pg_catalog.pg_namespace tn ON tn.oid = tc.relnamespace WHERE i.indexrelid = c.oid),
  'sequence', (
    SELECT pg_catalog.json_build_object('type', pg_catalog.format_type(s.seqtypid, NULL), 'start', s.seqstart::text,
      'increment', s.seqincrement::text, 'min', s.seqmin::text, 'max', s.seqmax::text, 'cache', s.seqcache::text, 'cycle', s.seqcycle)
    FROM pg_catalog.pg_sequence s WHERE s.seqrelid = c.oid),
  'owned_by', CASE WHEN c.relkind = 'S' THEN (
    SELECT pg_catalog.quote_ident(dn.nspname) || '.' || pg_catalog.quote_ident(dc.relname) || '.' || pg_catalog.quote_ident(da.attname)
    FROM pg_catalog.pg_depend dp JOIN pg_catalog.pg_class dc ON dc.oid = dp.refobjid
    JOIN pg_catalog.pg_namespace dn ON dn.oid = dc.relnamespace
    JOIN pg_catalog.pg_attribute da ON da.attrelid = dp.refobjid AND da.attnum = dp.refobjsubid
    WHERE dp.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND dp.objid = c.oid
      AND dp.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND dp.deptype IN ('a', 'i') LIMIT 1) END,
  'foreign', CASE WHEN c.relkind = 'f' THEN (
    SELECT pg_catalog.json_build_object('server', fs.srvname, 'options', pg_catalog.to_json(ft.ftoptions))
    FROM pg_catalog.pg_foreign_table ft JOIN pg_catalog.pg_foreign_server fs ON fs.oid = ft.ftserver WHERE ft.ftrelid = c.oid) END,
  'privileges', c.relacl::text,
  'comment', pg_catalog.obj_description(c.oid, 'pg_class')
)::text AS def
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = $1::text::oid`;

/** Describes every routine of schema $1 named $2. */
const FUNCTION_SQL = `
SELECT pg_catalog.json_agg(pg_catalog.json_build_object(
  'signature', x.sig,
  'routine_kind', CASE p.prokind WHEN 'f' THEN 'function' WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate' WHEN 'w' THEN 'window' END,
  'result', pg_catalog.pg_get_function_result(p.oid),
  'owner', pg_catalog.pg_get_userbyid(p.proowner),
  'definition', CASE WHEN p.prokind <> 'a' THEN pg_catalog.pg_get_functiondef(p.oid) END,
  'privileges', p.proacl::text,
  'comment', pg_catalog.obj_description(p.oid, 'pg_proc')
) ORDER BY x.sig COLLATE "C")::text AS def
FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
CROSS JOIN LATERAL (SELECT pg_catalog.pg_get_function_identity_arguments(p.oid) AS sig) x
WHERE n.nspname = $1::text AND p.proname = $2::text`;

/** Describes the type of oid $1. */
const TYPE_SQL = `
SELECT n.nspname AS schema, t.typname AS name, pg_catalog.json_build_object(
  'owner', pg_catalog.pg_get_userbyid(t.typowner),
  'type_kind', CASE t.typtype WHEN 'b' THEN 'base' WHEN 'c' THEN 'composite' WHEN 'd' THEN 'domain' WHEN 'e' THEN 'enum'
    WHEN 'p' THEN 'pseudo' WHEN 'r' THEN 'range' WHEN 'm' THEN 'multirange' END,
  'labels', CASE WHEN t.typtype = 'e' THEN COALESCE((
    SELECT pg_catalog.json_agg(e.enumlabel ORDER BY e.enumsortorder) FROM pg_catalog.pg_enum e WHERE e.enumtypid = t.oid), '[]') END,
  'base_type', CASE WHEN t.typtype = 'd' THEN pg_catalog.format_type(t.typbasetype, t.typtypmod) END,
  'not_null', t.typnotnull,
  'default', t.typdefault,
  'constraints', COALESCE((
    SELECT pg_catalog.json_agg(pg_catalog.json_build_object('name', k.conname, 'definition', pg_catalog.pg_get_constraintdef(k.oid, true))
      ORDER BY k.conname)
    FROM pg_catalog.pg_constraint k WHERE k.contypid = t.oid AND k.contype <> 'n'), '[]'),
  'subtype', (SELECT pg_catalog.format_type(r.rngsubtype, NULL) FROM pg_catalog.pg_range r WHERE r.rngtypid = t.oid),
  'privileges', t.typacl::text,
  'comment', pg_catalog.obj_description(t.oid, 'pg_type')
)::text AS def
FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
WHERE t.oid = $1::text::oid`;

/** Describes the schema of oid $1. */
const SCHEMA_SQL = `
SELECT n.nspname AS schema, pg_catalog.json_build_object(
  'owner', pg_catalog.pg_get_userbyid(n.nspowner),
  'privileges', n.nspacl::text,
  'comment', pg_catalog.obj_description(n.oid, 'pg_namespace'),
  'relation_count', (SELECT pg_catalog.count(*)::text FROM pg_catalog.pg_class c
    WHERE c.relnamespace = n.oid AND c.relkind IN ('r', 'p', 'f', 'v', 'm', 'S')),
  'relations', COALESCE((
    SELECT pg_catalog.json_agg(x.relname ORDER BY x.relname) FROM (
      SELECT c.relname FROM pg_catalog.pg_class c
      WHERE c.relnamespace = n.oid AND c.relkind IN ('r', 'p', 'f', 'v', 'm', 'S')
      ORDER BY c.relname LIMIT ${SCHEMA_RELATIONS_LIMIT}) x), '[]')
)::text AS def
FROM pg_catalog.pg_namespace n WHERE n.oid = $1::text::oid`;

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
