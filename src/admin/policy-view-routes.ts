/**
 * The running policy, read-only, for the console's Policy page (readers: the console's groups,
 * `admin.operators`, `admin.auditors`):
 *
 * - `GET  /api/v1/policy`          rules, limits, the default, databases (upstream URL with the
 *   password replaced), identities (name, kind, groups, role: never a password or verifier),
 *   sensitive columns and maskers (never `sensitive.key`), approvals mode and timeout (never the
 *   webhook URL, which may carry a token);
 * - `POST /api/v1/policy/explain`  `{identity, database?, sql, intent?, search_path?}` — a dry run:
 *   what would happen if that identity sent that statement, through the very code of
 *   `warden policy explain` (analyse → decide with the running policy → explain). The SQL is in
 *   the body, never in a URL. Nothing runs; the functions, triggers and rules it may call are
 *   read from the database's catalog as the CLI does.
 */
import type { FastifyInstance } from 'fastify';
import type { WardenConfig } from '../config/types.js';
import { readerGroups, requireGroups, consoleGroups } from '../console/access.js';
import { explainFor, createCodeAccess, type CodeAccess } from '../mcp/explain.js';

export interface PolicyViewSources {
  config(): WardenConfig;
}

/** The policy as the console shows it: everything that decides, nothing secret. */
export function policyView(c: WardenConfig): Record<string, unknown> {
  return {
    source: c.source,
    hash: c.hash,
    default: c.default,
    rules: c.rules,
    limits: c.limits,
    databases: Object.values(c.databases).map((d) => ({ name: d.name, environment: d.environment ?? null, upstream: d.upstream.redactedUrl })),
    identities: c.identities.map((i) => ({ name: i.name, kind: i.kind, groups: i.groups, role: i.role ?? null, max_connections: i.maxConnections ?? null })),
    sensitive: c.sensitive ? { columns: c.sensitive.columns, detect: c.sensitive.detect, maskers: c.sensitive.maskers } : null,
    approvals: c.approvals ? { mode: c.approvals.mode, timeout_ms: c.approvals.timeoutMs, webhook: c.approvals.webhook ? 'configured' : null } : null,
    admin: { operators: c.admin?.operators ?? [], auditors: c.admin?.auditors ?? [], console_groups: consoleGroups(c) },
  };
}

export function registerPolicyViewRoutes(app: FastifyInstance, s: PolicyViewSources): void {
  const readers = requireGroups(() => readerGroups(s.config()), 'reading the policy', 'admin.console.groups, admin.operators or admin.auditors');
  let code: CodeAccess | undefined;
  app.addHook('onClose', async () => {
    await code?.close();
  });

  app.get('/policy', { preHandler: readers }, async () => policyView(s.config()));

  app.post('/policy/explain', { preHandler: readers }, async (req, reply) => {
    const b = (req.body ?? {}) as Record<string, unknown>;
    if (typeof b.sql !== 'string' || b.sql.trim() === '') return reply.code(400).send({ error: 'sql: required (the statement to try)' });
    if (b.sql.length > 1_000_000) return reply.code(400).send({ error: 'sql: at most 1,000,000 characters' });
    if (typeof b.identity !== 'string') return reply.code(400).send({ error: 'identity: required (the identity that would run it)' });
    const c = s.config();
    const identity = c.identities.find((i) => i.name === b.identity);
    if (!identity) return reply.code(404).send({ error: `no identity named "${b.identity}" in the running configuration` });
    const names = Object.keys(c.databases);
    const database = typeof b.database === 'string' && b.database !== '' ? b.database : names.length === 1 ? names[0] : undefined;
    if (!database) return reply.code(400).send({ error: `database: required (several: ${names.join(', ')})` });
    if (!Object.hasOwn(c.databases, database)) return reply.code(404).send({ error: `no database named "${database}"` });
    const intent: Record<string, string> = {};
    if (b.intent !== undefined) {
      if (b.intent === null || typeof b.intent !== 'object' || Array.isArray(b.intent)) return reply.code(400).send({ error: 'intent: expected an object of strings' });
      for (const [k, v] of Object.entries(b.intent)) {
        if (typeof v !== 'string') return reply.code(400).send({ error: `intent.${k}: expected a string` });
        intent[k.replace(/^warden\./, '').toLowerCase()] = v;
      }
    }
    const searchPath = typeof b.search_path === 'string' && b.search_path !== '' ? b.search_path : undefined;
    code ??= createCodeAccess();
    const e = await explainFor(c, identity, database, b.sql, intent, searchPath, code);
    return {
      identity: e.identity,
      kind: identity.kind,
      groups: identity.groups,
      database: e.database,
      intent: e.intent,
      action: e.action,
      reason: e.reason,
      ...(e.catalog ? { catalog: e.catalog } : {}),
      text: e.text,
      explain: e.json,
    };
  });
}
