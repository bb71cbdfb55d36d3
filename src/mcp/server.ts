/**
 * Warden's MCP server: the tools an agent calls, each a thin shell over a
 * {@link WireSession} (statements go to Warden's own listener as the caller's
 * identity) or over the `policy explain` code (dry runs). Errors are tool
 * errors (`isError: true`) carrying what a PostgreSQL client would see — the
 * message, SQLSTATE, detail and hint — never a stack trace.
 */
import { McpServer, ResourceTemplate } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CallToolResult, ReadResourceResult } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import type { WardenConfig } from '../config/types.js';
import type { ApprovalRequest } from '../store/types.js';
import fs from 'node:fs';
import type { Caller } from './identity.js';
import { WireSession, type RunOutcome, type WireError } from './wire-session.js';
import { columnSensitivity, explainFor, type CodeAccess } from './explain.js';
import { MAX_INTENT_VALUE } from '../intent/sqlcommenter.js';

export const DEFAULT_ROW_CAP = 100;

/** The version in package.json (two levels up from src/mcp/ and dist/mcp/). */
const WARDEN_VERSION = ((): string => {
  try {
    return (JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
})();
export const MAX_ROW_CAP = 10_000;

export interface McpContext {
  /** The configuration (the live one, in the Warden process). */
  config(): WardenConfig;
  caller: Caller;
  wire: WireSession;
  /** The catalog access explain_policy reads functions, triggers and rules through (absent: not read). */
  code?: CodeAccess;
  /** The caller's on-behalf-of user when the caller does not say (stdio: read from the session Warden set up). */
  onBehalfOf?(): Promise<string | undefined>;
  /** Reads an approval request from the state store (for requests not waiting in this session). */
  request?(id: string): Promise<ApprovalRequest | null>;
}

/** A tool answer: compact JSON (indentation would cost encoding time and an agent's tokens: a 100-row result is twice as long indented). */
function json(value: unknown): CallToolResult {
  return { content: [{ type: 'text', text: JSON.stringify(value) }] };
}

function toolError(e: WireError): CallToolResult {
  const text = `${e.message} (SQLSTATE ${e.code})${e.detail ? `\nDETAIL: ${e.detail}` : ''}${e.hint ? `\nHINT: ${e.hint}` : ''}`;
  return { isError: true, content: [{ type: 'text', text }, { type: 'text', text: JSON.stringify({ error: e }) }] };
}

function plainError(message: string): CallToolResult {
  return { isError: true, content: [{ type: 'text', text: message }] };
}

/** The text with lone surrogates replaced by U+FFFD (encodeURIComponent throws on them). */
export function wellFormed(s: string): string {
  return s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
}

/** The sqlcommenter comment carrying a call's intent (src/intent/sqlcommenter.ts reads it like any client's). */
export function intentComment(intent: Readonly<Record<string, string | undefined>>): string {
  const pairs = Object.entries(intent)
    .filter((e): e is [string, string] => typeof e[1] === 'string' && e[1] !== '')
    .map(([k, v]) => `${k}='${encodeURIComponent(wellFormed(v.slice(0, MAX_INTENT_VALUE))).replace(/'/g, '%27')}'`);
  return pairs.length ? `/* ${pairs.join(',')} */ ` : '';
}

/** The tool answer for an outcome of `query` (exported for bench/mcp-query.js, which measures its encoding). */
export function queryResult(o: RunOutcome): CallToolResult {
  switch (o.kind) {
    case 'error':
      return toolError(o.error);
    case 'pending':
      return json({
        status: 'pending_approval',
        request: o.pending.request,
        mode: o.pending.mode,
        message: o.pending.message,
        ...(o.pending.approvers ? { approvers: o.pending.approvers } : {}),
        ...(o.pending.hint ? { hint: o.pending.hint } : {}),
        next:
          o.pending.mode === 'hold'
            ? 'the statement waits in Warden; call approval_status with this request id (or repeat the identical query) to get its result once approved; it runs exactly once'
            : 'nothing ran; once approved, repeat the identical query and Warden runs it once',
      });
    case 'result': {
      const sets = o.sets.map((s) => ({ command: s.command, rowCount: s.rowCount, columns: s.columns, rows: s.rows, truncated: s.truncated }));
      const body = sets.length === 1 ? { status: 'ok', ...sets[0] } : { status: 'ok', results: sets };
      return json(o.notices.length ? { ...body, notices: o.notices } : body);
    }
  }
}

const param = z.union([z.string(), z.number(), z.boolean(), z.null()]);

type Answer<T> = { value: T } | { error: CallToolResult };

interface TableList {
  database: string;
  tables: { schema: string | null; name: string | null; type: string | null }[];
  truncated: boolean;
}

/** Tables and views, read through Warden as the caller. */
async function listTables(ctx: McpContext, db: string, schema: string | undefined): Promise<Answer<TableList>> {
  const sql =
    "SELECT table_schema AS schema, table_name AS name, table_type AS type FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema')" +
    (schema !== undefined ? ' AND table_schema = $1' : '') +
    ' ORDER BY 1, 2';
  const params = schema !== undefined ? [schema] : [];
  const o = await ctx.wire.run(db, sql, params, MAX_ROW_CAP, WireSession.keyOf(db, sql, params));
  if (o.kind !== 'result') return { error: queryResult(o) };
  const s = o.sets[0]!;
  return { value: { database: db, tables: s.rows.map(([sc, name, type]) => ({ schema: sc ?? null, name: name ?? null, type: type ?? null })), truncated: s.truncated } };
}

/** A table's columns read through Warden, with what the policy says about each for the caller. */
async function describeTable(ctx: McpContext, db: string, tableName: string): Promise<Answer<Record<string, unknown>>> {
  const sql =
    'SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull FROM pg_catalog.pg_attribute a ' +
    'JOIN pg_catalog.pg_class c ON c.oid = a.attrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace ' +
    'WHERE a.attrelid = pg_catalog.to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum';
  const o = await ctx.wire.run(db, sql, [tableName], MAX_ROW_CAP, WireSession.keyOf(db, sql, [tableName]));
  if (o.kind !== 'result') return { error: queryResult(o) };
  const rows = o.sets[0]!.rows;
  if (rows.length === 0) return { error: plainError(`no table "${tableName}" in database ${db} (or you cannot see it)`) };
  const [schema, table] = [rows[0]![0]!, rows[0]![1]!];
  const columns = [];
  for (const [, , column, type, nullable] of rows) {
    const s = await columnSensitivity(ctx.config(), ctx.caller.identity, db, schema, table, column!);
    columns.push({ name: column, type, nullable: nullable === 't', sensitive: s.sensitive.length ? s.sensitive.join(', ') : null, masked: s.masked, ...(s.action === 'deny' ? { readable: false } : {}) });
  }
  return { value: { database: db, schema, table, columns } };
}

/** The databases a caller may use: the token's one database when it is scoped, else all configured. */
export function visibleDatabases(config: WardenConfig, caller: Pick<Caller, 'scope'>): string[] {
  const all = Object.keys(config.databases);
  return caller.scope !== undefined ? all.filter((d) => d === caller.scope) : all;
}

export function createWardenMcpServer(ctx: McpContext): McpServer {
  const server = new McpServer({ name: 'warden', version: WARDEN_VERSION }, { capabilities: { tools: {}, resources: {} } });
  // A token limited to one database (`warden token issue --scope DB`) sees and reaches only that one.
  const visible = (): string[] => visibleDatabases(ctx.config(), ctx.caller);
  const defaultDb = (): string | undefined => {
    const names = visible();
    return names.length === 1 ? names[0] : undefined;
  };
  const dbOf = (database: string | undefined): string | CallToolResult => {
    const db = database ?? defaultDb();
    if (!db) return plainError(`database is required: Warden serves several (${visible().join(', ')})`);
    if (ctx.caller.scope !== undefined && db !== ctx.caller.scope) return plainError(`your token is limited to database "${ctx.caller.scope}": "${db}" is not reachable with it`);
    if (!Object.hasOwn(ctx.config().databases, db)) return plainError(`no database named "${db}" (list_databases shows them)`);
    return db;
  };

  server.registerTool(
    'query',
    {
      description:
        "Run SQL through Warden as your identity: the same policy, limits, masking, approvals and audit as any PostgreSQL client. Values come back as PostgreSQL's text (masked where Warden masks). A statement that needs approval returns status pending_approval with the request id at once.",
      inputSchema: {
        sql: z.string().min(1).describe('the SQL; without params it is sent as one query string (simple protocol)'),
        database: z.string().optional().describe('database name (default: the only one)'),
        params: z.array(param).optional().describe('bind parameters $1, $2, ... (extended protocol)'),
        reason: z.string().max(MAX_INTENT_VALUE).optional().describe('why you run it (recorded in the audit; rules may require it)'),
        ticket: z.string().max(MAX_INTENT_VALUE).optional().describe('a ticket reference (recorded in the audit; rules may require it)'),
        max_rows: z.number().int().min(1).max(MAX_ROW_CAP).optional().describe(`rows returned to you (default ${DEFAULT_ROW_CAP}, at most ${MAX_ROW_CAP}); more are dropped here and truncated is true`),
      },
    },
    async (a) => {
      const db = dbOf(a.database);
      if (typeof db !== 'string') return db;
      const sql = intentComment({ reason: a.reason, ticket: a.ticket }) + a.sql;
      const key = WireSession.keyOf(db, sql, a.params ?? []);
      return queryResult(await ctx.wire.run(db, sql, a.params, a.max_rows ?? DEFAULT_ROW_CAP, key));
    },
  );

  server.registerTool(
    'approval_status',
    {
      description: 'The state of a statement you sent that is waiting for approval; once it ran, its result (handed out once).',
      inputSchema: {
        request: z.string().describe('the request id from a pending_approval result (apr_...)'),
        wait_seconds: z.number().min(0).max(30).optional().describe('wait up to this long for it to finish (default 0)'),
      },
    },
    async (a) => {
      if (a.wait_seconds) await ctx.wire.wait(a.request, a.wait_seconds * 1000);
      const s = ctx.wire.status(a.request);
      if (!s.known && ctx.wire.handedOut(a.request)) {
        return json({ status: 'used', request: a.request, next: 'it ran; its result was handed out to you already (results are handed out once)' });
      }
      if (!s.known && ctx.request) {
        // Not waiting here (reject mode, another session, or handed out): what the state store says, for one's own requests.
        const r = await ctx.request(a.request).catch(() => null);
        if (r && (r.identity === ctx.caller.user || r.onBehalfOf === ctx.caller.user)) {
          return json({
            status: r.status,
            request: r.id,
            mode: r.mode,
            database: r.database,
            expires_at: r.expiresAt,
            decisions: r.decisions.map((d) => ({ approver: d.approver, decision: d.decision, reason: d.reason })),
            next:
              r.status === 'approved' && r.mode === 'reject'
                ? 'approved: repeat the identical query and Warden runs it once'
                : r.status === 'pending'
                  ? 'waiting for approvers'
                  : r.status === 'used'
                    ? 'it ran (its result went to the session that sent it)'
                    : 'it will not run',
          });
        }
      }
      if (!s.known) {
        return plainError(
          `request ${a.request} is not waiting in this MCP session (unknown, already handed out, or made in reject mode: repeat the identical query once it is approved)`,
        );
      }
      return queryResult(s.outcome);
    },
  );

  server.registerTool('list_databases', { description: 'The databases Warden serves you (connect to them by name with the other tools).' }, async () => {
    const onBehalfOf = ctx.caller.onBehalfOf ?? (await ctx.onBehalfOf?.().catch(() => undefined));
    return json({
      identity: ctx.caller.user,
      ...(onBehalfOf ? { on_behalf_of: onBehalfOf } : {}),
      databases: visible().map((name) => {
        const d = ctx.config().databases[name]!;
        return { name, ...(d.environment ? { environment: d.environment } : {}) };
      }),
      ...(ctx.caller.scope !== undefined ? { scope: ctx.caller.scope } : {}),
    });
  });

  server.registerTool(
    'list_tables',
    {
      description: 'Tables and views you can see in a database (read through Warden, as your identity).',
      inputSchema: { database: z.string().optional(), schema: z.string().optional().describe('only this schema') },
    },
    async (a) => {
      const db = dbOf(a.database);
      if (typeof db !== 'string') return db;
      const r = await listTables(ctx, db, a.schema);
      return 'error' in r ? r.error : json(r.value);
    },
  );

  server.registerTool(
    'describe_table',
    {
      description: "A table's columns and types, each with its sensitive type (Warden's sensitive.columns) and whether you see it masked.",
      inputSchema: { table: z.string().describe('table name, optionally schema-qualified (schema.table)'), database: z.string().optional() },
    },
    async (a) => {
      const db = dbOf(a.database);
      if (typeof db !== 'string') return db;
      const r = await describeTable(ctx, db, a.table);
      return 'error' in r ? r.error : json(r.value);
    },
  );

  // The schema as resources, for clients that browse: warden://DB/tables and warden://DB/tables/SCHEMA.TABLE.
  const resourceJson = (uri: URL, value: unknown): ReadResourceResult => ({ contents: [{ uri: uri.href, mimeType: 'application/json', text: JSON.stringify(value) }] });
  const resourceError = (r: CallToolResult): Error => new Error(r.content.map((c) => (c.type === 'text' ? c.text : '')).join('\n'));
  server.registerResource(
    'tables',
    new ResourceTemplate('warden://{database}/tables', {
      list: () => ({ resources: visible().map((d) => ({ uri: `warden://${encodeURIComponent(d)}/tables`, name: `${d}: tables`, mimeType: 'application/json' })) }),
    }),
    { description: 'The tables and views of a database you can see', mimeType: 'application/json' },
    async (uri, v) => {
      const db = dbOf(decodeURIComponent(String(v.database)));
      if (typeof db !== 'string') throw resourceError(db);
      const r = await listTables(ctx, db, undefined);
      if ('error' in r) throw resourceError(r.error);
      return resourceJson(uri, r.value);
    },
  );
  server.registerResource(
    'table',
    new ResourceTemplate('warden://{database}/tables/{table}', {
      list: async () => {
        const resources = [];
        for (const d of visible()) {
          const r = await listTables(ctx, d, undefined);
          if ('error' in r) continue;
          for (const t of r.value.tables) resources.push({ uri: `warden://${encodeURIComponent(d)}/tables/${encodeURIComponent(`${t.schema}.${t.name}`)}`, name: `${d}: ${t.schema}.${t.name}`, mimeType: 'application/json' });
        }
        return { resources };
      },
    }),
    { description: "A table's columns, types, sensitive types and whether you see them masked", mimeType: 'application/json' },
    async (uri, v) => {
      const db = dbOf(decodeURIComponent(String(v.database)));
      if (typeof db !== 'string') throw resourceError(db);
      const r = await describeTable(ctx, db, decodeURIComponent(String(v.table)));
      if ('error' in r) throw resourceError(r.error);
      return resourceJson(uri, r.value);
    },
  );

  server.registerTool(
    'explain_policy',
    {
      description: 'What Warden would do with this SQL for you, and why (the rules that match, masking, approvals, limits) — without running it.',
      inputSchema: {
        sql: z.string().min(1),
        database: z.string().optional(),
        reason: z.string().max(MAX_INTENT_VALUE).optional(),
        ticket: z.string().max(MAX_INTENT_VALUE).optional(),
      },
    },
    async (a) => {
      const db = dbOf(a.database);
      if (typeof db !== 'string') return db;
      const intent: Record<string, string> = {};
      if (a.reason) intent.reason = a.reason;
      if (a.ticket) intent.ticket = a.ticket;
      try {
        const e = await explainFor(ctx.config(), ctx.caller.identity, db, a.sql, intent, undefined, ctx.code);
        return json({ identity: e.identity, database: e.database, intent: e.intent, action: e.action, reason: e.reason, ...(e.catalog ? { catalog: e.catalog } : {}), explain: e.text, ...e.json });
      } catch (err) {
        return plainError(`explain failed: ${(err as Error).message}`);
      }
    },
  );

  return server;
}
