/**
 * `explain_policy` and the sensitivity column of `describe_table`: the
 * `warden policy explain` code path (analyzeSql → decide with the configured
 * policy → explainToJSON), for the MCP caller's own identity. A dry run that
 * decides nothing for real: the statements themselves are decided by the
 * listener when they are sent.
 *
 * As `warden policy explain` does, the functions, triggers and rules a statement
 * may run are read from the database's catalog (on the service connection, with a
 * {@link CodeAccess}); when they cannot be read, the answer says so (the running
 * Warden reads them when the statement is sent, and refuses what it cannot see).
 */
import type { IdentityConfig, WardenConfig } from '../config/types.js';
import { analyzeSql, initSqlParser, parseSearchPath } from '../sql/index.js';
import { decide, explainToJSON, formatExplain, policyFromConfig, type CompiledPolicy, type Decision } from '../policy/index.js';
import { intentOf } from '../intent/sqlcommenter.js';
import { createCodeCatalog, mayRunCode, type CodeCatalog } from '../governance/code-catalog.js';
import { createCatalogReader } from '../governance/catalog-reader.js';
import { silentLogger } from '../log/logger.js';

const compiled = new WeakMap<WardenConfig, CompiledPolicy>();

function policyOf(config: WardenConfig): CompiledPolicy {
  let p = compiled.get(config);
  if (!p) compiled.set(config, (p = policyFromConfig(config)));
  return p;
}

export interface ExplainAnswer {
  identity: string;
  database: string;
  intent: Record<string, string>;
  action: string;
  reason: string;
  text: string;
  catalog?: string;
  json: ReturnType<typeof explainToJSON>;
  decision: Decision;
}

/** The catalog access `explain_policy` reads code through (the policy explain command's, kept open). */
export interface CodeAccess {
  readonly catalog: CodeCatalog;
  close(): Promise<void>;
}

export function createCodeAccess(): CodeAccess {
  const reader = createCatalogReader(silentLogger());
  return { catalog: createCodeCatalog({ query: (d, q) => reader.query(d, q, []) }), close: () => reader.close() };
}

export async function explainFor(
  config: WardenConfig,
  identity: IdentityConfig,
  database: string,
  sql: string,
  intent: Readonly<Record<string, string>> = {},
  searchPath = '"$user", public',
  code?: CodeAccess,
): Promise<ExplainAnswer> {
  const db = Object.hasOwn(config.databases, database) ? config.databases[database] : undefined;
  if (!db) throw new Error(`no database named "${database}" (list_databases shows them)`);
  await initSqlParser();
  const path = parseSearchPath(searchPath) ?? ['$user', 'public'];
  const actx = { searchPath: path, user: db.upstream.user };
  let analysis = analyzeSql(sql, actx);
  let catalog: string | undefined;
  if (mayRunCode(analysis)) {
    if (!code) catalog = 'not read here: the functions this statement calls and the triggers and rules of the tables it writes are judged by the running Warden when it is sent (it refuses what it cannot see)';
    else {
      try {
        analysis = await code.catalog.resolve(db, analysis, actx);
        catalog = `functions, triggers and rules read from ${db.upstream.redactedUrl}`;
      } catch (err) {
        catalog = `not read (${(err as Error).message}): the functions this statement calls and the triggers and rules of the tables it writes are not judged here; the running Warden reads them and refuses what it cannot see`;
      }
    }
  }
  const settings = new Map(Object.entries(intent));
  const fullIntent = intentOf(settings, sql);
  const decision = decide(
    { identity, session: { database: db.name, environment: db.environment, intent: fullIntent, now: new Date() }, analysis },
    policyOf(config),
  );
  return {
    identity: identity.name,
    database: db.name,
    intent: fullIntent,
    action: decision.action,
    reason: decision.reason,
    text: formatExplain(analysis, decision),
    ...(catalog ? { catalog } : {}),
    json: explainToJSON(analysis, decision),
    decision,
  };
}

/** Quotes an identifier for a generated statement. */
export function quoteIdent(s: string): string {
  return `"${s.replace(/"/g, '""')}"`;
}

/** One column's sensitivity for this identity: the type(s) `sensitive.columns` gives it, and whether a mask rule applies to it. */
export async function columnSensitivity(
  config: WardenConfig,
  identity: IdentityConfig,
  database: string,
  schema: string,
  table: string,
  column: string,
): Promise<{ sensitive: string[]; masked: boolean; action: string }> {
  const sql = `SELECT ${quoteIdent(column)} FROM ${quoteIdent(schema)}.${quoteIdent(table)}`;
  const e = await explainFor(config, identity, database, sql);
  const sensitive = [...e.decision.sensitiveTypes];
  return { sensitive, masked: e.decision.masked && sensitive.length > 0, action: e.decision.action };
}
