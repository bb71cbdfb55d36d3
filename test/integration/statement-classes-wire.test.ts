/**
 * Misclassified statements on the wire (issue 15, "Why"): an upsert that updates is an
 * `update` to a rule, and LOCK, VACUUM (FULL or not), CLUSTER, REINDEX and ANALYZE are `write`s
 * that the spec's read-only rule (`statement: [write, ddl]`) denies. Each statement is sent
 * through Warden over the simple and the extended protocol, and the upstream is checked
 * afterwards for any change (rows, relfilenodes, statistics, locks).
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/embedded/pg-cluster.js';
import { runPsql } from '../helpers/psql.js';
import { baseYaml, direct, PASSWORDS, startCluster, startEnv, type TestEnv } from '../helpers/warden-env.js';

const RULES = `rules:
  - name: agents-read-only
    match: { kind: agent, statement: [write, ddl] }
    action: deny
    reason: agents only read
  - name: services-never-update
    match: { identity: [bob], statement: [update, delete] }
    action: deny
    reason: bob only inserts
`;

/** What a statement could have changed upstream. */
interface Upstream {
  rows: string;
  tableNode: number;
  indexNode: number;
  clustered: boolean;
  allVisible: number;
  statistics: number;
  exclusiveLocks: number;
}

async function upstream(cluster: PgCluster): Promise<Upstream> {
  const r = (
    await direct(
      cluster,
      `SELECT (SELECT string_agg(id || ':' || balance, ',' ORDER BY id) FROM public.accounts) AS rows,
              pg_relation_filenode('public.accounts')::int AS table_node,
              pg_relation_filenode('public.accounts_pkey')::int AS index_node,
              (SELECT indisclustered FROM pg_index WHERE indexrelid = 'public.accounts_pkey'::regclass) AS clustered,
              (SELECT relallvisible FROM pg_class WHERE oid = 'public.accounts'::regclass) AS all_visible,
              (SELECT count(*)::int FROM pg_statistic WHERE starelid = 'public.accounts'::regclass) AS statistics,
              (SELECT count(*)::int FROM pg_locks WHERE relation = 'public.accounts'::regclass AND mode = 'AccessExclusiveLock') AS exclusive_locks`,
    )
  ).rows[0] as Record<string, unknown>;
  return {
    rows: r.rows as string,
    tableNode: r.table_node as number,
    indexNode: r.index_node as number,
    clustered: r.clustered as boolean,
    allVisible: r.all_visible as number,
    statistics: r.statistics as number,
    exclusiveLocks: r.exclusive_locks as number,
  };
}

describe('statement classes on the wire', () => {
  let env: TestEnv;
  let before: Upstream;

  beforeAll(async () => {
    // No autovacuum/autoanalyze: any change to statistics or visibility comes from the statement.
    const cluster = await startCluster({ autovacuum: 'off' });
    for (const s of [
      'CREATE TABLE public.accounts (id int PRIMARY KEY, balance int NOT NULL)',
      'INSERT INTO public.accounts SELECT g, 100 FROM generate_series(1, 50) g',
      'ALTER TABLE public.accounts OWNER TO warden_svc',
    ])
      await direct(cluster, s);
    env = await startEnv({ cluster, yaml: (p) => baseYaml(p, RULES) });
    before = await upstream(cluster);
    expect(before.statistics).toBe(0);
    expect(before.allVisible).toBe(0);
    expect(before.clustered).toBe(false);
  });
  afterAll(async () => {
    const cluster = env?.cluster;
    await env?.stop();
    await cluster?.stop();
  });

  /** Locks on the table stronger than a plain read's (LOCK TABLE, FOR UPDATE/SHARE's RowShareLock, ...). */
  const strongLocks = async (): Promise<number> =>
    (await direct(env.cluster, `SELECT count(*)::int AS n FROM pg_locks WHERE relation = 'public.accounts'::regclass AND mode <> 'AccessShareLock'`)).rows[0].n as number;

  const refused = async (c: pg.Client, sql: string, extended: boolean, rule: string, inTransaction = false): Promise<void> => {
    const q = extended ? c.query({ name: `p${Math.random().toString(36).slice(2)}`, text: sql }) : c.query(sql);
    const err = (await q.then(
      () => null,
      (e: pg.DatabaseError) => e,
    )) as pg.DatabaseError | null;
    expect(err, `${sql} should be refused`).not.toBeNull();
    expect(err!.code).toBe('42501');
    expect(err!.message).toContain(`"${rule}"`);
    // The session stays usable (in a transaction block, the transaction is aborted, as PostgreSQL does).
    if (inTransaction) await expect(c.query('SELECT 1')).rejects.toMatchObject({ code: '25P02' });
    else expect((await c.query('SELECT 1 AS one')).rows[0].one).toBe(1);
  };

  for (const extended of [false, true]) {
    const proto = extended ? 'extended' : 'simple';

    it(`${proto}: a rule on update refuses INSERT ... ON CONFLICT DO UPDATE; the row is not updated`, async () => {
      const c = await env.connect('bob');
      try {
        await refused(c, 'INSERT INTO accounts (id, balance) VALUES (1, 0) ON CONFLICT (id) DO UPDATE SET balance = excluded.balance', extended, 'services-never-update');
        await refused(c, 'WITH u AS (INSERT INTO accounts VALUES (2, 0) ON CONFLICT (id) DO UPDATE SET balance = 0 RETURNING id) SELECT * FROM u', extended, 'services-never-update');
        // DO NOTHING stays an insert: allowed, and it changes nothing for an existing id.
        const r = await c.query('INSERT INTO accounts (id, balance) VALUES (1, 0) ON CONFLICT (id) DO NOTHING');
        expect(r.rowCount).toBe(0);
      } finally {
        await c.end();
      }
      expect(await upstream(env.cluster)).toEqual(before);
    });

    it(`${proto}: the read-only agent cannot LOCK, SELECT ... FOR UPDATE, VACUUM, VACUUM FULL, CLUSTER, REINDEX or ANALYZE; nothing changes upstream`, async () => {
      const c = await env.connect('agent');
      try {
        for (const sql of [
          'LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE',
          'LOCK accounts',
          'LOCK TABLE ONLY accounts IN SHARE MODE NOWAIT',
          'SELECT * FROM accounts FOR UPDATE',
          'SELECT id FROM accounts WHERE id IN (SELECT id FROM accounts FOR KEY SHARE)',
        ]) {
          await c.query('BEGIN');
          try {
            await refused(c, sql, extended, 'agents-read-only', true);
            // The agent's transaction is still open: no lock may be held on the table.
            expect(await strongLocks()).toBe(0);
          } finally {
            await c.query('ROLLBACK');
          }
        }
        for (const sql of [
          'VACUUM FULL accounts',
          'VACUUM accounts',
          'VACUUM (ANALYZE) accounts',
          'CLUSTER accounts USING accounts_pkey',
          'REINDEX TABLE accounts',
          'REINDEX INDEX accounts_pkey',
          'ANALYZE accounts',
          'ANALYZE',
          'VACUUM',
        ]) {
          await refused(c, sql, extended, 'agents-read-only');
        }
        // Reads still work.
        expect((await c.query('SELECT count(*)::int AS n FROM accounts')).rows[0].n).toBe(50);
      } finally {
        await c.end();
      }
      expect(await upstream(env.cluster)).toEqual(before);
    });
  }

  it('psql: a script of LOCK / FOR UPDATE / VACUUM FULL / CLUSTER / REINDEX / ANALYZE is refused statement by statement; nothing changes', async () => {
    const script = [
      'BEGIN;',
      'LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE;',
      'ROLLBACK;',
      'BEGIN;',
      'SELECT * FROM accounts FOR UPDATE;',
      'ROLLBACK;',
      'VACUUM FULL accounts;',
      'CLUSTER accounts USING accounts_pkey;',
      'REINDEX TABLE accounts;',
      'ANALYZE accounts;',
      "SELECT 'still here';",
    ].join('\n');
    const r = await runPsql({ port: env.warden.port, user: 'agent', password: PASSWORDS.agent, database: 'app', args: ['-At', '-f', '-'], input: script });
    expect(r.out).toContain('still here');
    expect(r.err.match(/denied by rule "agents-read-only"/g)?.length).toBe(6);
    expect(await upstream(env.cluster)).toEqual(before);
  });

  it('the same statements run for an identity no rule restricts (the checks above can see a change)', async () => {
    const c = await env.connect('alice');
    try {
      await c.query('BEGIN');
      await c.query('LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE');
      expect(await strongLocks()).toBe(1);
      await c.query('ROLLBACK');
      await c.query('BEGIN');
      await c.query('SELECT * FROM accounts WHERE id = 1 FOR UPDATE');
      expect(await strongLocks()).toBe(1); // RowShareLock
      await c.query('ROLLBACK');
      await c.query('INSERT INTO accounts (id, balance) VALUES (1, 7) ON CONFLICT (id) DO UPDATE SET balance = excluded.balance');
      await c.query('VACUUM accounts');
      await c.query('ANALYZE accounts');
      await c.query('CLUSTER accounts USING accounts_pkey');
      await c.query('REINDEX TABLE accounts');
    } finally {
      await c.end();
    }
    const after = await upstream(env.cluster);
    expect(after.rows).toMatch(/^1:7,/);
    expect(after.statistics).toBeGreaterThan(0);
    expect(after.clustered).toBe(true);
    expect(after.tableNode).not.toBe(before.tableNode);
    expect(after.indexNode).not.toBe(before.indexNode);
  });
});
