/**
 * masking/session-code.ts: objects and code made in the session, for identities with masked
 * columns (issue 16, item 4). The wire behaviour is in test/integration/masking-session-code-wire.test.ts.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { analyzeSql, initSqlParser, type AnalysisOk } from '../../src/sql/index.js';
import { withCodeEffects } from '../../src/sql/code.js';
import { compileSensitive } from '../../src/policy/sensitive.js';
import { checkSessionCode, createdObject, definitionReadsMasked } from '../../src/masking/session-code.js';
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
/** The catalog's view over sensitive columns. */
const views: RelationColumns = (r) => (r.table === 'customer_contacts' ? new Map([['contact', 'email']]) : undefined);

function analysis(sql: string): AnalysisOk {
  const a = analyzeSql(sql, { searchPath: ['public'] });
  if (!a.ok) throw new Error(a.error);
  return a;
}
/** `sql` as if it called code whose body is `body`. */
function calling(sql: string, via: string, body: string): AnalysisOk {
  const b = analysis(body).statements[0]!;
  return withCodeEffects(analysis(sql), new Map([[0, [{ via, body: b }]]])) as AnalysisOk;
}
const strict = { strict: true, database: 'app' };
const relaxed = { strict: false, database: 'app' };

describe('createdObject', () => {
  it('names the objects whose rows or results escape masking by column', () => {
    expect(createdObject('CREATE TEMP VIEW tv AS SELECT 1')).toBe('the view tv');
    expect(createdObject('CREATE OR REPLACE VIEW s.v AS SELECT 1')).toBe('the view s.v');
    expect(createdObject('CREATE MATERIALIZED VIEW mv AS SELECT 1')).toBe('the materialized view mv');
    expect(createdObject('CREATE TABLE t AS SELECT 1')).toBe('the table (CREATE TABLE AS) t');
    expect(createdObject('SELECT 1 INTO TEMP t')).toBe('the table t (SELECT INTO)');
    expect(createdObject('CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS $$SELECT 1$$')).toBe('the function pg_temp.f');
    expect(createdObject('CREATE PROCEDURE p() LANGUAGE sql AS $$SELECT 1$$')).toBe('the procedure p');
    expect(createdObject('CREATE RULE r AS ON INSERT TO t DO INSTEAD NOTHING')).toBe('the rule r on t');
    expect(createdObject('CREATE TRIGGER tr BEFORE INSERT ON s.t FOR EACH ROW EXECUTE FUNCTION f()')).toBe('the trigger tr on s.t');
    expect(createdObject('CREATE POLICY p ON t USING (true)')).toBe('the policy p on t');
    expect(createdObject('ALTER POLICY p ON t USING (false)')).toBe('the policy p on t');
  });

  it('is null for other statements', () => {
    for (const sql of ['SELECT 1', 'CREATE TABLE t (a int)', 'CREATE INDEX ON customers (ssn)', 'INSERT INTO t SELECT 1', 'DO $$ BEGIN END $$']) expect(createdObject(sql), sql).toBeNull();
  });
});

describe('creating objects and code over masked columns', () => {
  const REFUSED: [string, RegExp, RegExp][] = [
    ['CREATE TEMP VIEW tv AS SELECT id, ssn FROM customers', /the view tv/, /customers\.ssn \(ssn\)/],
    ['CREATE VIEW v AS SELECT * FROM customers', /the view v/, /customers\.\* \(\w+\)/],
    ['CREATE VIEW v AS SELECT id FROM customers WHERE ssn LIKE $$1%$$', /the view v/, /customers\.ssn/],
    ['CREATE MATERIALIZED VIEW mv AS SELECT upper(email) FROM customers', /the materialized view mv/, /customers\.email \(email\)/],
    ['CREATE TEMP TABLE tt AS TABLE customers', /the table \(CREATE TABLE AS\) tt/, /customers\.\*/],
    ['SELECT full_name INTO TEMP tt FROM customers', /the table tt \(SELECT INTO\)/, /customers\.full_name \(name\)/],
    ['CREATE FUNCTION pg_temp.f() RETURNS text LANGUAGE sql AS $$SELECT ssn FROM customers WHERE id = 1$$', /the function pg_temp\.f/, /customers\.ssn/],
    ['CREATE FUNCTION f(i int) RETURNS text LANGUAGE sql RETURN (SELECT email FROM customers WHERE id = i)', /the function f/, /customers\.email/],
    ['CREATE FUNCTION f() RETURNS json LANGUAGE sql AS $$SELECT json_agg(c) FROM customers c$$', /the function f/, /customers\./],
    ['CREATE FUNCTION pg_temp.f() RETURNS text LANGUAGE plpgsql AS $$DECLARE r record; BEGIN SELECT * INTO r FROM customers; RETURN r.ssn; END$$', /the function pg_temp\.f/, /customers\.\*/],
    ['CREATE PROCEDURE pg_temp.p(INOUT x text) LANGUAGE plpgsql AS $$BEGIN SELECT card_number INTO x FROM billing.cards LIMIT 1; END$$', /the procedure pg_temp\.p/, /cards\.card_number \(credit_card\)/],
    ['CREATE RULE r AS ON INSERT TO rt DO INSTEAD SELECT ssn FROM customers', /the rule r on rt/, /customers\.ssn/],
    ['CREATE POLICY p ON pt USING ((SELECT ssn FROM customers WHERE id = 1)::int > 0)', /the policy p on pt/, /customers\.ssn/],
  ];
  for (const mode of [strict, relaxed]) {
    it(`refused in ${mode.strict ? 'strict' : 'relaxed'} mode, naming the object and the column`, () => {
      for (const [sql, object, column] of REFUSED) {
        const v = checkSessionCode(analysis(sql), sensitive, mode);
        expect(v.ok, sql).toBe(false);
        if (v.ok) continue;
        expect(v.reason, sql).toMatch(/^creating /);
        expect(v.object, sql).toMatch(object);
        expect(v.column, sql).toMatch(column);
      }
    });
  }

  it('views of the catalog over sensitive columns count (given the catalog)', () => {
    const a = analysis('CREATE TEMP VIEW tv AS SELECT contact FROM customer_contacts');
    expect(checkSessionCode(a, sensitive, strict).ok).toBe(true);
    expect(checkSessionCode(a, sensitive, { ...strict, relationColumns: views })).toMatchObject({ ok: false, column: 'customer_contacts.contact (email)' });
    expect(checkSessionCode(analysis('CREATE TEMP VIEW tv AS SELECT id FROM customer_contacts'), sensitive, { ...strict, relationColumns: views }).ok).toBe(true);
  });

  it('a trigger whose function reads a masked column is refused', () => {
    const a = calling('CREATE TRIGGER t1 BEFORE INSERT ON tr FOR EACH ROW EXECUTE FUNCTION public.copy_ssn()', 'public.copy_ssn()', 'SELECT ssn FROM customers WHERE id = 1');
    expect(checkSessionCode(a, sensitive, relaxed)).toMatchObject({ ok: false, object: 'the trigger t1 on tr', column: 'customers.ssn (ssn)' });
  });

  it("a rule's actions and a trigger's function read the table they are on through NEW and OLD", () => {
    for (const sql of [
      'CREATE RULE r AS ON UPDATE TO customers DO ALSO INSERT INTO hits VALUES (NEW.ssn)',
      'CREATE RULE r AS ON DELETE TO public.customers DO ALSO INSERT INTO hits SELECT row_to_json(OLD)::text',
      'CREATE RULE r AS ON INSERT TO customers DO ALSO INSERT INTO hits SELECT NEW.*',
    ]) {
      expect(checkSessionCode(analysis(sql), sensitive, relaxed), sql).toMatchObject({ ok: false });
    }
    const fn = 'CREATE FUNCTION cp() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN INSERT INTO hits VALUES (NEW.full_name); RETURN NEW; END$$';
    // Creating the function reads nothing it can tell (the trigger's table is not known yet) ...
    expect(checkSessionCode(analysis(fn), sensitive, strict).ok).toBe(true);
    // ... creating the trigger on customers, or a write that fires it, does.
    const body = analysis(fn).statements[0]!.body!;
    const on = (sql: string) => withCodeEffects(analysis(sql), new Map([[0, [{ via: 'trigger t on public.customers → public.cp()', body }]]])) as AnalysisOk;
    expect(checkSessionCode(on('CREATE TRIGGER t BEFORE UPDATE ON customers FOR EACH ROW EXECUTE FUNCTION cp()'), sensitive, relaxed)).toMatchObject({ ok: false, column: /full_name/ });
    expect(checkSessionCode(on('UPDATE customers SET note = note'), sensitive, strict)).toMatchObject({ ok: false, column: /full_name/ });
    expect(checkSessionCode(on('UPDATE customers SET note = note'), sensitive, relaxed).ok).toBe(false);
    // A trigger function that reads only unmasked columns of NEW runs.
    const touch = analysis('CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN NEW.note := NEW.note || $x$!$x$; RETURN NEW; END$$').statements[0]!.body!;
    const a = withCodeEffects(analysis('UPDATE customers SET note = note'), new Map([[0, [{ via: 'trigger t on public.customers → public.touch()', body: touch }]]])) as AnalysisOk;
    expect(checkSessionCode(a, sensitive, strict)).toEqual({ ok: true, computedMasked: false });
  });

  it('objects over columns that are not masked, and other DDL, are allowed', () => {
    for (const sql of [
      'CREATE TEMP VIEW v AS SELECT id, note FROM customers',
      'CREATE FUNCTION f(i int) RETURNS numeric LANGUAGE sql AS $$SELECT total FROM orders WHERE id = i$$',
      'CREATE TABLE t AS SELECT id FROM customers',
      'CREATE INDEX ON customers (ssn)',
      'CREATE FUNCTION f() RETURNS void LANGUAGE sql AS $$UPDATE customers SET ssn = NULL WHERE id = 1$$',
    ]) {
      expect(checkSessionCode(analysis(sql), sensitive, strict), sql).toEqual({ ok: true, computedMasked: false });
    }
  });
});

describe('running code that reads masked columns', () => {
  it('strict: refused, naming the code and the column', () => {
    const v = checkSessionCode(calling('SELECT pg_temp.f()', 'pg_temp.f() (as defined in this session)', 'SELECT ssn FROM customers WHERE id = 1'), sensitive, strict);
    expect(v).toMatchObject({ ok: false, object: 'pg_temp.f() (as defined in this session)', column: 'customers.ssn (ssn)' });
    expect(!v.ok && v.reason).toMatch(/in strict mode a masked identity cannot run functions/);
  });

  it('relaxed: outputs masked whole when nothing is written; refused when the statement or the code writes', () => {
    expect(checkSessionCode(calling('SELECT f()', 'f()', 'SELECT email FROM customers'), sensitive, relaxed)).toEqual({ ok: true, computedMasked: true });
    expect(checkSessionCode(calling('INSERT INTO t VALUES (f())', 'f()', 'SELECT email FROM customers'), sensitive, relaxed).ok).toBe(false);
    expect(checkSessionCode(calling('SELECT f()', 'f()', 'INSERT INTO log SELECT ssn FROM customers'), sensitive, relaxed)).toMatchObject({ ok: false, reason: /in a statement that writes/ });
  });

  it('a catalog view read by code counts (given the catalog)', () => {
    const a = calling('SELECT f()', 'f()', 'SELECT contact FROM customer_contacts');
    expect(checkSessionCode(a, sensitive, strict).ok).toBe(true);
    expect(checkSessionCode(a, sensitive, { ...strict, relationColumns: views }).ok).toBe(false);
    expect(checkSessionCode(a, sensitive, { ...relaxed, relationColumns: views })).toEqual({ ok: true, computedMasked: true });
  });

  it('DO blocks: strict refuses reading; relaxed refuses storing', () => {
    expect(checkSessionCode(analysis("DO $$ BEGIN RAISE NOTICE '%', (SELECT ssn FROM customers WHERE id = 1); END $$"), sensitive, strict)).toMatchObject({ ok: false, object: 'the DO block' });
    expect(checkSessionCode(analysis("DO $$ BEGIN RAISE NOTICE '%', (SELECT ssn FROM customers WHERE id = 1); END $$"), sensitive, relaxed)).toEqual({ ok: true, computedMasked: true });
    expect(checkSessionCode(analysis('DO $$ BEGIN INSERT INTO t SELECT ssn FROM customers; END $$'), sensitive, relaxed).ok).toBe(false);
    expect(checkSessionCode(analysis('DO $$ BEGIN INSERT INTO t SELECT id FROM customers; END $$'), sensitive, strict).ok).toBe(true);
  });

  it('code that reads no masked column, and plain reads, are allowed', () => {
    expect(checkSessionCode(calling('SELECT f(1)', 'f()', 'SELECT total FROM orders WHERE id = 1'), sensitive, strict)).toEqual({ ok: true, computedMasked: false });
    expect(checkSessionCode(analysis('SELECT id, ssn, email FROM customers'), sensitive, strict)).toEqual({ ok: true, computedMasked: false });
  });
});

describe('code Warden cannot see', () => {
  it('is refused in both modes, with the reasons and how to vouch', () => {
    for (const mode of [strict, relaxed]) {
      const v = checkSessionCode(analysis("DO $$ BEGIN EXECUTE 'SELECT ' || quote_ident('ssn') || ' FROM customers'; END $$"), sensitive, mode);
      expect(v.ok).toBe(false);
      expect(!v.ok && v.reason).toMatch(/Warden cannot see everything the statement runs \(DO block runs dynamic SQL/);
      expect(!v.ok && v.reason).toMatch(/databases\.app\.trusted_functions/);
    }
  });

  it('nothing is refused when no column is masked', () => {
    expect(checkSessionCode(analysis("DO $$ BEGIN EXECUTE 'SELECT ' || quote_ident('x'); END $$"), compileSensitive({}), strict).ok).toBe(true);
  });
});

describe('definitionReadsMasked (views that call functions)', () => {
  it('names the masked column a function definition reads; unreadable bodies fail closed; others read none', () => {
    const def = (lang: string, body: string) => `CREATE OR REPLACE FUNCTION public.f(i integer)\n RETURNS text\n LANGUAGE ${lang}\n STABLE\nAS $function$${body}$function$\n`;
    expect(definitionReadsMasked(def('sql', 'SELECT ssn FROM customers WHERE id = i'), sensitive)).toBe('customers.ssn (ssn)');
    expect(definitionReadsMasked(def('plpgsql', 'BEGIN RETURN (SELECT full_name FROM public.customers WHERE id = i); END'), sensitive)).toBe('customers.full_name (name)');
    expect(definitionReadsMasked(def('plpgsql', "DECLARE v text; BEGIN EXECUTE format('SELECT %I FROM customers', 'ssn') INTO v; RETURN v; END"), sensitive)).toBe('unreadable');
    expect(definitionReadsMasked(null, sensitive)).toBe('unreadable');
    expect(definitionReadsMasked(def('sql', 'SELECT total::text FROM orders WHERE id = i'), sensitive)).toBeNull();
  });
});
