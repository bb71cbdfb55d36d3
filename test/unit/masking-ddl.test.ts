/**
 * masking/ddl.ts: DDL on relations with masked columns, for identities with masked columns.
 * Only the allowlisted uses of a masked column pass; DDL that reads masked values, or moves a
 * masked column out from under sensitive.columns, is refused. The wire behaviour is in
 * test/integration/masking-ddl-wire.test.ts and the session-object class of
 * test/corpus/masking-bypass.yaml.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { analyzeSql, initSqlParser, type AnalysisOk } from '../../src/sql/index.js';
import { compileSensitive } from '../../src/policy/sensitive.js';
import { withCodeEffects } from '../../src/sql/code.js';
import { checkMaskedDdl } from '../../src/masking/ddl.js';
import type { RelationColumns } from '../../src/masking/allowlist.js';

beforeAll(async () => {
  await initSqlParser();
});

const sensitive = compileSensitive({
  'public.customers.email': 'email',
  'public.customers.full_name': 'name',
  'public.customers.ssn': 'ssn',
  'billing.*.card_number': 'credit_card',
});
/** The catalog: a view over sensitive columns, and a partition of customers (inheritance). */
const catalog: RelationColumns = (r) =>
  r.table === 'customer_contacts' ? new Map([['contact', 'email']]) : r.table === 'customers_2024' ? new Map([['ssn', 'ssn']]) : undefined;

function analysis(sql: string): AnalysisOk {
  const a = analyzeSql(sql, { searchPath: ['public'] });
  if (!a.ok) throw new Error(a.error);
  return a;
}
const verdict = (sql: string) => checkMaskedDdl(analysis(sql), sensitive, catalog);

describe('DDL that reads masked values is refused', () => {
  it.each([
    ["ALTER TABLE customers ADD COLUMN g text GENERATED ALWAYS AS (ssn || '') STORED", /customers\.ssn \(ssn\)/],
    ["ALTER TABLE customers ADD COLUMN g text GENERATED ALWAYS AS (upper(full_name))", /customers\.full_name \(name\)/],
    ['ALTER TABLE customers ALTER COLUMN note TYPE text USING ssn', /customers\.ssn/],
    ['ALTER TABLE public.customers ALTER COLUMN ssn TYPE int', /changes the masked column customers\.ssn|public\.customers\.ssn/],
    ['ALTER TABLE customers ALTER COLUMN ssn SET NOT NULL', /ssn/],
    ["ALTER TABLE customers ADD CONSTRAINT ck CHECK (ssn LIKE '1%')", /customers\.ssn/],
    ["ALTER TABLE customers ADD CONSTRAINT ck CHECK (ssn LIKE '1%') NOT VALID", /customers\.ssn/],
    ['ALTER TABLE customers ADD UNIQUE (email)', /customers\.email/],
    ['ALTER TABLE customers ADD PRIMARY KEY (ssn)', /customers\.ssn/],
    ['ALTER TABLE customers ADD FOREIGN KEY (ssn) REFERENCES guesses (s)', /customers\.ssn/],
    ['ALTER TABLE guesses ADD FOREIGN KEY (s) REFERENCES customers (email)', /customers\.email/],
    ['CREATE TABLE guesses (s text REFERENCES customers (email))', /customers\.email/],
    ['ALTER TABLE customers ADD EXCLUDE USING btree (ssn WITH =)', /customers\.ssn/],
    ["CREATE INDEX ci ON customers (id) WHERE ssn LIKE '1%'", /the index .* customers\.ssn/],
    ['CREATE UNIQUE INDEX ON customers (lower(email))', /customers\.email/],
    ['CREATE INDEX ON customers (ssn)', /customers\.ssn/],
    ['CREATE INDEX ON customers (id) INCLUDE (full_name)', /customers\.full_name/],
    ['CREATE INDEX ON billing.cards (card_number)', /billing\.cards\.card_number/],
    ['CREATE STATISTICS st ON ssn, id FROM customers', /extended statistics .* customers\.ssn/],
    ["CREATE POLICY p ON customers USING (ssn LIKE '1%')", /the policy p .* customers\.ssn/],
    ["CREATE POLICY p ON customers FOR INSERT WITH CHECK (email LIKE '%@x')", /customers\.email/],
    ["ALTER POLICY p ON customers USING (customers.full_name > 'M')", /customers\.full_name/],
    ["CREATE TRIGGER t BEFORE UPDATE ON customers FOR EACH ROW WHEN (NEW.ssn LIKE '1%') EXECUTE FUNCTION f()", /WHEN condition of the trigger t .* customers\.ssn/],
    ['CREATE TRIGGER t AFTER UPDATE ON customers FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION f()', /whole row of customers/],
    ["CREATE RULE r AS ON UPDATE TO customers WHERE OLD.ssn LIKE '1%' DO ALSO NOTIFY x", /WHERE condition of the rule r/],
    ['CREATE RULE r AS ON UPDATE TO customers DO ALSO INSERT INTO hits VALUES (NEW.email)', /NEW\.email, the masked column customers\.email/],
    ['CREATE RULE r AS ON DELETE TO customers DO ALSO INSERT INTO hits SELECT row_to_json(OLD)::text', /OLD \(a whole row\)/],
    ["ALTER TABLE customers_2024 ADD CONSTRAINT ck CHECK (ssn <> '')", /customers_2024\.ssn/],
  ])('%s', (sql, why) => {
    const v = verdict(sql);
    expect(v.ok).toBe(false);
    if (!v.ok) {
      expect(v.reason).toMatch(why);
      expect(v.reason).toMatch(/ask an identity without a mask rule/);
    }
  });
});

describe('DDL that moves a masked column out from under sensitive.columns is refused', () => {
  it.each([
    ['ALTER TABLE customers RENAME COLUMN ssn TO s2', /renaming the masked column customers\.ssn/],
    ['ALTER TABLE customers RENAME TO people', /renaming customers/],
    ['ALTER TABLE IF EXISTS public.customers RENAME TO people', /renaming public\.customers/],
    ['ALTER TABLE billing.cards RENAME TO c2', /renaming billing\.cards/],
    ['ALTER TABLE customers SET SCHEMA archive', /moving customers to another schema/],
    ['ALTER SCHEMA billing RENAME TO b2', /renaming the schema billing/],
    ['ALTER SCHEMA public RENAME TO p2', /renaming the schema public/],
    ['ALTER TABLE customers INHERIT par', /INHERIT would change which relations show the rows of customers/],
    ['ALTER TABLE customers_2024 NO INHERIT customers', /NO INHERIT/],
    ['ALTER TABLE pp ATTACH PARTITION customers FOR VALUES FROM (0) TO (100)', /ATTACH PARTITION .* rows of customers/],
    ['ALTER TABLE customers DETACH PARTITION customers_2024', /DETACH PARTITION/],
    ['ALTER VIEW customer_contacts RENAME COLUMN contact TO c', /customer_contacts\.contact/],
  ])('%s', (sql, why) => {
    const v = verdict(sql);
    expect(v.ok).toBe(false);
    if (!v.ok) expect(v.reason).toMatch(why);
  });
});

describe('the allowlist: DDL that reads no masked value passes', () => {
  it.each([
    'ALTER TABLE customers ADD COLUMN y int',
    "ALTER TABLE customers ADD COLUMN y int DEFAULT 0 CHECK (y >= 0)",
    'ALTER TABLE customers DROP COLUMN ssn',
    "ALTER TABLE customers ALTER COLUMN ssn SET DEFAULT 'n/a'",
    'ALTER TABLE customers ALTER COLUMN ssn DROP DEFAULT',
    'ALTER TABLE customers ALTER COLUMN ssn DROP NOT NULL',
    'ALTER TABLE customers ALTER COLUMN ssn SET STATISTICS 0',
    'ALTER TABLE customers ALTER COLUMN note TYPE varchar(200)',
    "ALTER TABLE customers ALTER COLUMN note TYPE text USING upper(note)",
    'ALTER TABLE customers ADD CONSTRAINT ck CHECK (id > 0)',
    'ALTER TABLE customers ADD UNIQUE (note)',
    'CREATE INDEX ON customers (note) WHERE id > 10',
    'CREATE INDEX ON customers (id) INCLUDE (note)',
    'CREATE STATISTICS st ON id, note FROM customers',
    'ALTER TABLE customers RENAME COLUMN note TO remark',
    'ALTER TABLE orders RENAME TO purchases',
    'ALTER TABLE orders SET SCHEMA archive',
    'ALTER SCHEMA archive RENAME TO old_archive',
    'ALTER TABLE orders INHERIT order_base',
    'ALTER TABLE orders ADD FOREIGN KEY (customer_id) REFERENCES customers (id)',
    'CREATE TABLE o2 (c int REFERENCES customers)',
    'CREATE TABLE o3 (LIKE customers INCLUDING ALL)',
    'CREATE TABLE c_child () INHERITS (customers)',
    "CREATE POLICY p ON customers USING (note <> 'hidden')",
    'CREATE TRIGGER t BEFORE UPDATE ON customers FOR EACH ROW WHEN (NEW.note IS DISTINCT FROM OLD.note) EXECUTE FUNCTION f()',
    'CREATE TRIGGER t BEFORE UPDATE OF ssn ON customers FOR EACH ROW EXECUTE FUNCTION f()',
    'CREATE RULE r AS ON UPDATE TO customers DO ALSO INSERT INTO hits VALUES (NEW.id)',
    "COMMENT ON COLUMN customers.ssn IS 'US social security number'",
    'GRANT SELECT (ssn) ON customers TO analyst',
    'ALTER INDEX customers_pkey RENAME TO customers_pk',
    'ALTER TABLE customers RENAME CONSTRAINT customers_email_key TO email_key',
  ])('%s', (sql) => {
    expect(verdict(sql)).toEqual({ ok: true });
  });

  it('statements other than DDL are not looked at', () => {
    expect(verdict('SELECT ssn FROM customers WHERE ssn > 0')).toEqual({ ok: true });
    expect(checkMaskedDdl(analysis('ALTER TABLE customers RENAME TO people'), compileSensitive({}))).toEqual({ ok: true });
  });

  it('DDL on a masked relation inside code is refused whatever it is: a DO block, a function created or called', () => {
    for (const sql of [
      'DO $$BEGIN ALTER TABLE customers RENAME COLUMN ssn TO s2; END$$',
      "DO $$BEGIN EXECUTE 'CREATE INDEX ci ON customers (id) WHERE ssn > ''1'''; END$$",
      'DO $$BEGIN ALTER TABLE customers ADD COLUMN y int; END$$',
      'DO $$BEGIN ALTER SCHEMA billing RENAME TO b2; END$$',
      'CREATE FUNCTION ren() RETURNS void LANGUAGE sql AS $$ALTER TABLE customers RENAME COLUMN ssn TO s3$$',
      'CREATE PROCEDURE p() LANGUAGE plpgsql AS $$BEGIN ALTER TABLE billing.cards RENAME TO c2; END$$',
    ]) {
      const v = verdict(sql);
      expect(v.ok, sql).toBe(false);
      if (!v.ok) expect(v.reason).toMatch(/runs DDL on .* inside code/);
    }
    const body = analysis('CREATE FUNCTION ren() RETURNS void LANGUAGE sql AS $$ALTER TABLE customers RENAME COLUMN ssn TO s3$$').statements[0]!.body!;
    const call = withCodeEffects(analysis('SELECT ren()'), new Map([[0, [{ via: 'public.ren()', body }]]])) as AnalysisOk;
    expect(checkMaskedDdl(call, sensitive, catalog)).toMatchObject({ ok: false, reason: /public\.ren\(\) runs DDL on customers/ });
    // Code whose DDL touches no masked relation runs.
    expect(verdict('DO $$BEGIN CREATE TEMP TABLE zz (x int); ALTER TABLE orders ADD COLUMN y int; END$$')).toEqual({ ok: true });
  });

  it('one refused statement refuses the string', () => {
    expect(verdict('ALTER TABLE orders ADD COLUMN z int; ALTER TABLE customers RENAME COLUMN email TO mail').ok).toBe(false);
  });
});
