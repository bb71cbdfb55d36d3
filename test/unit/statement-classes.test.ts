/**
 * Statement classes that matter for read-only rules: an upsert that updates is an `update`,
 * LOCK is `lock` + `write`, maintenance commands are `maintenance` + `write`, so the spec's
 * read-only recipes (deny `[write, ddl]`; allow only `[read, transaction, set]`) cover them.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { STATEMENT_CLASSES as CONFIG_CLASSES } from '../../src/config/schema.js';
import type { RuleConfig } from '../../src/config/types.js';
import { compilePolicy, decide, type DecisionInput, type PolicyIdentity } from '../../src/policy/index.js';
import { analyzeSql, initSqlParser } from '../../src/sql/index.js';
import { STATEMENT_CLASSES } from '../../src/sql/types.js';

const trainer: PolicyIdentity = { name: 'trainer', kind: 'agent', groups: ['ml'] };

function input(sql: string): DecisionInput {
  return {
    identity: trainer,
    session: { database: 'app', environment: 'production', intent: {}, now: new Date('2025-01-06T10:00:00Z') },
    analysis: analyzeSql(sql, { searchPath: ['public'] }),
  };
}

beforeAll(async () => {
  await initSqlParser();
});

/** Statements a read-only agent must not run. */
const EFFECTFUL = [
  'INSERT INTO accounts (id, balance) VALUES (1, 0) ON CONFLICT (id) DO UPDATE SET balance = 1000000',
  'LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE',
  'LOCK accounts',
  'VACUUM FULL accounts',
  'VACUUM accounts',
  'VACUUM',
  'CLUSTER accounts USING accounts_pkey',
  'CLUSTER',
  'REINDEX TABLE accounts',
  'REINDEX INDEX accounts_pkey',
  'REINDEX SCHEMA public',
  'ANALYZE accounts',
  'ANALYZE',
  'REFRESH MATERIALIZED VIEW mv',
  'CHECKPOINT',
  'DROP OWNED BY someone',
  'REASSIGN OWNED BY someone TO other',
  'SELECT * FROM accounts FOR UPDATE',
  'SELECT * FROM accounts FOR KEY SHARE SKIP LOCKED',
];

describe('class names', () => {
  it('config validation accepts every class the analysis produces', () => {
    expect([...CONFIG_CLASSES].sort()).toEqual([...STATEMENT_CLASSES].sort());
    expect(STATEMENT_CLASSES).toEqual(expect.arrayContaining(['lock', 'maintenance', 'comment']));
  });
  it('a configuration may name lock and maintenance (any case), and a misspelling is refused', () => {
    const yaml = (classes: string) => `version: 1
listen: { host: 127.0.0.1, port: 0 }
databases:
  app: { upstream: "postgres://u:p@127.0.0.1:5432/app" }
identities:
  - { name: trainer, kind: agent, password: pw }
rules:
  - name: no-locks-or-maintenance
    match: { statement: [${classes}] }
    action: deny
`;
    const config = parseConfig(yaml('LOCK, maintenance'), '/tmp/c.yaml', {});
    expect(config.rules[0]!.match.statement).toEqual(['lock', 'maintenance']);
    expect(() => parseConfig(yaml('locks'), '/tmp/c.yaml', {})).toThrow(/unknown statement class "locks"/);
  });
});

describe('upsert', () => {
  it('DO UPDATE adds update, with SET columns as assignments and WHERE as predicate', () => {
    const a = analyzeSql(
      'INSERT INTO accounts (id, balance) VALUES (1, 0) ON CONFLICT (id) DO UPDATE SET balance = excluded.balance WHERE accounts.frozen = false',
      { searchPath: ['public'] },
    );
    if (!a.ok) throw new Error(a.error);
    const s = a.statements[0]!;
    expect(s.kind).toBe('insert');
    expect([...s.classes].sort()).toEqual(['insert', 'update', 'write']);
    const cols = s.columns.map((c) => `${c.column}:${c.usage}`);
    expect(cols).toEqual(expect.arrayContaining(['balance:assignment', 'frozen:predicate', 'id:predicate']));
  });
  it('DO NOTHING stays an insert', () => {
    const a = analyzeSql('INSERT INTO accounts (id) VALUES (1) ON CONFLICT DO NOTHING', { searchPath: ['public'] });
    expect(a.ok && [...a.classes].sort()).toEqual(['insert', 'write']);
  });
  it('a rule on update matches the upsert but not DO NOTHING', () => {
    const rules: RuleConfig[] = [{ name: 'no-updates', match: { statement: ['update'] }, action: 'deny' }];
    const policy = compilePolicy(rules, 'allow');
    expect(decide(input('INSERT INTO t (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET v = 2'), policy).decisive).toBe('no-updates');
    expect(decide(input('INSERT INTO t (id) VALUES (1) ON CONFLICT (id) DO NOTHING'), policy).action).toBe('allow');
  });
});

describe('read-only recipes', () => {
  it('the spec example rule agents-read-only (deny [write, ddl]) denies each of them', () => {
    const rules: RuleConfig[] = [{ name: 'agents-read-only', match: { kind: ['agent'], statement: ['write', 'ddl'] }, action: 'deny' }];
    const policy = compilePolicy(rules, 'allow');
    for (const sql of EFFECTFUL) {
      const d = decide(input(sql), policy);
      expect(d.action, sql).toBe('deny');
      expect(d.decisive, sql).toBe('agents-read-only');
    }
    expect(decide(input('SELECT * FROM accounts'), policy).action).toBe('allow');
  });
  it('a default-deny allow of [read, transaction, set] allows none of them', () => {
    const rules: RuleConfig[] = [{ name: 'agents-read', match: { kind: ['agent'], statement: ['read', 'transaction', 'set'] }, action: 'allow' }];
    const policy = compilePolicy(rules, 'deny');
    for (const sql of EFFECTFUL) expect(decide(input(sql), policy).action, sql).toBe('deny');
    expect(decide(input('SELECT * FROM accounts'), policy).action).toBe('allow');
  });
  it('rules can name lock and maintenance', () => {
    const rules: RuleConfig[] = [
      { name: 'no-locks', match: { statement: ['lock'] }, action: 'deny' },
      { name: 'maintenance-needs-approval', match: { statement: ['maintenance'] }, action: 'approve', approvers: { groups: ['dba'], count: 1 } },
    ];
    const policy = compilePolicy(rules, 'allow');
    expect(decide(input('LOCK accounts IN SHARE MODE'), policy).decisive).toBe('no-locks');
    expect(decide(input('VACUUM FULL accounts'), policy).action).toBe('approve');
    expect(decide(input('UPDATE accounts SET balance = 0'), policy).action).toBe('allow');
  });
  it('a table-scoped write rule covers maintenance on that table, and a database-wide VACUUM possibly', () => {
    const rules: RuleConfig[] = [{ name: 'billing', match: { statement: ['write'], tables: ['billing.*'] }, action: 'deny' }];
    const policy = compilePolicy(rules, 'allow');
    expect(decide(input('CLUSTER billing.invoices'), policy).action).toBe('deny');
    expect(decide(input('VACUUM'), policy).action).toBe('deny');
    expect(decide(input('VACUUM public.accounts'), policy).action).toBe('allow');
  });
});
