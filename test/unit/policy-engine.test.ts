/**
 * The policy engine: strictness, defaults, session safety, fail-closed behaviour
 * for opaque and unparsable statements, multi-statement strings.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { RuleConfig } from '../../src/config/types.js';
import { compilePolicy, decide, formatExplain, explainToJSON, PolicyError } from '../../src/policy/index.js';
import type { DecisionInput, PolicyIdentity } from '../../src/policy/index.js';
import { analyzeSql, initSqlParser } from '../../src/sql/index.js';

const alice: PolicyIdentity = { name: 'alice', kind: 'human', groups: ['analysts'] };
const dana: PolicyIdentity = { name: 'dana', kind: 'human', groups: ['dba'] };
const trainer: PolicyIdentity = { name: 'trainer', kind: 'agent', groups: ['ml-pipelines'] };

const NOW = new Date('2025-01-06T10:00:00Z'); // a Monday

function input(identity: PolicyIdentity, sql: string, extra: Partial<DecisionInput['session']> = {}, searchPath = ['public']): DecisionInput {
  return {
    identity,
    session: { database: 'app', environment: 'production', intent: {}, now: NOW, ...extra },
    analysis: analyzeSql(sql, { searchPath }),
  };
}

/** The rules of the spec's example config. */
const exampleRules: RuleConfig[] = [
  { name: 'no-destructive-ddl', match: { statement: ['drop', 'truncate'] }, action: 'deny', reason: 'Destructive DDL is not run through Warden' },
  { name: 'agents-read-only', match: { kind: ['agent'], statement: ['write', 'ddl'] }, action: 'deny' },
  { name: 'billing-writes-need-approval', match: { statement: ['write'], tables: ['billing.*'] }, action: 'approve', approvers: { groups: ['dba'], count: 1 } },
  { name: 'mask-pii-except-dba', match: { not: { groups: ['dba'] } }, action: 'mask' },
];
const sensitive = {
  'public.customers.email': 'email',
  'public.customers.ssn': 'ssn',
  'billing.*.card_number': 'credit_card',
};

beforeAll(async () => {
  await initSqlParser();
});

describe('the example policy', () => {
  const policy = () => compilePolicy(exampleRules, 'allow', { sensitive });

  it('denies destructive DDL for everyone, naming the rule and its reason', () => {
    const d = decide(input(dana, 'DROP TABLE billing.invoices'), policy());
    expect(d.action).toBe('deny');
    expect(d.decisive).toBe('no-destructive-ddl');
    expect(d.reason).toContain('no-destructive-ddl');
    expect(d.reason).toContain('Destructive DDL is not run through Warden');
    expect(d.matched.map((m) => m.rule)).toContain('no-destructive-ddl');
  });

  it('keeps agents read-only', () => {
    expect(decide(input(trainer, 'SELECT * FROM orders'), policy()).action).toBe('mask');
    const d = decide(input(trainer, 'UPDATE orders SET total = 0'), policy());
    expect(d.action).toBe('deny');
    expect(d.decisive).toBe('agents-read-only');
  });

  it('needs approval for billing writes and reports the approvers', () => {
    const d = decide(input(dana, 'UPDATE billing.invoices SET paid = true'), policy());
    expect(d.action).toBe('approve');
    expect(d.approvals).toEqual([{ rule: 'billing-writes-need-approval', approvers: { groups: ['dba'], count: 1 } }]);
    expect(d.masked).toBe(false);
  });

  it('an approved statement of a non-dba is still masked', () => {
    const d = decide(input(alice, 'UPDATE billing.invoices SET paid = true RETURNING card_number'), policy());
    expect(d.action).toBe('approve');
    expect(d.masked).toBe(true);
    expect(d.sensitiveTypes).toEqual(['credit_card']);
  });

  it('masks for non-dba identities and allows dba reads by default', () => {
    const a = decide(input(alice, 'SELECT email FROM customers'), policy());
    expect(a.action).toBe('mask');
    expect(a.sensitiveTypes).toEqual(['email']);
    const d = decide(input(dana, 'SELECT email FROM customers'), policy());
    expect(d.action).toBe('allow');
    expect(d.decisive).toBe('default');
  });

  it('hides nothing in a CTE, DO block, prepared statement or multi-statement string', () => {
    for (const sql of [
      'SELECT 1; DROP TABLE users',
      'WITH d AS (DELETE FROM billing.invoices RETURNING 1) SELECT * FROM d',
      'DO $$ BEGIN EXECUTE $x$TRUNCATE orders$x$; END $$',
      'PREPARE p AS UPDATE orders SET total = 0; EXECUTE p',
      '/* select */ dRoP TaBlE "users"',
    ]) {
      expect(decide(input(trainer, sql), policy()).action, sql).toBe('deny');
    }
  });
});

describe('strictness and defaults', () => {
  const rules = (actions: RuleConfig['action'][]): RuleConfig[] =>
    actions.map((action, i) => ({ name: `r${i}-${action}`, match: {}, action }));

  it('deny > approve > mask > allow, whatever the rule order', () => {
    expect(decide(input(alice, 'SELECT 1'), compilePolicy(rules(['allow', 'mask', 'approve', 'deny']), 'allow')).action).toBe('deny');
    expect(decide(input(alice, 'SELECT 1'), compilePolicy(rules(['deny', 'approve', 'mask', 'allow']), 'allow')).action).toBe('deny');
    expect(decide(input(alice, 'SELECT 1'), compilePolicy(rules(['mask', 'allow', 'approve']), 'allow')).action).toBe('approve');
    expect(decide(input(alice, 'SELECT 1'), compilePolicy(rules(['allow', 'mask']), 'deny')).action).toBe('mask');
    expect(decide(input(alice, 'SELECT 1'), compilePolicy(rules(['allow']), 'deny')).action).toBe('allow');
  });

  it('records every matching rule', () => {
    const d = decide(input(alice, 'SELECT 1'), compilePolicy(rules(['allow', 'mask', 'approve']), 'allow'));
    expect(d.matched.map((m) => m.rule)).toEqual(['r0-allow', 'r1-mask', 'r2-approve']);
    expect(d.decisive).toBe('r2-approve');
    expect(d.matched.every((m) => m.why.length > 0)).toBe(true);
  });

  it('the first rule with the winning action is decisive', () => {
    const p = compilePolicy(
      [
        { name: 'a', match: { statement: ['read'] }, action: 'deny', reason: 'first' },
        { name: 'b', match: {}, action: 'deny', reason: 'second' },
      ],
      'allow',
    );
    const d = decide(input(alice, 'SELECT 1'), p);
    expect(d.decisive).toBe('a');
    expect(d.reason).toBe('denied by rule "a": first');
  });

  it('applies the default only when no rule matched', () => {
    const p = compilePolicy([{ name: 'reads', match: { statement: ['read'] }, action: 'allow' }], 'deny');
    expect(decide(input(alice, 'SELECT 1'), p).action).toBe('allow');
    const d = decide(input(alice, 'DELETE FROM t'), p);
    expect(d.action).toBe('deny');
    expect(d.decisive).toBe('default');
    expect(d.reason).toBe('denied by default: no rule matched');
    expect(decide(input(alice, 'DELETE FROM t'), compilePolicy([], 'allow')).action).toBe('allow');
  });

  it('decides a multi-statement string by its strictest statement', () => {
    const p = compilePolicy([{ name: 'no-delete', match: { statement: ['delete'] }, action: 'deny', reason: 'no' }], 'allow');
    const d = decide(input(alice, 'SELECT 1; SELECT 2; DELETE FROM t; SELECT 3'), p);
    expect(d.action).toBe('deny');
    expect(d.decisiveStatement).toBe(2);
    expect(d.statements.map((s) => s.action)).toEqual(['allow', 'allow', 'deny', 'allow']);
    expect(d.reason).toContain('statement 3 of 4');
    expect(d.matched.every((m) => m.statement === 2)).toBe(true);
  });

  it('allows an empty query', () => {
    const d = decide(input(alice, ''), compilePolicy([], 'deny'));
    expect(d.action).toBe('allow');
  });
});

describe('opaque statements are fail-closed', () => {
  const dyn = "DO $$ DECLARE t text := 'users'; BEGIN EXECUTE 'DROP TABLE ' || t; END $$";

  it('a deny rule on drop matches a DO block running dynamic SQL', () => {
    const p = compilePolicy([{ name: 'no-drop', match: { statement: ['drop'] }, action: 'deny' }], 'allow');
    const d = decide(input(alice, dyn), p);
    expect(d.action).toBe('deny');
    expect(d.matched[0]!.certain).toBe(false);
    expect(d.matched[0]!.why.join(' ')).toMatch(/opaque/);
  });

  it('a deny rule on tables matches an opaque statement', () => {
    const p = compilePolicy([{ name: 'billing', match: { tables: ['billing.*'] }, action: 'deny' }], 'allow');
    expect(decide(input(alice, 'SELECT dblink_exec($$x$$, $$DELETE FROM billing.invoices$$)'), p).action).toBe('deny');
    expect(decide(input(alice, 'CALL cleanup()'), p).action).toBe('deny');
  });

  it('an allow rule does not allow an opaque statement it only possibly matches', () => {
    const p = compilePolicy([{ name: 'reads', match: { statement: ['read'] }, action: 'allow' }], 'deny');
    expect(decide(input(alice, "SELECT pg_read_file('/etc/passwd')"), p).action).toBe('deny');
    expect(decide(input(alice, 'SELECT pg_terminate_backend(42)'), p).action).toBe('deny');
    expect(decide(input(alice, dyn), p).action).toBe('deny');
    expect(decide(input(alice, 'CALL cleanup()'), p).action).toBe('deny');
    expect(decide(input(alice, 'SELECT 1'), p).action).toBe('allow');
  });

  it('`read` excludes a SELECT that writes; `select` names the kind', () => {
    const reads = compilePolicy([{ name: 'reads', match: { statement: ['read'] }, action: 'allow' }], 'deny');
    const cte = 'WITH d AS (DELETE FROM t RETURNING 1) SELECT * FROM d';
    expect(decide(input(alice, cte), reads).action).toBe('deny');
    const selects = compilePolicy([{ name: 'selects', match: { statement: ['select'] }, action: 'allow' }], 'deny');
    expect(decide(input(alice, cte), selects).action).toBe('allow');
  });

  it('an allow rule on opaque explicitly allows it', () => {
    const p = compilePolicy([{ name: 'ops', match: { statement: ['opaque'], groups: ['dba'] }, action: 'allow' }], 'deny');
    expect(decide(input(dana, 'CALL cleanup()'), p).action).toBe('allow');
    expect(decide(input(alice, 'CALL cleanup()'), p).action).toBe('deny');
  });

  it('not() of an opaque match stays possible', () => {
    const p = compilePolicy([{ name: 'only-reads', match: { not: { statement: ['read'] } }, action: 'deny' }], 'allow');
    expect(decide(input(alice, 'CALL cleanup()'), p).action).toBe('deny');
    expect(decide(input(alice, 'SELECT 1'), p).action).toBe('allow');
  });
});

describe('unparsable statements', () => {
  it('are denied when a rule could apply', () => {
    const p = compilePolicy([{ name: 'no-drop', match: { statement: ['drop'] }, action: 'deny' }], 'allow');
    const d = decide(input(alice, 'DROP TABL users'), p);
    expect(d.action).toBe('deny');
    expect(d.decisive).toBe('warden.unparsable');
    expect(d.reason).toMatch(/could not parse/);
    expect(d.reason).toMatch(/syntax error/);
    expect(d.reason).toMatch(/no-drop/);
  });

  it('are denied when the default is deny', () => {
    const d = decide(input(alice, 'SELEC 1'), compilePolicy([], 'deny'));
    expect(d.action).toBe('deny');
    expect(d.reason).toMatch(/default action is deny/);
  });

  it('are denied when an allow rule could apply (no rule is skipped)', () => {
    const p = compilePolicy([{ name: 'a', match: { identity: ['alice'] }, action: 'allow' }], 'allow');
    expect(decide(input(alice, 'SELEC 1'), p).action).toBe('deny');
  });

  it('are forwarded when no rule could apply to this identity and the default is allow', () => {
    const p = compilePolicy([{ name: 'agents', match: { kind: ['agent'], statement: ['write'] }, action: 'deny' }], 'allow');
    const d = decide(input(alice, 'SELEC 1'), p);
    expect(d.action).toBe('allow');
    expect(decide(input(trainer, 'SELEC 1'), p).action).toBe('deny');
  });
});

describe('session safety', () => {
  const none = () => compilePolicy([], 'allow');

  it.each([
    'SET ROLE postgres',
    'set session authorization postgres',
    'RESET ROLE',
    'RESET SESSION AUTHORIZATION',
    'RESET ALL',
    'DISCARD ALL',
    "SET warden.ticket = 'OPS-9'",
    "SET LOCAL warden.reason = 'x'",
    'RESET warden.ticket',
    "SELECT set_config('role', 'postgres', false)",
    "SELECT set_config('warden.ticket', 'x', false)",
    "SELECT set_config(current_setting('my.var'), 'x', false)",
    "ALTER SYSTEM SET log_statement = 'none'",
    'ALTER SYSTEM RESET ALL',
    "ALTER ROLE warden_svc SET role = 'postgres'",
    'DO $$ BEGIN SET ROLE postgres; END $$',
    "PREPARE p AS SELECT set_config('role', 'postgres', false)",
    'SELECT 1; SET ROLE postgres',
  ])('denies %s by default', (sql) => {
    const d = decide(input(alice, sql), none());
    expect(d.action).toBe('deny');
    expect(d.decisive).toBe('warden.session-safety');
  });

  it('allows ordinary settings', () => {
    expect(decide(input(alice, "SET statement_timeout = '5s'"), none()).action).toBe('allow');
    expect(decide(input(alice, 'SET search_path = billing'), none()).action).toBe('allow');
    expect(decide(input(alice, "SELECT set_config('application_name', 'x', false)"), none()).action).toBe('allow');
  });

  it('a definite allow rule listing `set` allows SET ROLE', () => {
    const p = compilePolicy([{ name: 'dba-roles', match: { groups: ['dba'], statement: ['set'] }, action: 'allow' }], 'allow');
    const d = decide(input(dana, 'SET ROLE postgres'), p);
    expect(d.action).toBe('allow');
    expect(d.matched[0]!.why.join(' ')).toMatch(/explicitly allows/);
    expect(decide(input(alice, 'SET ROLE postgres'), p).action).toBe('deny');
    expect(decide(input(dana, "SELECT set_config('role', 'postgres', false)"), p).action).toBe('allow');
  });

  it('an allow rule that does not list `set` does not override', () => {
    const p = compilePolicy([{ name: 'selects', match: { statement: ['select', 'read'] }, action: 'allow' }], 'allow');
    expect(decide(input(dana, "SELECT set_config('role', 'postgres', false)"), p).action).toBe('deny');
    const any = compilePolicy([{ name: 'all', match: {}, action: 'allow' }], 'allow');
    expect(decide(input(dana, 'SET ROLE postgres'), any).action).toBe('deny');
  });

  it('ALTER SYSTEM needs an allow rule listing `alter`', () => {
    const set = compilePolicy([{ name: 's', match: { statement: ['set'] }, action: 'allow' }], 'allow');
    expect(decide(input(dana, "ALTER SYSTEM SET work_mem = '64MB'"), set).action).toBe('deny');
    const alter = compilePolicy([{ name: 'a', match: { statement: ['alter'], identity: ['dana'] }, action: 'allow' }], 'allow');
    expect(decide(input(dana, "ALTER SYSTEM SET work_mem = '64MB'"), alter).action).toBe('allow');
  });

  it('an explicit allow does not override a deny rule', () => {
    const p = compilePolicy(
      [
        { name: 'dba-roles', match: { groups: ['dba'], statement: ['set'] }, action: 'allow' },
        { name: 'no-sets', match: { statement: ['set'] }, action: 'deny' },
      ],
      'allow',
    );
    expect(decide(input(dana, 'SET ROLE postgres'), p).action).toBe('deny');
  });
});

describe('explanations', () => {
  it('formats text naming rules, classes and relations', () => {
    const p = compilePolicy(exampleRules, 'allow', { sensitive });
    const i = input(alice, 'SELECT email FROM customers; DELETE FROM billing.invoices');
    const d = decide(i, p);
    const text = formatExplain(i.analysis, d);
    expect(text).toMatch(/^Decision: APPROVE/);
    expect(text).toContain('billing-writes-need-approval');
    expect(text).toContain('public.customers');
    expect(text).toContain('sensitive: email');
    expect(text).toContain('kind: delete');
  });

  it('JSON form has no Sets and survives a round trip', () => {
    const p = compilePolicy(exampleRules, 'allow', { sensitive });
    const i = input(trainer, 'WITH d AS (DELETE FROM t RETURNING 1) SELECT * FROM d');
    const j = explainToJSON(i.analysis, decide(i, p));
    const round = JSON.parse(JSON.stringify(j));
    expect(round).toEqual(j);
    expect(round.analysis.classes).toEqual(['delete', 'select', 'write']);
    expect(round.decision.action).toBe('deny');
  });

  it('explains a parse error', () => {
    const i = input(alice, 'SELEC 1');
    const text = formatExplain(i.analysis, decide(i, compilePolicy([], 'deny')));
    expect(text).toMatch(/Parse error: syntax error at or near "SELEC"/);
  });
});

describe('compilePolicy validation', () => {
  const bad = (r: unknown, re: RegExp) => expect(() => compilePolicy([r as RuleConfig], 'allow')).toThrow(re);

  it('rejects invalid rules with a message naming the rule', () => {
    bad({ name: 'x', match: { statment: ['drop'] }, action: 'deny' }, /rule "x".*unknown match key "statment"/);
    bad({ name: 'x', match: { statement: ['dropp'] }, action: 'deny' }, /unknown statement class "dropp"/);
    bad({ name: 'x', match: {}, action: 'block' }, /action must be/);
    bad({ name: 'x', match: { kind: ['robot'] }, action: 'deny' }, /unknown identity kind/);
    bad({ name: 'x', match: { client: ['10.0.0.0/33'] }, action: 'deny' }, /prefix/);
    bad({ name: 'x', match: { client: ['not-an-ip'] }, action: 'deny' }, /invalid address/);
    bad({ name: 'x', match: { time: { tz: 'Mars/Olympus' } }, action: 'deny' }, /time zone/);
    bad({ name: 'x', match: { time: { hours: '9-5pm' } }, action: 'deny' }, /invalid time/);
    bad({ name: 'x', match: { time: { days: ['funday'] } }, action: 'deny' }, /unknown day/);
    bad({ name: 'x', match: { tables: ['a.b.c'] }, action: 'deny' }, /schema.table/);
    bad({ name: 'x', match: { columns: ['a.b.c.d'] }, action: 'deny' }, /schema.table.column/);
    bad({ name: 'x', match: { not: { bogus: 1 } }, action: 'deny' }, /match.not: unknown match key "bogus"/);
    bad({ name: 'warden.mine', match: {}, action: 'deny' }, /reserved/);
    expect(() =>
      compilePolicy(
        [
          { name: 'a', match: {}, action: 'deny' },
          { name: 'a', match: {}, action: 'deny' },
        ],
        'allow',
      ),
    ).toThrow(/duplicate/);
    expect(() => compilePolicy([], 'allow', { sensitive: { 'a.b.c.d': 'x' } })).toThrow(PolicyError);
  });
});
