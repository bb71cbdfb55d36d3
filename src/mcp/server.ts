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
import type { FastPath } from './jsonrpc.js';

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

/** The databases the caller may use, and the one a call names (or the only one): the database, or the tool error saying why not. */
function databaseOf(ctx: McpContext, database: string | undefined): string | CallToolResult {
  // A token limited to one database (`warden token issue --scope DB`) sees and reaches only that one.
  let db = database;
  if (db === undefined) {
    const names = visibleDatabases(ctx.config(), ctx.caller);
    if (names.length !== 1) return plainError(`database is required: Warden serves several (${names.join(', ')})`);
    db = names[0]!;
  }
  if (ctx.caller.scope !== undefined && db !== ctx.caller.scope) return plainError(`your token is limited to database "${ctx.caller.scope}": "${db}" is not reachable with it`);
  if (!Object.hasOwn(ctx.config().databases, db)) return plainError(`no database named "${db}" (list_databases shows them)`);
  return db;
}

/** The arguments of the `query` tool. */
export const queryInputShape = {
  sql: z.string().min(1).describe('the SQL; without params it is sent as one query string (simple protocol)'),
  database: z.string().optional().describe('database name (default: the only one)'),
  params: z.array(param).optional().describe('bind parameters $1, $2, ... (extended protocol)'),
  reason: z.string().max(MAX_INTENT_VALUE).optional().describe('why you run it (recorded in the audit; rules may require it)'),
  ticket: z.string().max(MAX_INTENT_VALUE).optional().describe('a ticket reference (recorded in the audit; rules may require it)'),
  max_rows: z.number().int().min(1).max(MAX_ROW_CAP).optional().describe(`rows returned to you (default ${DEFAULT_ROW_CAP}, at most ${MAX_ROW_CAP}); more are dropped here and truncated is true`),
};

export type QueryParam = string | number | boolean | null;

export interface QueryArgs {
  sql: string;
  database?: string;
  params?: QueryParam[];
  reason?: string;
  ticket?: string;
  max_rows?: number;
}

const optionalString = (v: unknown, max: number): boolean => v === undefined || (typeof v === 'string' && v.length <= max);

/**
 * The check of {@link queryInputShape}, without zod: the arguments when zod would accept them
 * (unknown keys are dropped, as zod does), else undefined. It only decides whether the fast
 * path may answer: arguments it refuses go to the SDK, whose zod check refuses them with its
 * error. test/unit/mcp-fast-path.test.ts holds it to zod's answers.
 */
export function queryArgsOf(a: unknown): QueryArgs | undefined {
  if (typeof a !== 'object' || a === null || Array.isArray(a)) return undefined;
  const { sql, database, params, reason, ticket, max_rows } = a as Record<string, unknown>;
  if (typeof sql !== 'string' || sql.length === 0) return undefined;
  if (database !== undefined && typeof database !== 'string') return undefined;
  if (!optionalString(reason, MAX_INTENT_VALUE) || !optionalString(ticket, MAX_INTENT_VALUE)) return undefined;
  if (max_rows !== undefined && !(typeof max_rows === 'number' && Number.isSafeInteger(max_rows) && max_rows >= 1 && max_rows <= MAX_ROW_CAP)) return undefined;
  if (params !== undefined) {
    if (!Array.isArray(params)) return undefined;
    for (const p of params as unknown[]) {
      const t = typeof p;
      if (!(p === null || t === 'string' || t === 'boolean' || (t === 'number' && Number.isFinite(p)))) return undefined;
    }
  }
  const out: QueryArgs = { sql };
  if (database !== undefined) out.database = database as string;
  if (params !== undefined) out.params = params as QueryParam[];
  if (reason !== undefined) out.reason = reason as string;
  if (ticket !== undefined) out.ticket = ticket as string;
  if (max_rows !== undefined) out.max_rows = max_rows;
  return out;
}

/** The `query` tool, its arguments checked. */
async function runQuery(ctx: McpContext, a: QueryArgs): Promise<CallToolResult> {
  const db = databaseOf(ctx, a.database);
  if (typeof db !== 'string') return db;
  const sql = a.reason === undefined && a.ticket === undefined ? a.sql : intentComment({ reason: a.reason, ticket: a.ticket }) + a.sql;
  // The key of "the identical statement again" (approvals) is made by run() only when a statement is held.
  return queryResult(await ctx.wire.run(db, sql, a.params, a.max_rows ?? DEFAULT_ROW_CAP));
}

/** A request's `_meta` the SDK takes as it is: absent, or only a progress token (Warden's tools send no progress). */
function plainMeta(meta: unknown): boolean {
  if (meta === undefined) return true;
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) return false;
  for (const k in meta) {
    if (k !== 'progressToken') return false;
    const t = (meta as { progressToken: unknown }).progressToken;
    if (!(typeof t === 'string' || (typeof t === 'number' && Number.isSafeInteger(t)))) return false;
  }
  return true;
}

const PONG: Promise<unknown> = Promise.resolve(Object.freeze({}));

/**
 * The fast path of Warden's own transports (jsonrpc.ts): `ping`, and `tools/call` of `query` with
 * plainly valid arguments, answered without the SDK's dispatch (which validates each call's
 * message, params and result with zod again and again: more than the JSON of a result costs;
 * bench/README.md, MCP). The answer is the one the SDK gives: `query` runs the same
 * {@link runQuery} as the registered tool, and a tool that throws is a tool error with its
 * message. Anything else — another method or tool, arguments zod would refuse, task
 * augmentation, other `_meta` — is left to the SDK (undefined), which answers it as without a
 * fast path. Nothing here decides what runs: the statement goes to Warden's listener as always.
 */
export function createFastPath(ctx: McpContext): FastPath {
  return (r) => {
    const p = r.params;
    if (r.method === 'ping') {
      if (p === undefined) return PONG;
      for (const k in p) if (k !== '_meta') return undefined;
      return plainMeta(p._meta) ? PONG : undefined;
    }
    if (r.method !== 'tools/call' || p === undefined || p.name !== 'query') return undefined;
    for (const k in p) if (k !== 'name' && k !== 'arguments' && k !== '_meta') return undefined;
    if (!plainMeta(p._meta)) return undefined;
    const a = queryArgsOf(p.arguments === undefined ? {} : p.arguments);
    if (!a) return undefined;
    return runQuery(ctx, a).catch((err: unknown): CallToolResult => plainError(err instanceof Error ? err.message : String(err)));
  };
}

export function createWardenMcpServer(ctx: McpContext): McpServer {
  const server = new McpServer({ name: 'warden', version: WARDEN_VERSION }, { capabilities: { tools: {}, resources: {} } });
  const visible = (): string[] => visibleDatabases(ctx.config(), ctx.caller);
  const dbOf = (database: string | undefined): string | CallToolResult => databaseOf(ctx, database);

  server.registerTool(
    'query',
    {
      description:
        "Run SQL through Warden as your identity: the same policy, limits, masking, approvals and audit as any PostgreSQL client. Values come back as PostgreSQL's text (masked where Warden masks). A statement that needs approval returns status pending_approval with the request id at once.",
      inputSchema: queryInputShape,
    },
    (a) => runQuery(ctx, a),
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
