/**
 * StatementAnalysis.ddlTargets: the objects a DDL statement changes, with their
 * kind, from the analysis alone (the audit's catalog snapshots use them instead
 * of parsing the SQL again).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { analyzeSql, initSqlParser, type DdlTarget } from '../../src/sql/index.js';

beforeAll(async () => {
  await initSqlParser();
});

function targets(sql: string, searchPath: string[] = ['public']): DdlTarget[][] {
  const a = analyzeSql(sql, { searchPath });
  if (!a.ok) throw new Error(a.error);
  return a.statements.map((s) => [...s.ddlTargets]);
}

describe('ddlTargets', () => {
  it('lists the relations written, then the index of CREATE INDEX', () => {
    expect(targets('CREATE INDEX t_x ON t (x)')).toEqual([
      [
        { kind: 'relation', schema: 'public', name: 't' },
        { kind: 'relation', schema: 'public', name: 't_x' },
      ],
    ]);
  });

  it('gives routines and types their kind, and no schema when unqualified', () => {
    expect(targets('DROP FUNCTION app.f(int), g; CREATE DOMAIN d AS int; ALTER TYPE app.m RENAME TO n')).toEqual([
      [
        { kind: 'routine', schema: 'app', name: 'f' },
        { kind: 'routine', name: 'g' },
      ],
      [{ kind: 'type', name: 'd' }],
      [
        { kind: 'type', schema: 'app', name: 'm' },
        { kind: 'type', schema: 'app', name: 'n' },
      ],
    ]);
  });

  it('puts the unqualified elements of CREATE SCHEMA in the new schema', () => {
    expect(targets('CREATE SCHEMA s CREATE TABLE t (a int) CREATE INDEX t_a ON t (a)')).toEqual([
      [
        { kind: 'schema', schema: 's', name: '*' },
        { kind: 'relation', schema: 's', name: 't' },
        { kind: 'relation', schema: 's', name: 't_a' },
      ],
    ]);
  });

  it('is empty for statements that change no definition (TRUNCATE, DML, SET)', () => {
    expect(targets('TRUNCATE t; INSERT INTO t VALUES (1); SET search_path = app; SELECT 1')).toEqual([[], [], [], []]);
  });

  it('renames a relation in the schema it resolved to', () => {
    expect(targets('ALTER TABLE t RENAME TO u', ['app', 'public'])).toEqual([
      [
        { kind: 'relation', schema: 'app', name: 't' },
        { kind: 'relation', schema: 'app', name: 'u' },
      ],
    ]);
  });
});
