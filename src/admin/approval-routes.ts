/**
 * Approvals API on the admin listener (authenticated; see admin/auth.ts):
 *
 * - `GET  /api/v1/approvals?status=pending&limit=50` — requests, newest first
 * - `GET  /api/v1/approvals/:id` — one request with its decisions
 * - `POST /api/v1/approvals/:id/approve` `{ "reason": "...", "grant_minutes": 30 }` —
 *   the authenticated identity approves (optionally as a just-in-time grant)
 * - `POST /api/v1/approvals/:id/deny` `{ "reason": "..." }`
 * - `GET  /api/v1/grants?all=true` — just-in-time grants (active ones by default)
 * - `DELETE /api/v1/grants/:id` — revoke a grant (approvers of its rule)
 *
 * Who may decide is checked by the service: an identity in one of the rule's
 * approver groups, never the requester.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { ApprovalError, type ApprovalService } from '../governance/approvals.js';
import type { ApprovalStatus } from '../store/types.js';

const STATUSES: readonly ApprovalStatus[] = ['pending', 'approved', 'denied', 'expired', 'cancelled', 'used'];

function fail(reply: FastifyReply, err: unknown): FastifyReply {
  if (err instanceof ApprovalError) return reply.code(err.status).send({ error: err.message });
  throw err;
}

export function registerApprovalRoutes(app: FastifyInstance, approvals: ApprovalService): void {
  app.get('/approvals', async (req, reply) => {
    const q = req.query as { status?: string; limit?: string };
    if (q.status !== undefined && !STATUSES.includes(q.status as ApprovalStatus)) {
      return reply.code(400).send({ error: `status: expected one of ${STATUSES.join(', ')}` });
    }
    const limit = q.limit === undefined ? 100 : Number(q.limit);
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > 1000) return reply.code(400).send({ error: 'limit: expected an integer from 1 to 1000' });
    return { requests: await approvals.list({ status: q.status as ApprovalStatus | undefined, limit }) };
  });

  app.get('/approvals/:id', async (req, reply) => {
    try {
      return await approvals.get((req.params as { id: string }).id);
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
        return await approvals.decide((req.params as { id: string }).id, req.identity!, decision, body.reason, body.grant_minutes as number | undefined);
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
