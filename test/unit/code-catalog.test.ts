/**
 * The code catalog with a fake catalog: which calls need a lookup, how names resolve,
 * caching, trust, and failing closed when the catalog cannot be read.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { createCodeCatalog, mayRunCode, type CatalogQueryFn } from '../../src/governance/code-catalog.js';
import { analyzeSql, initSqlParser, type Analysis, type AnalysisOk } from '../../src/sql/index.js';
import type { DatabaseConfig } from '../../src/config/types.js';

beforeAll(async () => {
  await initSqlParser();
});

const db = (trusted?: string[]): DatabaseConfig => ({
  name: 'app',
  upstream: { host: 'h', port: 1, user: 'svc', database: 'app', redactedUrl: 'postgres://svc@h/app' },
  tls: 'disable',
  ...(trusted ? { trustedFunctions: trusted } : {}),
});
const ctx = { searchPath: ['public'] };

interface FakeFn {
  schema: string;
  name: string;
  language?: string;
  def?: string;
}

/** A fake catalog: the index query and the function query. */
function fake(fns: FakeFn[], triggers: { schema: string; rel: string; fschema: string; fname: string }[] = [], fail?: string) {
  const calls: string[] = [];
  const queries: string[] = [];
  const query: CatalogQueryFn = async (_db, sql) => {
    const pin = { command: 'SELECT', rows: [{ set_config: 'pg_catalog' }] };
    if (sql.includes('pg_catalog.pg_trigger') || sql.includes('bool_and') || sql.includes('regnamespace')) {
      const out: unknown[] = [pin];
      // The parts asked for, in the order the catalog asks them.
      if (sql.includes('regnamespace')) {
        calls.push('builtin');
        out.push({ command: 'SELECT', rows: ['count', 'lower', 'now'].map((name) => ({ name })) });
      }
      if (sql.includes('bool_and')) {
        calls.push('routines');
        out.push({ command: 'SELECT', rows: fns.map((f) => ({ name: f.name, schema: f.schema, extension: false })) });
      }
      if (sql.includes('pg_catalog.pg_trigger')) {
        calls.push('tables');
        out.push({ command: 'SELECT', rows: triggers.map((t) => ({ schema: t.schema, rel: t.rel, what: 'trigger', name: 'tr', fschema: t.fschema, fname: t.fname, def: null })) });
      }
      queries.push(sql);
      return out;
    }
    calls.push('functions');
    if (fail) throw new Error(fail);
    const rows = fns
      .map((f, i) => ({ f, i }))
      .filter(({ f }) => sql.includes(JSON.stringify([f.schema, f.name]).replace(/'/g, "''")))
      .map(({ f, i }) => ({ schema: f.schema, name: f.name, oid: String(1000 + i), language: f.language ?? 'sql', kind: 'f', definer: false, config: null, args: '', def: f.def ?? null }));
    return [pin, { command: 'SELECT', rows }];
  };
  return { query, calls, queries };
}

const sqlFn = (schema: string, name: string, body: string): FakeFn => ({
  schema,
  name,
  def: `CREATE OR REPLACE FUNCTION ${schema}.${name}() RETURNS void LANGUAGE sql AS $f$ ${body} $f$`,
});

async function resolve(code: ReturnType<typeof createCodeCatalog>, sql: string, d = db()): Promise<AnalysisOk> {
  const a = analyzeSql(sql, ctx);
  const r: Analysis = await code.resolve(d, a, ctx);
  if (!r.ok) throw new Error(r.error);
  return r;
}

describe('which statements need the catalog', () => {
  it('no call outside pg_catalog and no write: none, and the analysis is returned as it is, synchronously', () => {
    const f = fake([]);
    const code = createCodeCatalog({ query: f.query });
    for (const sql of ['SELECT a FROM t WHERE id = 1', 'SELECT pg_catalog.now()', 'BEGIN', 'SET x = 1']) {
      const a = analyzeSql(sql, ctx);
      expect(mayRunCode(a), sql).toBe(false);
      expect(code.resolve(db(), a, ctx)).toBe(a);
    }
    expect(f.calls).toEqual([]);
    expect(mayRunCode(analyzeSql('SELECT count(*) FROM t', ctx))).toBe(true);
    expect(mayRunCode(analyzeSql('UPDATE t SET a = 1', ctx))).toBe(true);
  });

  it('built-ins need the index once; then everything is answered from memory', async () => {
    const f = fake([]);
    const code = createCodeCatalog({ query: f.query });
    const a = await resolve(code, 'SELECT count(*), lower(x) FROM t');
    expect(a.opaque).toBe(false);
    const b = analyzeSql('SELECT now()', ctx);
    expect(code.resolve(db(), b, ctx)).toBe(b);
    expect(f.calls).toEqual(['builtin', 'routines', 'tables']);
    expect(f.queries).toHaveLength(1);
    // After DDL that cannot change routines, only the tables' part is read again; built-ins never.
    code.invalidate('app', 'tables');
    await resolve(code, 'UPDATE t SET a = 1');
    expect(f.calls).toEqual(['builtin', 'routines', 'tables', 'tables']);
    code.invalidate('app');
    await resolve(code, 'SELECT count(*) FROM t');
    expect(f.calls).toEqual(['builtin', 'routines', 'tables', 'tables', 'routines', 'tables']);
  });
});

describe('resolution', () => {
  it('an unqualified call of a user function in the path carries its body; outside the path it is unknown', async () => {
    const f = fake([sqlFn('public', 'refund', 'insert into pay.ledger values (1)'), sqlFn('other', 'hidden', 'delete from t')]);
    const code = createCodeCatalog({ query: f.query });
    const a = await resolve(code, 'SELECT refund()');
    expect([...a.classes]).toEqual(expect.arrayContaining(['insert', 'write']));
    expect(a.writes.map((r) => r.name)).toEqual(['pay.ledger']);
    expect(a.statements[0]!.notes).toContain('writes pay.ledger via public.refund()');
    const b = await resolve(code, 'SELECT hidden()');
    expect(b.opaque).toBe(true);
    expect(b.statements[0]!.opaqueReasons[0]).toMatch(/hidden\(\), which is not in the catalog/);
    // Cached: the same analysis object resolves synchronously, without another query.
    const n = f.calls.length;
    const again = analyzeSql('SELECT refund()', ctx);
    const first = code.resolve(db(), again, ctx);
    expect(first instanceof Promise ? await first : first).toBeTruthy();
    expect(code.resolve(db(), again, ctx)).not.toBeInstanceOf(Promise);
    expect(f.calls.length).toBeLessThanOrEqual(n + 1);
  });

  it('nested calls are followed; a CALL whose procedure was read is no longer opaque', async () => {
    const f = fake([sqlFn('s', 'f1', 'select s.f2()'), sqlFn('s', 'f2', 'truncate t'), sqlFn('s', 'proc', 'select 1')]);
    const code = createCodeCatalog({ query: f.query });
    const a = await resolve(code, 'SELECT s.f1()');
    expect(a.classes.has('truncate')).toBe(true);
    const c = await resolve(code, 'CALL s.proc()');
    expect(c.opaque).toBe(false);
    const unknown = await resolve(code, 'CALL s.nope()');
    expect(unknown.opaque).toBe(true);
  });

  it('other languages and pg_temp are opaque with a way to vouch; trusted functions are not judged', async () => {
    const f = fake([{ schema: 'ext', name: 'cfun', language: 'c' }, sqlFn('util', 'w', 'delete from t')]);
    const code = createCodeCatalog({ query: f.query });
    const a = await resolve(code, 'SELECT ext.cfun(), pg_temp.x()');
    expect(a.statements[0]!.opaqueReasons.join('\n')).toMatch(/LANGUAGE c.*trusted_functions: \["ext\.cfun"\]/);
    expect(a.statements[0]!.opaqueReasons.join('\n')).toMatch(/pg_temp\.x\(\), a function in the session's temporary schema/);
    const trusting = createCodeCatalog({ query: f.query });
    const t = await resolve(trusting, 'SELECT ext.cfun(), util.w()', db(['ext.*', 'util.w']));
    expect(t.opaque).toBe(false);
    expect(t.classes.has('delete')).toBe(false);
  });

  it('a write carries the effects of the table triggers', async () => {
    const f = fake([sqlFn('pay', 'trg', 'insert into pay.ledger values (1)')], [{ schema: 'public', rel: 'orders', fschema: 'pay', fname: 'trg' }]);
    const code = createCodeCatalog({ query: f.query });
    const a = await resolve(code, "INSERT INTO orders VALUES (1, 'x')");
    expect(a.writes.map((r) => r.name).sort()).toEqual(['pay.ledger', 'public.orders']);
    const b = await resolve(code, "INSERT INTO other VALUES (1)");
    expect(b.writes.map((r) => r.name)).toEqual(['public.other']);
  });

  it('a catalog that cannot be read makes the statement opaque, naming what could not be seen', async () => {
    const f = fake([sqlFn('pay', 'refund', 'select 1')], [], 'connection refused');
    const code = createCodeCatalog({ query: f.query });
    const a = await resolve(code, 'SELECT pay.refund()');
    expect(a.opaque).toBe(true);
    expect(a.statements[0]!.opaqueReasons[0]).toMatch(/calls pay\.refund\(\): Warden could not read the catalog of app .*connection refused/);
  });
});
