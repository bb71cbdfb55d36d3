/**
 * Approvals API on the admin listener (authenticated; see admin/auth.ts):
 *
 * - `GET  /api/v1/approvals?status=pending&limit=50` — requests, newest first
 * - `GET  /api/v1/approvals/:id` — one request with its decisions; `?full=true`: the statement
 *   text and parameters in full even above the cap (docs/approvals.md)
 * - `GET  /api/v1/approvals/:id/sql` — the statement text exactly as stored (text/plain), with
 *   its length and SHA-256 in the `x-warden-sql-length` / `x-warden-sql-sha256` headers
 * - `POST /api/v1/approvals/:id/approve` `{ "reason": "...", "grant_minutes": 30 }` —
 *   the authenticated identity approves (optionally as a just-in-time grant)
 * - `POST /api/v1/approvals/:id/deny` `{ "reason": "..." }`
 * - `GET  /api/v1/grants?all=true` — just-in-time grants (active ones by default)
 * - `DELETE /api/v1/grants/:id` — revoke a grant (approvers of its rule)
 *
 * Who may decide is checked by the service: an identity in one of the rule's
 * approver groups, never the requester. Requests are visible to their
 * requester, the approvers of their rules, and `admin.auditors`.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { ApprovalError, type ApprovalService } from '../governance/approvals.js';
import type { ApprovalRequest, ApprovalStatus } from '../store/types.js';
import type { IdentityConfig } from '../config/types.js';

const STATUSES: readonly ApprovalStatus[] = ['pending', 'approved', 'denied', 'expired', 'cancelled', 'used'];

function fail(reply: FastifyReply, err: unknown): FastifyReply {
  if (err instanceof ApprovalError) return reply.code(err.status).send({ error: err.message });
  throw err;
}

/** Who may see a request: its requester, an approver of one of its rules, or an auditor. */
export function canSee(who: IdentityConfig, r: ApprovalRequest, auditors: readonly string[]): boolean {
  if (r.identity === who.name || r.onBehalfOf === who.name) return true;
  if (who.groups.some((g) => auditors.includes(g))) return true;
  return r.rules.some((rule) => who.groups.some((g) => rule.groups.includes(g)));
}

export function registerApprovalRoutes(app: FastifyInstance, approvals: ApprovalService, auditors: readonly string[] = []): void {
  app.get('/approvals', async (req, reply) => {
    const q = req.query as { status?: string; limit?: string };
    if (q.status !== undefined && !STATUSES.includes(q.status as ApprovalStatus)) {
      return reply.code(400).send({ error: `status: expected one of ${STATUSES.join(', ')}` });
    }
    const limit = q.limit === undefined ? 100 : Number(q.limit);
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > 1000) return reply.code(400).send({ error: 'limit: expected an integer from 1 to 1000' });
    const all = await approvals.list({ status: q.status as ApprovalStatus | undefined, limit });
    return { requests: all.filter((r) => canSee(req.identity!, r, auditors)).map((r) => approvals.view(r)) };
  });

  app.get('/approvals/:id', async (req, reply) => {
    const q = req.query as { full?: string };
    try {
      const r = await approvals.get((req.params as { id: string }).id);
      // Not one's business: the same answer as a request that does not exist.
      if (!canSee(req.identity!, r, auditors)) return reply.code(404).send({ error: `no approval request ${r.id}` });
      return approvals.view(r, q.full === 'true' || q.full === '1');
    } catch (err) {
      return fail(reply, err);
    }
  });

  app.get('/approvals/:id/sql', async (req, reply) => {
    try {
      const r = await approvals.get((req.params as { id: string }).id);
      if (!canSee(req.identity!, r, auditors)) return reply.code(404).send({ error: `no approval request ${r.id}` });
      const v = approvals.view(r, true);
      return reply
        .header('content-type', 'text/plain; charset=utf-8')
        .header('x-warden-sql-length', String(v.sqlLength))
        .header('x-warden-sql-sha256', v.sqlSha256)
        .send(r.sql);
    } catch (err) {
      return fail(reply, err);
    }
  });

  for (const decision of ['approve', 'deny'] as const) {
    app.post(`/approvals/:id/${decision}`, async (req, reply) => {
      const body = (req.body ?? {}) as { reason?: unknown; grant_minutes?: unknown };
      if (typeof body.reason !== 'string') return reply.code(400).send({ error: 'reason: required (a string saying why)' });
      if (body.grant_minutes !== undefined && typeof body.grant_minutes !== 'number') return reply.code(400).send({ error: 'grant_minutes: expected a number of minutes' });
      if (decision === 'deny' && body.grant_minutes !== undefined) return reply.code(400).send({ error: 'grant_minutes: only when approving' });
      try {
        return approvals.view(await approvals.decide((req.params as { id: string }).id, req.identity!, decision, body.reason, body.grant_minutes as number | undefined));
      } catch (err) {
        return fail(reply, err);
      }
    });
  }

  app.get('/grants', async (req) => {
    const q = req.query as { all?: string };
    return { grants: await approvals.grants(q.all === 'true' || q.all === '1') };
  });

  app.delete('/grants/:id', async (req, reply) => {
    try {
      await approvals.revokeGrant((req.params as { id: string }).id, req.identity!);
      return { revoked: true };
    } catch (err) {
      return fail(reply, err);
    }
  });
}
