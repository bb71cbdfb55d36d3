/**
 * Columns DDL definitions read are recorded (as `assignment`s of the relation they are on), and
 * a statement that moves a relation's rows to another name acts on all its columns (`*`), so
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

  it('moving a relation (rename, SET SCHEMA, a schema rename, inheritance and partition bonds) acts on all its columns', () => {
    expect(columnsOf('ALTER TABLE customers RENAME TO people')).toEqual(['public.customers.*']);
    expect(columnsOf('ALTER VIEW v RENAME TO v2')).toEqual(['public.v.*']);
    expect(columnsOf('ALTER TABLE customers SET SCHEMA other')).toEqual(['public.customers.*']);
    expect(columnsOf('ALTER SCHEMA public RENAME TO pub2')).toEqual(['public.*.*']);
    expect(columnsOf('ALTER TABLE kid INHERIT customers')).toEqual(['public.kid.*', 'public.customers.*']);
    expect(columnsOf('ALTER TABLE par ATTACH PARTITION customers FOR VALUES FROM (1) TO (10)')).toEqual(['public.par.*', 'public.customers.*']);
    expect(columnsOf('ALTER TABLE par DETACH PARTITION customers')).toEqual(['public.par.*', 'public.customers.*']);
    // Renaming an index or a sequence moves no rows.
    expect(columnsOf('ALTER INDEX customers_pkey RENAME TO c_pkey')).toEqual([]);
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
    // Moving customers moves email and ssn: both rules apply (the deny, on a possible match, wins).
    for (const sql of ['ALTER TABLE customers RENAME TO people', 'ALTER TABLE customers SET SCHEMA other', 'ALTER SCHEMA public RENAME TO p2']) {
      expect(d(sql).matched.map((m) => m.rule).sort(), sql).toEqual(['mask-emails', 'no-ssn-ddl']);
      expect(d(sql).decisive, sql).toBe('no-ssn-ddl');
    }
    expect(d('ALTER TABLE orders RENAME TO orders2').action).toBe('allow');
    expect(d('CREATE INDEX i6 ON customers (ssn)').decisive).toBe('no-ssn-ddl');
    expect(d('CREATE INDEX i5 ON customers (note)').action).toBe('allow');
    expect(d('ALTER TABLE customers ADD COLUMN n2 text').action).toBe('allow');
  });
});
