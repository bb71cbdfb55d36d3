/**
 * The admin HTTP listener (fastify): /healthz and /metrics (open: no secrets in
 * them), and the authenticated API under /api/v1 — today the audit log for
 * members of `admin.auditors`; approvals and the web console build on it.
 */
import fs from 'node:fs';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { IdentityConfig } from '../config/types.js';
import type { AuditLog } from '../audit/log.js';
import { witnessesOf } from '../audit/witness.js';
import type { AdminAuthenticator } from './auth.js';
import { registerAuditRoutes } from './audit-routes.js';
import { registerApprovalRoutes } from './approval-routes.js';
import type { ApprovalService } from '../governance/approvals.js';
import { Registry, Gauge, collectDefaultMetrics } from 'prom-client';
import type { AdminConfig } from '../config/types.js';
import type { Logger } from '../log/logger.js';

export interface AdminSources {
  sessions(): number;
  statements(): { decided: number; refused: number };
  analysisCache(): { hits: number; misses: number; size: number };
}

export interface AdminServices {
  auth?: AdminAuthenticator;
  approvals?: ApprovalService;
  audit?: AuditLog;
  /** Groups allowed to read the audit log. */
  auditors?: readonly string[];
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
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'warden_process_' });
  const gauge = (name: string, help: string, read: () => number): void => {
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read());
      },
    });
  };
  gauge('warden_sessions', 'Client sessions currently relayed', () => sources.sessions());
  gauge('warden_statements_decided_total', 'Statements decided by the policy since start', () => sources.statements().decided);
  gauge('warden_statements_refused_total', 'Statements refused since start', () => sources.statements().refused);
  gauge('warden_analysis_cache_hits_total', 'Statement analyses served from the cache', () => sources.analysisCache().hits);
  gauge('warden_analysis_cache_misses_total', 'Statements parsed and analysed', () => sources.analysisCache().misses);
  gauge('warden_analysis_cache_entries', 'Analyses held in the cache', () => sources.analysisCache().size);

  if (services.audit) {
    const audit = services.audit;
    gauge('warden_audit_records_written_total', 'Audit records durably written', () => audit.stats.written);
    gauge('warden_audit_batches_total', 'Audit group commits', () => audit.stats.batches);
    gauge('warden_audit_write_failures_total', 'Audit writes that failed', () => audit.stats.failures);
    gauge('warden_audit_records_lost_total', 'Audit records dropped because the backlog was full', () => audit.stats.lost);
    gauge('warden_audit_backlog', 'Audit records waiting to be written', () => audit.stats.backlog);
    gauge('warden_audit_healthy', '1 when the audit store accepts writes', () => (audit.stats.healthy ? 1 : 0));
    const witness = witnessesOf(audit.store);
    if (witness) {
      gauge('warden_audit_witness_published_total', 'Checkpoints written to a witness (one per witness)', () => witness.stats.published);
      gauge('warden_audit_witness_failures_total', 'Checkpoints a witness did not get (one per witness; see the log)', () => witness.stats.failures);
    }
  }

  // One type for both: the routes do not depend on the transport.
  const app = (https ? Fastify({ logger: false, https }) : Fastify({ logger: false })) as unknown as FastifyInstance;
  app.get('/healthz', async () => ({ status: 'ok', sessions: sources.sessions(), audit: services.audit ? (services.audit.stats.healthy ? 'ok' : 'failing') : undefined }));

  app.register(async (api) => {
    api.addHook('onRequest', async (req: FastifyRequest, reply) => {
      if (!services.auth) return reply.code(404).send({ error: 'the admin API is not enabled' });
      const r = await services.auth.authenticate(req.headers.authorization, req.ip);
      if (!r.ok) {
        if (r.status === 401) reply.header('www-authenticate', 'Basic realm="warden", charset="UTF-8"');
        if (r.retryAfterS) reply.header('retry-after', String(r.retryAfterS));
        return reply.code(r.status).send({ error: r.message });
      }
      req.identity = r.identity;
    });
    api.get('/whoami', async (req) => ({ name: req.identity!.name, kind: req.identity!.kind, groups: req.identity!.groups }));
    if (services.approvals) registerApprovalRoutes(api, services.approvals, services.auditors ?? []);
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
    }
  }, { prefix: '/api/v1' });
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });
  return app;
}

export async function startAdmin(cfg: AdminConfig, sources: AdminSources, log: Logger, services: AdminServices = {}): Promise<AdminServer> {
  const https = cfg.tls ? { cert: fs.readFileSync(cfg.tls.cert), key: fs.readFileSync(cfg.tls.key) } : undefined;
  const app = buildAdmin(sources, { ...services, auditors: services.auditors ?? cfg.auditors }, https);
  await app.listen({ host: cfg.host, port: cfg.port });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : cfg.port;
  log.info({ host: cfg.host, port }, 'admin listening');
  return { host: cfg.host, port, close: () => app.close() };
}
