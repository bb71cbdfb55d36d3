/**
 * governance/code-catalog.ts: which CREATE VIEW statements make a write path to a table (a view
 * PostgreSQL can update on its own). The wire behaviour is in test/corpus/statement-bypass.yaml
 * (class: view).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { analyzeSql, initSqlParser } from '../../src/sql/index.js';
import { mayRunCode, updatableViewBase } from '../../src/governance/code-catalog.js';

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
