/**
 * The admin HTTP listener (fastify): health and Prometheus metrics today; the
 * approvals API, audit explorer and web console will be added here.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { Registry, Gauge, collectDefaultMetrics } from 'prom-client';
import type { AdminConfig } from '../config/types.js';
import type { Logger } from '../log/logger.js';

export interface AdminSources {
  sessions(): number;
  statements(): { decided: number; refused: number };
  analysisCache(): { hits: number; misses: number; size: number };
}

export interface AdminServer {
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

export function buildAdmin(sources: AdminSources): FastifyInstance {
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

  const app = Fastify({ logger: false });
  app.get('/healthz', async () => ({ status: 'ok', sessions: sources.sessions() }));
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });
  return app;
}

export async function startAdmin(cfg: AdminConfig, sources: AdminSources, log: Logger): Promise<AdminServer> {
  const app = buildAdmin(sources);
  await app.listen({ host: cfg.host, port: cfg.port });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : cfg.port;
  log.info({ host: cfg.host, port }, 'admin listening');
  return { host: cfg.host, port, close: () => app.close() };
}
