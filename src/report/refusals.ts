/** Every statement Warden refused (`statement.refused`): by rule, identity and SQLSTATE, and each one; and every failed login (`login.failed`). */
import { controlsOf } from './controls.js';
import type { AuditRecord } from '../audit/chain.js';
import { oneLine, ref, str, type Data, type StatementFacts } from './facts.js';
import { CappedList, type Aggregator, type Listing, type SectionBase } from './types.js';

export interface Refusal {
  ts: string;
  record: string;
  identity: string;
  kind: string;
  onBehalfOf?: string;
  database: string;
  rule: string;
  action: string;
  sqlstate: string;
  error: string;
  sql: string;
  intent: Record<string, string>;
  /** `audit-unavailable`: refused because the statement could not be recorded, not by policy. */
  refusedWhile?: string;
}

export interface Count {
  key: string;
  count: number;
}

/** A failed login (`login.failed`): wrong password, unknown name, rate limited, suspended identity. */
export interface FailedLogin {
  ts: string;
  record: string;
  identity: string;
  clientAddress: string;
  database: string;
  reason: string;
  /** `admin-api` for the HTTP API, else the PostgreSQL listener. */
  channel: string;
}

export interface RefusalsSection extends SectionBase {
  id: 'refusals';
  failedLogins: Listing<FailedLogin>;
  failedLoginsByIdentity: Count[];
  total: number;
  byPolicy: number;
  whileAuditUnavailable: number;
  byRule: Count[];
  byIdentity: Count[];
  bySqlstate: Count[];
  refusals: Listing<Refusal>;
}

export function countsOf(m: Map<string, number>): Count[] {
  return [...m.entries()].map(([key, count]) => ({ key, count })).sort((a, b) => b.count - a.count || a.key.localeCompare(b.key, 'en', { numeric: true }));
}

export function bump(m: Map<string, number>, key: string, n = 1): void {
  m.set(key, (m.get(key) ?? 0) + n);
}

export function refusals(o: { cap: number }): Aggregator<RefusalsSection> {
  const list = new CappedList<Refusal>(o.cap);
  const byRule = new Map<string, number>();
  const byIdentity = new Map<string, number>();
  const bySqlstate = new Map<string, number>();
  let unavailable = 0;
  const logins = new CappedList<FailedLogin>(o.cap);
  const loginsBy = new Map<string, number>();
  return {
    record(r: AuditRecord) {
      if (r.type !== 'login.failed') return;
      const d = r.data as Data;
      const identity = str(d.identity) ?? '';
      bump(loginsBy, identity);
      logins.push({ ts: r.ts, record: ref(r), identity, clientAddress: str(d.client_address) ?? '', database: str(d.database) ?? '', reason: str(d.reason) ?? '', channel: str(d.channel) ?? 'postgres' });
    },
    statement(f: StatementFacts) {
      if (f.type !== 'statement.refused') return;
      const rule = f.refusedWhile ? `(audit ${f.refusedWhile})` : (f.rule ?? '(none)');
      if (f.refusedWhile) unavailable++;
      bump(byRule, rule);
      bump(byIdentity, f.identity);
      bump(bySqlstate, f.sqlstate ?? '');
      list.push({
        ts: f.ts,
        record: ref(f),
        identity: f.identity,
        kind: f.kind,
        ...(f.onBehalfOf ? { onBehalfOf: f.onBehalfOf } : {}),
        database: f.database,
        rule,
        action: f.action ?? '',
        sqlstate: f.sqlstate ?? '',
        error: oneLine(f.error ?? '', 600),
        sql: oneLine(f.sql, 2000),
        intent: f.intent,
        ...(f.refusedWhile ? { refusedWhile: f.refusedWhile } : {}),
      });
    },
    finish() {
      return {
        id: 'refusals',
        title: 'Refused statements and failed logins',
        description:
          'Every statement Warden answered with an error instead of running it: refused by a rule, by masking, by a limit checked before it ran, or because it could not be recorded; and every failed login (wrong password, unknown name, rate limited, suspended identity).',
        controls: controlsOf('refusals'),
        failedLogins: logins.toJSON(),
        failedLoginsByIdentity: countsOf(loginsBy),
        total: list.total,
        byPolicy: list.total - unavailable,
        whileAuditUnavailable: unavailable,
        byRule: countsOf(byRule),
        byIdentity: countsOf(byIdentity),
        bySqlstate: countsOf(bySqlstate),
        refusals: list.toJSON(),
      };
    },
  };
}
