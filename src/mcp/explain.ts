/**
 * `explain_policy` and the sensitivity column of `describe_table`: the
 * `warden policy explain` code path (analyzeSql → decide with the configured
 * policy → explainToJSON), for the MCP caller's own identity. A dry run that
 * decides nothing for real: the statements themselves are decided by the
 * listener when they are sent.
 *
 * Like `warden policy explain --no-catalog`, the functions, triggers and rules a
 * statement may run are not read from the database here (the running Warden
 * reads them, and refuses what it cannot see); the answer says so.
 */
import type { IdentityConfig, WardenConfig } from '../config/types.js';
import { analyzeSql, initSqlParser, parseSearchPath } from '../sql/index.js';
import { decide, explainToJSON, formatExplain, policyFromConfig, type CompiledPolicy, type Decision } from '../policy/index.js';
import { intentOf } from '../intent/sqlcommenter.js';
import { mayRunCode } from '../governance/code-catalog.js';

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

export async function explainFor(
  config: WardenConfig,
  identity: IdentityConfig,
  database: string,
  sql: string,
  intent: Readonly<Record<string, string>> = {},
  searchPath = '"$user", public',
): Promise<ExplainAnswer> {
  const db = Object.hasOwn(config.databases, database) ? config.databases[database] : undefined;
  if (!db) throw new Error(`no database named "${database}" (list_databases shows them)`);
  await initSqlParser();
  const path = parseSearchPath(searchPath) ?? ['$user', 'public'];
  const analysis = analyzeSql(sql, { searchPath: path, user: db.upstream.user });
  const settings = new Map(Object.entries(intent));
  const fullIntent = intentOf(settings, sql);
  const decision = decide(
    { identity, session: { database: db.name, environment: db.environment, intent: fullIntent, now: new Date() }, analysis },
    policyOf(config),
  );
  const catalog = mayRunCode(analysis)
    ? 'not read here: the functions this statement calls and the triggers and rules of the tables it writes are judged by the running Warden when it is sent (it refuses what it cannot see)'
    : undefined;
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
