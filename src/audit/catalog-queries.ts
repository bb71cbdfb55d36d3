/**
 * The catalog queries behind the audit's DDL snapshots (catalog-snapshot.ts):
 * each one parameterized statement ($1/$2 only) that builds an object's
 * definition as one JSON value, so a target costs two round trips (resolve,
 * then describe). Read-only, schema-qualified (`pg_catalog.`), written not to
 * fail on any name: they may run inside the session's own transaction.
 *
 * @module
 */

/** The most relation names a schema snapshot lists. */
export const SCHEMA_RELATIONS_LIMIT = 1000;

/** Resolves schema ($1) + name ($2): no row = no such schema. */
export const RESOLVE_SQL = `
SELECT n.oid::text AS nsp,
  (SELECT c.oid::text FROM pg_catalog.pg_class c WHERE c.relnamespace = n.oid AND c.relname = $2::text) AS rel,
  EXISTS (SELECT 1 FROM pg_catalog.pg_proc p WHERE p.pronamespace = n.oid AND p.proname = $2::text) AS func,
  (SELECT t.oid::text FROM pg_catalog.pg_type t WHERE t.typnamespace = n.oid AND t.typname = $2::text) AS typ
FROM pg_catalog.pg_namespace n WHERE n.nspname = $1::text`;

/** Describes the relation of oid $1. */
export const RELATION_SQL = `
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
export const FUNCTION_SQL = `
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
export const TYPE_SQL = `
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
export const SCHEMA_SQL = `
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
