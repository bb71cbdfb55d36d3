/**
 * search_path handling and schema-qualified relation names.
 *
 * Resolution rule for an unqualified relation name `t` (Warden does not know the
 * catalog, so it keeps every possibility):
 * - `candidates`: every schema of the path that could hold `t`: each listed
 *   schema, `$user` replaced by the upstream user (skipped when unknown, as
 *   PostgreSQL skips a `$user` schema that does not exist), `pg_catalog` only for
 *   names starting with `pg_` (every catalog relation does, and user tables cannot
 *   be created there), `pg_temp` only when listed (temporary tables shadowing a
 *   name are assumed absent). An unknown path adds `*` (any schema).
 * - `schema` (the primary, shown in audit): `pg_catalog` for `pg_*` names,
 *   otherwise the first listed schema that is not pg_catalog/pg_temp.
 *
 * @module
 */
import type { RelationRef } from './types.js';

/** PostgreSQL's default search_path. */
export const DEFAULT_SEARCH_PATH: readonly string[] = ['$user', 'public'];

/**
 * Parses a search_path setting value (`"$user", public, "My Schema"`) like
 * PostgreSQL's SplitIdentifierString: comma separated, unquoted names
 * lower-cased, double-quoted names kept verbatim (`""` = a quote).
 * Returns `null` when the text is not a valid list.
 */
export function parseSearchPath(text: string): string[] | null {
  if (text.trim() === '') return [];
  return splitIdentifierList(text, ',');
}

/**
 * Splits `text` into identifiers separated by `sep`, as PostgreSQL's
 * SplitIdentifierString does: white space around names and separators is
 * skipped, unquoted names are lower-cased, double-quoted ones kept verbatim
 * (`""` = a quote). Returns `null` when the text is not such a list.
 */
function splitIdentifierList(text: string, sep: ',' | '.'): string[] | null {
  const out: string[] = [];
  let i = 0;
  const n = text.length;
  const skipWs = (): void => {
    while (i < n && /\s/.test(text[i]!)) i++;
  };
  for (;;) {
    skipWs();
    let name = '';
    if (text[i] === '"') {
      i++;
      for (;;) {
        if (i >= n) return null;
        if (text[i] === '"') {
          if (text[i + 1] === '"') {
            name += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        name += text[i++];
      }
    } else {
      const start = i;
      while (i < n && text[i] !== sep && !/\s/.test(text[i]!)) i++;
      name = text.slice(start, i).toLowerCase();
      if (name === '') return null;
    }
    out.push(name);
    skipWs();
    if (i >= n) break;
    if (text[i] !== sep) return null;
    i++;
  }
  return out;
}

const SAFE_IDENT = /^[a-z_][a-z0-9_$]*$/;

/** Quotes an identifier like PostgreSQL's quote_ident (only when needed). `*` stays bare. */
export function quoteIdent(name: string): string {
  if (name === '*' || SAFE_IDENT.test(name)) return name;
  return `"${name.replace(/"/g, '""')}"`;
}

/** Display name `schema.table`. */
export function relationName(schema: string, table: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(table)}`;
}

/** Builds the ref of a schema-qualified relation. */
export function qualifiedRelation(schema: string, table: string): RelationRef {
  return Object.freeze({
    name: relationName(schema, table),
    schema,
    table,
    qualified: true,
    candidates: Object.freeze([schema]),
  });
}

function isTempSchema(s: string): boolean {
  return s === 'pg_temp' || /^pg_temp_\d+$/.test(s);
}

/**
 * Resolves an unqualified relation name with a search path (see module doc).
 *
 * @param path the path, or `null` when unknown
 * @param user the upstream user for `$user`
 * @param temp the relation is created TEMPORARY (resolves to pg_temp)
 */
export function resolveUnqualified(table: string, path: readonly string[] | null, user?: string, temp = false): RelationRef {
  if (temp) {
    return Object.freeze({
      name: relationName('pg_temp', table),
      schema: 'pg_temp',
      table,
      qualified: false,
      candidates: Object.freeze(['pg_temp']),
    });
  }
  const isCatalogName = table.startsWith('pg_');
  const candidates: string[] = [];
  const push = (s: string) => {
    if (!candidates.includes(s)) candidates.push(s);
  };
  let primary: string | undefined;
  if (isCatalogName) {
    primary = 'pg_catalog';
    push('pg_catalog');
  }
  const effective = path ?? DEFAULT_SEARCH_PATH;
  for (const raw of effective) {
    let s = raw;
    if (s === '$user') {
      if (!user) continue;
      s = user;
    }
    if (s === 'pg_catalog') {
      if (isCatalogName) push(s);
      continue;
    }
    push(s);
    if (primary === undefined && !isTempSchema(s)) primary = s;
  }
  if (path === null) push('*');
  if (primary === undefined) primary = candidates.find((c) => c !== '*' && !isTempSchema(c)) ?? 'public';
  if (!candidates.includes(primary)) candidates.unshift(primary);
  return Object.freeze({
    name: relationName(primary, table),
    schema: primary,
    table,
    qualified: false,
    candidates: Object.freeze(candidates),
  });
}

/**
 * The schema a CREATE of an unqualified name lands in: the first listed schema
 * that is not pg_catalog/pg_temp (`$user` resolved when known).
 */
export function creationSchema(path: readonly string[] | null, user?: string): string | null {
  for (const raw of path ?? DEFAULT_SEARCH_PATH) {
    const s = raw === '$user' ? user : raw;
    if (!s || s === 'pg_catalog' || isTempSchema(s)) continue;
    return s;
  }
  return null;
}

/**
 * Every schema an unqualified CREATE could put its object in: PostgreSQL takes
 * the first schema of the path that exists, and which exist is not known here
 * (`$user` often does not). `null` when the path is unknown.
 */
export function creationCandidates(path: readonly string[] | null, user?: string): string[] | null {
  if (path === null) return null;
  const out: string[] = [];
  for (const raw of path) {
    const s = raw === '$user' ? user : raw;
    if (!s || s === 'pg_catalog' || isTempSchema(s) || out.includes(s)) continue;
    out.push(s);
  }
  return out;
}

/** Resolves a relation given as name parts (`[table]`, `[schema, table]`, `[db, schema, table]`). */
export function resolveNameParts(parts: readonly string[], path: readonly string[] | null, user?: string): RelationRef {
  if (parts.length >= 2) return qualifiedRelation(parts[parts.length - 2]!, parts[parts.length - 1]!);
  return resolveUnqualified(parts[0] ?? '', path, user);
}

/**
 * Parses a relation name given as text the way a `regclass` input does
 * (`'billing."Invoices"'`): dot-separated identifiers, unquoted ones lower-cased.
 * Returns `null` when it is not a valid name.
 */
export function parseQualifiedName(text: string): string[] | null {
  const parts = splitIdentifierList(text, '.');
  return parts && parts.length > 0 && parts.length <= 3 ? parts : null;
}
