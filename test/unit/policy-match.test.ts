/**
 * Each match key of a rule, and how keys combine (AND in a block, OR in a list,
 * `not`, `any`), including "possible" matches from unqualified names and `*`.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { RuleMatch } from '../../src/config/types.js';
import { compilePolicy, decide, sensitiveTypesOf } from '../../src/policy/index.js';
import type { Decision, PolicyIdentity, PolicySession } from '../../src/policy/index.js';
import { analyzeSql, initSqlParser } from '../../src/sql/index.js';

const alice: PolicyIdentity = { name: 'alice', kind: 'human', groups: ['analysts', 'eu'] };
const bot: PolicyIdentity = { name: 'svc-etl', kind: 'service', groups: [] };

function session(extra: Partial<PolicySession> = {}): PolicySession {
  return { database: 'app', environment: 'production', intent: {}, now: new Date('2025-01-06T10:00:00Z'), ...extra };
}

/** Decides `sql` against a single deny rule with `match`. */
function run(
  match: RuleMatch,
  sql = 'SELECT 1',
  opts: { identity?: PolicyIdentity; session?: Partial<PolicySession>; searchPath?: string[]; sensitive?: Record<string, string> } = {},
): Decision {
  const policy = compilePolicy([{ name: 'r', match, action: 'deny' }], 'allow', opts.sensitive ? { sensitive: opts.sensitive } : {});
  return decide(
    { identity: opts.identity ?? alice, session: session(opts.session), analysis: analyzeSql(sql, { searchPath: opts.searchPath ?? ['public'] }) },
    policy,
  );
}
const hits = (...a: Parameters<typeof run>) => run(...a).action === 'deny';
const certain = (...a: Parameters<typeof run>) => run(...a).matched.find((m) => m.rule === 'r')?.certain;

beforeAll(async () => {
  await initSqlParser();
});

describe('identity keys', () => {
  it('identity (names, with * globs)', () => {
    expect(hits({ identity: ['alice'] })).toBe(true);
    expect(hits({ identity: ['bob', 'carol'] })).toBe(false);
    expect(hits({ identity: ['svc-*'] }, 'SELECT 1', { identity: bot })).toBe(true);
  });
  it('kind', () => {
    expect(hits({ kind: ['human'] })).toBe(true);
    expect(hits({ kind: ['agent', 'service'] })).toBe(false);
    expect(hits({ kind: ['service'] }, 'SELECT 1', { identity: bot })).toBe(true);
  });
  it('groups: any of the identity groups', () => {
    expect(hits({ groups: ['eu'] })).toBe(true);
    expect(hits({ groups: ['dba'] })).toBe(false);
    expect(hits({ groups: ['dba'] }, 'SELECT 1', { identity: bot })).toBe(false);
  });
});

describe('session keys', () => {
  it('database and environment', () => {
    expect(hits({ database: ['app'] })).toBe(true);
    expect(hits({ database: ['other'] })).toBe(false);
    expect(hits({ environment: ['production'] })).toBe(true);
    expect(hits({ environment: ['staging'] })).toBe(false);
    expect(hits({ environment: ['production'] }, 'SELECT 1', { session: { environment: undefined } })).toBe(false);
  });

  it('intent: true / false', () => {
    expect(hits({ intent: true })).toBe(false);
    expect(hits({ intent: false })).toBe(true);
    expect(hits({ intent: true }, 'SELECT 1', { session: { intent: { ticket: 'OPS-1' } } })).toBe(true);
    expect(hits({ intent: true }, 'SELECT 1', { session: { intent: { reason: 'backfill' } } })).toBe(true);
    expect(hits({ intent: false }, 'SELECT 1', { session: { intent: { reason: 'backfill' } } })).toBe(false);
    expect(hits({ intent: true }, 'SELECT 1', { session: { intent: { ticket: '  ' } } })).toBe(false);
  });

  it('intent: required values (exact, glob, present/absent)', () => {
    const s = { session: { intent: { ticket: 'OPS-12', reason: 'incident' } } };
    expect(hits({ intent: { ticket: 'OPS-12' } }, 'SELECT 1', s)).toBe(true);
    expect(hits({ intent: { ticket: 'OPS-*' } }, 'SELECT 1', s)).toBe(true);
    expect(hits({ intent: { ticket: 'SEC-*' } }, 'SELECT 1', s)).toBe(false);
    expect(hits({ intent: { ticket: 'OPS-12', reason: 'other' } }, 'SELECT 1', s)).toBe(false);
    expect(hits({ intent: { approved_by: true } }, 'SELECT 1', s)).toBe(false);
    expect(hits({ intent: { approved_by: false } }, 'SELECT 1', s)).toBe(true);
  });

  it('client: CIDR ranges and addresses, IPv4 and IPv6', () => {
    const m = { client: ['10.0.0.0/8', '192.168.1.7', 'fd00::/8'] };
    expect(hits(m, 'SELECT 1', { session: { clientAddress: '10.20.30.40' } })).toBe(true);
    expect(hits(m, 'SELECT 1', { session: { clientAddress: '11.0.0.1' } })).toBe(false);
    expect(hits(m, 'SELECT 1', { session: { clientAddress: '192.168.1.7' } })).toBe(true);
    expect(hits(m, 'SELECT 1', { session: { clientAddress: '192.168.1.8' } })).toBe(false);
    expect(hits(m, 'SELECT 1', { session: { clientAddress: '::ffff:10.1.1.1' } })).toBe(true);
    expect(hits(m, 'SELECT 1', { session: { clientAddress: 'fd12:3456::1' } })).toBe(true);
    expect(hits(m, 'SELECT 1', { session: { clientAddress: '2001:db8::1' } })).toBe(false);
    expect(hits(m, 'SELECT 1', { session: {} })).toBe(false);
  });

  it('time: days and hours in a time zone', () => {
    // 2025-01-06T10:00Z is Monday 11:00 in Paris, Monday 05:00 in New York.
    const office = (tz: string) => ({ time: { days: ['mon', 'tue', 'wed', 'thu', 'fri'], hours: '09:00-18:00', tz } });
    expect(hits(office('Europe/Paris'))).toBe(true);
    expect(hits(office('America/New_York'))).toBe(false);
    expect(hits({ time: { days: ['sat', 'sun'] } })).toBe(false);
    expect(hits({ time: { days: ['mon-fri'] } })).toBe(true);
    expect(hits({ time: { days: ['weekends'] } })).toBe(false);
    expect(hits({ time: { hours: '10:00-10:01' } })).toBe(true);
    expect(hits({ time: { hours: '09:00-10:00' } })).toBe(false); // end is exclusive
    // A window across midnight.
    const night = { time: { hours: '22:00-06:00', tz: 'America/New_York' } };
    expect(hits(night)).toBe(true);
    expect(hits(night, 'SELECT 1', { session: { now: new Date('2025-01-06T18:00:00Z') } })).toBe(false);
    // Sunday in Tokyo is still Saturday in UTC.
    const satUtc = new Date('2025-01-04T20:00:00Z');
    expect(hits({ time: { days: ['sun'], tz: 'Asia/Tokyo' } }, 'SELECT 1', { session: { now: satUtc } })).toBe(true);
    expect(hits({ time: { days: ['sun'] } }, 'SELECT 1', { session: { now: satUtc } })).toBe(false);
  });
});

describe('statement keys', () => {
  it('statement: kinds and groups', () => {
    expect(hits({ statement: ['select'] }, 'SELECT 1')).toBe(true);
    expect(hits({ statement: ['read'] }, 'SELECT 1')).toBe(true);
    expect(hits({ statement: ['write'] }, 'SELECT 1')).toBe(false);
    expect(hits({ statement: ['write'] }, 'INSERT INTO t VALUES (1)')).toBe(true);
    expect(hits({ statement: ['ddl'] }, 'TRUNCATE t')).toBe(true);
    expect(hits({ statement: ['ddl'] }, 'COMMENT ON TABLE t IS $$x$$')).toBe(true);
    expect(hits({ statement: ['comment'] }, 'COMMENT ON TABLE t IS $$x$$')).toBe(true);
    expect(hits({ statement: ['delete'] }, 'WITH d AS (DELETE FROM t RETURNING 1) SELECT 1')).toBe(true);
    expect(hits({ statement: ['opaque'] }, 'CALL p()')).toBe(true);
    expect(hits({ statement: ['transaction'] }, 'BEGIN')).toBe(true);
    expect(certain({ statement: ['drop'] }, 'CALL p()')).toBe(false);
  });

  it('tables: any relation read or written', () => {
    expect(hits({ tables: ['billing.*'] }, 'SELECT * FROM billing.invoices')).toBe(true);
    expect(hits({ tables: ['billing.*'] }, 'INSERT INTO billing.invoices SELECT * FROM staging.x')).toBe(true);
    expect(hits({ tables: ['staging.x'] }, 'INSERT INTO billing.invoices SELECT * FROM staging.x')).toBe(true);
    expect(hits({ tables: ['billing.*'] }, 'SELECT * FROM public.invoices')).toBe(false);
    expect(hits({ tables: ['public.cust*'] }, 'SELECT * FROM customers')).toBe(true);
    expect(hits({ tables: ['invoices'] }, 'SELECT * FROM archive.invoices')).toBe(true);
    expect(hits({ tables: ['billing.*'] }, 'DROP SCHEMA billing CASCADE')).toBe(true);
    expect(hits({ tables: ['billing.invoices'] }, 'DROP SCHEMA billing CASCADE')).toBe(true);
  });

  it('tables: identifiers fold like PostgreSQL', () => {
    expect(hits({ tables: ['Billing.Invoices'] }, 'SELECT * FROM BILLING.INVOICES')).toBe(true);
    expect(hits({ tables: ['billing.invoices'] }, 'SELECT * FROM billing."Invoices"')).toBe(false);
    expect(hits({ tables: ['billing."Invoices"'] }, 'SELECT * FROM billing."Invoices"')).toBe(true);
    expect(hits({ tables: ['public.users'] }, 'DELETE FROM U&"\\0075sers"')).toBe(true);
  });

  it('tables: an unqualified name matches possibly when several schemas could hold it', () => {
    const opts = { searchPath: ['public', 'billing'] };
    expect(hits({ tables: ['billing.*'] }, 'DELETE FROM invoices', opts)).toBe(true);
    expect(certain({ tables: ['billing.*'] }, 'DELETE FROM invoices', opts)).toBe(false);
    expect(certain({ tables: ['public.*'] }, 'DELETE FROM invoices', { searchPath: ['public'] })).toBe(true);
    expect(hits({ tables: ['billing.*'] }, 'DELETE FROM invoices', { searchPath: ['public'] })).toBe(false);
    // An allow rule does not apply on a possible match.
    const p = compilePolicy([{ name: 'pub', match: { tables: ['public.*'] }, action: 'allow' }], 'deny');
    const d = (sql: string, searchPath: string[]) =>
      decide({ identity: alice, session: session(), analysis: analyzeSql(sql, { searchPath }) }, p).action;
    expect(d('SELECT * FROM invoices', ['public'])).toBe('allow');
    expect(d('SELECT * FROM invoices', ['public', 'billing'])).toBe('deny');
    expect(d('SELECT * FROM public.invoices', ['public', 'billing'])).toBe('allow');
  });

  it('columns: schema.table.column patterns, aliases resolved', () => {
    expect(hits({ columns: ['public.customers.ssn'] }, 'SELECT c.ssn FROM customers c')).toBe(true);
    expect(hits({ columns: ['public.customers.ssn'] }, 'SELECT id FROM customers WHERE ssn = $1')).toBe(true);
    expect(hits({ columns: ['public.customers.ssn'] }, 'SELECT id FROM customers')).toBe(false);
    expect(hits({ columns: ['public.customers.ssn'] }, 'SELECT ssn FROM employees')).toBe(false);
    expect(hits({ columns: ['customers.ssn'] }, 'UPDATE customers SET ssn = null')).toBe(true);
    expect(hits({ columns: ['ssn'] }, 'SELECT ssn FROM anything')).toBe(true);
    expect(hits({ columns: ['public.customers.*'] }, 'SELECT 1 FROM customers WHERE id = 1')).toBe(true);
  });

  it('columns: * and ambiguous columns match possibly', () => {
    expect(hits({ columns: ['public.customers.ssn'] }, 'SELECT * FROM customers')).toBe(true);
    expect(certain({ columns: ['public.customers.ssn'] }, 'SELECT * FROM customers')).toBe(false);
    expect(certain({ columns: ['public.customers.ssn'] }, 'SELECT ssn FROM customers JOIN orders ON true')).toBe(false);
    expect(hits({ columns: ['public.customers.ssn'] }, 'SELECT x.ssn FROM (SELECT * FROM customers) x')).toBe(true);
    expect(hits({ columns: ['public.customers.ssn'] }, 'WITH c AS (SELECT ssn FROM customers) SELECT * FROM c')).toBe(true);
  });

  it('sensitive: types from sensitive.columns', () => {
    const sensitive = { 'public.customers.ssn': 'ssn', 'public.customers.email': 'email', 'billing.*.card_number': 'credit_card' };
    expect(hits({ sensitive: ['ssn'] }, 'SELECT ssn FROM customers', { sensitive })).toBe(true);
    expect(hits({ sensitive: ['ssn'] }, 'SELECT email FROM customers', { sensitive })).toBe(false);
    expect(hits({ sensitive: ['credit_card'] }, 'SELECT card_number FROM billing.cards', { sensitive })).toBe(true);
    expect(hits({ sensitive: ['ssn'] }, 'SELECT * FROM customers', { sensitive })).toBe(true);
    expect(certain({ sensitive: ['ssn'] }, 'SELECT * FROM customers', { sensitive })).toBe(false);
    expect(hits({ sensitive: ['ssn'] }, 'SELECT * FROM orders', { sensitive })).toBe(false);
    expect(hits({ sensitive: ['ssn'] }, "SELECT pg_read_file('x')", { sensitive })).toBe(true);
  });

  it('sensitive: extra types given by the caller', () => {
    const policy = compilePolicy([{ name: 'r', match: { sensitive: ['email'] }, action: 'deny' }], 'allow');
    const analysis = analyzeSql('SELECT note FROM tickets', { searchPath: ['public'] });
    expect(decide({ identity: alice, session: session(), analysis }, policy).action).toBe('allow');
    expect(decide({ identity: alice, session: session(), analysis, sensitiveTypes: new Set(['email']) }, policy).action).toBe('deny');
  });
});

describe('combining keys', () => {
  it('all keys of a block must hold; a list is an OR', () => {
    expect(hits({ groups: ['analysts'], statement: ['delete', 'update'] }, 'DELETE FROM t')).toBe(true);
    expect(hits({ groups: ['analysts'], statement: ['delete', 'update'] }, 'SELECT 1')).toBe(false);
    expect(hits({ groups: ['dba'], statement: ['delete'] }, 'DELETE FROM t')).toBe(false);
  });
  it('not', () => {
    expect(hits({ not: { groups: ['dba'] } })).toBe(true);
    expect(hits({ not: { groups: ['analysts'] } })).toBe(false);
    expect(hits({ statement: ['write'], not: { intent: true } }, 'DELETE FROM t')).toBe(true);
    expect(hits({ statement: ['write'], not: { intent: true } }, 'DELETE FROM t', { session: { intent: { ticket: 'X-1' } } })).toBe(false);
  });
  it('any', () => {
    const m: RuleMatch = { any: [{ identity: ['bob'] }, { statement: ['drop'] }] };
    expect(hits(m, 'DROP TABLE t')).toBe(true);
    expect(hits(m, 'SELECT 1')).toBe(false);
    expect(hits(m, 'SELECT 1', { identity: { name: 'bob', kind: 'human', groups: [] } })).toBe(true);
    expect(hits({ any: [] })).toBe(false);
  });
  it('an empty match block matches everything', () => {
    expect(hits({})).toBe(true);
  });
  it('why explains each key', () => {
    const d = run({ groups: ['analysts'], statement: ['write'], tables: ['billing.*'] }, 'UPDATE billing.invoices SET paid = true');
    expect(d.matched[0]!.why).toEqual([
      'statement: update is write ∈ [write]',
      'groups: analysts ∈ [analysts]',
      'tables: billing.invoices matches billing.*',
    ]);
  });
});

describe('sensitiveTypesOf', () => {
  it('lists the types a query string could touch', () => {
    const cols = { 'public.customers.ssn': 'ssn', 'public.customers.email': 'email', 'hr.*.salary': 'secret' };
    const a = (sql: string) => [...sensitiveTypesOf(analyzeSql(sql, { searchPath: ['public'] }), cols)].sort();
    expect(a('SELECT email FROM customers')).toEqual(['email']);
    expect(a('SELECT * FROM customers')).toEqual(['email', 'ssn']);
    expect(a('SELECT salary FROM hr.staff; SELECT ssn FROM customers')).toEqual(['secret', 'ssn']);
    expect(a('SELECT 1')).toEqual([]);
    expect(a('SELEC 1')).toEqual(['email', 'secret', 'ssn']);
  });
});
