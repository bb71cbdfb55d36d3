/**
 * Strict masking as an allowlist (src/masking/allowlist.ts): a masked column may reach the
 * client only as a plain output column; every other use, at any depth, is refused naming the
 * column and the use.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { analyzeSql, initSqlParser, type AnalysisOk } from '../../src/sql/index.js';
import { compileSensitive } from '../../src/policy/sensitive.js';
import { checkAllowlist, createAllowlist, viewMaskedColumns } from '../../src/masking/allowlist.js';

beforeAll(async () => {
  await initSqlParser();
});

const sensitive = compileSensitive({
  'public.customers.email': 'email',
  'public.customers.ssn': 'ssn',
  'public.customers.full_name': 'name',
  'public.customers.surname': 'name',
  'public.customers.mobile': 'phone',
  'billing.*.card_number': 'credit_card',
});

function analyse(sql: string): AnalysisOk {
  const a = analyzeSql(sql, { searchPath: ['public'] });
  if (!a.ok) throw new Error(a.error);
  return a;
}
const check = (sql: string) => checkAllowlist(analyse(sql), sensitive);

const ALLOWED = [
  'SELECT email FROM customers',
  'SELECT c.email AS e, c.ssn FROM customers c',
  'SELECT * FROM customers',
  'SELECT c.* FROM customers c',
  'TABLE customers',
  'SELECT id, email FROM customers WHERE id = 1 ORDER BY id',
  'SELECT email FROM customers LIMIT 10 OFFSET 2',
  'SELECT count(*) FROM customers',
  'SELECT id FROM customers GROUP BY id HAVING count(*) > 0',
  'SELECT a.id, b.email FROM customers a JOIN customers b ON a.id = b.id',
  'SELECT c.email, k.card_number FROM customers c JOIN billing.cards k ON k.customer_id = c.id',
  'SELECT c.email FROM customers c JOIN orders o USING (id)',
  'SELECT * FROM (SELECT email FROM customers) s',
  'SELECT s.e FROM (SELECT email AS e, id FROM customers) s WHERE s.id = 1',
  'SELECT e FROM (SELECT email FROM customers) s(e)',
  'WITH x AS (SELECT id, email FROM customers) SELECT email FROM x WHERE id = 2',
  'WITH x AS (SELECT * FROM customers) SELECT x.ssn FROM x ORDER BY x.id',
  'SELECT email FROM customers WHERE EXISTS (SELECT * FROM orders o WHERE o.customer_id = customers.id)',
  'SELECT id FROM customers WHERE id IN (SELECT customer_id FROM orders)',
  'DECLARE c CURSOR FOR SELECT email FROM customers',
  'PREPARE p AS SELECT email FROM customers WHERE id = $1',
  'EXPLAIN SELECT email FROM customers',
  'SELECT email FROM customers FOR UPDATE',
  "UPDATE customers SET email = 'x@example.com' WHERE id = 1",
  "INSERT INTO customers (id, email) VALUES (3, 'x@example.com')",
  "INSERT INTO customers (id, email) VALUES (3, 'x@example.com') ON CONFLICT (id) DO UPDATE SET email = excluded.email",
  'DELETE FROM customers WHERE id = 3',
  'SELECT id FROM customers UNION SELECT id FROM orders ORDER BY 1',
  'SELECT id, note FROM customers ORDER BY 2',
  'WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT n FROM r',
  'SELECT email FROM customers, generate_series(1, 3) g',
  'SELECT lower(note) FROM customers',
  'SELECT * FROM orders NATURAL JOIN order_lines',
  'COPY orders TO STDOUT',
  'COPY customers (id, note) TO STDOUT',
  'SELECT 1',
  'SET search_path = public',
  "WITH customers AS (SELECT 1 AS id, 'x' AS email) SELECT id FROM customers WHERE email = 'x'",
  'SELECT (email) FROM customers',
  'SELECT id, email FROM customers c WHERE EXISTS (SELECT email FROM customers d WHERE d.id = c.id)',
  'SELECT email FROM customers GROUP BY id',
  'SELECT email, row_number() OVER () FROM customers',
  "SELECT x.email FROM (SELECT 'a' AS email) x, customers c WHERE x.email = 'a'",
  'SELECT c.email FROM customers c JOIN orders o USING (id) AS j WHERE j.id = 1',
];

const REFUSED: [string, RegExp][] = [
  // Filters moved into derived tables, CTEs and LATERAL.
  ['SELECT id FROM (SELECT id, ascii(substr(ssn,1,1)) >= 50 AS b FROM customers) s WHERE b', /customers\.ssn \(ssn\) is used in an expression in the select list of a derived table/],
  ['SELECT id FROM (SELECT id, ssn AS x FROM customers) s WHERE x LIKE \'1%\'', /customers\.ssn \(ssn\) is used in WHERE/],
  ['WITH s AS (SELECT id, ssn FROM customers) SELECT id FROM s WHERE ssn > \'5\'', /customers\.ssn .* WHERE/],
  ['WITH s AS (SELECT * FROM customers) SELECT id FROM s WHERE s.email = \'a\'', /customers\.email .* WHERE/],
  ['WITH s AS (SELECT id, ascii(email) a FROM customers) SELECT id FROM s WHERE a = 97', /customers\.email .*derived table or CTE/],
  ['SELECT c.id FROM customers c, LATERAL (SELECT ascii(substr(c.ssn,1,1)) AS a) l WHERE l.a = 50', /customers\.ssn .* \(an argument of substr\(\)\)/],
  ['SELECT c.id FROM customers c CROSS JOIN LATERAL (SELECT c.ssn AS s) l WHERE l.s IS NULL', /customers\.ssn .*outer query/],
  ['SELECT id FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.note = c.email)', /customers\.email .* WHERE/],
  ['SELECT id FROM (SELECT * FROM (SELECT id, email FROM customers) a) b WHERE b.email LIKE \'a%\'', /customers\.email .* WHERE/],
  // Set-returning functions and aggregates.
  ['SELECT id, count(*) FROM customers, generate_series(1, ascii(substr(email, 1, 1))) GROUP BY id', /customers\.email .*function in FROM/],
  ['SELECT (SELECT count(*) FROM generate_series(1, ascii(substr(c.email, 1, 1)))) FROM customers c', /customers\.email/],
  ['SELECT generate_series(1, ascii(substr(email, 1, 1))) FROM customers', /customers\.email .*select list .*generate_series|customers\.email .*substr/],
  ['SELECT json_object_agg(surname, mobile) FROM customers', /customers\.surname \(name\) .*json_object_agg/],
  ['SELECT max(email) FROM customers', /customers\.email .*max\(\)/],
  ['SELECT count(email) FROM customers', /customers\.email/],
  ['SELECT count(DISTINCT ssn) FROM customers', /customers\.ssn/],
  // Equality through joins and set operations.
  ["SELECT id FROM customers JOIN (VALUES ('123-45-6789')) v(ssn) USING (ssn)", /customers\.ssn .*USING/],
  ["SELECT id FROM customers NATURAL JOIN (VALUES ('123-45-6789')) v(ssn)", /NATURAL JOIN/],
  ["SELECT ssn FROM customers INTERSECT SELECT '123-45-6789'", /customers\.ssn .*set operation/],
  ['SELECT email FROM customers UNION ALL SELECT ssn FROM customers', /set operation/],
  ["SELECT ssn FROM customers EXCEPT SELECT '1'", /set operation/],
  ['SELECT a.id FROM customers a JOIN customers b ON a.email = b.email', /customers\.email .*JOIN \.\.\. ON/],
  // ORDER BY by position or alias, GROUP BY, DISTINCT, windows.
  ['SELECT id, ssn FROM customers ORDER BY 2', /customers\.ssn .*ORDER BY by position/],
  ['SELECT id, ssn FROM customers ORDER BY 1', /ORDER BY by position/],
  ['SELECT ssn AS k FROM customers ORDER BY k', /customers\.ssn .*ORDER BY \(by the output name k\)/],
  ['SELECT ssn AS id FROM customers ORDER BY id', /customers\.ssn .*ORDER BY/],
  ['SELECT id FROM customers ORDER BY ssn', /ORDER BY/],
  ['SELECT * FROM (SELECT id, ssn FROM customers ORDER BY ssn LIMIT 1) s', /ORDER BY/],
  ['SELECT id FROM customers GROUP BY email', /GROUP BY/],
  ['SELECT email FROM customers GROUP BY 1', /GROUP BY by position/],
  ['SELECT DISTINCT email FROM customers', /DISTINCT/],
  ['SELECT DISTINCT ON (ssn) id FROM customers', /DISTINCT ON/],
  ['SELECT id, row_number() OVER (ORDER BY ssn) FROM customers', /window/],
  ['SELECT id, rank() OVER w FROM customers WINDOW w AS (PARTITION BY email)', /window definition/],
  // Error oracles and expressions.
  ["SELECT CASE WHEN ssn LIKE '2%' THEN 1/0 END FROM customers", /customers\.ssn .*CASE|customers\.ssn .*~~/],
  ["SELECT id FROM customers WHERE CASE WHEN ssn LIKE '2%' THEN 1/0 ELSE 1 END = 1", /customers\.ssn/],
  ['SELECT lower(email) FROM customers', /customers\.email .*expression in the select list .*lower\(\)/],
  ['SELECT email::int FROM customers', /a cast/],
  ["SELECT email || '' FROM customers", /operator \|\|/],
  ["SELECT jsonb_build_object(email, 1) FROM customers", /jsonb_build_object/],
  ["SELECT JSON_OBJECT(email : 1) FROM customers", /customers\.email/],
  ['SELECT ARRAY[ssn] FROM customers', /customers\.ssn/],
  ['SELECT ROW(ssn) FROM customers', /customers\.ssn/],
  // Whole-row references.
  ['SELECT c FROM customers c', /whole-row/],
  ['SELECT row_to_json(c) FROM customers c', /whole-row/],
  ['SELECT to_json(c.*) FROM customers c', /customers\.\w+/],
  ['SELECT (c).email FROM customers c', /whole-row/],
  ['SELECT email(c) FROM customers c', /whole-row/],
  // Subqueries used as values.
  ['SELECT (SELECT email FROM customers LIMIT 1)', /subquery used as a value/],
  ["SELECT 1 WHERE '123-45-6789' IN (SELECT ssn FROM customers)", /subquery used as a value/],
  ['SELECT ARRAY(SELECT ssn FROM customers)', /subquery used as a value/],
  // LIMIT expressions, VALUES, RETURNING, writes, COPY.
  ['SELECT id FROM customers LIMIT (SELECT length(ssn) FROM customers LIMIT 1)', /customers\.ssn/],
  ['SELECT * FROM customers c, LATERAL (VALUES (c.email)) v(e)', /customers\.email/],
  ['UPDATE customers SET note = email', /UPDATE \.\.\. SET/],
  ["UPDATE customers SET note = 'x' WHERE ssn LIKE '1%'", /WHERE/],
  ['UPDATE customers SET note = \'x\' RETURNING email', /RETURNING/],
  ['UPDATE customers SET note = \'x\' RETURNING old.ssn', /RETURNING/],
  ["DELETE FROM customers WHERE id = 9 RETURNING *", /RETURNING/],
  ["INSERT INTO customers (id) VALUES (9) RETURNING lower(email)", /RETURNING/],
  ["DELETE FROM customers WHERE email = 'a' ", /WHERE/],
  ['INSERT INTO orders (note) SELECT email FROM customers', /stored/],
  ['INSERT INTO orders SELECT * FROM customers', /stored/],
  ['CREATE TABLE t2 AS SELECT email FROM customers', /stored/],
  ['SELECT email INTO t3 FROM customers', /stored/],
  ['CREATE VIEW v9 AS SELECT email FROM customers', /stored/],
  ['COPY (SELECT email FROM customers) TO STDOUT', /COPY/],
  ['COPY customers TO STDOUT', /COPY/],
  ['COPY customers (ssn) TO STDOUT', /COPY/],
  ['MERGE INTO orders o USING customers c ON o.note = c.email WHEN MATCHED THEN DO NOTHING', /MERGE/],
  // Cursors, prepared statements and EXPLAIN are judged by their query.
  ['DECLARE c CURSOR FOR SELECT upper(email) FROM customers', /customers\.email .*upper\(\)/],
  ['DECLARE c CURSOR WITH HOLD FOR SELECT id FROM customers ORDER BY ssn', /ORDER BY/],
  ['PREPARE p AS SELECT id FROM customers WHERE ssn = $1', /WHERE/],
  ["EXPLAIN ANALYZE SELECT id FROM customers WHERE ssn LIKE '1%'", /WHERE/],
  // More shapes: whole rows by relation name, writes with subqueries, data-modifying CTEs.
  ['SELECT customers FROM customers', /whole-row/],
  ['SELECT id FROM customers c WHERE c.* IS NOT NULL', /customers\./],
  ['SELECT id FROM customers c WHERE c IS NOT NULL', /whole-row/],
  ["INSERT INTO orders (note) VALUES ((SELECT email FROM customers LIMIT 1))", /subquery used as a value/],
  ["INSERT INTO customers (id, email) VALUES (1, 'x') ON CONFLICT (id) DO UPDATE SET note = customers.email", /ON CONFLICT/],
  ['WITH d AS (UPDATE customers SET note = note RETURNING email) SELECT * FROM d', /RETURNING/],
  ['CREATE TABLE t5 AS TABLE customers', /stored/],
  ['CREATE MATERIALIZED VIEW m5 AS SELECT ssn FROM customers', /stored/],
  ['SELECT id FROM customers GROUP BY GROUPING SETS ((email), ())', /GROUP BY/],
  ["SELECT string_agg(id::text, ',' ORDER BY email) FROM customers", /the ORDER BY of string_agg\(\)/],
  ['SELECT t FROM (SELECT email FROM customers) t', /whole-row/],
  ['SELECT * FROM customers c JOIN LATERAL (SELECT c.*) x ON true', /outer query/],
  ['SELECT * FROM customers c, jsonb_each(to_jsonb(c)) j', /function in FROM/],
  ['SELECT email COLLATE "C" FROM customers', /customers\.email/],
  ['EXPLAIN ANALYZE UPDATE customers SET note = ssn', /UPDATE \.\.\. SET/],
  ['COPY (DELETE FROM customers WHERE id = 0 RETURNING ssn) TO STDOUT', /RETURNING/],
  // Unqualified names fail closed; other schemas; billing patterns.
  ["SELECT id FROM customers c, orders o WHERE email = 'x'", /customers\.email/],
  ["SELECT customer_id FROM billing.cards WHERE card_number LIKE '4%'", /billing\.cards\.card_number \(credit_card\)/],
  ["SELECT x.id FROM (SELECT * FROM customers) x(i, e) WHERE e = 'a'", /customers\./],
];

describe('strict masking allowlist', () => {
  it.each(ALLOWED)('allows %s', (sql) => {
    expect(check(sql)).toEqual({ ok: true });
  });
  it.each(REFUSED)('refuses %s', (sql, why) => {
    const v = check(sql);
    expect(v.ok).toBe(false);
    if (v.ok) return;
    expect(v.reason).toMatch(why);
    expect(v.reason).toMatch(/in strict mode a masked column may reach the client only as a plain output column/);
  });

  it('names the column and where it was used', () => {
    const v = check("SELECT id FROM customers WHERE lower(email) LIKE 'a%'");
    expect(v).toMatchObject({ ok: false, column: 'customers.email (email)', use: 'WHERE (an argument of lower())' });
  });

  it('masks nothing when no column is sensitive', () => {
    expect(checkAllowlist(analyse('SELECT id FROM customers ORDER BY email'), compileSensitive({}))).toEqual({ ok: true });
  });

  it('takes masked view columns from the catalog', () => {
    const cols = new Map([['contact', 'email']]);
    const rc = (r: { table: string }) => (r.table === 'customer_contacts' ? cols : undefined);
    expect(checkAllowlist(analyse('SELECT contact FROM customer_contacts'), sensitive, rc)).toEqual({ ok: true });
    expect(checkAllowlist(analyse("SELECT id FROM customer_contacts WHERE contact LIKE 'a%'"), sensitive, rc)).toMatchObject({ ok: false, column: 'customer_contacts.contact (email)' });
  });

  it('does not depend on literal values (positions are refused whatever they point at)', () => {
    expect(check('SELECT id, email FROM customers ORDER BY 1').ok).toBe(false);
    expect(check('SELECT id, email FROM customers ORDER BY 2').ok).toBe(false);
    expect(check('SELECT id, note FROM customers ORDER BY 1').ok).toBe(true);
  });

  it('caches per analysis and per text', () => {
    const c = createAllowlist(sensitive);
    const a = analyse('SELECT id FROM customers WHERE ssn = $1');
    const v1 = c(a);
    expect(c(a)).toBe(v1);
    expect(c(analyse('SELECT id FROM customers WHERE ssn = $1'))).toBe(v1);
    expect(v1.ok).toBe(false);
  });
});

describe('view columns from their definitions', () => {
  const all = new Map([
    ['id', 'email'],
    ['contact', 'email'],
    ['who', 'name'],
    ['n', 'email'],
  ]);
  it('a plain reference to a masked column, or an expression over one, carries masked values; other columns do not', () => {
    const cols = viewMaskedColumns(' SELECT customers.id,\n    customers.email AS contact,\n    upper(customers.full_name) AS who, 1 AS n\n   FROM customers;', ['id', 'contact', 'who', 'n'], all, sensitive);
    expect([...cols]).toEqual([
      ['contact', 'email'],
      ['who', 'name'],
    ]);
  });
  it('through another view, with the catalog', () => {
    const inner = new Map([['contact', 'email']]);
    const cols = viewMaskedColumns(' SELECT customer_contacts.contact AS c2, customer_contacts.id FROM customer_contacts;', ['c2', 'id'], new Map([['c2', 'email'], ['id', 'email']]), sensitive, (r) => (r.table === 'customer_contacts' ? inner : undefined));
    expect([...cols]).toEqual([['c2', 'email']]);
  });
  it('keeps every column masked when it cannot follow the definition', () => {
    for (const def of ['SELECT id, email FROM customers UNION SELECT 1, 2', 'SELECT a.id, b.email FROM customers a JOIN customers b ON a.email = b.email', 'not sql at all', 'VALUES (1, 2)']) {
      expect(viewMaskedColumns(def, ['id', 'contact'], all, sensitive)).toBe(all);
    }
  });
});
