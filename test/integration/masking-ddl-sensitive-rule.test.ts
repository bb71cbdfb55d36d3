/**
 * DDL over a masked column under a mask rule keyed on `sensitive:` (the shape that names the
 * data, not the people). The rule applied only to statements whose analysis listed the column,
 * and DDL definitions listed none: a masked identity could copy the e-mail addresses into a
 * generated column or through `ALTER ... TYPE ... USING` and read them back unmasked, or learn
 * them from a CHECK constraint's success. Now the rule applies and masking's DDL allowlist
 * refuses them (docs/masking.md, "DDL on masked relations"); other DDL on the table still runs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseYaml, startEnv, type TestEnv } from '../helpers/warden-env.js';

let env: TestEnv;

function yaml(p: number): string {
  return baseYaml(
    p,
    `sensitive:
  columns:
    "*.customers.email": email
rules:
  - name: mask-emails
    match: { sensitive: [email] }
    action: mask
`,
  );
}

beforeAll(async () => {
  env = await startEnv({ yaml });
  await env.cluster.query(
    "SET ROLE warden_svc; CREATE SCHEMA other; CREATE TABLE public.customers (id int PRIMARY KEY, email text, note text); INSERT INTO public.customers VALUES (1, 'ann@example.com', 'n'); CREATE TABLE public.everyone (id int, email text, note text)",
    'app',
  );
});

afterAll(async () => {
  await env?.stop();
});

describe('DDL reading a masked column, under a sensitive-keyed mask rule', () => {
  it('is refused: generated column, USING, CHECK, index keys and predicates, statistics, policy', async () => {
    const c = await env.connect('alice');
    try {
      expect((await c.query('SELECT email FROM customers')).rows[0].email).not.toBe('ann@example.com');
      for (const sql of [
        'ALTER TABLE customers ADD COLUMN leak text GENERATED ALWAYS AS (email) STORED',
        'ALTER TABLE customers ALTER COLUMN note TYPE text USING email',
        "ALTER TABLE customers ADD CONSTRAINT c1 CHECK (email NOT LIKE 'a%')",
        'CREATE INDEX i1 ON customers (lower(email))',
        "CREATE INDEX i2 ON customers (note) WHERE email LIKE 'a%'",
        'CREATE STATISTICS st1 ON email, note FROM customers',
        "CREATE POLICY p ON customers USING (email LIKE '%@example.com')",
      ]) {
        await expect(c.query(sql), sql).rejects.toMatchObject({ code: '42501', message: expect.stringContaining('masked column customers.email') });
      }
      // Nothing changed, and nothing reads the address back.
      const cols = await env.cluster.query(
        "SELECT string_agg(column_name, ',' ORDER BY ordinal_position) AS c, (SELECT data_type FROM information_schema.columns WHERE table_name = 'customers' AND column_name = 'note') AS t FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'customers'",
        'app',
      );
      expect(cols.rows[0]).toEqual({ c: 'id,email,note', t: 'text' });
      expect((await env.cluster.query("SELECT count(*)::int AS n FROM pg_inherits WHERE inhrelid = 'public.customers'::regclass", 'app')).rows[0].n).toBe(0);
      expect((await c.query('SELECT note FROM customers')).rows).toEqual([{ note: 'n' }]);
      // DDL that reads no masked column runs; the session is usable.
      await c.query('CREATE INDEX i3 ON customers (note)');
      await c.query('ALTER TABLE customers ADD COLUMN n2 text GENERATED ALWAYS AS (upper(note)) STORED');
      expect((await c.query('SELECT n2 FROM customers')).rows).toEqual([{ n2: 'N' }]);
    } finally {
      await c.end();
    }
  });

  it('moving the table or its schema away, or bonding it to another table, is refused, also for a table Warden has not mapped yet', async () => {
    const statements = [
      'ALTER TABLE m0.customers RENAME TO people',
      'ALTER TABLE m1.customers SET SCHEMA other',
      'ALTER SCHEMA m2 RENAME TO elsewhere',
      'ALTER TABLE m3.customers INHERIT m3.everyone',
    ];
    for (const [i, sql] of statements.entries()) {
      // Made after Warden read its sensitive-column map: only the statement's own analysis can
      // tell that it moves a masked column (before, such a statement ran).
      await env.restart({ yaml: yaml(env.cluster.port) });
      const c = await env.connect('alice');
      try {
        expect((await c.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
        await env.cluster.query(
          `SET ROLE warden_svc; CREATE SCHEMA m${i}; CREATE TABLE m${i}.customers (id int, email text, note text); INSERT INTO m${i}.customers VALUES (1, 'ann@example.com', 'n'); CREATE TABLE m${i}.everyone (id int, email text, note text)`,
          'app',
        );
        await expect(c.query(sql), sql).rejects.toMatchObject({ code: '42501', message: expect.stringContaining('rule "mask-emails" masks sensitive data') });
      } finally {
        await c.end();
      }
    }
    const left = await env.cluster.query(
      "SELECT string_agg(n.nspname || '.' || c.relname, ',' ORDER BY n.nspname) AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = 'customers'",
      'app',
    );
    expect(left.rows[0].t).toBe('m0.customers,m1.customers,m2.customers,m3.customers,public.customers');
    expect((await env.cluster.query("SELECT count(*)::int AS n FROM pg_inherits WHERE inhrelid = 'm3.customers'::regclass", 'app')).rows[0].n).toBe(0);
  });
});
