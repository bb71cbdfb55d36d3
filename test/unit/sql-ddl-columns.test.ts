/**
 * Columns DDL definitions read are recorded (as `assignment`s of the relation they are on), so
 * `columns` and `sensitive` rules hold for DDL over them. Before, a mask rule keyed on
 * `sensitive: [email]` did not apply to `ADD COLUMN leak text GENERATED ALWAYS AS (email)
 * STORED`, `ALTER COLUMN note TYPE text USING email`, a CHECK on email or an index over it: the
 * masked identity ran them, and read the copied e-mail addresses unmasked from the new column.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { RuleConfig } from '../../src/config/types.js';
import { compilePolicy, decide } from '../../src/policy/index.js';
import { analyzeSql, initSqlParser } from '../../src/sql/index.js';

beforeAll(async () => {
  await initSqlParser();
});

function columnsOf(sql: string): string[] {
  const a = analyzeSql(sql, { searchPath: ['public'] });
  if (!a.ok) throw new Error(a.error);
  return a.statements[0]!.columns.filter((c) => c.from.length > 0).map((c) => `${c.relation}.${c.column}`);
}

const READS_EMAIL = [
  "ALTER TABLE customers ADD CONSTRAINT c1 CHECK (email NOT LIKE 'a%')",
  'ALTER TABLE customers ADD COLUMN leak text GENERATED ALWAYS AS (email) STORED',
  'ALTER TABLE customers ALTER COLUMN note TYPE text USING email',
  'ALTER TABLE customers ALTER COLUMN leak SET EXPRESSION AS (upper(email))',
  'ALTER TABLE customers ADD CONSTRAINT u UNIQUE (email)',
  'ALTER TABLE customers ADD CONSTRAINT ex EXCLUDE USING gist (email WITH =)',
  'CREATE INDEX i1 ON customers (lower(email))',
  'CREATE UNIQUE INDEX CONCURRENTLY i2 ON public.customers USING btree (email)',
  "CREATE INDEX i3 ON customers (note) WHERE email LIKE 'a%'",
  'CREATE INDEX i4 ON customers (note) INCLUDE (email)',
  'CREATE STATISTICS st1 ON email, note FROM customers',
  "CREATE POLICY p ON customers USING (email LIKE '%@x.org')",
  'CREATE POLICY p2 ON customers USING (email IN (SELECT e FROM allowed))',
  'ALTER POLICY p ON customers WITH CHECK (email IS NOT NULL)',
  'CREATE TRIGGER t BEFORE UPDATE ON customers FOR EACH ROW WHEN (OLD.email IS DISTINCT FROM NEW.email) EXECUTE FUNCTION f()',
];

describe('DDL definitions', () => {
  it('record the columns they read as columns of the relation they are on', () => {
    for (const sql of READS_EMAIL) expect(columnsOf(sql), sql).toContain('public.customers.email');
    // A foreign key's referenced columns are the referenced table's.
    expect(columnsOf('ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (cust_email) REFERENCES customers (email)')).toEqual(['public.orders.cust_email', 'public.customers.email']);
    // Definitions over other columns name only those.
    expect(columnsOf('CREATE INDEX i5 ON customers (note)')).toEqual(['public.customers.note']);
    expect(columnsOf('ALTER TABLE customers ADD COLUMN n2 text')).toEqual(['public.customers.n2']);
  });

  it('a mask rule on `sensitive: [email]` applies to them, a deny rule on `columns` too; other DDL is untouched', () => {
    const rules: RuleConfig[] = [
      { name: 'mask-emails', match: { sensitive: ['email'] }, action: 'mask' },
      { name: 'no-ssn-ddl', match: { statement: ['ddl'], columns: ['customers.ssn'] }, action: 'deny' },
    ];
    const policy = compilePolicy(rules, 'allow', { sensitive: { 'public.customers.email': 'email' } });
    const d = (sql: string) =>
      decide({ identity: { name: 'alice', kind: 'human', groups: [] }, session: { database: 'app', environment: 't', intent: {}, now: new Date() }, analysis: analyzeSql(sql, { searchPath: ['public'] }) }, policy);
    for (const sql of READS_EMAIL) expect(d(sql).action, sql).toBe('mask');
    expect(d('CREATE INDEX i6 ON customers (ssn)').decisive).toBe('no-ssn-ddl');
    expect(d('CREATE INDEX i5 ON customers (note)').action).toBe('allow');
    expect(d('ALTER TABLE customers ADD COLUMN n2 text').action).toBe('allow');
  });
});
