/**
 * governance/code-catalog.ts: which statements make a new way to write a table: a view PostgreSQL
 * can update on its own, an inheritance or partition bond. The wire behaviour is in test/corpus/statement-bypass.yaml
 * (class: view).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { analyzeSql, initSqlParser } from '../../src/sql/index.js';
import { inheritanceLinks, mayRunCode, renamedRelations, rewrittenRelations, updatableViewBase } from '../../src/governance/code-catalog.js';

beforeAll(async () => {
  await initSqlParser();
});

const base = (sql: string): string | null => {
  const a = analyzeSql(sql, { searchPath: ['public'] });
  if (!a.ok) throw new Error(a.error);
  return updatableViewBase(a.statements[0]!);
};

describe('updatableViewBase', () => {
  it.each([
    ['CREATE VIEW v AS SELECT * FROM victim', 'victim'],
    ['CREATE TEMP VIEW v AS SELECT id, v FROM public.victim WHERE id > 0', 'public.victim'],
    ['CREATE OR REPLACE VIEW v AS SELECT id FROM "Pay"."Ledger"', '"Pay"."Ledger"'],
    ['CREATE VIEW v WITH (security_barrier) AS SELECT * FROM victim WITH CHECK OPTION', 'victim'],
    ['CREATE VIEW v AS SELECT count(*) AS n FROM victim', 'victim'], // aggregates are not told apart: counted
  ])('%s writes %s', (sql, want) => {
    expect(base(sql)).toBe(want);
  });

  it.each([
    'CREATE VIEW v AS SELECT a.id FROM victim a JOIN pay.ledger b USING (id)',
    'CREATE VIEW v AS SELECT DISTINCT id FROM victim',
    'CREATE VIEW v AS SELECT id FROM victim GROUP BY id',
    'CREATE VIEW v AS SELECT id FROM victim LIMIT 1',
    'CREATE VIEW v AS SELECT id FROM victim UNION SELECT id FROM pay.ledger',
    'CREATE VIEW v AS WITH x AS (SELECT id FROM victim) SELECT id FROM x',
    'CREATE VIEW v AS SELECT 1 AS one',
    'CREATE MATERIALIZED VIEW v AS SELECT * FROM victim',
    'CREATE TABLE t AS SELECT * FROM victim',
    'SELECT * FROM victim',
  ])('%s writes nothing', (sql) => {
    expect(base(sql)).toBeNull();
  });

  it('makes the statement one whose code is looked up', () => {
    const a = analyzeSql('CREATE TEMP VIEW v AS SELECT * FROM victim', { searchPath: ['public'] });
    expect(mayRunCode(a)).toBe(true);
    expect(mayRunCode(analyzeSql('CREATE VIEW v AS SELECT 1', { searchPath: ['public'] }))).toBe(false);
  });
});

describe('inheritanceLinks', () => {
  const links = (sql: string): readonly string[] => {
    const a = analyzeSql(sql, { searchPath: ['public'] });
    if (!a.ok) throw new Error(a.error);
    return inheritanceLinks(a.statements[0]!);
  };
  it.each([
    ['ALTER TABLE victim INHERIT vp', ['victim', 'vp']],
    ['ALTER TABLE victim NO INHERIT vp', ['victim', 'vp']],
    ['ALTER TABLE vall ATTACH PARTITION public.victim FOR VALUES FROM (0) TO (10)', ['vall', 'public.victim']],
    ['ALTER TABLE vall DETACH PARTITION victim', ['vall', 'victim']],
    ['CREATE TABLE kid () INHERITS (victim)', ['victim']],
    ['CREATE TABLE p1 PARTITION OF pay.ledger FOR VALUES FROM (0) TO (10)', ['pay.ledger']],
    ['ALTER TABLE victim ADD COLUMN inherit_flag bool', []],
    ['CREATE TABLE t (id int) PARTITION BY RANGE (id)', []],
    ['CREATE TABLE t (LIKE victim)', []],
  ])('%s', (sql, want) => {
    expect(links(sql)).toEqual(want);
  });
});

describe('renamedRelations', () => {
  const renamed = (sql: string): readonly string[] => {
    const a = analyzeSql(sql, { searchPath: ['public'] });
    if (!a.ok) throw new Error(a.error);
    return renamedRelations(a.statements[0]!);
  };
  it.each([
    ['ALTER TABLE victim RENAME TO v2', ['victim']],
    ['ALTER TABLE IF EXISTS pay.ledger RENAME TO l2', ['pay.ledger']],
    ['ALTER TABLE victim RENAME COLUMN v TO w', ['victim']],
    ['ALTER VIEW victim_v RENAME TO vv', ['victim_v']],
    ['ALTER TABLE victim SET SCHEMA arch', ['victim']],
    ['ALTER SCHEMA pay RENAME TO p2', ['pay."*"']],
    ['ALTER TABLE victim RENAME CONSTRAINT victim_pkey TO vpk', []],
    ['ALTER INDEX victim_pkey RENAME TO vpk', []],
    ['ALTER FUNCTION f() RENAME TO g', []],
    ['ALTER TABLE victim ADD COLUMN schema_name text', []],
  ])('%s', (sql, want) => {
    expect(renamed(sql)).toEqual(want);
  });
});

describe('rewrittenRelations', () => {
  const rewritten = (sql: string): readonly string[] => {
    const a = analyzeSql(sql, { searchPath: ['public'] });
    if (!a.ok) throw new Error(a.error);
    return rewrittenRelations(a.statements[0]!);
  };
  it.each([
    ["ALTER TABLE victim ALTER COLUMN v TYPE text USING 'x'", ['victim']],
    ['ALTER TABLE pay.ledger ALTER COLUMN amount SET DATA TYPE numeric(10, 0)', ['pay.ledger']],
    ['ALTER TABLE victim DROP COLUMN v', ['victim']],
    ['ALTER TABLE victim ADD COLUMN z int DEFAULT 1', ['victim']],
    ['ALTER TABLE victim ADD COLUMN z int GENERATED ALWAYS AS (id * 2) STORED', ['victim']],
    ['ALTER TABLE victim ADD COLUMN z int GENERATED ALWAYS AS IDENTITY', ['victim']],
    ['ALTER TABLE victim ADD COLUMN z serial', ['victim']],
    ['ALTER TABLE victim ADD COLUMN z int', []],
    ["ALTER TABLE victim ALTER COLUMN v SET DEFAULT 'x'", []],
    ['ALTER TABLE victim DROP CONSTRAINT victim_pkey', []],
    ['ALTER TABLE victim ALTER COLUMN v DROP DEFAULT', []],
  ])('%s', (sql, want) => {
    expect(rewritten(sql)).toEqual(want);
  });
});
