/**
 * The compliance report and the policy backtest on the admin API (docs/reports.md):
 *
 * - `GET  /api/v1/report?from=ISO&to=ISO[&database=DB][&format=json|html]`
 *   operators and auditors: the report of the period over this Warden's audit
 *   store, its chains verified against the stored and witnessed checkpoints;
 * - `POST /api/v1/policy/backtest {from, to, policy[, database]}` operators:
 *   the statements of the period replayed under `policy` (YAML text with any of
 *   rules, default, sensitive, limits, approvals replacing the running
 *   configuration's), and what would change.
 *
 * One report or backtest runs at a time (429 otherwise): each reads a whole
 * period of the store.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AuditLog } from '../audit/log.js';
import { witnessedCheckpoints, witnessesOf } from '../audit/witness.js';
import type { Checkpoint } from '../audit/chain.js';
import type { WardenConfig } from '../config/types.js';
import { buildReport } from '../report/build.js';
import { renderHtml } from '../report/render-html.js';

/** What the HTML report may use when shown: its own inline styles and data: images, nothing else. */
const REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'self'";
import { backtest } from '../report/backtest.js';
import { ProposalError, proposedPolicy } from '../report/proposed.js';
import type { WitnessNote } from '../report/integrity.js';

/** The running configuration as the routes read it (a reload replaces it). */
export type ReportRoutesConfig = Pick<WardenConfig, 'admin' | 'sensitive'> & Partial<Pick<WardenConfig, 'rules' | 'default' | 'limits' | 'identities' | 'databases' | 'report'>>;

export interface ReportRoutesOptions {
  audit: AuditLog;
  config: () => ReportRoutesConfig;
  /** Whether an identity is suspended now (it may then do nothing here). */
  suspended?: (identity: string) => string | undefined;
}

class BadRequest extends Error {}

function period(from: unknown, to: unknown): { from: string; to: string } {
  const t = (v: unknown, name: string): string => {
    if (typeof v !== 'string' || v === '') throw new BadRequest(`${name}: required, an ISO-8601 time (e.g. 2026-11-01T00:00:00Z)`);
    const d = new Date(v);
    if (Number.isNaN(d.getTime())) throw new BadRequest(`${name}: "${v}" is not an ISO-8601 time`);
    return d.toISOString();
  };
  const p = { from: t(from, 'from'), to: t(to, 'to') };
  if (p.from >= p.to) throw new BadRequest('from must be before to');
  return p;
}

export function registerReportRoutes(app: FastifyInstance, o: ReportRoutesOptions): void {
  let busy = false;
  const only =
    (keys: ('operators' | 'auditors')[], what: string) =>
    async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
      const why = o.suspended?.(req.identity!.name);
      if (why) return reply.code(403).send({ error: why });
      const admin = o.config().admin;
      const groups = keys.flatMap((k) => admin?.[k] ?? []);
      if (req.identity!.groups.some((g) => groups.includes(g))) return undefined;
      const names = keys.map((k) => `admin.${k}`).join(' or ');
      return reply.code(403).send({
        error: groups.length === 0 ? `${what} needs membership of a group listed in ${names} (none is configured)` : `${what} needs membership of one of the groups ${groups.join(', ')} (${names})`,
      });
    };
  const exclusive = async <T>(reply: FastifyReply, run: () => Promise<T>): Promise<T | FastifyReply> => {
    if (busy) return reply.code(429).header('retry-after', '5').send({ error: 'a report or backtest is being built; try again when it is done' });
    busy = true;
    try {
      return await run();
    } finally {
      busy = false;
    }
  };

  app.get('/report', { preHandler: only(['operators', 'auditors'], 'a compliance report') }, async (req, reply) => {
    const q = req.query as Record<string, string | undefined>;
    let p: { from: string; to: string };
    try {
      p = period(q.from, q.to);
      if (q.format !== undefined && q.format !== 'json' && q.format !== 'html') throw new BadRequest('format: json or html');
    } catch (err) {
      if (err instanceof BadRequest) return reply.code(400).send({ error: err.message });
      throw err;
    }
    return exclusive(reply, async () => {
      const store = o.audit.store;
      const readable = witnessesOf(store)?.readable ?? [];
      let checkpoints: Checkpoint[] = [];
      let witnesses: WitnessNote[] = [];
      if (readable.length > 0) {
        const w = await witnessedCheckpoints(store, readable, { ownInstance: o.audit.instance });
        checkpoints = w.checkpoints;
        witnesses = w.readings.map((r) => ({ description: r.description, checkpoints: r.checkpoints, ...(r.error !== undefined ? { error: r.error } : {}) }));
      }
      const c = o.config();
      const report = await buildReport(store, {
        ...p,
        ...(q.database ? { database: q.database } : {}),
        config: { rules: c.rules, identities: c.identities, sensitive: c.sensitive, report: c.report },
        checkpoints,
        witnesses,
        publicKey: o.audit.publicKey,
      });
      if (q.format === 'html') {
        // The report is inline CSS and SVG only: even opened outside the console's sandboxed frame, on
        // the admin origin, nothing in it may run, load or be framed elsewhere.
        return reply
          .type('text/html; charset=utf-8')
          .header('cache-control', 'no-store')
          .header('content-security-policy', REPORT_CSP)
          .header('x-content-type-options', 'nosniff')
          .send(renderHtml(report));
      }
      return reply.header('cache-control', 'no-store').send(report);
    });
  });

  app.post('/policy/backtest', { preHandler: only(['operators'], 'a policy backtest') }, async (req, reply) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    let p: { from: string; to: string };
    let policy;
    try {
      p = period(body.from, body.to);
      if (body.policy !== undefined && typeof body.policy !== 'string') throw new BadRequest('policy: YAML text (a string) with any of rules, default, sensitive, limits, approvals');
      if (body.database !== undefined && typeof body.database !== 'string') throw new BadRequest('database: a database name');
      const c = o.config();
      policy = proposedPolicy({ rules: c.rules ?? [], default: c.default ?? 'allow', limits: c.limits ?? [], sensitive: c.sensitive, identities: c.identities, databases: c.databases }, (body.policy as string | undefined) ?? '');
    } catch (err) {
      if (err instanceof BadRequest || err instanceof ProposalError) return reply.code(400).send({ error: err.message });
      throw err;
    }
    return exclusive(reply, () => backtest(o.audit.store, { ...p, ...(typeof body.database === 'string' ? { database: body.database } : {}), policy }));
  });
}
