/**
 * DDL on relations with masked columns, on the wire (masking/ddl.ts), and the inheritance
 * trees of sensitive tables (masking/sensitive-catalog.ts).
 *
 * For identities with masked columns — alice (strict) and agent (relaxed) — DDL whose success
 * or catalog figures depend on masked values (a CHECK constraint, a partial index's
 * `reltuples`, a policy, a trigger's WHEN, a rule's WHERE, a unique index) and DDL that moves a
 * masked column out from under `sensitive.columns` (renames, SET SCHEMA, inheritance) is
 * refused with 42501 naming the column, with pg (simple and extended protocol) and psql, and the
 * session goes on; DDL that reads no masked value still runs. Partitions and inheritance
 * children of a sensitive table, and parents of one, are masked like it. The copies that leak
 * real values (generated columns, USING, renames, rules and trigger functions reading NEW) are
 * in test/corpus/masking-bypass.yaml (masking-session-code-wire.test.ts).
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseYaml, direct, PASSWORDS, startEnv, SVC_PASSWORD, type TestEnv } from '../helpers/warden-env.js';
import { runPsql } from '../helpers/psql.js';

const REAL = ['Zebulon Hiddenvalue', 'Philippa Secretname', 'ACCT-77Q-SECRET', 'ACCT-88R-HIDDEN', 'VAULT-ONLY-1234', 'LEGACY-KEEP-5678'];
const leaks = (text: string): string[] => REAL.filter((v) => text.includes(v) || text.includes(v.toLowerCase()) || text.includes(v.toUpperCase()));

const RULES = `
sensitive:
  columns:
    public.customers.full_name: name
    public.customers.ssn: ssn
    public.accounts.acct: account
    public.vault.secret: secret
    public.legacy.code: secret
  key: test-mask-key-0123456789abcdef
rules:
  - name: mask-pii-except-dba
    match: { not: { any: [{ groups: [dba] }, { identity: [agent] }] } }
    action: mask
  - name: mask-pii-relaxed
    match: { identity: [agent] }
    action: mask
    strict: false
`;
const MASKED = ['alice', 'agent'] as const;

let env: TestEnv;

beforeAll(async () => {
  env = await startEnv({ yaml: (p) => baseYaml(p, RULES).replace('  - name: bob\n    kind: service\n', '  - name: bob\n    kind: service\n    groups: [dba]\n') });
  const sql = [
    'CREATE TABLE customers (id int PRIMARY KEY, full_name text, ssn text, note text)',
    `INSERT INTO customers VALUES (1, '${REAL[0]}', '123-45-6789', 'a'), (2, '${REAL[1]}', '987-65-4329', 'b')`,
    // A partitioned sensitive table: the rows live in its partition.
    'CREATE TABLE accounts (id int, acct text) PARTITION BY RANGE (id)',
    'CREATE TABLE accounts_p1 PARTITION OF accounts FOR VALUES FROM (0) TO (1000)',
    `INSERT INTO accounts VALUES (1, '${REAL[2]}'), (2, '${REAL[3]}')`,
    // A sensitive child of an unclassified parent: the parent shows its rows.
    'CREATE TABLE vault_all (id int, secret text)',
    'CREATE TABLE vault () INHERITS (vault_all)',
    `INSERT INTO vault VALUES (1, '${REAL[4]}')`,
    // A sensitive parent with a child that holds rows.
    'CREATE TABLE legacy (id int, code text)',
    'CREATE TABLE legacy_2020 () INHERITS (legacy)',
    `INSERT INTO legacy_2020 VALUES (1, '${REAL[5]}')`,
    'CREATE TABLE guesses (s text PRIMARY KEY)',
    "INSERT INTO guesses VALUES ('123-45-6789')",
    'CREATE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$',
  ];
  for (const s of sql) await direct(env.cluster, s);
  for (const t of ['customers', 'accounts', 'accounts_p1', 'vault_all', 'vault', 'legacy', 'legacy_2020', 'guesses']) await direct(env.cluster, `ALTER TABLE ${t} OWNER TO warden_svc`);
  await direct(env.cluster, 'ALTER FUNCTION noop() OWNER TO warden_svc');
}, 60_000);

afterAll(async () => {
  await env?.stop();
});

/** DDL whose outcome depends on masked values, or that moves a masked column out from under its pattern. */
const REFUSED: { sql: string; column: RegExp }[] = [
  { sql: "ALTER TABLE customers ADD CONSTRAINT ck CHECK (ssn LIKE '1%')", column: /customers\.ssn \(ssn\)/ },
  { sql: "CREATE INDEX ci ON customers (id) WHERE ssn LIKE '1%'", column: /customers\.ssn \(ssn\)/ },
  { sql: 'CREATE UNIQUE INDEX ON customers (substr(ssn, 1, 1))', column: /customers\.ssn \(ssn\)/ },
  { sql: 'ALTER TABLE customers ADD FOREIGN KEY (ssn) REFERENCES guesses (s)', column: /customers\.ssn \(ssn\)/ },
  { sql: "CREATE POLICY p ON customers USING (full_name LIKE 'Z%')", column: /customers\.full_name \(name\)/ },
  { sql: "CREATE TRIGGER t BEFORE UPDATE ON customers FOR EACH ROW WHEN (NEW.ssn LIKE '1%') EXECUTE FUNCTION noop()", column: /customers\.ssn \(ssn\)/ },
  { sql: "CREATE RULE r AS ON UPDATE TO customers WHERE OLD.ssn LIKE '1%' DO ALSO INSERT INTO guesses VALUES ('hit')", column: /ssn \(ssn\)/ },
  { sql: 'CREATE STATISTICS st (mcv) ON ssn, note FROM customers', column: /customers\.ssn \(ssn\)/ },
  { sql: 'ALTER TABLE customers ALTER COLUMN ssn TYPE int USING ssn::int', column: /customers\.ssn \(ssn\)/ },
  { sql: 'ALTER TABLE customers RENAME COLUMN ssn TO s2', column: /customers\.ssn \(ssn\)/ },
  { sql: 'ALTER TABLE accounts RENAME TO ledgers', column: /accounts\.acct \(account\)/ },
  { sql: 'ALTER TABLE accounts_p1 RENAME TO accounts_old', column: /accounts_p1\.acct \(account\)/ },
  { sql: 'ALTER TABLE accounts DETACH PARTITION accounts_p1', column: /accounts/ },
  { sql: 'ALTER TABLE vault NO INHERIT vault_all', column: /vault/ },
];

/** DDL that reads no masked value: still runs for masked identities. */
const ALLOWED = [
  'ALTER TABLE customers ADD COLUMN y int DEFAULT 0 CHECK (y >= 0)',
  'ALTER TABLE customers ALTER COLUMN ssn DROP DEFAULT',
  'CREATE INDEX ON customers (note) WHERE id > 1',
  "CREATE POLICY p_note ON customers USING (note <> 'hidden')",
  'CREATE TRIGGER t_note BEFORE UPDATE ON customers FOR EACH ROW WHEN (NEW.note IS DISTINCT FROM OLD.note) EXECUTE FUNCTION noop()',
  'ALTER TABLE customers RENAME COLUMN note TO remark',
  'ALTER TABLE guesses RENAME TO guesses2',
];

describe('directly, the DDL is real', () => {
  it('each runs, and the oracles answer from the masked values', async () => {
    const c = new pg.Client({ host: '127.0.0.1', port: env.cluster.port, user: 'warden_svc', password: SVC_PASSWORD, database: 'app' });
    await c.connect();
    try {
      for (const s of [...REFUSED.map((r) => r.sql).filter((s) => !s.includes('CHECK') && !s.includes('UNIQUE') && !s.includes('FOREIGN') && !s.includes('TYPE int')), ...ALLOWED]) {
        await c.query('BEGIN');
        await c.query(s);
        await c.query('ROLLBACK');
      }
      // A partial index counts the rows its predicate on the masked column holds for.
      await c.query('BEGIN');
      await c.query("CREATE INDEX ci ON customers (id) WHERE ssn LIKE '1%'");
      expect((await c.query("SELECT reltuples::int AS n FROM pg_class WHERE relname = 'ci'")).rows[0].n).toBe(1);
      await c.query('ROLLBACK');
      // A constraint's success says whether every value matches.
      const e = await c.query("ALTER TABLE customers ADD CONSTRAINT ck CHECK (ssn LIKE '1%')").catch((x: pg.DatabaseError) => x);
      expect((e as pg.DatabaseError).code).toBe('23514');
    } finally {
      await c.end();
    }
  });
});

describe('through Warden, for a strict and a relaxed identity', () => {
  for (const mode of ['simple', 'extended'] as const) {
    it(`pg (${mode}): each is refused with 42501 naming the column; the session goes on`, async () => {
      const failures: string[] = [];
      for (const who of MASKED) {
        const c = new pg.Client(env.client(who));
        await c.connect();
        try {
          for (const r of REFUSED) {
            const q = mode === 'extended' ? ({ text: r.sql, queryMode: 'extended' } as pg.QueryConfig) : r.sql;
            // In a transaction, so that what is not refused does not stay.
            await c.query('BEGIN');
            const e = await c.query(q).then(
              () => null,
              (x: pg.DatabaseError) => x,
            );
            if (!e) failures.push(`${who}: ${r.sql}: ran`);
            else if (e.code !== '42501' || !r.column.test(e.message) || !/masks sensitive data/.test(e.message)) failures.push(`${who}: ${r.sql}: ${e.code} ${e.message}`);
            await c.query('ROLLBACK');
            expect((await c.query('SELECT 1 AS one')).rows[0].one).toBe(1);
          }
        } finally {
          await c.end();
        }
      }
      expect(failures).toEqual([]);
    });
  }

  it('psql: each is refused', async () => {
    for (const who of MASKED) {
      for (const r of REFUSED) {
        const p = await runPsql({ port: env.warden.port, user: who, password: PASSWORDS[who], database: 'app', args: ['-v', 'ON_ERROR_STOP=1', '-c', 'BEGIN', '-c', r.sql] });
        expect(p.code, `${who}: ${r.sql}`).not.toBe(0);
        expect(p.err).toMatch(/masks sensitive data/);
      }
    }
  });

  it('DDL that reads no masked value runs', async () => {
    for (const who of MASKED) {
      const c = new pg.Client(env.client(who));
      await c.connect();
      try {
        for (const s of ALLOWED) {
          await c.query('BEGIN');
          await expect(c.query(s), `${who}: ${s}`).resolves.toBeDefined();
          await c.query('ROLLBACK');
        }
      } finally {
        await c.end();
      }
    }
  });
});

describe('inheritance trees of sensitive tables', () => {
  const READS = ['SELECT acct FROM accounts_p1', 'SELECT * FROM accounts_p1', 'SELECT secret FROM vault_all', 'SELECT * FROM vault_all', 'SELECT code FROM legacy_2020', 'TABLE legacy_2020', 'SELECT acct FROM accounts', 'SELECT code FROM legacy'];

  it('directly, the partition, the child and the parent hold the real values', async () => {
    for (const s of READS) expect(leaks(JSON.stringify((await direct(env.cluster, s)).rows)), s).not.toEqual([]);
  });

  for (const binary of [false, true]) {
    it(`a partition, an inheritance child and a parent of a sensitive table are masked (pg, ${binary ? 'binary' : 'text'})`, async () => {
      for (const who of MASKED) {
        const c = new pg.Client(env.client(who));
        await c.connect();
        try {
          for (const s of READS) {
            const r = await c.query(binary ? ({ text: s, binary: true } as unknown as pg.QueryConfig) : s);
            const text = JSON.stringify(r.rows.map((row: Record<string, unknown>) => Object.values(row).map((v) => (Buffer.isBuffer(v) ? v.toString('utf8') : v))));
            expect(leaks(text), `${who}: ${s}`).toEqual([]);
            expect(r.rows.length, `${who}: ${s}`).toBeGreaterThan(0);
          }
        } finally {
          await c.end();
        }
      }
    });
  }

  it('strict: their masked columns cannot be computed on or filtered by', async () => {
    const c = new pg.Client(env.client('alice'));
    await c.connect();
    try {
      for (const s of ['SELECT upper(acct) FROM accounts_p1', "SELECT id FROM vault_all WHERE secret LIKE 'V%'", 'SELECT lower(code) FROM legacy_2020']) {
        const e = await c.query(s).catch((x: pg.DatabaseError) => x);
        expect((e as pg.DatabaseError).code, s).toBe('42501');
        expect(leaks((e as Error).message)).toEqual([]);
      }
    } finally {
      await c.end();
    }
  });
});
