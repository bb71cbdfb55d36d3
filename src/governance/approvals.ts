/**
 * Approvals on the wire: how a statement whose decision is `approve` is held
 * until approved or refused (the statement pipeline then goes on to masking),
 * and the decisions that release it.
 *
 * - **hold** (default): a request is created in the state store and the
 *   statement waits on the wire — the session holds the client's messages, other
 *   sessions go on — until enough approvers approve (the very statement is then
 *   forwarded on the same session and its real result returned), someone denies
 *   it, it expires (`approvals.timeout`), or the client cancels or disconnects
 *   (nothing runs). A wait inside a transaction keeps the transaction.
 * - **reject**: the statement fails at once with the request id; once approved,
 *   the identical statement (same normalized text and parameters) from the same
 *   identity runs once.
 * - **grants**: an approver may approve for N minutes: the identity may then run
 *   statements matching the same rules without asking, until the grant expires.
 *
 * Quorum: every approve rule that matched needs `count` distinct approvers from
 * its `groups`; one deny denies; nobody decides their own request. Decisions
 * made on another Warden instance sharing a PostgreSQL state store reach the
 * waiting statement through the store's notifications.
 */
import type { ApprovalView } from '../contract/admin-api.js';
import crypto from 'node:crypto';
import type { IdentityConfig, WardenConfig } from '../config/types.js';
import type { Logger } from '../log/logger.js';
import type { Analysis } from '../sql/index.js';
import { normalizeSql } from '../sql/normalize.js';
import { redactSecrets } from '../sql/secrets.js';
import type { Decision } from '../policy/index.js';
import type { ErrorVerdictFields, SessionInfo, StatementSource } from '../contract/statement-hooks.js';
import type { AuditLog } from '../audit/log.js';
import type { ApprovalRequest, ApprovalStatus, GrantRecord, StateStore } from '../store/types.js';
import { newId } from '../store/ids.js';
import { intentOf } from '../intent/sqlcommenter.js';
import { abbreviate, APPROVAL_TEXT_CAP, approvalParam, count, heldNotice, shownText, visibleText } from './approval-text.js';

export class ApprovalError extends Error {
  constructor(
    readonly status: 400 | 403 | 404 | 409,
    message: string,
  ) {
    super(message);
    this.name = 'ApprovalError';
  }
}

/** How an approval ended: approved (or covered by a grant or an earlier approval), or refused with this error. */
export type ApprovalResult = { readonly approved: true } | { readonly approved: false; readonly error: ErrorVerdictFields };

const APPROVED: ApprovalResult = Object.freeze({ approved: true as const });

export interface ApprovalService {
  /** Carries out an `approve` decision: waits for the request it creates (hold), or refuses at once (reject mode, denied, expired, cancelled). */
  approve(s: SessionInfo, stmt: StatementSource, analysis: Analysis, decision: Decision): Promise<ApprovalResult>;
  list(o?: { status?: ApprovalStatus; limit?: number }): Promise<ApprovalRequest[]>;
  get(id: string): Promise<ApprovalRequest>;
  /** A request as shown to approvers: text up to the service's cap, else a visible marker; `full`: all of it. */
  view(r: ApprovalRequest, full?: boolean): ApprovalView;
  decide(id: string, approver: IdentityConfig, decision: 'approve' | 'deny', reason: string, grantMinutes?: number): Promise<ApprovalRequest>;
  grants(all?: boolean): Promise<GrantRecord[]>;
  revokeGrant(id: string, by: IdentityConfig): Promise<void>;
  /** Requests this instance's sessions are waiting on now (held statements; metrics). */
  pending(): number;
  /** A reloaded configuration: mode, timeout, webhook, approvers' groups and rules apply to the requests made from now on. */
  reconfigure(config: WardenConfig): void;
  close(): Promise<void>;
}

export interface ApprovalServiceOptions {
  config: WardenConfig;
  store: StateStore;
  log: Logger;
  audit?: AuditLog;
  instance: string;
  /** Base URL of the admin API, for links in notifications (a function: known once the admin listener is bound). */
  adminUrl?: string | (() => string | undefined);
  /** Characters of statement text (and of each parameter) the API, webhook and audit carry before a marker; default {@link APPROVAL_TEXT_CAP}. */
  textCap?: number;
}

export type { ApprovalView } from '../contract/admin-api.js';

/** The command that prints a request's full text. */
export function fullTextCommand(id: string): string {
  return `warden approvals show ${id} --full (or GET /api/v1/approvals/${id}?full=true)`;
}

/** A request as shown to approvers (see {@link ApprovalView}); `full` shows the whole text whatever its length. */
export function approvalView(r: ApprovalRequest, o: { full?: boolean; cap?: number } = {}): ApprovalView {
  const cap = o.full ? Number.POSITIVE_INFINITY : (o.cap ?? APPROVAL_TEXT_CAP);
  const how = fullTextCommand(r.id);
  const sql = shownText(r.sql, cap, how);
  const cut: number[] = [];
  const params = r.params?.map((p, i) => {
    if (p === null) return null;
    const shown = shownText(p, cap, how);
    if (shown.truncated) cut.push(i);
    return shown.text;
  });
  return {
    ...r,
    sql: sql.text,
    ...(params !== undefined ? { params } : {}),
    sqlLength: sql.length,
    sqlSha256: sql.sha256,
    sqlTruncated: sql.truncated,
    ...(cut.length > 0 ? { paramsTruncated: cut } : {}),
  };
}

/** A code fence inside a Slack code block would end it early: break it up visibly (`` `). */
function fenceSafe(text: string): string {
  return text.replace(/```/g, '`` `');
}

/** Characters of SQL in the webhook's `text` (the chat message); the full text is in `request.sql`. */
const WEBHOOK_TEXT_SQL = 1500;

const MAX_GRANT_MINUTES = 24 * 60;

function fmtDuration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  return `${Math.round(ms / 1000)}s`;
}

/** Same statement, same parameters, same database: the key of a reject-mode approval. */
export function statementFingerprint(database: string, sql: string, params: readonly (string | null)[]): string {
  const text = normalizeSql(sql) ?? sql;
  return crypto.createHash('sha256').update(JSON.stringify([database, text, sql, params])).digest('hex');
}

/**
 * The fingerprint of a statement that carries a secret (src/sql/secrets.ts): the same key, but
 * through scrypt, so the stored fingerprint is no cheap test of guessed passwords.
 */
export function secretStatementFingerprint(database: string, sql: string, params: readonly (string | null)[]): Promise<string> {
  return new Promise((resolve, reject) => {
    crypto.scrypt(JSON.stringify([database, sql, params]), 'warden approval fingerprint', 32, { N: 16384, r: 8, p: 1 }, (err, key) =>
      err ? reject(err) : resolve(`scrypt:${key.toString('hex')}`),
    );
  });
}

/** The status a request has after its decisions (see module docs). */
export function statusAfter(r: ApprovalRequest, approverGroups: (name: string) => readonly string[]): ApprovalStatus {
  if (r.decisions.some((d) => d.decision === 'deny')) return 'denied';
  const approvers = r.decisions.filter((d) => d.decision === 'approve').map((d) => d.approver);
  const met = r.rules.every((rule) => {
    const n = new Set(approvers.filter((a) => approverGroups(a).some((g) => rule.groups.includes(g)))).size;
    return n >= rule.count;
  });
  return met ? 'approved' : 'pending';
}

/** When a remembered approval (first touch) expires: never, in practice; an operator revokes its grant to ask again. */
const REMEMBERED = '9999-12-31T23:59:59.999Z';

export function createApprovalService(o: ApprovalServiceOptions): ApprovalService {
  const { store, log, audit } = o;
  let config = o.config;
  /** Mode and timeout, read once per request (a reload may change them meanwhile). */
  const settingsOf = (c: WardenConfig) => ({ mode: c.approvals?.mode ?? 'hold', timeoutMs: c.approvals?.timeoutMs ?? 600_000 });
  let settings = settingsOf(config);
  let identities = new Map(config.identities.map((i) => [i.name, i]));
  const groupsOf = (name: string): readonly string[] => identities.get(name)?.groups ?? [];
  const adminUrl = (): string | undefined => (typeof o.adminUrl === 'function' ? o.adminUrl() : o.adminUrl);
  /** Same-instance waiters, woken at once by decide(). */
  const waiters = new Map<string, Set<() => void>>();
  const wake = (id: string): void => {
    for (const w of waiters.get(id) ?? []) w();
  };

  let textCap = o.textCap ?? APPROVAL_TEXT_CAP;
  const describeRequest = (r: ApprovalRequest): Record<string, unknown> => {
    const v = approvalView(r, { cap: textCap });
    return {
      id: r.id,
      status: r.status,
      identity: r.identity,
      on_behalf_of: r.onBehalfOf,
      database: r.database,
      environment: r.environment,
      sql: v.sql,
      sql_length: v.sqlLength,
      sql_sha256: v.sqlSha256,
      sql_truncated: v.sqlTruncated,
      params: v.params,
      ...(v.paramsTruncated ? { params_truncated: v.paramsTruncated } : {}),
      tables: r.tables,
      classes: r.classes,
      rules: r.rules,
      intent: r.intent,
      mode: r.mode,
      created_at: r.createdAt,
      expires_at: r.expiresAt,
      decisions: r.decisions,
    };
  };

  /** The statement for the chat message: in full when short, else cut with the length, hash and the command for the rest. */
  const chatSql = (r: ApprovalRequest): string => {
    const flat = fenceSafe(visibleText(r.sql));
    const fences = r.sql.includes('```') ? '\n(each ``` of the statement is shown as `` `)' : '';
    if (flat.length <= WEBHOOK_TEXT_SQL) return `\`\`\`${flat}\`\`\`${fences}`;
    const v = approvalView(r, { cap: 0 });
    return (
      `\`\`\`${flat.slice(0, WEBHOOK_TEXT_SQL)}\`\`\`${fences}\n` +
      `…[cut: showing ${count(WEBHOOK_TEXT_SQL)} of ${count(v.sqlLength)} characters; sha256 ${v.sqlSha256}; full text: ${fullTextCommand(r.id)}]`
    );
  };

  const notify = async (r: ApprovalRequest): Promise<void> => {
    const url = config.approvals?.webhook;
    if (!url) return;
    const who = r.onBehalfOf ? `${r.identity} (on behalf of ${r.onBehalfOf})` : r.identity;
    const base = adminUrl();
    const link = base ? `${base}/api/v1/approvals/${r.id}` : undefined;
    const body = {
      text:
        `Warden: ${who} asks to run a statement on ${r.database}${r.environment ? ` (${r.environment})` : ''} — ` +
        `${r.rules.map((x) => `rule ${x.rule}${x.reason ? ` (${x.reason})` : ''}`).join(', ')}.\n` +
        `${chatSql(r)}\n` +
        (r.params && r.params.length > 0 ? `Parameters: ${abbreviate(JSON.stringify(r.params), WEBHOOK_TEXT_SQL)}\n` : '') +
        `Approve: warden approvals approve ${r.id} --as <you> --reason "..."` +
        (link ? `\nDetails: ${link}` : ''),
      request: describeRequest(r),
      links: { show: link, approve: link ? `${link}/approve` : undefined, deny: link ? `${link}/deny` : undefined },
    };
    let delay = 500;
    for (let attempt = 1; attempt <= 5; attempt++) {
      try {
        const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(5_000) });
        if (res.ok) return;
        throw new Error(`HTTP ${res.status}`);
      } catch (err) {
        log.warn({ request: r.id, attempt, reason: (err as Error).message }, 'approval webhook failed');
        if (attempt === 5) return;
        await new Promise((res) => setTimeout(res, delay).unref());
        delay *= 2;
      }
    }
  };

  const refuse = (code: string, message: string, hint?: string): ApprovalResult => ({ approved: false, error: { code, message, ...(hint ? { hint } : {}) } });

  /** Waits until the request leaves `pending`; the outcome. */
  const waitFor = (s: SessionInfo, r: ApprovalRequest): Promise<ApprovalStatus> =>
    new Promise<ApprovalStatus>((resolve) => {
      let done = false;
      const cleanups: (() => void)[] = [];
      const finish = (st: ApprovalStatus): void => {
        if (done) return;
        done = true;
        for (const c of cleanups) c();
        resolve(st);
      };
      const check = (): void => {
        store.getRequest(r.id).then(
          (cur) => {
            if (cur && cur.status !== 'pending') finish(cur.status);
          },
          (err: Error) => log.warn({ request: r.id, reason: err.message }, 'reading an approval request failed'),
        );
      };
      const set = waiters.get(r.id) ?? new Set();
      set.add(check);
      waiters.set(r.id, set);
      cleanups.push(() => {
        set.delete(check);
        if (set.size === 0) waiters.delete(r.id);
      });
      const unwatch = store.watch?.(r.id, check);
      if (unwatch) cleanups.push(unwatch);
      const move = (to: ApprovalStatus): void => {
        store.setStatus(r.id, 'pending', to, new Date().toISOString()).then(
          (won) => (won ? finish(to) : check()),
          (err: Error) => {
            log.error({ request: r.id, reason: err.message }, 'updating an approval request failed');
            finish(to);
          },
        );
      };
      const timer = setTimeout(() => move('expired'), Math.max(0, Date.parse(r.expiresAt) - Date.now()));
      cleanups.push(() => clearTimeout(timer));
      cleanups.push(s.onInterrupt(() => move('cancelled')));
      // Without notifications from the store, look now and then.
      if (!unwatch) {
        const poll = setInterval(check, 1_000);
        cleanups.push(() => clearInterval(poll));
      }
    });

  const record = (type: string, data: Record<string, unknown>): void => audit?.record(type, data as never);

  return {
    async approve(s, stmt, analysis, decision) {
      const { mode, timeoutMs } = settings;
      const now = new Date();
      const rules = decision.approvals.map((a) => ({ rule: a.rule, reason: a.reason, groups: [...(a.approvers?.groups ?? [])], count: a.approvers?.count ?? 1, ...(a.remember ? { remember: true } : {}) }));
      // A just-in-time grant covering every rule that asks.
      const grants = await store.activeGrants(s.identity.name, now.toISOString());
      const covering = rules.map((r) => grants.find((g) => g.rule === r.rule && (g.database === undefined || g.database === s.database.name)));
      if (covering.every((g) => g !== undefined)) {
        record('approval.grant_used', { session: s.id, identity: s.identity.name, grants: covering.map((g) => g!.id), rules: rules.map((r) => r.rule) });
        return APPROVED;
      }
      // Parameters in full (binary ones as hex): the approver sees them and the reject-mode key covers all of them.
      const params =
        stmt.protocol === 'extended'
          ? stmt.params.map((p, i) => approvalParam(p, stmt.paramFormats.length === 0 ? 0 : stmt.paramFormats.length === 1 ? stmt.paramFormats[0]! : (stmt.paramFormats[i] ?? 0)))
          : [];
      const sensitive = decision.sensitiveTypes.length > 0;
      // Passwords and connection strings never reach the request, the store or the webhook (src/sql/secrets.ts).
      const secret = redactSecrets(stmt.sql, analysis);
      const fingerprint = secret ? await secretStatementFingerprint(s.database.name, stmt.sql, params) : statementFingerprint(s.database.name, stmt.sql, params);
      if (mode === 'reject') {
        const ok = await store.findApproved(s.identity.name, fingerprint, now.toISOString());
        if (ok && (await store.setStatus(ok.id, 'approved', 'used', now.toISOString()))) {
          record('approval.used', { session: s.id, identity: s.identity.name, request: ok.id });
          return APPROVED;
        }
      }
      const text = secret ? secret.text : stmt.sql;
      const sql = sensitive && secret?.how !== 'withheld' ? (normalizeSql(text) ?? '<statement withheld: touches sensitive columns>') : text;
      const req = await store.createRequest({
        id: newId('apr'),
        identity: s.identity.name,
        // The user an agent acts for (a token's --on-behalf-of, an OIDC act claim): they may not decide it either.
        ...(s.auth.onBehalfOf ? { onBehalfOf: s.auth.onBehalfOf } : {}),
        database: s.database.name,
        environment: s.database.environment,
        sql, // in full: the store keeps what the approver approves (see approval-text.ts)
        fingerprint,
        params: sensitive || secret?.maskParams ? params.map((p) => (p === null ? null : '<masked>')) : params,
        rules,
        tables: analysis.ok ? [...new Set([...analysis.reads, ...analysis.writes].map((r) => r.name))] : [],
        classes: analysis.ok ? [...analysis.classes].sort() : [],
        intent: intentOf(s.wardenSettings, stmt.sql),
        instance: o.instance,
        session: s.id,
        mode,
        createdAt: now.toISOString(),
        expiresAt: new Date(now.getTime() + timeoutMs).toISOString(),
      });
      const shown = approvalView(req, { cap: textCap });
      record('approval.requested', {
        session: s.id,
        identity: s.identity.name,
        request: req.id,
        mode,
        rules: rules.map((r) => r.rule),
        tables: req.tables as string[],
        sql: shown.sql,
        sql_length: shown.sqlLength,
        sql_sha256: shown.sqlSha256,
        ...(shown.sqlTruncated ? { sql_truncated: true } : {}),
        ...(shown.params && shown.params.length > 0 ? { params: shown.params } : {}),
        ...(shown.paramsTruncated ? { params_truncated: shown.paramsTruncated } : {}),
      });
      log.info({ session: s.id, identity: s.identity.name, request: req.id, mode }, 'statement needs approval');
      void notify(req);
      const how = `warden approvals approve ${req.id} --as <approver> --reason "..."`;
      const ruleText = rules.map((r) => `"${r.rule}"${r.reason ? ` (${r.reason})` : ''}`).join(', ');
      if (mode === 'reject') {
        return refuse(
          '42501',
          `rule ${ruleText} requires approval: request ${req.id} was created; run the identical statement again once it is approved`,
          `An approver (${rules.map((r) => `${r.count} of ${r.groups.join('/')}`).join('; ')}) approves it with: ${how}. It expires in ${fmtDuration(timeoutMs)}.`,
        );
      }
      // Tell the waiting person at once (psql prints a notice as it arrives): the request, who approves it, and how.
      const approvers = rules.map((r) =>
        config.identities.filter((i) => i.name !== s.identity.name && i.name !== s.auth.onBehalfOf && i.groups.some((g) => r.groups.includes(g))).map((i) => i.name),
      );
      s.notice?.({ severity: 'NOTICE', ...heldNotice({ id: req.id, rules, approvers, expiresAt: req.expiresAt, timeout: fmtDuration(timeoutMs), adminUrl: adminUrl() }) });
      const outcome = await waitFor(s, req);
      const final = await store.getRequest(req.id).catch(() => null);
      record('approval.resolved', { session: s.id, identity: s.identity.name, request: req.id, status: outcome });
      switch (outcome) {
        case 'approved': {
          await store.setStatus(req.id, 'approved', 'used', new Date().toISOString()).catch(() => false);
          return APPROVED;
        }
        case 'denied': {
          const d = final?.decisions.find((x) => x.decision === 'deny');
          return refuse('42501', `approval request ${req.id} for rule ${ruleText} was denied${d ? ` by ${d.approver}: ${d.reason}` : ''}; the statement was not run`);
        }
        case 'expired':
          return refuse('42501', `approval request ${req.id} for rule ${ruleText} expired after ${fmtDuration(timeoutMs)} without enough approvals; the statement was not run`);
        case 'cancelled':
          return refuse('57014', `canceling statement due to user request: approval request ${req.id} was cancelled and the statement was not run`);
        default:
          return refuse('42501', `approval request ${req.id} ended as ${outcome}; the statement was not run`);
      }
    },

    list: (q) => store.listRequests(q),

    view: (r, full) => approvalView(r, { full, cap: textCap }),

    async get(id) {
      const r = await store.getRequest(id);
      if (!r) throw new ApprovalError(404, `no approval request ${id}`);
      return r;
    },

    async decide(id, approver, decision, reason, grantMinutes) {
      if (!reason || !reason.trim()) throw new ApprovalError(400, 'a reason is required for every decision');
      if (grantMinutes !== undefined && (!Number.isFinite(grantMinutes) || grantMinutes <= 0 || grantMinutes > MAX_GRANT_MINUTES)) {
        throw new ApprovalError(400, `grant minutes must be more than 0 and at most ${MAX_GRANT_MINUTES}`);
      }
      const r = await store.getRequest(id);
      if (!r) throw new ApprovalError(404, `no approval request ${id}`);
      if (r.identity === approver.name || r.onBehalfOf === approver.name) throw new ApprovalError(403, `${approver.name} cannot decide their own request`);
      const eligible = r.rules.some((rule) => approver.groups.some((g) => rule.groups.includes(g)));
      if (!eligible) {
        throw new ApprovalError(403, `${approver.name} is not an approver of this request (needs a group among ${[...new Set(r.rules.flatMap((x) => x.groups))].join(', ')})`);
      }
      if (r.status !== 'pending') throw new ApprovalError(409, `approval request ${id} is ${r.status}, not pending`);
      let updated: ApprovalRequest;
      try {
        updated = await store.addDecision(id, { approver: approver.name, decision, reason: reason.trim(), at: new Date().toISOString() }, (cur) => statusAfter(cur, groupsOf));
      } catch (err) {
        throw new ApprovalError(409, (err as Error).message);
      }
      record('approval.decided', { identity: approver.name, request: id, decision, reason: reason.trim(), status: updated.status, grant_minutes: grantMinutes });
      if (updated.status === 'approved' && grantMinutes !== undefined && decision === 'approve') {
        const now = Date.now();
        for (const rule of updated.rules) {
          const g: GrantRecord = {
            id: newId('grt'),
            identity: updated.identity,
            rule: rule.rule,
            database: updated.database,
            requestId: id,
            createdAt: new Date(now).toISOString(),
            expiresAt: new Date(now + grantMinutes * 60_000).toISOString(),
          };
          await store.putGrant(g);
          record('grant.created', { identity: approver.name, grant: g.id, to: g.identity, rule: g.rule, expires_at: g.expiresAt, request: id });
        }
      }
      // Rules to remember (first touch): a lasting grant each, so the identity is not asked again.
      if (updated.status === 'approved' && decision === 'approve') {
        const now = new Date().toISOString();
        for (const rule of updated.rules) {
          if (!rule.remember || (grantMinutes !== undefined)) continue;
          const g: GrantRecord = { id: newId('grt'), identity: updated.identity, rule: rule.rule, database: updated.database, requestId: id, createdAt: now, expiresAt: REMEMBERED };
          await store.putGrant(g);
          record('grant.created', { identity: approver.name, grant: g.id, to: g.identity, rule: g.rule, expires_at: g.expiresAt, request: id, remembered: true });
        }
      }
      wake(id);
      return updated;
    },

    grants: (all) => store.listGrants({ all }),

    async revokeGrant(id, by) {
      const g = (await store.listGrants({ all: true })).find((x) => x.id === id);
      if (!g || g.revokedAt) throw new ApprovalError(404, `no active grant ${id}`);
      const rule = config.rules.find((r) => r.name === g.rule);
      const groups = rule?.approvers?.groups ?? [];
      if (by.name !== g.identity && !by.groups.some((x) => groups.includes(x))) {
        throw new ApprovalError(403, `${by.name} may not revoke grant ${id} (needs a group among ${groups.join(', ') || 'the rule approvers'}, or be its holder)`);
      }
      if (!(await store.revokeGrant(id, new Date().toISOString()))) throw new ApprovalError(404, `no active grant ${id}`);
      record('grant.revoked', { identity: by.name, grant: id });
    },

    reconfigure(c) {
      config = c;
      settings = settingsOf(c);
      identities = new Map(c.identities.map((i) => [i.name, i]));
      textCap = c.approvals?.textCap ?? APPROVAL_TEXT_CAP;
    },

    pending: () => waiters.size,

    close: () => store.close(),
  };
}
