/**
 * Objects and code made in the session, on the wire (issue 16, item 4; masking/session-code.ts):
 * for identities with masked columns — alice (strict) and agent (relaxed, `strict: false`) —
 * creating views, materialized views, tables from queries, functions, procedures, rules,
 * triggers and policies that read masked columns is refused naming the column and the object;
 * code that reads masked columns is refused in strict mode and masked whole (read-only) in
 * relaxed mode; code Warden cannot see is refused, pointing at trusted_functions. Every
 * `session-object` / `session-code` attempt of test/corpus/masking-bypass.yaml returns a real
 * value directly, and none through Warden (pg text and binary results, psql).
 */
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import YAML from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseYaml, direct, PASSWORDS, startEnv, SVC_PASSWORD, type TestEnv } from '../helpers/warden-env.js';
import { runPsql } from '../helpers/psql.js';

const REAL = {
  names: ['Annabel Realname', 'Bartholomew Truename'],
  emails: ['ann.real@corp-real.com', 'bart.true@corp-real.com'],
  phones: ['+1 415 555 0100', '+1 415 555 0199'],
  ssns: ['123-45-6789', '987-65-4329'],
  cards: ['4111 1111 1111 1111', '5500 0000 0000 0004'],
};
const NEEDLES = [...new Set(Object.values(REAL).flat().flatMap((v) => [v, v.toLowerCase(), v.replace(/[\s-]/g, ''), v.toUpperCase()]))];
const leaks = (text: string): string[] => NEEDLES.filter((n) => text.includes(n));

const RULES = `
sensitive:
  columns:
    public.customers.email: email
    public.customers.full_name: name
    public.customers.phone: phone
    public.customers.ssn: ssn
    "billing.*.card_number": credit_card
  detect: [email, phone, credit_card, ssn]
  maskers:
    ssn: partial
    credit_card: partial
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

interface Attempt {
  readonly class: string;
  readonly setup: readonly string[];
  readonly sql: string;
}
const CLASSES = new Set(['session-object', 'session-code']);
const corpus = YAML.parse(fs.readFileSync(path.resolve(import.meta.dirname, '../corpus/masking-bypass.yaml'), 'utf8')) as unknown[];
const attempts = corpus.filter((e): e is Attempt => typeof e === 'object' && e !== null && CLASSES.has(String((e as { class?: unknown }).class)));

let env: TestEnv;

beforeAll(async () => {
  env = await startEnv({
    yaml: (p) =>
      baseYaml(p, RULES)
        .replace('    environment: test\n', '    environment: test\n    trusted_functions: ["public.vouched_count"]\n')
        .replace('  - name: bob\n    kind: service\n', '  - name: bob\n    kind: service\n    groups: [dba]\n'),
  });
  const sql = [
    'CREATE TABLE customers (id int PRIMARY KEY, full_name text, email text UNIQUE, phone text, ssn text, note text)',
    `INSERT INTO customers VALUES (1, '${REAL.names[0]}', '${REAL.emails[0]}', '${REAL.phones[0]}', '${REAL.ssns[0]}', 'prefers email'),
      (2, '${REAL.names[1]}', '${REAL.emails[1]}', '${REAL.phones[1]}', '${REAL.ssns[1]}', 'call ${REAL.phones[1]} after 5')`,
    'CREATE SCHEMA billing',
    'CREATE TABLE billing.cards (customer_id int, card_number text)',
    `INSERT INTO billing.cards VALUES (1, '${REAL.cards[0]}'), (2, '${REAL.cards[1]}')`,
    'CREATE VIEW customer_contacts AS SELECT id, email AS contact, full_name AS who FROM customers',
    'CREATE VIEW contacts_of_contacts AS SELECT contact AS c2 FROM customer_contacts',
    'CREATE TABLE orders (id int PRIMARY KEY, customer_id int, total numeric)',
    'INSERT INTO orders VALUES (10, 1, 12.5), (11, 2, 99)',
    // Code created earlier by others (a dba): mapped through the catalog.
    'CREATE FUNCTION public.ssn_of(i int) RETURNS text LANGUAGE sql STABLE AS $$SELECT ssn FROM customers WHERE id = i$$',
    'CREATE FUNCTION public.all_emails() RETURNS SETOF text LANGUAGE sql STABLE AS $$SELECT email FROM customers ORDER BY id$$',
    'CREATE FUNCTION public.name_of(i int) RETURNS text LANGUAGE plpgsql STABLE AS $$BEGIN RETURN (SELECT full_name FROM customers WHERE id = i); END$$',
    'CREATE FUNCTION public.who_of(i int) RETURNS text LANGUAGE sql STABLE AS $$SELECT who FROM customer_contacts WHERE id = i$$',
    "CREATE FUNCTION public.dyn_read(c text) RETURNS text LANGUAGE plpgsql AS $$DECLARE v text; BEGIN EXECUTE format('SELECT %I::text FROM customers WHERE id = 1', c) INTO v; RETURN v; END$$",
    "CREATE FUNCTION public.vouched_count() RETURNS bigint LANGUAGE plpgsql AS $$DECLARE n bigint; BEGIN EXECUTE 'SELECT count(*) FROM ' || 'orders' INTO n; RETURN n; END$$",
    'CREATE FUNCTION public.order_total(i int) RETURNS numeric LANGUAGE sql STABLE AS $$SELECT total FROM orders WHERE id = i$$',
    'CREATE FUNCTION public.copy_ssn() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN NEW.v := (SELECT ssn FROM customers WHERE id = 1); RETURN NEW; END$$',
    // Views of others that call code: one reading masked columns, one Warden cannot see into, one reading none.
    'CREATE VIEW fn_view AS SELECT id, name_of(id) AS s FROM customers',
    "CREATE VIEW dyn_view AS SELECT id, dyn_read('email') AS e FROM customers",
    'CREATE VIEW of_fn_view AS SELECT s AS s2 FROM fn_view',
    'CREATE VIEW ok_fn_view AS SELECT id, order_total(id) AS t FROM orders',
    ...MASKED.flatMap((who) => [`CREATE TABLE trig_${who} (v text)`, `CREATE TRIGGER t BEFORE INSERT ON trig_${who} FOR EACH ROW EXECUTE FUNCTION public.copy_ssn()`]),
    'GRANT ALL ON ALL TABLES IN SCHEMA public TO warden_svc',
    // The service role owns customers, so DDL on it (masking/ddl.ts) really runs when sent directly.
    'ALTER TABLE customers OWNER TO warden_svc',
    'GRANT ALL ON SCHEMA billing TO warden_svc',
    'GRANT ALL ON ALL TABLES IN SCHEMA billing TO warden_svc',
  ];
  for (const s of sql) await direct(env.cluster, s);
}, 60_000);

afterAll(async () => {
  await env?.stop();
});

/** Runs setup then sql on a fresh connection: the text of the results or of the error. */
async function runOn(config: pg.ClientConfig, a: { setup: readonly string[]; sql: string }, binary = false): Promise<{ outcome: string; text: string }> {
  const c = new pg.Client(config);
  await c.connect();
  try {
    for (const s of a.setup) {
      try {
        await c.query(s);
      } catch (err) {
        const e = err as pg.DatabaseError;
        if (e.code === '42501') return { outcome: '42501', text: `${e.message} ${e.detail ?? ''}` };
        throw new Error(`setup of "${a.sql}" failed: ${s}: ${e.message}`);
      }
    }
    try {
      const q = binary ? ({ text: a.sql, binary: true } as unknown as pg.QueryConfig) : a.sql;
      const r = await c.query(q);
      const rs = Array.isArray(r) ? (r as pg.QueryResult[]) : [r];
      return { outcome: 'ok', text: rs.map((x) => x.rows.map((row) => Object.values(row as Record<string, unknown>).map((v) => (Buffer.isBuffer(v) ? v.toString('utf8') : JSON.stringify(v))).join('|')).join('\n')).join('\n') };
    } catch (err) {
      const e = err as pg.DatabaseError;
      return { outcome: e.code ?? 'error', text: `${e.message} ${e.detail ?? ''} ${e.where ?? ''} ${e.hint ?? ''}` };
    }
  } finally {
    await c.end().catch(() => undefined);
  }
}

const directConfig = (): pg.ClientConfig => ({ host: '127.0.0.1', port: env.cluster.port, user: 'warden_svc', password: SVC_PASSWORD, database: 'app' });

async function psql(who: string, statements: readonly string[]): Promise<{ code: number | null; out: string; err: string }> {
  return runPsql({ port: env.warden.port, user: who, password: PASSWORDS[who as keyof typeof PASSWORDS], database: 'app', args: ['-A', '-t', '-v', 'ON_ERROR_STOP=1', ...statements.flatMap((s) => ['-c', s])] });
}

describe('the session-object and session-code attempts of the bypass corpus', () => {
  it(`has at least 50 (${attempts.length}), of both classes`, () => {
    expect(attempts.length).toBeGreaterThanOrEqual(50);
    expect(new Set(attempts.map((a) => a.class))).toEqual(CLASSES);
  });

  it('each returns a real value when run directly against PostgreSQL', async () => {
    const none: string[] = [];
    for (const a of attempts) {
      const r = await runOn(directConfig(), a);
      if (leaks(r.text).length === 0) none.push(`${a.sql} → ${r.outcome}: ${r.text.slice(0, 200)}`);
    }
    expect(none).toEqual([]);
  }, 120_000);

  for (const binary of [false, true]) {
    it(`through Warden (pg, ${binary ? 'binary' : 'text'} results) each is refused, for a strict and a relaxed identity`, async () => {
      const failures: string[] = [];
      for (const who of MASKED) {
        for (const a of attempts) {
          const r = await runOn(env.client(who), a, binary);
          const found = leaks(r.text);
          if (found.length > 0) failures.push(`${who}: ${a.sql}\n    leaked ${found.join(', ')}: ${r.text.slice(0, 200)}`);
          // Every attempt creates an object or runs code that reads a masked column: refused for both.
          else if (r.outcome !== '42501') failures.push(`${who}: ${a.sql}\n    not refused: ${r.outcome} ${r.text.slice(0, 200)}`);
        }
      }
      expect(failures).toEqual([]);
    }, 180_000);
  }

  it('through Warden (psql) none returns a real value', async () => {
    const failures: string[] = [];
    for (const who of MASKED) {
      for (const a of attempts) {
        const p = await psql(who, [...a.setup, a.sql]);
        const found = leaks(p.out + p.err);
        if (found.length > 0) failures.push(`${who}: ${a.sql}\n    leaked ${found.join(', ')}: ${(p.out + p.err).slice(0, 200)}`);
        if (p.code === 0 || !/42501|masks sensitive data/.test(p.err)) failures.push(`${who}: ${a.sql}\n    not refused: ${p.err.slice(0, 200)}`);
      }
    }
    expect(failures).toEqual([]);
  }, 240_000);
});

/** The examples ("Code and objects made in the session"): refused naming the column and the object, for both identities. */
const CREATIONS: { setup?: string[]; sql: string; object: RegExp; column: RegExp }[] = [
  { sql: 'CREATE TEMP VIEW tv AS SELECT id, ssn FROM customers', object: /the view tv/, column: /customers\.ssn \(ssn\)/ },
  { sql: 'CREATE VIEW pg_temp.tv3 AS SELECT * FROM customers', object: /the view pg_temp\.tv3/, column: /customers\.\* \(\w+\)/ },
  { setup: ['BEGIN'], sql: 'CREATE VIEW v_tx AS SELECT id, email FROM customers', object: /the view v_tx/, column: /customers\.email \(email\)/ },
  { setup: ['BEGIN'], sql: 'CREATE MATERIALIZED VIEW mv_tx AS SELECT full_name FROM customers', object: /the materialized view mv_tx/, column: /customers\.full_name \(name\)/ },
  { sql: 'CREATE TEMP TABLE tt AS SELECT phone FROM customers', object: /the table \(CREATE TABLE AS\) tt/, column: /customers\.phone \(phone\)/ },
  { sql: 'SELECT ssn INTO TEMP tt2 FROM customers', object: /the table tt2 \(SELECT INTO\)/, column: /customers\.ssn \(ssn\)/ },
  { sql: 'CREATE TEMP VIEW tv2 AS SELECT contact FROM customer_contacts', object: /the view tv2/, column: /customer_contacts\.contact \(\w+\)/ },
  { sql: 'CREATE FUNCTION f_ssn() RETURNS text LANGUAGE sql AS $$SELECT ssn FROM customers WHERE id = 1$$', object: /the function f_ssn/, column: /customers\.ssn \(ssn\)/ },
  { sql: 'CREATE FUNCTION pg_temp.f_ssn() RETURNS text LANGUAGE sql AS $$SELECT ssn FROM customers WHERE id = 1$$', object: /the function pg_temp\.f_ssn/, column: /customers\.ssn \(ssn\)/ },
  { sql: 'CREATE FUNCTION pg_temp.f_name() RETURNS text LANGUAGE plpgsql AS $$BEGIN RETURN (SELECT full_name FROM customers WHERE id = 1); END$$', object: /the function pg_temp\.f_name/, column: /customers\.full_name \(name\)/ },
  { sql: 'CREATE FUNCTION pg_temp.f_who() RETURNS text LANGUAGE sql AS $$SELECT who FROM customer_contacts WHERE id = 1$$', object: /the function pg_temp\.f_who/, column: /customer_contacts\.who \(\w+\)/ },
  { sql: 'CREATE PROCEDURE pg_temp.p_mail(INOUT x text) LANGUAGE plpgsql AS $$BEGIN SELECT email INTO x FROM customers WHERE id = 1; END$$', object: /the procedure pg_temp\.p_mail/, column: /customers\.email \(email\)/ },
  { setup: ['CREATE TEMP TABLE rt (x int)'], sql: 'CREATE RULE r1 AS ON INSERT TO rt DO INSTEAD SELECT ssn FROM customers', object: /the rule r1 on rt/, column: /customers\.ssn \(ssn\)/ },
  { setup: ['CREATE TEMP TABLE pt (v int)'], sql: 'CREATE POLICY p1 ON pt USING ((SELECT ssn FROM customers WHERE id = 1)::int > 0)', object: /the policy p1 on pt/, column: /customers\.ssn \(ssn\)/ },
  { setup: ['CREATE TEMP TABLE tr (v text)'], sql: 'CREATE TRIGGER t1 BEFORE INSERT ON tr FOR EACH ROW EXECUTE FUNCTION public.copy_ssn()', object: /the trigger t1 on tr/, column: /customers\.ssn \(ssn\)/ },
];

describe("the issue's examples: creating objects and code over masked columns", () => {
  it('each is created and shows a real value when run directly', async () => {
    const c = new pg.Client(directConfig());
    await c.connect();
    try {
      await c.query('BEGIN');
      for (const x of CREATIONS) {
        for (const s of x.setup ?? []) if (s !== 'BEGIN') await c.query(s);
        await c.query(x.sql);
      }
      const r = await c.query('SELECT (SELECT ssn FROM tv LIMIT 1) AS a, (SELECT email FROM v_tx LIMIT 1) AS b, (SELECT full_name FROM mv_tx LIMIT 1) AS c, f_ssn() AS d, pg_temp.f_name() AS e, pg_temp.f_who() AS f');
      for (const v of Object.values(r.rows[0] as Record<string, string>)) expect(leaks(v).length, v).toBeGreaterThan(0);
      await c.query('ROLLBACK');
    } finally {
      await c.end();
    }
  });

  for (const who of MASKED) {
    for (const binary of [false, true]) {
      it(`${who} (pg, ${binary ? 'binary' : 'text'}): each is refused with 42501 naming the column and the object; the session goes on`, async () => {
        for (const x of CREATIONS) {
          const r = await runOn(env.client(who), { setup: x.setup ?? [], sql: x.sql }, binary);
          expect(r.outcome, x.sql).toBe('42501');
          expect(r.text, x.sql).toMatch(/masks sensitive data, and creating /);
          expect(r.text, x.sql).toMatch(x.object);
          expect(r.text, x.sql).toMatch(x.column);
          expect(leaks(r.text)).toEqual([]);
        }
        const c = await env.connect(who);
        try {
          await expect(c.query('CREATE TEMP VIEW tv AS SELECT id, ssn FROM customers')).rejects.toMatchObject({ code: '42501' });
          await expect(c.query('SELECT * FROM tv')).rejects.toMatchObject({ code: '42P01' });
          const ok = await c.query('SELECT ssn FROM customers WHERE id = 1');
          expect(ok.rows[0].ssn).toBe('***-**-6789');
        } finally {
          await c.end();
        }
      });
    }

    it(`${who} (psql): each is refused`, async () => {
      for (const x of CREATIONS) {
        const p = await psql(who, [...(x.setup ?? []), x.sql]);
        expect(p.code, x.sql).not.toBe(0);
        expect(p.err, x.sql).toMatch(x.object);
        expect(leaks(p.out + p.err)).toEqual([]);
      }
    }, 60_000);
  }

  it('objects over columns that are not masked are created and read as before', async () => {
    for (const who of MASKED) {
      const c = await env.connect(who);
      try {
        await c.query('CREATE TEMP VIEW ok_v AS SELECT o.id, o.total, c.id AS cid FROM orders o JOIN customers c ON c.id = o.customer_id');
        expect((await c.query('SELECT count(*)::int AS n FROM ok_v WHERE total > 50')).rows[0].n).toBe(1);
        await c.query('CREATE FUNCTION pg_temp.ok_f(i int) RETURNS numeric LANGUAGE sql AS $$SELECT total FROM orders WHERE id = i$$');
        expect((await c.query('SELECT pg_temp.ok_f(11)::text AS t')).rows[0].t).toBe('99');
        await c.query('CREATE TEMP TABLE ok_t AS SELECT id FROM customers');
        expect((await c.query('SELECT count(*)::int AS n FROM ok_t')).rows[0].n).toBe(2);
      } finally {
        await c.end();
      }
    }
  });
});

describe("the issue's examples: calling code that reads masked columns", () => {
  const CALLS = ['SELECT ssn_of(1)', 'SELECT * FROM all_emails()', 'SELECT name_of(2)', 'SELECT who_of(1)', 'SELECT x FROM all_emails() x WHERE x IS NOT NULL'];

  it('each returns a real value directly', async () => {
    for (const sql of CALLS) {
      const r = await runOn(directConfig(), { setup: [], sql });
      expect(leaks(r.text).length, sql).toBeGreaterThan(0);
    }
  });

  for (const binary of [false, true]) {
    it(`strict (alice, pg ${binary ? 'binary' : 'text'}): refused, naming the function and the column`, async () => {
      for (const sql of CALLS) {
        const r = await runOn(env.client('alice'), { setup: [], sql }, binary);
        expect(r.outcome, sql).toBe('42501');
        expect(r.text, sql).toMatch(/\w+\(\) reads the masked column \S+ \(\w+\)/);
        expect(r.text, sql).toMatch(/in strict mode a masked identity cannot run functions/);
        expect(leaks(r.text)).toEqual([]);
      }
    });

    it(`relaxed (agent, pg ${binary ? 'binary' : 'text'}): outputs are masked whole`, async () => {
      for (const sql of CALLS) {
        const r = await runOn(env.client('agent'), { setup: [], sql }, binary);
        expect(r.outcome, sql).toBe('ok');
        expect(r.text.length, sql).toBeGreaterThan(0);
        expect(leaks(r.text), sql).toEqual([]);
      }
    });
  }

  it('psql: refused for alice, masked for agent', async () => {
    for (const sql of CALLS) {
      const a = await psql('alice', [sql]);
      expect(a.code, sql).not.toBe(0);
      expect(a.err, sql).toMatch(/reads the masked column/);
      const g = await psql('agent', [sql]);
      expect(g.code, `${sql}: ${g.err}`).toBe(0);
      expect(g.out.trim().length, sql).toBeGreaterThan(0);
      expect(leaks(g.out + g.err), sql).toEqual([]);
    }
  }, 60_000);

  it('also through PREPARE / EXECUTE, cursors and the extended protocol', async () => {
    const a = await env.connect('alice');
    try {
      await expect(a.query('PREPARE p AS SELECT ssn_of(1)')).rejects.toMatchObject({ code: '42501', message: /ssn_of\(\) reads the masked column customers\.ssn/ });
      // Never prepared: refused by Warden (a prepared statement it has not seen is opaque) or unknown upstream.
      await expect(a.query('EXECUTE p')).rejects.toMatchObject({ code: expect.stringMatching(/^(42501|26000)$/) });
      await a.query('BEGIN');
      await expect(a.query('DECLARE c CURSOR FOR SELECT * FROM all_emails()')).rejects.toMatchObject({ code: '42501' });
      await a.query('ROLLBACK');
      await expect(a.query({ text: 'SELECT name_of($1)', values: [1] })).rejects.toMatchObject({ code: '42501', message: /name_of\(\) reads the masked column customers\.full_name/ });
      await expect(a.query({ name: 'q1', text: 'SELECT x FROM all_emails() x', values: [] })).rejects.toMatchObject({ code: '42501' });
    } finally {
      await a.end();
    }
    const g = await env.connect('agent');
    try {
      const r = await g.query({ text: 'SELECT name_of($1) AS n, ssn_of($1) AS s', values: [1] });
      expect(r.rows).toHaveLength(1);
      expect(leaks(JSON.stringify(r.rows))).toEqual([]);
      await g.query('PREPARE p AS SELECT ssn_of($1) AS s');
      const e = await g.query('EXECUTE p(2)');
      expect(leaks(JSON.stringify(e.rows))).toEqual([]);
      expect(e.rows[0].s).toBe('***-**-4329');
    } finally {
      await g.end();
    }
  });

  it('a trigger function of others that reads a masked column is refused when it would fire (both identities)', async () => {
    for (const who of MASKED) {
      const c = await env.connect(who);
      try {
        // Created by the dba (beforeAll) on a table the identity writes.
        const e = await c.query(`INSERT INTO trig_${who} VALUES ('x') RETURNING v`).catch((x: pg.DatabaseError) => x);
        expect((e as pg.DatabaseError).code).toBe('42501');
        expect((e as Error).message).toMatch(/trigger t on \S*trig_\w+.*copy_ssn\(\).* reads the masked column customers\.ssn \(ssn\)/);
        expect((await direct(env.cluster, `SELECT count(*)::int AS n FROM trig_${who}`)).rows[0].n).toBe(0);
      } finally {
        await c.end();
      }
    }
  });

  it('code that reads no masked column runs for both', async () => {
    for (const who of MASKED) {
      const r = await runOn(env.client(who), { setup: [], sql: 'SELECT order_total(11)::text AS t, order_total(10)::text AS u' });
      expect(r, who).toEqual({ outcome: 'ok', text: '"99"|"12.5"' });
    }
  });
});

describe('views of others that call code', () => {
  const VIEWS = ['SELECT s FROM fn_view', 'SELECT e FROM dyn_view', 'SELECT s2 FROM of_fn_view', 'SELECT * FROM fn_view'];

  it('return real values directly', async () => {
    for (const sql of VIEWS) expect(leaks((await runOn(directConfig(), { setup: [], sql })).text).length, sql).toBeGreaterThan(0);
  });

  for (const who of MASKED) {
    for (const binary of [false, true]) {
      it(`${who} (pg, ${binary ? 'binary' : 'text'}): every column of a view calling a function that reads masked columns (or one Warden cannot see) is masked`, async () => {
        for (const sql of VIEWS) {
          const r = await runOn(env.client(who), { setup: [], sql }, binary);
          expect(r.outcome, sql).toBe('ok');
          expect(r.text.split('\n'), sql).toHaveLength(2);
          expect(leaks(r.text), sql).toEqual([]);
        }
      });
    }
    it(`${who} (psql): masked`, async () => {
      const p = await psql(who, VIEWS);
      expect(p.code, p.err).toBe(0);
      expect(leaks(p.out)).toEqual([]);
    });
  }

  it('strict: their columns cannot be filtered on; a view calling code that reads no masked column is untouched', async () => {
    const c = await env.connect('alice');
    try {
      await expect(c.query("SELECT id FROM fn_view WHERE s LIKE 'A%'")).rejects.toMatchObject({ code: '42501', message: /fn_view\.s \(\w+\) is used in WHERE/ });
      const r = await c.query('SELECT id, t::text AS t FROM ok_fn_view WHERE t > 50');
      expect(r.rows).toEqual([{ id: 11, t: '99' }]);
    } finally {
      await c.end();
    }
  });
});

describe('code Warden cannot see', () => {
  const OPAQUE = ["SELECT dyn_read('ssn')", "DO $$ BEGIN EXECUTE 'SELECT 1 FROM ' || quote_ident('orders'); END $$", "SELECT dyn_read('id')"];

  it('returns a real value directly', async () => {
    const r = await runOn(directConfig(), { setup: [], sql: "SELECT dyn_read('ssn')" });
    expect(leaks(r.text)).toContain(REAL.ssns[0]);
  });

  for (const who of MASKED) {
    it(`${who}: a function or DO block whose body Warden cannot see is refused, saying what and how to vouch (pg and psql)`, async () => {
      for (const sql of OPAQUE) {
        for (const binary of [false, true]) {
          const r = await runOn(env.client(who), { setup: [], sql }, binary);
          expect(r.outcome, sql).toBe('42501');
          expect(r.text, sql).toMatch(/Warden cannot see everything the statement runs \(.*(dyn_read\(\)|DO block runs dynamic SQL)/);
          expect(r.text, sql).toMatch(/databases\.app\.trusted_functions/);
          expect(leaks(r.text)).toEqual([]);
        }
        const p = await psql(who, [sql]);
        expect(p.code, sql).not.toBe(0);
        expect(p.err, sql).toMatch(/trusted_functions/);
      }
    });

    it(`${who}: a function an operator vouched for (trusted_functions) runs`, async () => {
      const r = await runOn(env.client(who), { setup: [], sql: 'SELECT vouched_count()::int AS n' });
      expect(r).toEqual({ outcome: 'ok', text: '2' });
    });
  }

  it('an identity without a mask rule runs them', async () => {
    const r = await runOn(env.client('bob'), { setup: [], sql: "SELECT dyn_read('ssn'), ssn_of(2)" });
    expect(r.outcome).toBe('ok');
    expect(leaks(r.text)).toContain(REAL.ssns[1]);
  });
});
