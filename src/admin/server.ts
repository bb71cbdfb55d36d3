/**
 * The admin HTTP listener (fastify): `/healthz` (alive), `/readyz` (ready to
 * serve: readiness.ts) and `/metrics` (Prometheus: metrics.ts) — open, no
 * secrets in them — and the authenticated API under /api/v1: the audit log for
 * members of `admin.auditors`, approvals; and the web console at /console/ (src/console/),
 * whose session cookie the API accepts as a credential besides HTTP Basic.
 */
import fs from 'node:fs';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { IdentityConfig } from '../config/types.js';
import type { AuditLog } from '../audit/log.js';
import { witnessesOf } from '../audit/witness.js';
import type { AdminAuthenticator } from './auth.js';
import { registerAuditRoutes } from './audit-routes.js';
import { registerApprovalRoutes } from './approval-routes.js';
import { registerSessionRoutes, type SessionAdmin } from './session-routes.js';
import { registerReloadRoutes, type ReloadService } from './reload-routes.js';
import type { ApprovalService } from '../governance/approvals.js';
import { createMetricsRegistry, type StatementMetrics } from './metrics.js';
import { Readiness, type ReloadStatus } from './readiness.js';
import type { DatabaseConfig } from '../config/types.js';
import type { AdminConfig } from '../config/types.js';
import { silentLogger, type Logger } from '../log/logger.js';
import type { WardenConfig } from '../config/types.js';
import { createConsole, crossOrigin, isSafeMethod, type ConsoleGate } from '../console/plugin.js';
import { registerStatsRoutes } from './stats-routes.js';
import { registerAuditExploreRoutes } from './audit-explore-routes.js';
import { registerPolicyViewRoutes } from './policy-view-routes.js';
import { registerReportRoutes } from './report-routes.js';

const silent = silentLogger();

export interface AdminSources {
  sessions(): number;
  statements(): { decided: number; refused: number };
  analysisCache(): { hits: number; misses: number; size: number };
  /** Client connections by state (metrics). */
  connections?(): Readonly<Record<string, number>>;
  /** The databases whose upstreams `/readyz` probes (default: none). */
  databases?(): readonly DatabaseConfig[];
  /** The latest configuration reload: a failed one makes `/readyz` answer 503. */
  reload?(): ReloadStatus | undefined;
  /** True once Warden is stopping (draining): `/readyz` answers 503. */
  stopping?(): boolean;
  /** Limits crossed since start, by `limit\u0000measure` (metrics). */
  limitsExceeded?(): ReadonlyMap<string, number>;
}

export interface AdminServices {
  auth?: AdminAuthenticator;
  approvals?: ApprovalService;
  audit?: AuditLog;
  /** Groups allowed to read the audit log. */
  auditors?: readonly string[];
  /** Sessions, kill, suspend/resume (session-routes.ts). */
  sessions?: SessionAdmin;
  /** `POST /api/v1/reload` (reload-routes.ts). */
  reload?: ReloadService;
  /** Statement counters and timers the statement path fills (metrics). */
  statementMetrics?: StatementMetrics;
  /** MCP over Streamable HTTP at /mcp, bearer-authenticated (src/mcp/http.ts). */
  mcp?: import('../mcp/http.js').McpHttpOptions;
  /** The running configuration (a reload replaces it): the console, the policy view and dry runs, the live statistics. */
  config?: () => WardenConfig;
  /** Overrides the readiness checks (tests); default: built from the sources, probing each database. */
  readiness?: Readiness;
  log?: Logger;
}

declare module 'fastify' {
  interface FastifyRequest {
    identity?: IdentityConfig;
  }
}

export interface AdminServer {
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

export function buildAdmin(sources: AdminSources, services: AdminServices = {}, https?: { cert: Buffer; key: Buffer }): FastifyInstance {
  const audit = services.audit;
  const readiness =
    services.readiness ??
    new Readiness({
      databases: () => sources.databases?.() ?? [],
      audit,
      reload: sources.reload ? () => sources.reload!() : undefined,
      stopping: sources.stopping ? () => sources.stopping!() : undefined,
      log: services.log ?? silent,
    });
  const registry = createMetricsRegistry({
    sessions: () => sources.sessions(),
    statements: () => sources.statements(),
    analysisCache: () => sources.analysisCache(),
    connections: sources.connections ? () => sources.connections!() : undefined,
    approvalsPending: services.approvals ? () => services.approvals!.pending() : undefined,
    limitsExceeded: sources.limitsExceeded,
    statementMetrics: services.statementMetrics,
    audit,
    witness: audit ? witnessesOf(audit.store) : undefined,
    ready: () => readiness.current(),
  });

  // One type for both: the routes do not depend on the transport.
  const app = (https ? Fastify({ logger: false, https }) : Fastify({ logger: false })) as unknown as FastifyInstance;
  // Alive: 200 while the process serves HTTP at all (a liveness probe restarts it otherwise).
  app.get('/healthz', async () => ({ status: 'ok', sessions: sources.sessions(), audit: audit ? (audit.stats.healthy ? 'ok' : 'failing') : undefined }));
  // Ready: 503 with the failing checks while an upstream cannot be reached or logged into, the
  // audit cannot write under on_failure: block, the latest reload failed, or Warden is stopping.
  app.get('/readyz', async (_req, reply) => {
    const r = await readiness.check();
    const failing = r.checks.filter((c) => !c.ok);
    return reply
      .code(r.ready ? 200 : 503)
      .header('cache-control', 'no-store')
      .send({ status: r.ready ? 'ready' : 'unavailable', ...(r.ready ? {} : { reasons: failing.map((c) => c.reason ?? c.check) }), checks: r.checks });
  });
  app.addHook('onReady', async () => readiness.start());
  app.addHook('onClose', async () => readiness.close());

  const config = services.config;
  const suspendedReason = (name: string): string | undefined => services.sessions?.suspensions?.check(name)?.reason;
  // The web console (src/console/): on unless admin.console.enabled is false at start.
  const consoleGate: ConsoleGate | undefined =
    services.auth && config && config().admin?.console?.enabled !== false
      ? createConsole({
          config,
          auth: services.auth,
          suspended: suspendedReason,
          audit: audit ? (t, d) => audit.record(t, d) : undefined,
          tls: !!https,
        })
      : undefined;
  consoleGate?.register(app);

  app.register(async (api) => {
    api.addHook('onRequest', async (req: FastifyRequest, reply) => {
      reply.header('cache-control', 'no-store');
      if (!services.auth) return reply.code(404).send({ error: 'the admin API is not enabled' });
      // The console's session cookie, when the request has no Authorization (the CLI sends Basic);
      // it carries its own CSRF token and Origin checks for state-changing requests.
      const viaConsole = req.headers.authorization === undefined ? consoleGate?.authenticate(req) : undefined;
      if (viaConsole) {
        if (!viaConsole.ok) return reply.code(viaConsole.status).send({ error: viaConsole.message });
        req.identity = viaConsole.identity;
      } else {
        // A browser that cached Basic credentials sends them to whichever site posts here: a
        // state-changing request from another origin is refused whatever its credential.
        const cross = isSafeMethod(req.method) ? undefined : consoleGate ? consoleGate.crossOrigin(req, false) : crossOrigin(req, !!https, false);
        if (cross) return reply.code(403).send({ error: cross });
        const r = await services.auth.authenticate(req.headers.authorization, req.ip);
        if (!r.ok) {
          if (r.status === 401) reply.header('www-authenticate', 'Basic realm="warden", charset="UTF-8"');
          if (r.retryAfterS) reply.header('retry-after', String(r.retryAfterS));
          return reply.code(r.status).send({ error: r.message });
        }
        req.identity = r.identity;
      }
      // A suspended identity (warden identity suspend) may not use the API either: no approving, reading or operating.
      const suspended = services.sessions?.suspensions?.check(req.identity!.name);
      if (suspended) return reply.code(403).send({ error: `identity ${req.identity!.name} is suspended: ${suspended.reason}` });
    });
    api.get('/whoami', async (req) => ({ name: req.identity!.name, kind: req.identity!.kind, groups: req.identity!.groups }));
    if (services.approvals) registerApprovalRoutes(api, services.approvals, services.auditors ?? []);
    if (services.sessions) registerSessionRoutes(api, services.sessions);
    if (services.reload) registerReloadRoutes(api, services.reload);
    if (config) {
      registerStatsRoutes(api, {
        config,
        sessions: () => sources.sessions(),
        connections: sources.connections ? () => sources.connections!() : undefined,
        statements: () => sources.statements(),
        limitsExceeded: sources.limitsExceeded,
        counts: services.statementMetrics?.counts,
        approvals: services.approvals,
        audit,
        // A stream outlives its first check: it ends when the console session or the identity does.
        stillAuthorized: (req) => {
          if (req.headers.authorization === undefined && consoleGate) {
            const a = consoleGate.authenticate(req);
            if (!a?.ok) return false;
          }
          return !suspendedReason(req.identity!.name);
        },
      });
      registerPolicyViewRoutes(api, { config });
      // The compliance report and the policy backtest (src/report/, docs/reports.md).
      if (audit) registerReportRoutes(api, { audit, config, suspended: suspendedReason });
    }
    if (services.audit) {
      const auditors = services.auditors ?? [];
      const onlyAuditors = async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
        if (req.identity!.groups.some((g) => auditors.includes(g))) return;
        await reply.code(403).send({
          error:
            auditors.length === 0
              ? 'reading the audit log needs membership of a group listed in admin.auditors (none is configured)'
              : `reading the audit log needs membership of one of the groups ${auditors.join(', ')} (admin.auditors)`,
        });
      };
      registerAuditRoutes(api, services.audit, onlyAuditors);
      registerAuditExploreRoutes(api, services.audit, onlyAuditors);
    }
  }, { prefix: '/api/v1' });
  // Loaded only when served (the MCP SDK is not needed otherwise).
  if (services.mcp) app.register(async (mcp) => (await import('../mcp/http.js')).registerMcpHttp(mcp, services.mcp!));
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });
  return app;
}

export async function startAdmin(cfg: AdminConfig, sources: AdminSources, log: Logger, services: AdminServices = {}): Promise<AdminServer> {
  const https = cfg.tls ? { cert: fs.readFileSync(cfg.tls.cert), key: fs.readFileSync(cfg.tls.key) } : undefined;
  const app = buildAdmin(sources, { ...services, auditors: services.auditors ?? cfg.auditors, log: services.log ?? log }, https);
  await app.listen({ host: cfg.host, port: cfg.port });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : cfg.port;
  log.info({ host: cfg.host, port }, 'admin listening');
  return { host: cfg.host, port, close: () => app.close() };
}
