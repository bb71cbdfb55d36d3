/**
 * Sessions and the kill switch on the admin API (docs/operations.md):
 *
 * - `GET  /api/v1/sessions`                     operators and auditors: who is connected, doing what;
 * - `POST /api/v1/sessions/:id/kill {reason}`   operators: cancel its statement upstream, FATAL 57P01;
 * - `GET  /api/v1/suspensions`                  operators and auditors;
 * - `POST /api/v1/identities/:name/suspend {reason}` / `.../resume` operators.
 *
 * Operators are the members of `admin.operators`; an identity that is itself suspended may not
 * operate. Every action is audited with who and why.
 */
import type { SessionView } from '../contract/admin-api.js';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { WardenConfig } from '../config/types.js';
import type { Session } from '../proxy/session/session.js';
import type { ApprovalService } from '../governance/approvals.js';
import { SuspensionError, cleanReason, type AuditRecorder, type SuspensionService } from '../governance/suspensions.js';
import { redactSecrets } from '../sql/secrets.js';
import { normalizeSql } from '../sql/normalize.js';

/** Characters of statement text a listing shows before a marker. */
export const LISTED_SQL_CAP = 2048;

export interface SessionAdmin {
  /** The sessions of this instance now. */
  list(): readonly Session[];
  /** End one with FATAL `t` (its running statement cancelled upstream); the session, or undefined when there is none. */
  terminate(id: string, t: { code: string; message: string; hint?: string }): Session | undefined;
  suspensions?: SuspensionService;
  /** To show which sessions wait for an approval (and the request). */
  approvals?: () => ApprovalService | undefined;
  audit?: AuditRecorder;
  /** This instance's name (approval requests name the instance that holds them). */
  instance?: string;
  /** The running configuration (a reload replaces it): `admin.operators`, `admin.auditors`, `sensitive`. */
  config: () => Pick<WardenConfig, 'sensitive' | 'admin'>;
}

export type { SessionView } from '../contract/admin-api.js';

/** A statement's text as a listing may show it: secrets redacted, constants normalized when sensitive columns are declared, capped. */
export function listedSql(sql: string, normalize: boolean, cap = LISTED_SQL_CAP): string {
  const secret = redactSecrets(sql);
  let text = secret ? secret.text : sql;
  if (normalize && secret?.how !== 'withheld') text = normalizeSql(text) ?? '<statement withheld: could not be normalized>';
  if (text.length > cap) {
    let end = cap;
    const last = text.charCodeAt(end - 1);
    if (last >= 0xd800 && last <= 0xdbff) end--;
    text = `${text.slice(0, end)}…(${text.length} chars)`;
  }
  return text;
}

/** Whether the configuration declares sensitive columns (texts are then shown normalized, as the audit may). */
function declaresSensitive(c: Pick<WardenConfig, 'sensitive' | 'admin'>): boolean {
  const s = c.sensitive;
  return !!s && (Object.keys(s.columns).length > 0 || s.detect.length > 0);
}

const BUSY = new Set(['active', 'active (COPY)', 'deciding']);

export function sessionView(s: Session, o: { normalize: boolean; now: number; approval?: string }): SessionView {
  const a = s.activity();
  const state = a.state === 'deciding' && o.approval ? 'waiting for approval' : a.state;
  return {
    id: s.id,
    identity: s.identity.name,
    kind: s.identity.kind,
    on_behalf_of: s.auth.onBehalfOf ?? null,
    auth: s.auth.method,
    database: s.database.name,
    client_address: s.clientAddress,
    client_port: s.clientPort,
    tls: s.tls,
    tls_version: a.tlsVersion,
    application_name: s.startupParams.get('application_name') || null,
    started_at: new Date(s.startedAt).toISOString(),
    state,
    approval_request: o.approval ?? null,
    statement: a.statement === null ? null : listedSql(a.statement, o.normalize),
    statement_started_at: a.statementAt === null ? null : new Date(a.statementAt).toISOString(),
    statement_duration_ms: a.statementAt !== null && BUSY.has(a.state) ? Math.max(0, o.now - a.statementAt) : null,
  };
}

function errorOf(reply: FastifyReply, err: unknown): FastifyReply {
  if (err instanceof SuspensionError) return reply.code(err.status).send({ error: err.message });
  return reply.code(500).send({ error: (err as Error).message });
}

export function registerSessionRoutes(app: FastifyInstance, admin: SessionAdmin): void {
  const operators = (): readonly string[] => admin.config().admin?.operators ?? [];
  const auditors = (): readonly string[] => admin.config().admin?.auditors ?? [];
  const suspendedCaller = (req: FastifyRequest): string | undefined => {
    const s = admin.suspensions?.check(req.identity!.name);
    return s ? `identity ${s.identity} is suspended: ${s.reason}` : undefined;
  };
  const only =
    (groups: () => readonly string[], what: string, keys: string) =>
    async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
      const suspended = suspendedCaller(req);
      if (suspended) return reply.code(403).send({ error: suspended });
      const g = groups();
      if (req.identity!.groups.some((x) => g.includes(x))) return undefined;
      return reply.code(403).send({
        error:
          g.length === 0
            ? `${what} needs membership of a group listed in ${keys} (none is configured)`
            : `${what} needs membership of one of the groups ${g.join(', ')} (${keys})`,
      });
    };
  const readers = only(() => [...operators(), ...auditors()], 'listing sessions', 'admin.operators or admin.auditors');
  const operatorsOnly = (what: string): ReturnType<typeof only> => only(operators, what, 'admin.operators');

  app.get('/sessions', { preHandler: readers }, async () => {
    const waiting = new Map<string, string>();
    const sessions = admin.list();
    const approvals = admin.approvals?.();
    if (approvals && sessions.some((s) => s.activity().state === 'deciding')) {
      for (const r of await approvals.list({ status: 'pending', limit: 1000 }).catch(() => [])) {
        if (r.session && r.mode === 'hold' && (admin.instance === undefined || r.instance === admin.instance)) waiting.set(r.session, r.id);
      }
    }
    const normalize = declaresSensitive(admin.config());
    const now = Date.now();
    return {
      sessions: sessions.map((s) => sessionView(s, { normalize, now, approval: waiting.get(s.id) })),
    };
  });

  app.post('/sessions/:id/kill', { preHandler: operatorsOnly('killing a session') }, async (req, reply) => {
    const id = (req.params as { id: string }).id;
    const body = (req.body ?? {}) as { reason?: unknown };
    let reason: string;
    try {
      reason = cleanReason(body.reason);
    } catch (err) {
      return errorOf(reply, err);
    }
    const by = req.identity!.name;
    const s = admin.list().find((x) => x.id === id);
    if (!s) return reply.code(404).send({ error: `no session ${id} on this Warden instance (see warden sessions list)` });
    // The cause before its effect (the session's own session.end).
    admin.audit?.('session.killed', { session: id, identity: s.identity.name, database: s.database.name, by, reason });
    admin.terminate(id, { code: '57P01', message: `terminated by an operator (${by}): ${reason}` });
    return { killed: id, identity: s.identity.name, by, reason };
  });

  const suspensions = admin.suspensions;
  if (!suspensions) return;

  app.get('/suspensions', { preHandler: readers }, async () => ({
    suspensions: suspensions.list().map((s) => ({ identity: s.identity, reason: s.reason, suspended_by: s.suspendedBy, suspended_at: s.suspendedAt })),
  }));

  app.post('/identities/:name/suspend', { preHandler: operatorsOnly('suspending an identity') }, async (req, reply) => {
    const name = (req.params as { name: string }).name;
    const body = (req.body ?? {}) as { reason?: unknown };
    if (name === req.identity!.name) return reply.code(400).send({ error: 'an operator cannot suspend their own identity' });
    try {
      const { record, sessionsEnded } = await suspensions.suspend(name, cleanReason(body.reason), req.identity!.name);
      return { suspended: record.identity, reason: record.reason, by: record.suspendedBy, at: record.suspendedAt, sessions_ended: sessionsEnded };
    } catch (err) {
      return errorOf(reply, err);
    }
  });

  app.post('/identities/:name/resume', { preHandler: operatorsOnly('resuming an identity') }, async (req, reply) => {
    const name = (req.params as { name: string }).name;
    try {
      const was = await suspensions.resume(name, req.identity!.name);
      return { resumed: was.identity, by: req.identity!.name, was_suspended_by: was.suspendedBy, reason: was.reason };
    } catch (err) {
      return errorOf(reply, err);
    }
  });
}
