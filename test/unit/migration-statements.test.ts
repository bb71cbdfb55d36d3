/**
 * What migration tools send, decided under a migrator's rule (default deny; the migrators may
 * read, write, change the schema, control transactions and set settings). Their locks are
 * advisory locks: node-pg-migrate's `pg_try_advisory_lock`, kysely's `pg_advisory_lock` in a CTE
 * that sets lock_timeout. They block other sessions as LOCK TABLE does, so they are `lock` and
 * `write`: a rule allowing writes covers them, and read-only recipes refuse them.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { RuleConfig } from '../../src/config/types.js';
import { compilePolicy, decide } from '../../src/policy/index.js';
import type { DecisionInput, PolicyIdentity } from '../../src/policy/index.js';
import { analyzeSql, functionEffect, initSqlParser } from '../../src/sql/index.js';

const migrator: PolicyIdentity = { name: 'migrator', kind: 'service', groups: ['migrators'] };
const agent: PolicyIdentity = { name: 'trainer', kind: 'agent', groups: [] };

const rules: RuleConfig[] = [
  { name: 'migrators-change-the-schema', match: { groups: ['migrators'], statement: ['read', 'write', 'ddl', 'transaction', 'set'] }, action: 'allow' },
  { name: 'agents-read-only', match: { kind: ['agent'], statement: ['write', 'ddl'] }, action: 'deny' },
  { name: 'agents-read', match: { kind: ['agent'], statement: ['read', 'transaction', 'set'] }, action: 'allow' },
];

function input(identity: PolicyIdentity, sql: string): DecisionInput {
  return { identity, session: { database: 'app', environment: 'test', intent: {}, now: new Date() }, analysis: analyzeSql(sql, { searchPath: ['public'] }) };
}

const LOCKS = [
  // node-pg-migrate
  'SELECT pg_try_advisory_lock(7241865325823964) AS "lockObtained"',
  'SELECT pg_advisory_lock(7241865325823964)',
  'SELECT pg_advisory_unlock(7241865325823964) AS "lockReleased"',
  // kysely
  "with set_timeout as (select set_config('lock_timeout', '3600000', true) as config_val) select pg_advisory_lock(3853314791062309107) from set_timeout",
  'select pg_advisory_unlock(3853314791062309107)',
  // Warden's own stores, Rails, Flyway, Liquibase-style
  "SELECT pg_advisory_xact_lock(hashtext('schema'))",
  'SELECT pg_try_advisory_xact_lock(1, 2)',
  'SELECT pg_advisory_unlock_all()',
];

beforeAll(async () => {
  await initSqlParser();
});

describe('advisory locks', () => {
  it('are lock and write (and still other), never read', () => {
    expect(functionEffect('pg_catalog.PG_TRY_ADVISORY_LOCK')?.effect).toBe('lock');
    for (const sql of LOCKS) {
      const a = analyzeSql(sql, { searchPath: ['public'] });
      expect(a.ok, sql).toBe(true);
      if (!a.ok) continue;
      const classes = a.statements[0]!.classes;
      expect([...classes].filter((c) => ['lock', 'write', 'other', 'read'].includes(c)).sort(), sql).toEqual(['lock', 'other', 'write']);
    }
  });

  it('a migrator allowed to write may take and release them; default deny still refuses what no rule allows', () => {
    const policy = compilePolicy(rules, 'deny', {});
    for (const sql of LOCKS) expect(decide(input(migrator, sql), policy).action, sql).toBe('allow');
    // Not a blanket pass: a statement outside the listed classes is still refused.
    expect(decide(input(migrator, 'SELECT pg_terminate_backend(1)'), policy).action).toBe('deny');
  });

  it('a read-only agent may not take them (they block other sessions, like LOCK TABLE)', () => {
    const policy = compilePolicy(rules, 'allow', {});
    for (const sql of LOCKS) {
      const d = decide(input(agent, sql), policy);
      expect(d.action, sql).toBe('deny');
      expect(d.decisive).toBe('agents-read-only');
    }
    expect(decide(input(agent, 'LOCK TABLE t IN ACCESS EXCLUSIVE MODE'), policy).decisive).toBe('agents-read-only');
    expect(decide(input(agent, 'SELECT 1'), policy).action).toBe('allow');
  });
});
