/** The report's section aggregators, one by one, on hand-made records. */
import { describe, expect, it } from 'vitest';
import type { AuditRecord } from '../../src/audit/chain.js';
import { approvals } from '../../src/report/approvals.js';
import { limits, outcomeOf } from '../../src/report/limits.js';
import { intentRules, missingIntent } from '../../src/report/missing-intent.js';
import { mapColumns } from '../../src/report/sensitive-reads.js';
import { operations } from '../../src/report/operations.js';
import { statementFacts } from '../../src/report/facts.js';
import type { ReportContext } from '../../src/report/types.js';

let seq = 0;
const rec = (type: string, data: Record<string, unknown>, ts = `2026-11-02T09:${String(seq % 60).padStart(2, '0')}:00.000Z`, instance = 'w1'): AuditRecord =>
  ({ seq: ++seq, ts, instance, type, data, prev: '0'.repeat(64), hash: '0'.repeat(64) }) as AuditRecord;
const ctx = (sessions: Record<string, string> = {}): ReportContext => ({ groupsOf: () => [], statementAt: () => undefined, databaseOfSession: (s) => sessions[s], cap: 100 });

describe('approvals', () => {
  it('joins request, decisions and outcome across instances, with the wait and the held statement intent', () => {
    const a = approvals({ ctx: ctx({ s1: 'app', s2: 'other' }), cap: 100 });
    a.record!(rec('approval.requested', { session: 's1', identity: 'alice', request: 'apr-1', mode: 'hold', rules: ['r'], tables: ['t'], sql: 'DELETE FROM t' }, '2026-11-02T09:00:00.000Z', 'w1'));
    a.record!(rec('approval.requested', { session: 's2', identity: 'bob', request: 'apr-2', mode: 'hold', rules: ['r'], tables: ['t'], sql: 'DELETE FROM t' }, '2026-11-02T09:00:00.000Z', 'w1'));
    // Decided through another instance's API; the first approver alone is not enough for apr-1.
    a.record!(rec('approval.decided', { identity: 'dana', request: 'apr-1', decision: 'approve', reason: 'ok', status: 'pending' }, '2026-11-02T09:01:00.000Z', 'w2'));
    a.record!(rec('approval.decided', { identity: 'erin', request: 'apr-1', decision: 'approve', reason: 'fine', status: 'approved' }, '2026-11-02T09:02:30.000Z', 'w2'));
    a.record!(rec('approval.decided', { identity: 'dana', request: 'apr-2', decision: 'deny', reason: 'no', status: 'denied' }, '2026-11-02T09:00:10.000Z', 'w2'));
    a.record!(rec('approval.resolved', { session: 's1', identity: 'alice', request: 'apr-1', status: 'approved' }, '2026-11-02T09:02:31.000Z'));
    a.statement!(statementFacts(rec('statement.begin', { session: 's1', identity: 'alice', intent: { ticket: 'T-9' }, sql: 'DELETE FROM t', decision: { action: 'approve' } })));
    a.record!(rec('grant.created', { identity: 'erin', grant: 'g1', to: 'alice', rule: 'r', expires_at: 'x', request: 'apr-1' }));
    a.record!(rec('approval.grant_used', { session: 's1', identity: 'alice', grants: ['g1'], rules: ['r'] }));
    const s = a.finish();
    expect(s.total).toBe(2);
    expect(s.approved).toBe(1);
    expect(s.denied).toBe(1);
    const one = s.requests.find((r) => r.request === 'apr-1')!;
    expect(one.decisions.map((d) => d.approver)).toEqual(['dana', 'erin']);
    expect(one.waitMs).toBe(150_000);
    expect(one.intent).toEqual({ ticket: 'T-9' });
    expect(s.requests.find((r) => r.request === 'apr-2')!.waitMs).toBe(10_000);
    expect(s.grants.items.map((g) => [g.event, g.to, g.rule])).toEqual([
      ['created', 'alice', 'r'],
      ['used', 'alice', 'r'],
    ]);
    const onlyApp = approvals({ ctx: ctx({ s1: 'app', s2: 'other' }), database: 'app', cap: 100 });
    onlyApp.record!(rec('approval.requested', { session: 's2', identity: 'bob', request: 'apr-2', mode: 'hold', rules: ['r'] }));
    expect(onlyApp.finish().total).toBe(0);
  });
});

describe('limits', () => {
  it('names what each crossing did', () => {
    expect(outcomeOf('statements_per_minute', 'halt')).toBe('throttled');
    expect(outcomeOf('max_rows', 'halt')).toBe('halted');
    expect(outcomeOf('rows_per_hour', 'suspend')).toBe('halted+suspended');
    expect(outcomeOf('max_estimated_rows', 'approve')).toBe('held');
    const l = limits({ cap: 1 });
    l.record!(rec('limit.exceeded', { identity: 'bot', limit: 'a', measure: 'max_rows', figure: 11, max: 10, on_exceed: 'halt', sql: 'SELECT 1' }));
    l.record!(rec('limit.exceeded', { identity: 'bot', limit: 'b', measure: 'statements_per_minute', figure: 61, max: 60, on_exceed: 'suspend', sql: 'SELECT 2' }));
    const s = l.finish();
    expect([s.total, s.halted, s.suspended, s.throttled]).toEqual([2, 1, 1, 0]);
    expect(s.events).toMatchObject({ total: 2, truncated: true });
    expect(s.events.items).toHaveLength(1);
  });
});

describe('missing intent', () => {
  it('finds the rules that test intent, nested ones too, and lists statements they applied to without a ticket or reason', () => {
    const rules = [
      { name: 'plain', match: { statement: ['write'] }, action: 'deny' as const },
      { name: 'flat', match: { statement: ['write'], intent: false }, action: 'deny' as const },
      { name: 'nested', match: { any: [{ tables: ['x'] }, { not: { intent: { ticket: true } } }] }, action: 'approve' as const, approvers: { groups: ['g'], count: 1 } },
    ];
    expect([...intentRules(rules)].sort()).toEqual(['flat', 'nested']);
    const m = missingIntent({ rules, cap: 10 });
    const st = (intent: Record<string, string>, rule: string, type = 'statement.refused') =>
      statementFacts(rec(type, { identity: 'alice', intent, sql: 'UPDATE t SET x = 1', decision: { action: 'deny', rule, matched: [{ rule, action: 'deny' }] } }));
    m.statement!(st({}, 'flat'));
    m.statement!(st({ ticket: 'T-1' }, 'flat'));
    m.statement!(st({ job: 'nightly' }, 'nested', 'statement.begin'));
    m.statement!(st({}, 'plain'));
    const s = m.finish();
    expect(s.statements.items.map((x) => [x.rule, x.outcome])).toEqual([
      ['flat', 'refused'],
      ['nested', 'ran'],
    ]);
  });
});

describe('sensitive map columns', () => {
  it('names the columns of a type in a table, with wildcards and quoted names', () => {
    const map = { 'public.customers.email': 'email', '*.users.*mail': 'email', 'public.customers.ssn': 'ssn' };
    expect(mapColumns(map, 'email', 'public.customers')).toEqual(['public.customers.email']);
    expect(mapColumns(map, 'email', '"crm"."users"')).toEqual(['crm.users.*mail']);
    expect(mapColumns(map, 'ssn', 'public.orders')).toEqual([]);
  });
});

describe('operations', () => {
  it('lists suspensions, kills, config events and lost records', () => {
    const o = operations({ cap: 10 });
    o.record!(rec('config.reloaded', { source: '/w.yaml', previous_hash: 'a', hash: 'a', restart_needed: ['listen.port'], trigger: 'sighup' }));
    o.record!(rec('config.reload_failed', { source: '/w.yaml', previous_hash: 'a', hash: 'b', reason: 'rules[0].action: bad', trigger: 'admin-api', identity: 'olga' }));
    o.record!(rec('audit.records_lost', { count: 7, reason: 'backlog full' }));
    const s = o.finish();
    expect(s.config.items.map((c) => [c.event, c.by, c.detail])).toEqual([
      ['reloaded', 'sighup', 'unchanged (same file hash); needs a restart: listen.port'],
      ['reload refused', 'olga', 'rules[0].action: bad'],
    ]);
    expect(s.recordsLost).toBe(7);
  });
});
