/** The analysis cache and the per-session prepared statements. */
import { beforeAll, describe, expect, it } from 'vitest';
import { AnalysisCache, PreparedStatements, analyzeSql, initSqlParser } from '../../src/sql/index.js';

beforeAll(async () => {
  await initSqlParser();
});

describe('AnalysisCache', () => {
  it('analyses a repeated statement once and counts hits and misses', () => {
    const cache = new AnalysisCache({ max: 10 });
    const ctx = { searchPath: ['public'] };
    const a1 = cache.analyze('SELECT * FROM t', ctx);
    const a2 = cache.analyze('SELECT * FROM t', ctx);
    expect(a2).toBe(a1);
    expect(cache.hits).toBe(1);
    expect(cache.misses).toBe(1);
    expect(cache.stats()).toEqual({ hits: 1, shapeHits: 0, misses: 1, size: 1, max: 20, evictions: 0 });
  });

  it('keys by search_path too', () => {
    const cache = new AnalysisCache();
    const a = cache.analyze('DELETE FROM invoices', { searchPath: ['public'] });
    const b = cache.analyze('DELETE FROM invoices', { searchPath: ['billing'] });
    expect(a).not.toBe(b);
    expect(b.ok && b.writes[0]!.name).toBe('billing.invoices');
    expect(cache.misses).toBe(2);
  });

  it('evicts the least recently used entries (two generations)', () => {
    const cache = new AnalysisCache({ max: 2 });
    const ctx = { searchPath: ['public'] };
    cache.analyze('SELECT * FROM a', ctx);
    cache.analyze('SELECT * FROM b', ctx);
    cache.analyze('SELECT * FROM a', ctx); // a is now the most recent
    cache.analyze('SELECT * FROM c', ctx); // evicts b
    expect(cache.stats().evictions).toBe(1);
    cache.analyze('SELECT * FROM a', ctx);
    expect(cache.hits).toBe(2);
    cache.analyze('SELECT * FROM b', ctx);
    expect(cache.misses).toBe(4);
    expect(cache.stats().size).toBeLessThanOrEqual(2);
  });

  it('shares one analysis across literal values of literal-independent statements', () => {
    const cache = new AnalysisCache();
    const ctx = { searchPath: ['public'] };
    const a = cache.analyze('SELECT abalance FROM pgbench_accounts WHERE aid = 1', ctx);
    const b = cache.analyze('SELECT abalance FROM pgbench_accounts WHERE aid = 99', ctx);
    const c = cache.analyze("UPDATE t SET v = 'x' WHERE id = 3", ctx);
    const d = cache.analyze("UPDATE t SET v = 'it''s' WHERE id = 4", ctx);
    expect(b).toBe(a);
    expect(d).toBe(c);
    expect(cache.stats()).toMatchObject({ misses: 2, shapeHits: 2 });
    // Ordinary functions (aggregates) do not make the analysis depend on literals.
    const e = cache.analyze('SELECT sum(amount) FROM orders WHERE id > 5', ctx);
    expect(cache.analyze('SELECT sum(amount) FROM orders WHERE id > 6', ctx)).toBe(e);
  });

  it('never shares analyses whose meaning depends on a literal', () => {
    const cache = new AnalysisCache();
    const ctx = { searchPath: ['public'] };
    const pairs: [string, string][] = [
      ["SELECT nextval('harmless')", "SELECT nextval('billing.invoice_seq')"],
      ["SELECT set_config('application_name', 'x', false)", "SELECT set_config('role', 'postgres', false)"],
      ["DO 'BEGIN PERFORM 1; END'", "DO 'BEGIN DROP TABLE orders; END'"],
      ["SET search_path = 'public'", "SET search_path = 'billing'"],
      ["COPY t TO '/tmp/a'", "COPY t TO '/etc/passwd'"],
      ["SELECT E'a'", "SELECT E'b'"],
    ];
    for (const [x, y] of pairs) {
      const ax = cache.analyze(x, ctx);
      const ay = cache.analyze(y, ctx);
      expect(ay, y).not.toBe(ax);
    }
    expect(cache.stats().shapeHits).toBe(0);
    const seq = cache.analyze("SELECT nextval('billing.invoice_seq')", ctx);
    expect(seq.ok && seq.writes.map((r) => r.name)).toContain('billing.invoice_seq');
  });

  it('caches parse errors but not analyses that depend on prepared statements', () => {
    const cache = new AnalysisCache();
    cache.analyze('SELEC 1', { searchPath: ['public'] });
    cache.analyze('SELEC 1', { searchPath: ['public'] });
    expect(cache.hits).toBe(1);
    const p1 = new Map([['p', analyzeSql('SELECT 1', { searchPath: ['public'] })]]);
    const p2 = new Map([['p', analyzeSql('DELETE FROM t', { searchPath: ['public'] })]]);
    const e1 = cache.analyze('EXECUTE p', { searchPath: ['public'], preparedStatements: p1 });
    const e2 = cache.analyze('EXECUTE p', { searchPath: ['public'], preparedStatements: p2 });
    expect(e1.ok && e1.statements[0]!.kind).toBe('select');
    expect(e2.ok && e2.statements[0]!.kind).toBe('delete');
  });

  it('does not cache very long texts', () => {
    const cache = new AnalysisCache({ maxSqlLength: 10 });
    cache.analyze('SELECT 1 + 1 + 1', { searchPath: ['public'] });
    expect(cache.stats().size).toBe(0);
  });
});

describe('PreparedStatements', () => {
  it('tracks protocol-level statements and SQL PREPARE', () => {
    const ps = new PreparedStatements(2);
    ps.set('s1', analyzeSql('UPDATE t SET a = 1', { searchPath: ['public'] }));
    expect(ps.get('s1')?.ok).toBe(true);
    expect(ps.get('nope')).toBeUndefined();
    expect(ps.stats()).toMatchObject({ hits: 1, misses: 1, size: 1 });
    const a = analyzeSql('EXECUTE s1', { searchPath: ['public'], preparedStatements: ps.view });
    expect(a.ok && a.statements[0]!.kind).toBe('update');
    ps.applyQuery(analyzeSql('PREPARE s2 AS SELECT 1', { searchPath: ['public'] }), true);
    ps.set('s3', analyzeSql('SELECT 3', { searchPath: ['public'] }));
    expect(ps.stats().evictions).toBe(1);
    expect(ps.view.has('s1')).toBe(false);
    ps.delete('s2');
    expect([...ps.view.keys()]).toEqual(['s3']);
  });
});
