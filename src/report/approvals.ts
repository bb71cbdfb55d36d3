/**
 * Every approval: who asked (and the intent they gave), which rules asked for
 * it, who decided and why, how long the statement waited, and how it ended;
 * plus just-in-time grants created, used and revoked.
 *
 * Records: `approval.requested` (requester, rules, text), `approval.decided`
 * (approver, decision, reason), `approval.resolved` (the held statement's end:
 * approved, denied, expired, cancelled), `approval.used` (a reject-mode
 * approval used), `approval.grant_used`, `grant.created`, `grant.revoked`. The
 * intent is the one of the requester's next statement record in the session
 * (the held statement's own record, written once it was decided).
 */
import type { AuditRecord } from '../audit/chain.js';
import { controlsOf } from './controls.js';
import { num, oneLine, str, strings, type Data, type StatementFacts } from './facts.js';
import { CappedList, type Aggregator, type Listing, type ReportContext, type SectionBase } from './types.js';

export interface ApprovalDecision {
  approver: string;
  decision: string;
  reason: string;
  at: string;
  grantMinutes?: number;
}

export interface ApprovalRow {
  request: string;
  requestedAt: string | null;
  requester: string;
  session: string;
  database: string;
  mode: string;
  rules: string[];
  tables: string[];
  sql: string;
  intent: Record<string, string>;
  decisions: ApprovalDecision[];
  /** pending (no outcome in the records read), approved, denied, expired, cancelled, used. */
  status: string;
  resolvedAt: string | null;
  /** From the request to its last decision (or its resolution); null when either is missing. */
  waitMs: number | null;
}

export interface GrantRow {
  ts: string;
  event: 'created' | 'used' | 'revoked';
  grant: string;
  to: string;
  by: string;
  rule: string;
  request: string;
  expiresAt: string;
}

export interface ApprovalsSection extends SectionBase {
  id: 'approvals';
  total: number;
  approved: number;
  denied: number;
  expired: number;
  cancelled: number;
  pending: number;
  /** Median and longest wait of the decided requests, ms. */
  medianWaitMs: number | null;
  maxWaitMs: number | null;
  requests: ApprovalRow[];
  grants: Listing<GrantRow>;
}

export function approvals(o: { ctx: ReportContext; database?: string; cap: number }): Aggregator<ApprovalsSection> {
  const rows = new Map<string, ApprovalRow>();
  const awaitingIntent = new Map<string, ApprovalRow>();
  const grants = new CappedList<GrantRow>(o.cap);
  const grantTo = new Map<string, { to: string; rule: string; request: string }>();
  const rowOf = (id: string): ApprovalRow => {
    let r = rows.get(id);
    if (!r) {
      r = { request: id, requestedAt: null, requester: '', session: '', database: '', mode: '', rules: [], tables: [], sql: '', intent: {}, decisions: [], status: 'pending', resolvedAt: null, waitMs: null };
      rows.set(id, r);
    }
    return r;
  };
  return {
    statement(f: StatementFacts) {
      const waiting = awaitingIntent.get(f.session);
      if (!waiting) return;
      waiting.intent = f.intent;
      awaitingIntent.delete(f.session);
    },
    record(r: AuditRecord) {
      const d = r.data as Data;
      const s = (k: string): string => str(d[k]) ?? '';
      switch (r.type) {
        case 'approval.requested': {
          const row = rowOf(s('request'));
          row.requestedAt = r.ts;
          row.requester = s('identity');
          row.session = s('session');
          row.database = o.ctx.databaseOfSession(row.session) ?? '';
          row.mode = s('mode');
          row.rules = strings(d.rules);
          row.tables = strings(d.tables);
          row.sql = oneLine(typeof d.sql === 'string' ? d.sql : '', 1000);
          if (row.session) awaitingIntent.set(row.session, row);
          return;
        }
        case 'approval.decided': {
          const row = rowOf(s('request'));
          row.decisions.push({ approver: s('identity'), decision: s('decision'), reason: s('reason'), at: r.ts, ...(num(d.grant_minutes) !== undefined ? { grantMinutes: num(d.grant_minutes) } : {}) });
          const status = s('status');
          if (status && status !== 'pending') {
            row.status = status;
            row.resolvedAt = r.ts;
          }
          return;
        }
        case 'approval.resolved': {
          const row = rowOf(s('request'));
          const status = s('status');
          if (status) row.status = status;
          row.resolvedAt ??= r.ts;
          if (row.status === 'approved' || row.status === 'denied') row.resolvedAt = row.decisions.at(-1)?.at ?? r.ts;
          else row.resolvedAt = r.ts;
          return;
        }
        case 'approval.used': {
          const row = rowOf(s('request'));
          row.status = 'used';
          return;
        }
        case 'grant.created': {
          const g = { to: s('to'), rule: s('rule'), request: s('request') };
          grantTo.set(s('grant'), g);
          grants.push({ ts: r.ts, event: 'created', grant: s('grant'), to: g.to, by: s('identity'), rule: g.rule, request: g.request, expiresAt: s('expires_at') });
          return;
        }
        case 'approval.grant_used':
          for (const id of strings(d.grants)) {
            const g = grantTo.get(id);
            grants.push({ ts: r.ts, event: 'used', grant: id, to: s('identity'), by: '', rule: g?.rule ?? strings(d.rules).join(', '), request: g?.request ?? '', expiresAt: '' });
          }
          return;
        case 'grant.revoked': {
          const g = grantTo.get(s('grant'));
          grants.push({ ts: r.ts, event: 'revoked', grant: s('grant'), to: g?.to ?? '', by: s('identity'), rule: g?.rule ?? '', request: g?.request ?? '', expiresAt: '' });
          return;
        }
        default:
      }
    },
    finish() {
      let list = [...rows.values()];
      if (o.database !== undefined) list = list.filter((r) => r.database === o.database);
      for (const r of list) {
        if (r.requestedAt && r.resolvedAt) r.waitMs = Date.parse(r.resolvedAt) - Date.parse(r.requestedAt);
      }
      list.sort((a, b) => (a.requestedAt ?? '').localeCompare(b.requestedAt ?? '', 'en', { numeric: true }) || a.request.localeCompare(b.request, 'en', { numeric: true }));
      const waits = list.map((r) => r.waitMs).filter((w): w is number => w !== null).sort((a, b) => a - b);
      const count = (s: string): number => list.filter((r) => r.status === s).length;
      return {
        id: 'approvals',
        title: 'Approvals',
        description: 'Every statement held for approval: requester and intent, the rules that asked, each approver\'s decision and reason, how long it waited and how it ended; and just-in-time grants.',
        controls: controlsOf('approvals'),
        total: list.length,
        approved: count('approved') + count('used'),
        denied: count('denied'),
        expired: count('expired'),
        cancelled: count('cancelled'),
        pending: count('pending'),
        medianWaitMs: waits.length > 0 ? waits[Math.floor((waits.length - 1) / 2)] : null,
        maxWaitMs: waits.length > 0 ? waits[waits.length - 1] : null,
        requests: list,
        grants: grants.toJSON(),
      };
    },
  };
}
