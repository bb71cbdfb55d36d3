/**
 * analyzeSql API details beyond the corpus: errors, statement text, columns,
 * search_path handling, prepared statements, JSON form, fingerprints.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import {
  analysisToJSON,
  analyzeSql,
  fingerprintSql,
  functionEffect,
  initSqlParser,
  normalizeSql,
  parseSearchPath,
  preparedStatementsAfter,
  type Analysis,
} from '../../src/sql/index.js';

beforeAll(async () => {
  await initSqlParser();
});

const ctx = { searchPath: ['public'] };

describe('parse errors', () => {
  it('reports the parser message with a 1-based character position', () => {
    const a = analyzeSql('SELECT * FRM users', ctx);
    expect(a.ok).toBe(false);
    if (a.ok) return;
    expect(a.error).toBe('syntax error at or near "FRM" (at character 10)');
    expect(a.position).toBe(10);
  });
  it('counts characters, not bytes', () => {
    const a = analyzeSql("SELECT 'ééé' FRM t", ctx);
    expect(!a.ok && a.position).toBe(18);
  });
});

describe('statements', () => {
  it('keeps each statement text, with multibyte characters', () => {
    const a = analyzeSql("SELECT 'üü'; /* c */ DELETE FROM t WHERE x = 'é' ;", ctx);
    expect(a.ok && a.statements.map((s) => s.text)).toEqual(["SELECT 'üü'", "DELETE FROM t WHERE x = 'é'"]);
  });

  it('records column usages', () => {
    const a = analyzeSql(
      'SELECT lower(c.email) AS e, o.total FROM customers c JOIN orders o ON o.cid = c.id WHERE c.active GROUP BY 1, o.total ORDER BY o.total',
      ctx,
    );
    if (!a.ok) throw new Error(a.error);
    const cols = a.statements[0]!.columns.map((c) => `${c.relation}.${c.column}:${c.usage}`);
    expect(cols).toEqual(
      expect.arrayContaining([
        'public.customers.email:function-arg',
        'public.orders.total:projection',
        'public.orders.cid:join',
        'public.customers.id:join',
        'public.customers.active:predicate',
        'public.orders.total:group',
        'public.orders.total:order',
      ]),
    );
  });

  it('records RETURNING and assignment columns', () => {
    const a = analyzeSql('UPDATE customers SET email = lower(email) WHERE id = 1 RETURNING ssn', ctx);
    if (!a.ok) throw new Error(a.error);
    const cols = a.statements[0]!.columns.map((c) => `${c.relation}.${c.column}:${c.usage}`);
    expect(cols).toEqual(
      expect.arrayContaining([
        'public.customers.email:assignment',
        'public.customers.email:function-arg',
        'public.customers.id:predicate',
        'public.customers.ssn:returning',
      ]),
    );
  });

  it('lists functions as written', () => {
    const a = analyzeSql('SELECT pg_catalog.now(), COUNT(*), "MyFunc"(1) FROM t', ctx);
    expect(a.ok && [...a.functions].sort()).toEqual(['MyFunc', 'count', 'pg_catalog.now']);
  });

  it('records settings', () => {
    const a = analyzeSql("SET LOCAL work_mem = '64MB'; RESET search_path; SELECT set_config('a.b', 'c', true)", ctx);
    if (!a.ok) throw new Error(a.error);
    expect(a.statements.flatMap((s) => s.sets)).toEqual([
      { name: 'work_mem', value: '64MB', local: true, via: 'set' },
      { name: 'search_path', value: null, local: false, via: 'reset' },
      { name: 'a.b', value: 'c', local: true, via: 'set_config' },
    ]);
    expect(a.statements[1]!.searchPath).toBeNull();
  });

  it('explains opaque statements', () => {
    const a = analyzeSql("SELECT lo_export(1, '/tmp/x'); CALL p()", ctx);
    if (!a.ok) throw new Error(a.error);
    expect(a.statements[0]!.opaqueReasons[0]).toMatch(/lo_export/);
    expect(a.statements[1]!.opaqueReasons[0]).toMatch(/CALL p/);
  });

  it('uses the default search path after RESET when given', () => {
    const a = analyzeSql('RESET search_path; DELETE FROM invoices', { searchPath: ['billing'], defaultSearchPath: ['$user', 'public'] });
    if (!a.ok) throw new Error(a.error);
    expect(a.statements[1]!.writes[0]!.name).toBe('public.invoices');
    expect(a.statements[1]!.writes[0]!.candidates).toEqual(['public']);
  });

  it('resolves $user when the user is known', () => {
    const a = analyzeSql('SELECT * FROM invoices', { searchPath: ['$user', 'public'], user: 'warden_svc' });
    if (!a.ok) throw new Error(a.error);
    expect(a.reads[0]!.name).toBe('warden_svc.invoices');
    expect(a.reads[0]!.candidates).toEqual(['warden_svc', 'public']);
  });

  it('an unknown search path makes every schema a candidate', () => {
    const a = analyzeSql('SELECT * FROM invoices', { searchPath: null });
    expect(a.ok && a.reads[0]!.candidates).toContain('*');
  });

  it('a prepared statement is re-resolved with the current search path', () => {
    const prepared = new Map<string, Analysis>([['p', analyzeSql('DELETE FROM invoices', { searchPath: ['public'] })]]);
    const a = analyzeSql('SET search_path = billing; EXECUTE p', { searchPath: ['public'], preparedStatements: prepared });
    if (!a.ok) throw new Error(a.error);
    const w = a.statements[1]!.writes[0]!;
    expect(w.name).toBe('billing.invoices');
    expect([...w.candidates].sort()).toEqual(['billing', 'public']);
    expect(a.usesPrepared).toBe(true);
  });
});

describe('preparedStatementsAfter', () => {
  const sel = analyzeSql.bind(null);
  it('applies PREPARE and DEALLOCATE of a successful string', () => {
    const prev = new Map<string, Analysis>([['old', sel('SELECT 1', ctx)]]);
    const a = analyzeSql('PREPARE p AS DELETE FROM t; DEALLOCATE old', { ...ctx, preparedStatements: prev });
    const next = preparedStatementsAfter(prev, a, true);
    expect([...next.keys()]).toEqual(['p']);
    const p = next.get('p')!;
    expect(p.ok && p.statements[0]!.kind).toBe('delete');
  });
  it('forgets every name a failed string touched', () => {
    const prev = new Map<string, Analysis>([['p', sel('DELETE FROM t', ctx)], ['q', sel('SELECT 1', ctx)]]);
    const a = analyzeSql('SELECT 1/0; DEALLOCATE p; PREPARE p AS SELECT 1', { ...ctx, preparedStatements: prev });
    const next = preparedStatementsAfter(prev, a, false);
    expect([...next.keys()]).toEqual(['q']);
  });
  it('DISCARD ALL and DEALLOCATE ALL clear everything', () => {
    const prev = new Map<string, Analysis>([['p', sel('SELECT 1', ctx)]]);
    expect(preparedStatementsAfter(prev, analyzeSql('DISCARD ALL', ctx), true).size).toBe(0);
    expect(preparedStatementsAfter(prev, analyzeSql('DEALLOCATE ALL', ctx), true).size).toBe(0);
  });
});

describe('helpers', () => {
  it('parseSearchPath follows PostgreSQL list syntax', () => {
    expect(parseSearchPath('"$user", public')).toEqual(['$user', 'public']);
    expect(parseSearchPath('Billing, "My Schema",x')).toEqual(['billing', 'My Schema', 'x']);
    expect(parseSearchPath('"a""b"')).toEqual(['a"b']);
    expect(parseSearchPath('')).toEqual([]);
    expect(parseSearchPath('a,,b')).toBeNull();
  });

  it('functionEffect matches whatever the schema and case', () => {
    expect(functionEffect('pg_catalog.PG_READ_FILE')?.effect).toBe('opaque');
    expect(functionEffect('ext.dblink_get_result')?.effect).toBe('opaque');
    expect(functionEffect('set_config')?.effect).toBe('set');
    expect(functionEffect('nextval')?.effect).toBe('write');
    expect(functionEffect('lower')).toBeUndefined();
  });

  it('analysisToJSON has no Sets', () => {
    const a = analyzeSql('PREPARE p AS DELETE FROM t', ctx);
    const j = analysisToJSON(a);
    expect(JSON.parse(JSON.stringify(j))).toEqual(j);
    expect(j.ok && j.statements[0]!.classes).toEqual(['delete', 'write']);
    expect(j.ok && j.statements[0]!.prepare?.statement.classes).toEqual(['delete', 'write']);
    expect(analysisToJSON(analyzeSql('SELEC', ctx))).toMatchObject({ ok: false });
  });

  it('fingerprints ignore constants', () => {
    expect(fingerprintSql('SELECT * FROM t WHERE id = 1')).toBe(fingerprintSql('select * from t where id = 42'));
    expect(fingerprintSql('SELECT * FROM t WHERE id = 1')).not.toBe(fingerprintSql('SELECT * FROM u WHERE id = 1'));
    expect(fingerprintSql('SELEC')).toBeNull();
    expect(normalizeSql("SELECT * FROM t WHERE a = 'x'")).toBe('SELECT * FROM t WHERE a = $1');
  });
});

describe('unqualified CREATE', () => {
  it('counts every schema of the path as where the object may go ("$user" often does not exist)', () => {
    const a = analyzeSql('CREATE TABLE gadgets (id int)', { searchPath: ['$user', 'public'], user: 'svc' });
    if (!a.ok) throw new Error(a.error);
    const w = a.statements[0].writes[0];
    expect(w.qualified).toBe(false);
    expect(w.candidates).toEqual(['svc', 'public']);
    expect(w.schema).toBe('svc');
  });

  it('a rule on public.* tables matches an unqualified CREATE TABLE', async () => {
    const { decide, policyFromConfig } = await import('../../src/policy/index.js');
    const { parseConfig } = await import('../../src/config/load.js');
    const config = parseConfig(
      `version: 1
listen: { host: 127.0.0.1, port: 6432 }
databases: { app: { upstream: "postgres://u:p@127.0.0.1:5432/app" } }
identities: [{ name: a, kind: human, password: pw }]
rules:
  - name: no-public-ddl
    match: { statement: [ddl], tables: ["public.*"] }
    action: deny
`,
      '/tmp/x.yaml',
      {},
    );
    const analysis = analyzeSql('CREATE TABLE gadgets (id int)', { searchPath: ['$user', 'public'], user: 'svc' });
    const d = decide(
      { identity: { name: 'a', kind: 'human', groups: [] }, session: { database: 'app', clientAddress: '127.0.0.1', intent: {}, now: new Date() }, analysis },
      policyFromConfig(config),
    );
    expect(d.action).toBe('deny');
    expect(d.decisive).toBe('no-public-ddl');
  });
});
