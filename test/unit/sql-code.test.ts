/**
 * Code that runs later: function/procedure bodies and rule actions are analysed
 * with the statement analyser (src/sql/code.ts), and the `code` class.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { analyzeSql, initSqlParser, type AnalysisOk, type StatementAnalysis } from '../../src/sql/index.js';
import { statementWithCodeEffects, withCodeEffects } from '../../src/sql/code.js';

beforeAll(async () => {
  await initSqlParser();
});

const ctx = { searchPath: ['public'] };

function one(sql: string): StatementAnalysis {
  const a = analyzeSql(sql, ctx);
  if (!a.ok) throw new Error(a.error);
  expect(a.statements).toHaveLength(1);
  return a.statements[0]!;
}
const names = (rs: readonly { name: string }[]) => rs.map((r) => r.name).sort();

describe('CREATE FUNCTION / PROCEDURE carry what the body does', () => {
  it('a SQL body that inserts: class code, insert, write, and the table', () => {
    const s = one('CREATE FUNCTION pay.refund(x int) RETURNS void LANGUAGE sql AS $$ insert into pay.ledger values (x) $$');
    expect([...s.classes]).toEqual(expect.arrayContaining(['create', 'ddl', 'code', 'insert', 'write']));
    expect(names(s.writes)).toEqual(['pay.ledger']);
    expect(s.body?.kind).toBe('do');
    expect(names(s.body!.writes)).toEqual(['pay.ledger']);
    expect(s.body!.classes.has('create')).toBe(false);
    // The parameter is not a column.
    expect(s.columns.some((c) => c.column === 'x')).toBe(false);
  });
  it('a PL/pgSQL body that drops: class drop', () => {
    const s = one("CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE plpgsql AS 'BEGIN DROP TABLE victim; RETURN 1; END'");
    expect(s.classes.has('drop')).toBe(true);
    expect(s.classes.has('code')).toBe(true);
    expect(names(s.writes)).toContain('public.victim');
  });
  it('a BEGIN ATOMIC body and a RETURN body', () => {
    const s = one('CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC delete from t; select 1; END');
    expect(s.classes.has('delete')).toBe(true);
    expect(names(s.body!.writes)).toEqual(['public.t']);
    const r = one('CREATE FUNCTION g(a int) RETURNS int LANGUAGE sql RETURN (select count(*) from secrets)');
    expect(names(r.body!.reads)).toEqual(['public.secrets']);
    expect(r.body!.classes.has('write')).toBe(false);
  });
  it('a procedure whose body deletes and commits', () => {
    const s = one('CREATE OR REPLACE PROCEDURE p(a int) LANGUAGE plpgsql AS $$ BEGIN delete from t where id = a; COMMIT; END $$');
    expect(s.classes.has('delete')).toBe(true);
    expect(s.classes.has('transaction')).toBe(true);
  });
  it('a trigger function sees NEW and OLD', () => {
    const s = one("CREATE FUNCTION trg() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO audit.log VALUES (NEW.id); RETURN NEW; END $$");
    expect(s.opaque).toBe(false);
    expect(names(s.writes)).toEqual(['audit.log']);
  });
  it('dynamic SQL and other languages are opaque, naming the function', () => {
    const d = one("CREATE FUNCTION f(t text) RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'drop table ' || t; END $$");
    expect(d.opaque).toBe(true);
    expect(d.opaqueReasons[0]).toMatch(/function f\(\) runs dynamic SQL/);
    const c = one("CREATE FUNCTION f() RETURNS int LANGUAGE c AS 'lib', 'sym'");
    expect(c.opaque).toBe(true);
    expect(c.opaqueReasons[0]).toMatch(/LANGUAGE c/);
    const k = one("CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'delete from t'; END $$");
    expect(k.opaque).toBe(false);
    expect(k.classes.has('delete')).toBe(true);
  });
  it('a SET search_path inside the body does not change the analysis of later statements', () => {
    const a = analyzeSql("CREATE FUNCTION f() RETURNS void LANGUAGE sql AS $$ select set_config('search_path', 'evil', false) $$; DELETE FROM t", ctx) as AnalysisOk;
    expect(names(a.statements[1]!.writes)).toEqual(['public.t']);
    expect(a.statements[0]!.searchPath).toBeUndefined();
  });
  it('a DO block that creates a function carries its body', () => {
    const s = one("DO $$ BEGIN CREATE FUNCTION pg_temp.x() RETURNS void LANGUAGE sql AS 'truncate victim'; END $$");
    expect(s.classes.has('truncate')).toBe(true);
  });
});

describe('rules, triggers, policies, views', () => {
  it('CREATE RULE ... DO ALSO DELETE is a delete of the rule target', () => {
    const s = one('CREATE RULE r AS ON INSERT TO orders DO ALSO DELETE FROM pay.ledger WHERE id = new.id');
    expect([...s.classes]).toEqual(expect.arrayContaining(['code', 'delete', 'write', 'create', 'ddl']));
    expect(names(s.writes)).toEqual(['pay.ledger', 'public.orders']);
    expect(names(s.body!.writes)).toEqual(['pay.ledger']);
  });
  it('CREATE TRIGGER records its function as a call', () => {
    const s = one('CREATE TRIGGER t AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION pay.trg()');
    expect(s.classes.has('code')).toBe(true);
    expect(s.functions).toContain('pay.trg');
  });
  it('views, materialized views, policies and event triggers are code', () => {
    for (const sql of [
      'CREATE VIEW v AS SELECT 1',
      'CREATE MATERIALIZED VIEW mv AS SELECT 1',
      'CREATE POLICY p ON t USING (s.f(id))',
      'CREATE EVENT TRIGGER e ON ddl_command_start EXECUTE FUNCTION s.f()',
    ]) {
      const s = one(sql);
      expect(s.classes.has('code'), sql).toBe(true);
      expect(s.classes.has('ddl'), sql).toBe(true);
    }
    expect(one('CREATE POLICY p ON t USING (s.f(id))').functions).toContain('s.f');
  });
});

describe('adding the effects of called code', () => {
  it('a SELECT of a function that writes becomes a write, with a note naming the function', () => {
    const call = one('SELECT pay.refund(1)');
    const body = one('CREATE FUNCTION pay.refund(x int) RETURNS void LANGUAGE sql AS $$ insert into pay.ledger values (x) $$').body!;
    const s = statementWithCodeEffects(call, [{ via: 'pay.refund()', body }]);
    expect(s.classes.has('read')).toBe(false);
    expect(s.classes.has('insert')).toBe(true);
    expect(s.classes.has('write')).toBe(true);
    expect(names(s.writes)).toEqual(['pay.ledger']);
    expect(s.notes).toContain('writes pay.ledger via pay.refund()');
  });
  it('an opaque effect makes the statement opaque; the analysis is rebuilt around it', () => {
    const a = analyzeSql('SELECT 1; SELECT pg_temp.f()', ctx);
    const b = withCodeEffects(a, new Map([[1, [{ via: 'pg_temp.f()', opaque: 'calls pg_temp.f(): not visible' }]]]));
    expect(b.ok && b.opaque).toBe(true);
    expect(b.ok && b.statements[0]).toBe(a.ok && a.statements[0]);
    expect(b.ok && [...b.classes]).toContain('opaque');
    expect(withCodeEffects(a, new Map())).toBe(a);
  });
});

describe('trusted_functions patterns', () => {
  it('match schema.name with * inside one part', async () => {
    const { trustedMatcher } = await import('../../src/governance/code-catalog.js');
    const t = trustedMatcher(['util.*', 'pay.refund', '*.slugify']);
    expect(t('util', 'anything')).toBe(true);
    expect(t('pay', 'refund')).toBe(true);
    expect(t('pay', 'refund2')).toBe(false);
    expect(t('public', 'slugify')).toBe(true);
    expect(t('utilx', 'f')).toBe(false);
    expect(trustedMatcher(undefined)('util', 'f')).toBe(false);
  });
});
