/**
 * Strict masking as an allowlist, on the wire (issue 16, item 1): a masked column reaches a
 * masked identity only as an output cell Warden masks. Every attempt of the allowlist classes in
 * test/corpus/masking-bypass.yaml first returns a real value when run directly against
 * PostgreSQL, then through Warden is refused (42501) or returns no real value — with pg (text and
 * binary results) and psql. The examples are refused, naming the column and the use;
 * legitimate masked reads still work.
 */
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import YAML from 'yaml';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { baseYaml, direct, PASSWORDS, startEnv, SVC_PASSWORD, type TestEnv } from '../helpers/warden-env.js';
import { runPsql } from '../helpers/psql.js';
import { Wire } from '../helpers/raw-wire.js';
import { E, Q, S, errorsOf, login, readyN, rowsOf } from '../helpers/raw-batch.js';

// The same data as test/integration/masking-wire.test.ts, which runs the whole corpus too.
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
    match: { not: { groups: [dba] } }
    action: mask
`;

interface Attempt {
  readonly class: string;
  readonly setup: readonly string[];
  readonly sql: string;
}
const corpus = YAML.parse(fs.readFileSync(path.resolve(import.meta.dirname, '../corpus/masking-bypass.yaml'), 'utf8')) as (string | Partial<Attempt>)[];
const attempts = corpus.filter((e): e is Attempt => typeof e === 'object' && typeof e.class === 'string');

let env: TestEnv;

beforeAll(async () => {
  env = await startEnv({
    yaml: (p) => baseYaml(p, RULES).replace('  - name: bob\n    kind: service\n', '  - name: bob\n    kind: service\n    groups: [dba]\n'),
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
    'GRANT ALL ON ALL TABLES IN SCHEMA public TO warden_svc',
    // The service role owns customers, so DDL on it (masking/ddl.ts) really runs when sent directly.
    'ALTER TABLE customers OWNER TO warden_svc',
    'GRANT ALL ON SCHEMA billing TO warden_svc',
    'GRANT ALL ON ALL TABLES IN SCHEMA billing TO warden_svc',
  ];
  for (const s of sql) await direct(env.cluster, s);
}, 60_000);

afterEach(() => {
  for (const w of Wire.opened) w.destroy();
  Wire.opened.clear();
});

afterAll(async () => {
  await env?.stop();
});

/** Runs an attempt on a fresh connection; the text of its results, or of its error. */
async function runOn(config: pg.ClientConfig, a: Attempt, binary = false): Promise<{ outcome: string; text: string }> {
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

describe('the allowlist classes of the bypass corpus', () => {
  it(`has at least 80 attempts (${attempts.length}), of every class`, () => {
    expect(attempts.length).toBeGreaterThanOrEqual(80);
    expect(new Set(attempts.map((a) => a.class))).toEqual(new Set(['derived', 'cte', 'lateral', 'srf', 'equality', 'order', 'case', 'json', 'cursor', 'stored', 'whole-row', 'aggregate', 'view', 'limit', 'session-object', 'session-code']));
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
    it(`through Warden (pg, ${binary ? 'binary' : 'text'} results) each is refused or masked`, async () => {
      const failures: string[] = [];
      let refused = 0;
      for (const a of attempts) {
        const r = await runOn(env.client('alice'), a, binary);
        if (r.outcome === '42501') refused++;
        const found = leaks(r.text);
        if (found.length > 0) failures.push(`${a.sql}\n    leaked ${found.join(', ')}: ${r.text.slice(0, 200)}`);
      }
      expect(failures).toEqual([]);
      expect(refused).toBeGreaterThanOrEqual(attempts.length - 5);
    }, 120_000);
  }

  it('through Warden (psql) each is refused or masked', async () => {
    const failures: string[] = [];
    for (const a of attempts) {
      const args = ['-A', '-t', '-v', 'ON_ERROR_STOP=1', ...[...a.setup, a.sql].flatMap((s) => ['-c', s])];
      const p = await runPsql({ port: env.warden.port, user: 'alice', password: PASSWORDS.alice, database: 'app', args });
      const found = leaks(p.out + p.err);
      if (found.length > 0) failures.push(`${a.sql}\n    leaked ${found.join(', ')}: ${(p.out + p.err).slice(0, 200)}`);
    }
    expect(failures).toEqual([]);
  }, 180_000);
});

/** The examples of issue 16 ("Why", first point) and the cursor case: each reveals something directly; each is refused through Warden. */
const EXAMPLES: { sql: string; setup?: string[]; column: RegExp }[] = [
  { sql: 'SELECT id FROM (SELECT id, ascii(substr(ssn,1,1)) >= 50 AS b FROM customers) s WHERE b', column: /customers\.ssn \(ssn\)/ },
  { sql: 'WITH s AS (SELECT id, ascii(substr(ssn,1,1)) >= 50 AS b FROM customers) SELECT id FROM s WHERE b', column: /customers\.ssn \(ssn\)/ },
  { sql: 'SELECT c.id FROM customers c, LATERAL (SELECT ascii(substr(c.ssn,1,1)) >= 50 AS b) l WHERE l.b', column: /customers\.ssn \(ssn\)/ },
  { sql: 'SELECT c.id, count(*) FROM customers c, generate_series(1, ascii(substr(c.email, 1, 1))) g GROUP BY c.id', column: /customers\.email \(email\)/ },
  { sql: 'SELECT id, (SELECT count(*) FROM generate_series(1, ascii(substr(email, 1, 1)))) FROM customers', column: /customers\.email \(email\)/ },
  { sql: "SELECT id FROM customers JOIN (VALUES ('123-45-6789')) v(ssn) USING (ssn)", column: /customers\.ssn \(ssn\)/ },
  { sql: "SELECT id FROM customers NATURAL JOIN (VALUES ('123-45-6789')) v(ssn)", column: /customers\.\w+ \(\w+\)/ },
  { sql: "SELECT ssn FROM customers INTERSECT SELECT '123-45-6789'", column: /customers\.ssn \(ssn\)/ },
  { sql: 'SELECT id, ssn FROM customers ORDER BY 2', column: /customers\.ssn \(ssn\)/ },
  { sql: 'SELECT id, ssn AS k FROM customers ORDER BY k', column: /customers\.ssn \(ssn\)/ },
  { sql: "SELECT CASE WHEN ssn LIKE '2%' THEN 1/0 END FROM customers", column: /customers\.ssn \(ssn\)/ },
  { sql: "SELECT id FROM customers WHERE CASE WHEN ssn LIKE '1%' THEN 1/0 ELSE 1 END = 1", column: /customers\.ssn \(ssn\)/ },
  { sql: 'SELECT json_object_agg(full_name, phone) FROM customers', column: /customers\.full_name \(name\)/ },
  { sql: 'FETCH ALL FROM c', setup: ['BEGIN', 'DECLARE c CURSOR FOR SELECT upper(email) FROM customers'], column: /customers\.email \(email\)/ },
];

describe("the issue's examples", () => {
  it('each reveals something about the real values when run directly', async () => {
    for (const x of EXAMPLES) {
      const r = await runOn(directConfig(), { class: '', setup: x.setup ?? [], sql: x.sql });
      // An oracle answers with rows (ids, counts, or the value itself) or with an error.
      expect(r.outcome === 'ok' ? r.text.length : r.outcome, x.sql).not.toBe(0);
    }
  });

  for (const binary of [false, true]) {
    it(`each is refused with 42501 naming the column and the use (pg, ${binary ? 'binary' : 'text'})`, async () => {
      for (const x of EXAMPLES) {
        const r = await runOn(env.client('alice'), { class: '', setup: x.setup ?? [], sql: x.sql }, binary);
        expect(r.outcome, x.sql).toBe('42501');
        expect(r.text, x.sql).toMatch(/rule "mask-pii-except-dba" masks sensitive data, and the masked column /);
        expect(r.text, x.sql).toMatch(x.column);
        expect(r.text, x.sql).toMatch(/ is used in /);
        expect(leaks(r.text)).toEqual([]);
      }
    });
  }

  it('each is refused with psql', async () => {
    for (const x of EXAMPLES) {
      const args = ['-A', '-t', '-v', 'ON_ERROR_STOP=1', ...[...(x.setup ?? []), x.sql].flatMap((s) => ['-c', s])];
      const p = await runPsql({ port: env.warden.port, user: 'alice', password: PASSWORDS.alice, database: 'app', args });
      expect(p.code, x.sql).not.toBe(0);
      expect(p.err, x.sql).toMatch(/masks sensitive data, and the masked column/);
      expect(leaks(p.out + p.err)).toEqual([]);
    }
  }, 60_000);

  it('the session goes on after a refusal', async () => {
    const c = await env.connect('alice');
    try {
      await expect(c.query('SELECT id, ssn FROM customers ORDER BY 2')).rejects.toMatchObject({ code: '42501' });
      const r = await c.query('SELECT id, ssn FROM customers ORDER BY id');
      expect(r.rows.map((x) => x.ssn)).toEqual(['***-**-6789', '***-**-4329']);
    } finally {
      await c.end();
    }
  });
});

describe('cursors', () => {
  it('DECLARE of a computed masked output is refused; FETCH and a protocol Execute of the cursor return nothing real', async () => {
    const w = await login(env.warden.port, 'alice', PASSWORDS.alice);
    w.write(Buffer.concat([Q('BEGIN'), Q('DECLARE c CURSOR FOR SELECT upper(email) FROM customers'), Q('ROLLBACK')]));
    const msgs = await readyN(w, 3);
    const errs = errorsOf(msgs);
    expect(errs).toHaveLength(1);
    expect(errs[0]!.C).toBe('42501');
    expect(errs[0]!.M).toMatch(/customers\.email \(email\) is used in an expression in the select list/);
    // Declared anyway in a transaction the client keeps: neither FETCH nor Execute finds the cursor.
    w.write(Buffer.concat([Q('BEGIN'), Q('DECLARE d CURSOR FOR SELECT lower(ssn) FROM customers')]));
    await readyN(w, 2);
    w.write(Buffer.concat([Q('ROLLBACK'), Q('BEGIN'), Q("DECLARE e CURSOR FOR SELECT email || '' FROM customers")]));
    const m2 = await readyN(w, 3);
    expect(errorsOf(m2).map((e) => e.C)).toEqual(['42501']);
    w.write(Buffer.concat([E('e', 0), S()]));
    const m3 = await readyN(w, 1);
    expect(errorsOf(m3).length).toBe(1);
    for (const row of rowsOf([...msgs, ...m2, ...m3])) expect(leaks(row.join('|'))).toEqual([]);
  });

  it('a cursor over plain columns is masked through FETCH and through a protocol Execute', async () => {
    const w = await login(env.warden.port, 'alice', PASSWORDS.alice);
    w.write(Buffer.concat([Q('BEGIN'), Q('DECLARE c CURSOR FOR SELECT id, email, ssn FROM customers ORDER BY id'), Q('FETCH 1 FROM c'), E('c', 0), S()]));
    const msgs = await readyN(w, 4);
    expect(errorsOf(msgs)).toEqual([]);
    const rows = rowsOf(msgs);
    expect(rows).toHaveLength(2);
    expect(rows.map((r) => r[2])).toEqual(['***-**-6789', '***-**-4329']);
    expect(leaks(JSON.stringify(rows))).toEqual([]);
  });
});

describe('legitimate masked reads still work', () => {
  // Names are not detectable: a name that comes back masked was masked by its column origin, not by the detectors.
  const READS: { sql: string; rows: number }[] = [
    { sql: 'SELECT id, full_name, email, phone, ssn FROM customers ORDER BY id', rows: 2 },
    { sql: 'SELECT * FROM customers', rows: 2 },
    { sql: 'SELECT c.* FROM customers c WHERE c.id = 1', rows: 1 },
    { sql: 'TABLE customers', rows: 2 },
    { sql: 'SELECT * FROM customer_contacts', rows: 2 },
    { sql: 'SELECT contact, who FROM customer_contacts WHERE id = 2', rows: 1 },
    { sql: 'SELECT c2 FROM contacts_of_contacts', rows: 2 },
    { sql: 'SELECT o.id, o.total, c.email, c.ssn FROM orders o JOIN customers c ON c.id = o.customer_id ORDER BY o.id', rows: 2 },
    { sql: 'SELECT c.email, k.card_number FROM customers c JOIN billing.cards k ON k.customer_id = c.id', rows: 2 },
    { sql: 'SELECT email FROM customers c JOIN orders o ON o.customer_id = c.id WHERE o.total > 50', rows: 1 },
    { sql: 'SELECT s.e, s.n FROM (SELECT id, email AS e, full_name AS n FROM customers) s WHERE s.id = 1', rows: 1 },
    { sql: 'WITH x AS (SELECT id, ssn, full_name FROM customers) SELECT ssn, full_name FROM x ORDER BY id', rows: 2 },
    { sql: 'SELECT email FROM customers WHERE id IN (SELECT customer_id FROM orders WHERE total > 50)', rows: 1 },
    { sql: 'SELECT email FROM customers c WHERE EXISTS (SELECT * FROM orders o WHERE o.customer_id = c.id)', rows: 2 },
    { sql: 'SELECT id, email FROM customers ORDER BY id DESC LIMIT 1', rows: 1 },
    { sql: 'SELECT count(*) FROM customers', rows: 1 },
    { sql: 'SELECT s.email, s.full_name FROM (SELECT id, email, full_name FROM customers GROUP BY id) s', rows: 2 },
    { sql: 'SELECT l.e, l.f FROM orders o, LATERAL (SELECT email AS e, full_name AS f FROM customers c WHERE c.id = o.customer_id) l', rows: 2 },
    { sql: 'SELECT j.email, j.full_name FROM (customers c JOIN orders o ON o.customer_id = c.id) j', rows: 2 },
    { sql: 'WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2) SELECT c.ssn, c.full_name FROM n JOIN customers c ON c.id = n.i', rows: 2 },
    { sql: 'SELECT * FROM (SELECT * FROM customer_contacts) v WHERE v.id = 1', rows: 1 },
  ];
  for (const binary of [false, true]) {
    it(`pg, ${binary ? 'binary' : 'text'} results: rows come back, masked`, async () => {
      const c = await env.connect('alice');
      try {
        for (const x of READS) {
          const r = await c.query(binary ? ({ text: x.sql, binary: true } as unknown as pg.QueryConfig) : x.sql);
          expect(r.rows, x.sql).toHaveLength(x.rows);
          const text = r.rows.map((row) => Object.values(row as Record<string, unknown>).map((v) => (Buffer.isBuffer(v) ? v.toString('utf8') : String(v))).join('|')).join('\n');
          expect(leaks(text), x.sql).toEqual([]);
        }
        const s = await c.query('SELECT ssn FROM customers WHERE id = 1');
        expect(s.rows[0].ssn).toBe('***-**-6789');
      } finally {
        await c.end();
      }
    });
  }

  it('each also as a cursor: DECLARE is allowed, FETCH and a protocol Execute return masked values (the column origin reaches the cursor)', async () => {
    const w = await login(env.warden.port, 'alice', PASSWORDS.alice);
    for (const [i, x] of READS.entries()) {
      w.write(Buffer.concat([Q('BEGIN'), Q(`DECLARE r${i} CURSOR FOR ${x.sql}`), Q(`FETCH 1 FROM r${i}`), E(`r${i}`, 0), S(), Q('COMMIT')]));
      const msgs = await readyN(w, 5);
      expect(errorsOf(msgs), x.sql).toEqual([]);
      const rows = rowsOf(msgs);
      expect(rows, x.sql).toHaveLength(x.rows);
      expect(leaks(JSON.stringify(rows)), x.sql).toEqual([]);
    }
  });

  it("views: a column that is a masked column's plain reference cannot be filtered on (also through another view); the others can", async () => {
    const c = await env.connect('alice');
    try {
      await expect(c.query("SELECT id FROM customer_contacts WHERE contact LIKE 'a%'")).rejects.toMatchObject({ code: '42501', message: /customer_contacts\.contact \(email\) is used in WHERE/ });
      await expect(c.query("SELECT 1 FROM contacts_of_contacts WHERE c2 > 'm'")).rejects.toMatchObject({ code: '42501', message: /contacts_of_contacts\.c2 \(email\) is used in WHERE/ });
      await expect(c.query('SELECT who FROM customer_contacts ORDER BY who')).rejects.toMatchObject({ code: '42501', message: /customer_contacts\.who \(name\)/ });
      const r = await c.query('SELECT who, contact FROM customer_contacts WHERE id = 2 ORDER BY id');
      expect(r.rows).toHaveLength(1);
      expect(leaks(JSON.stringify(r.rows))).toEqual([]);
    } finally {
      await c.end();
    }
  });

  it('psql', async () => {
    const p = await runPsql({ port: env.warden.port, user: 'alice', password: PASSWORDS.alice, database: 'app', args: ['-A', '-t', '-v', 'ON_ERROR_STOP=1', ...READS.flatMap((x) => ['-c', x.sql])] });
    expect(p.code, p.err).toBe(0);
    expect(leaks(p.out)).toEqual([]);
    expect(p.out).toContain('***-**-6789');
  });

  it('a dba (no mask rule) runs the refused statements and sees real values', async () => {
    const c = await env.connect('bob');
    try {
      const r = await c.query('SELECT id, ssn FROM customers ORDER BY 2');
      expect(r.rows[0].ssn).toBe(REAL.ssns[0]);
    } finally {
      await c.end();
    }
  });
});
