/** User policy test files (`cases:` YAML) run against a config. */
import { describe, expect, it } from 'vitest';
import type { WardenConfig } from '../../src/config/types.js';
import { formatPolicyTestReport, parsePolicyTests, PolicyError, runPolicyTests } from '../../src/policy/index.js';

const config: Pick<WardenConfig, 'rules' | 'default' | 'identities' | 'databases' | 'sensitive'> = {
  identities: [
    { name: 'alice', kind: 'human', groups: ['analysts'], password: 'x' },
    { name: 'dana', kind: 'human', groups: ['dba'], password: 'x' },
    { name: 'trainer', kind: 'agent', groups: ['ml-pipelines'], password: 'x' },
  ],
  databases: {
    app: {
      name: 'app',
      environment: 'production',
      tls: 'disable',
      upstream: { host: '127.0.0.1', port: 5432, user: 'warden_svc', database: 'app', redactedUrl: 'postgres://warden_svc:***@127.0.0.1:5432/app' },
    },
  },
  sensitive: { columns: { 'public.customers.email': 'email' }, detect: [], maskers: {} },
  rules: [
    { name: 'no-destructive-ddl', match: { statement: ['drop', 'truncate'] }, action: 'deny', reason: 'no' },
    { name: 'agents-read-only', match: { kind: ['agent'], statement: ['write', 'ddl'] }, action: 'deny' },
    { name: 'billing-writes-need-approval', match: { statement: ['write'], tables: ['billing.*'] }, action: 'approve', approvers: { groups: ['dba'], count: 1 } },
    { name: 'mask-pii-except-dba', match: { not: { groups: ['dba'] } }, action: 'mask' },
    { name: 'office-hours-writes', match: { statement: ['write'], not: { time: { days: ['mon-fri'], hours: '08:00-20:00', tz: 'Europe/Paris' } } }, action: 'deny', reason: 'outside office hours' },
  ],
  default: 'allow',
};

const file = `
cases:
  - name: dba drop denied
    identity: dana
    sql: DROP TABLE users
    expect: deny
    rule: no-destructive-ddl
  - identity: trainer
    sql: "DO $$ BEGIN EXECUTE 'DELETE FROM orders'; END $$"
    expect: deny
  - identity: dana
    sql: UPDATE billing.invoices SET paid = true
    expect: approve
    time: 2025-01-06T10:00:00Z
  - identity: alice
    sql: SELECT email FROM customers
    expect: mask
  - identity: dana
    sql: SELECT email FROM customers
    expect: allow
  - name: writes at night
    identity: dana
    sql: UPDATE orders SET total = 0
    time: 2025-01-06T23:30:00Z
    expect: deny
    rule: office-hours-writes
  - name: search path makes it a billing write
    identity: dana
    sql: UPDATE invoices SET paid = true
    search_path: [billing]
    time: 2025-01-06T10:00:00Z
    expect: approve
  - name: a wrong expectation
    identity: dana
    sql: SELECT 1
    expect: deny
  - identity: mallory
    sql: SELECT 1
    expect: allow
`;

describe('policy test files', () => {
  it('runs each case and reports failures', async () => {
    const report = await runPolicyTests(file, config, { now: new Date('2025-01-06T10:00:00Z') });
    expect(report.results.map((r) => r.passed)).toEqual([true, true, true, true, true, true, true, false, false]);
    expect(report.passed).toBe(7);
    expect(report.failed).toBe(2);
    expect(report.results[7]).toMatchObject({ expected: 'deny', actual: 'allow' });
    expect(report.results[8]!.error).toMatch(/unknown identity "mallory"/);
    const text = formatPolicyTestReport(report);
    expect(text).toContain('FAIL  a wrong expectation: expected deny, got allow');
    expect(text).toContain('7 passed, 2 failed');
  });

  it('checks the decisive rule when given', async () => {
    const r = await runPolicyTests('cases: [{ identity: dana, sql: "DROP TABLE t", expect: deny, rule: other }]', config);
    expect(r.results[0]!.passed).toBe(false);
  });

  it('rejects malformed files', () => {
    expect(() => parsePolicyTests('nope: 1')).toThrow(PolicyError);
    expect(() => parsePolicyTests('cases: [{ identity: a, sql: x, expect: maybe }]')).toThrow(/expect must be/);
    expect(() => parsePolicyTests('cases: [{ identity: a, expect: deny }]')).toThrow(/sql is required/);
    expect(() => parsePolicyTests('cases: [{ identity: a, sql: x, expect: deny, colour: red }]')).toThrow(/unknown key/);
    expect(() => parsePolicyTests('cases: [ { identity: a')).toThrow(PolicyError);
  });
});
