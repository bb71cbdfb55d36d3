/**
 * Issue 16, items 2, 3 and 5 on the wire (psql and pg): errors and notices of a masked
 * statement carry no value, statistics and settings are no back door, and COPY output is
 * masked like a query result.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import YAML from 'yaml';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseYaml, PASSWORDS, startEnv, direct, type TestEnv } from '../helpers/warden-env.js';
import { runPsql } from '../helpers/psql.js';
import { findLeaks } from '../helpers/leak-forms.js';

const REAL = {
  names: ['Annabel Realname', 'Bartholomew Truename'],
  emails: ['ann.real@corp-real.com', 'bart.true@corp-real.com'],
  phones: ['+1 415 555 0100', '+1 415 555 0199'],
  ssns: ['123-45-6789', '987-65-4329'],
  cards: ['4111 1111 1111 1111', '5500 0000 0000 0004'],
  memoPhone: '+1 415 555 0142',
  memoEmail: 'zed.memo@corp-real.com',
};
const ALL_REAL = Object.values(REAL).flat();
const leaks = (text: string): string[] => findLeaks(text, ALL_REAL);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-mask-msg-'));
const auditFile = path.join(dir, 'audit.jsonl');

const RULES = `audit: { store: "jsonl:${auditFile}", durability: os }
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
/** alice: strict masking (may refuse what the relaxed agent runs); agent: relaxed (strict: false). */
const MASKED = ['alice', 'agent'] as const;

/** Every text of an error the client got. */
function errorText(e: unknown): string {
  const x = e as pg.DatabaseError;
  return [x.message, x.detail, x.hint, x.where, x.internalQuery, x.schema, x.table, x.column, x.constraint].filter(Boolean).join(' | ');
}

const WITHHELD = /text withheld by Warden \(SQLSTATE [0-9A-Z]{5}, request (w-[0-9a-f]{12})\)/;

describe('masking: errors, notices, statistics, settings and COPY carry no value', () => {
  let env: TestEnv;
  beforeAll(async () => {
    env = await startEnv({
      yaml: (p) => baseYaml(p, RULES).replace('  - name: bob\n    kind: service\n', '  - name: bob\n    kind: service\n    groups: [dba]\n'),
    });
    const sql = [
      'CREATE TABLE customers (id int PRIMARY KEY, full_name text, email text UNIQUE, phone text, ssn text, note text)',
      `INSERT INTO customers VALUES (1, '${REAL.names[0]}', '${REAL.emails[0]}', '${REAL.phones[0]}', '${REAL.ssns[0]}', 'prefers email'),
        (2, '${REAL.names[1]}', '${REAL.emails[1]}', '${REAL.phones[1]}', '${REAL.ssns[1]}', 'call ${REAL.phones[1]} after 5')`,
      'CREATE TABLE notes (id int PRIMARY KEY, memo text)',
      `INSERT INTO notes VALUES (1, 'call ${REAL.memoPhone} after 5'), (2, 'write to ${REAL.memoEmail} first'), (3, 'nothing here')`,
      'CREATE TABLE chk (v text CHECK (length(v) < 5))',
      'CREATE VIEW customer_contacts AS SELECT id, email AS contact, full_name AS who FROM customers',
      'CREATE VIEW contacts_of_contacts AS SELECT contact AS c2 FROM customer_contacts',
      'CREATE SCHEMA billing',
      'CREATE TABLE billing.cards (customer_id int, card_number text)',
      `INSERT INTO billing.cards VALUES (1, '${REAL.cards[0]}'), (2, '${REAL.cards[1]}')`,
      'GRANT ALL ON SCHEMA billing TO warden_svc',
      'GRANT ALL ON ALL TABLES IN SCHEMA billing TO warden_svc',
      'ANALYZE billing.cards',
      `CREATE FUNCTION shout(t text) RETURNS text LANGUAGE plpgsql AS $$ BEGIN RAISE NOTICE 'got %', t; RAISE WARNING 'w %', t; RETURN 'ok'; END $$`,
      'GRANT ALL ON ALL TABLES IN SCHEMA public TO warden_svc',
      'ANALYZE customers',
      'ANALYZE notes',
    ];
    for (const s of sql) await direct(env.cluster, s);
  });
  afterAll(async () => {
    await env?.stop();
  });

  // ---- item 2: errors and notices -------------------------------------------------------

  /** Statements whose upstream error quotes a real value (checked directly against PostgreSQL first). */
  const ERRORS: [string, string][] = [
    [`SELECT ('[' || translate(ssn, '-', 'x') || ']')::json FROM customers`, '22P02'],
    [`SELECT (replace(ssn, '-', '') || 'e999')::float8 FROM customers`, '22003'],
    [`SELECT make_date(2020, substr(replace(ssn, '-', ''), 1, 7)::int, 1) FROM customers`, '22008'],
    [`INSERT INTO chk SELECT '(' || ssn FROM customers`, '23514'],
    [`DO $$ BEGIN RAISE EXCEPTION 'v=%', (SELECT full_name FROM customers WHERE id = 1); END $$`, 'P0001'],
    [`DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '42703', MESSAGE = (SELECT full_name FROM customers WHERE id = 1); END $$`, '42703'],
    [`SELECT contact::int FROM customer_contacts`, '22P02'],
    [`SELECT memo::int FROM notes WHERE id = 1`, '22P02'],
    [`SELECT reverse(full_name)::int FROM customers`, '22P02'],
  ];

  it('the error examples really return values when run directly', async () => {
    for (const [sql, code] of ERRORS) {
      const e = await direct(env.cluster, sql).catch((x: unknown) => x);
      expect((e as pg.DatabaseError).code, sql).toBe(code);
      const text = errorText(e);
      expect(leaks(text).length + (text.includes('1234567') ? 1 : 0), `${sql}: ${text}`).toBeGreaterThan(0);
    }
  });

  it.each(MASKED)('errors of a masked statement (%s) are reduced to the SQLSTATE and a request id (pg, simple and extended protocol); the audit has them masked', async (who) => {
    const c = await env.connect(who);
    const ids: string[] = [];
    try {
      for (const [sql, code] of ERRORS) {
        for (const q of [sql, { text: sql, values: [] as string[] }]) {
          if (typeof q !== 'string' && sql.startsWith('DO')) continue; // DO takes no parameters
          const e = await c.query(q).catch((x: unknown) => x);
          const text = errorText(e);
          expect(leaks(text), `${sql}: ${text}`).toEqual([]);
          // Strict mode may refuse the statement outright; relaxed mode runs it.
          if (who === 'alice' && (e as pg.DatabaseError).code === '42501') continue;
          expect((e as pg.DatabaseError).code, sql).toBe(code);
          expect(leaks(text), `${sql}: ${text}`).toEqual([]);
          expect(text).not.toContain('1234567');
          expect(text).toMatch(WITHHELD);
          expect((e as pg.DatabaseError).detail).toBeUndefined();
          expect((e as pg.DatabaseError).where).toBeUndefined();
          ids.push(WITHHELD.exec(text)![1]!);
        }
      }
      // The session goes on.
      expect((await c.query('SELECT count(*)::int AS n FROM customers')).rows[0].n).toBe(2);
    } finally {
      await c.end();
    }
    // The audit has each error under its request id, masked.
    await new Promise((r) => setTimeout(r, 300));
    const audit = fs.readFileSync(auditFile, 'utf8');
    for (const id of ids) expect(audit).toContain(id);
    expect(leaks(audit)).toEqual([]);
    expect(audit).not.toContain('1234567');
  });

  it('an error raised before execution (undefined column) and one of a statement that sees no data keep their text', async () => {
    const c = await env.connect('alice');
    try {
      const e1 = await c.query('SELECT nosuchcol FROM customers').catch((x: unknown) => x);
      expect((e1 as pg.DatabaseError).code).toBe('42703');
      expect((e1 as Error).message).toBe('column "nosuchcol" does not exist');
      const e2 = await c.query('SELECT 1/0').catch((x: unknown) => x);
      expect((e2 as Error).message).toBe('division by zero');
    } finally {
      await c.end();
    }
  });

  it.each(MASKED)('notices and warnings (RAISE in a DO block or a function) are reduced while a masked statement (%s) runs', async (who) => {
    const direct1: string[] = [];
    const d = new pg.Client({ host: '127.0.0.1', port: env.cluster.port, user: 'warden_svc', password: 'svc-Secret-9f8e', database: 'app' });
    await d.connect();
    d.on('notice', (n) => direct1.push(errorText(n)));
    await d.query(`DO $$ BEGIN RAISE NOTICE '%', (SELECT ssn FROM customers WHERE id = 1); END $$`);
    await d.query('SELECT shout(email) FROM customers');
    await d.end();
    expect(leaks(direct1.join(' ')).length).toBeGreaterThan(0);

    const c = await env.connect(who);
    const seen: unknown[] = [];
    c.on('notice', (n) => seen.push(n));
    let ran = 0;
    const run = async (q: string | pg.QueryConfig): Promise<void> => {
      const e = await c.query(q).then(
        () => undefined,
        (x: unknown) => x,
      );
      if (e === undefined) ran++;
      else {
        expect(who).toBe('alice'); // only strict mode refuses
        expect((e as pg.DatabaseError).code).toBe('42501');
      }
    };
    try {
      await run(`DO $$ BEGIN RAISE NOTICE '%', (SELECT ssn FROM customers WHERE id = 1); RAISE INFO 'i %', (SELECT email FROM customers WHERE id = 2); END $$`);
      await run('SELECT shout(email) FROM customers');
      await run({ text: 'SELECT shout(full_name) FROM customers WHERE id = $1', values: [1] });
      await run('SELECT shout(memo) FROM notes');
      if (who === 'agent') expect(ran).toBe(4);
      expect(seen.length).toBeGreaterThanOrEqual(ran > 0 ? 2 : 0);
      if (who === 'agent') expect(seen.length).toBeGreaterThanOrEqual(2 + 4 + 2 + 6);
      const text = seen.map(errorText).join('\n');
      expect(leaks(text), text).toEqual([]);
      for (const n of seen) expect(errorText(n)).toMatch(WITHHELD);
      expect(seen.map((n) => (n as { severity?: string }).severity)).toContain('WARNING');
    } finally {
      await c.end();
    }
  });

  it.each(MASKED)('a notice of a deferred trigger at COMMIT (simple) or at Sync (extended, autocommit) is withheld too (%s)', async (who) => {
    await direct(env.cluster, 'CREATE TABLE IF NOT EXISTS deferred_t (v text)');
    await direct(
      env.cluster,
      `CREATE OR REPLACE FUNCTION tell() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE NOTICE 'row %', (SELECT full_name FROM customers WHERE id = 1); RETURN NULL; END $$`,
    );
    await direct(env.cluster, 'DROP TRIGGER IF EXISTS tell_t ON deferred_t');
    await direct(env.cluster, 'CREATE CONSTRAINT TRIGGER tell_t AFTER INSERT ON deferred_t DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION tell()');
    await direct(env.cluster, 'GRANT ALL ON deferred_t TO warden_svc');
    const c = await env.connect(who);
    const seen: string[] = [];
    c.on('notice', (n) => seen.push(errorText(n)));
    try {
      await c.query('BEGIN');
      await c.query(`INSERT INTO deferred_t VALUES ('x')`);
      expect(seen).toEqual([]);
      await c.query('COMMIT');
      expect(seen).toHaveLength(1);
      await c.query({ text: 'INSERT INTO deferred_t VALUES ($1)', values: ['y'] });
      expect(seen).toHaveLength(2);
      const text = seen.join('\n');
      expect(leaks(text), text).toEqual([]);
      for (const n of seen) expect(n).toMatch(WITHHELD);
    } finally {
      await c.end();
    }
  });

  it.each(MASKED)("psql (%s): every example of the issue's errors, notices, statistics, settings and free text shows no value", async (who) => {
    const examples = [
      ...ERRORS.map(([sql]) => sql),
      `DO $$ BEGIN RAISE NOTICE '%', (SELECT ssn FROM customers WHERE id = 1); END $$`,
      'SELECT shout(email) FROM customers',
      `SELECT histogram_bounds::text FROM pg_stats WHERE tablename = 'customers'`,
      `SELECT set_config('my.v', (SELECT string_agg(ssn, ',') FROM customers), false)`,
      'SHOW my.v',
      `SELECT current_setting('my.v', true)`,
      `COPY (SELECT memo FROM notes) TO STDOUT`,
      `SELECT replace(memo, ' ', '') FROM notes`,
    ];
    const args = ['-A', '-t', '-v', 'VERBOSITY=verbose'];
    for (const e of examples) args.push('-c', e);
    const p = await runPsql({ port: env.warden.port, user: who, password: PASSWORDS[who], database: 'app', args });
    const all = `${p.out}\n${p.err}`;
    expect(all).toMatch(/text withheld by Warden/);
    expect(all).toMatch(/statistics/);
    expect(leaks(all), all).toEqual([]);
    expect(all).not.toContain('1234567');
    // Directly, the same psql run shows values.
    const d = await runPsql({ port: env.cluster.port, user: 'warden_svc', password: 'svc-Secret-9f8e', database: 'app', args });
    expect(leaks(`${d.out}\n${d.err}`).length).toBeGreaterThan(0);
  });

  // ---- item 3: statistics and settings ----------------------------------------------------

  const svc = async (): Promise<pg.Client> => {
    const d = new pg.Client({ host: '127.0.0.1', port: env.cluster.port, user: 'warden_svc', password: 'svc-Secret-9f8e', database: 'app' });
    await d.connect();
    return d;
  };

  const STATS: string[] = [
    `SELECT most_common_vals::text, histogram_bounds::text FROM pg_stats WHERE tablename = 'customers'`,
    `SELECT histogram_bounds::text FROM pg_catalog.pg_stats WHERE attname = 'ssn'`,
    `SELECT s.h FROM (SELECT histogram_bounds::text AS h FROM pg_stats) s`,
    `WITH x AS (SELECT histogram_bounds::text AS h FROM pg_stats) SELECT h FROM x`,
    `SELECT c.id, l.h FROM customers c, LATERAL (SELECT histogram_bounds::text AS h FROM pg_stats WHERE attname = 'email') l`,
    `SELECT id FROM customers WHERE EXISTS (SELECT 1 FROM pg_stats WHERE histogram_bounds::text LIKE '%123%')`,
    `SELECT id FROM customers ORDER BY (SELECT count(*) FROM pg_stats)`,
    `SELECT (SELECT string_agg(histogram_bounds::text, ',') FROM pg_stats WHERE tablename = 'customers')`,
    `SELECT * FROM stats_copy WHERE tablename = 'customers'`,
    `SELECT * FROM stats_of_stats`,
    `SELECT * FROM pg_stats_ext`,
    `SELECT * FROM pg_stats_ext_exprs`,
    `SELECT * FROM pg_statistic`,
    `SELECT stxdmcv FROM pg_statistic_ext_data`,
    `SELECT m.* FROM pg_statistic_ext_data d, pg_mcv_list_items(d.stxdmcv) m`,
  ];

  it('column statistics are refused in any clause, also through views over them; ANALYZE runs', async () => {
    await direct(env.cluster, 'CREATE VIEW stats_copy AS SELECT tablename, attname, most_common_vals::text AS mcv, histogram_bounds::text AS hb FROM pg_stats');
    await direct(env.cluster, 'CREATE VIEW stats_of_stats AS SELECT tablename, hb AS h FROM stats_copy');
    await direct(env.cluster, 'GRANT SELECT ON stats_copy, stats_of_stats TO warden_svc');
    const d = await svc();
    try {
      const r = await d.query(STATS[0]!);
      expect(leaks(JSON.stringify(r.rows)).length).toBeGreaterThan(0);
      const v = await d.query('SELECT * FROM stats_of_stats');
      expect(leaks(JSON.stringify(v.rows)).length).toBeGreaterThan(0);
    } finally {
      await d.end();
    }
    for (const who of MASKED) {
    const c = await env.connect(who);
    try {
      for (const sql of STATS) {
        const e = await c.query(sql).catch((x: unknown) => x);
        expect((e as pg.DatabaseError).code, sql).toBe('42501');
        expect((e as Error).message, sql).toMatch(/statistics/);
      }
      await c.query('ANALYZE customers');
      expect((await c.query('SELECT count(*)::int AS n FROM customers')).rows[0].n).toBe(2);
    } finally {
      await c.end();
    }
    }
    const p = await runPsql({ port: env.warden.port, user: 'alice', password: PASSWORDS.alice, database: 'app', args: ['-A', '-t', '-c', STATS[0]!] });
    expect(p.code).not.toBe(0);
    expect(p.err).toMatch(/statistics/);
    expect(leaks(p.out + p.err)).toEqual([]);
  });

  it('settings are no stash: set_config from table data is refused, custom settings read back masked, pg_settings refused', async () => {
    // Directly, the stash works.
    const d = await svc();
    try {
      await d.query(`SELECT set_config('my.v', (SELECT string_agg(ssn, ',') FROM customers), false)`);
      const r = await d.query('SHOW my.v');
      expect(leaks(JSON.stringify(r.rows)).length).toBeGreaterThan(0);
    } finally {
      await d.end();
    }
    const c = await env.connect('alice');
    const status: string[] = [];
    (c as unknown as { connection: { on(e: string, f: (m: { parameterName: string; parameterValue: string }) => void): void } }).connection.on(
      'parameterStatus',
      (m) => status.push(`${m.parameterName}=${m.parameterValue}`),
    );
    const notified: string[] = [];
    c.on('notification', (n) => notified.push(String(n.payload)));
    try {
      await c.query('LISTEN ch');
      const refused = [
        `SELECT set_config('my.v', (SELECT string_agg(ssn, ',') FROM customers), false)`,
        `SELECT set_config('my.v', ssn, false) FROM customers`,
        `SELECT set_config('application_name', (SELECT email FROM customers LIMIT 1), false)`,
        `SELECT set_config('my.' || replace(ssn, '-', ''), 'x', false) FROM customers`,
        `DO $$ BEGIN PERFORM set_config('my.w', (SELECT full_name FROM customers LIMIT 1), false); END $$`,
        `SELECT pg_notify('ch', email) FROM customers`,
        `DO $$ DECLARE v text; BEGIN SELECT ssn INTO v FROM customers LIMIT 1; PERFORM pg_notify('ch', v); END $$`,
        `SELECT name, setting FROM pg_settings WHERE name LIKE 'my.%'`,
        `SELECT * FROM pg_show_all_settings()`,
      ];
      for (const sql of refused) {
        const e = await c.query(sql).catch((x: unknown) => x);
        expect((e as pg.DatabaseError).code, sql).toBe('42501');
      }
      // A constant (or a parameter) may be set; custom settings come back masked, built-in ones as they are.
      await c.query(`SELECT set_config('my.k', 'Annabel Realname', false)`);
      await c.query({ text: `SELECT set_config('my.p', $1, false)`, values: [REAL.ssns[1]] });
      const shown = await c.query('SHOW my.k');
      const cur = await c.query(`SELECT current_setting('my.p') AS v, current_setting('my.k') AS k`);
      const all = await c.query('SHOW ALL');
      const plain = await c.query(`SELECT current_setting('search_path') AS p`);
      expect(plain.rows[0].p).toBe('"$user", public');
      const text = JSON.stringify([shown.rows, cur.rows, all.rows]);
      expect(leaks(text), text).toEqual([]);
      await new Promise((r) => setTimeout(r, 100));
      expect(leaks(status.join(' ') + notified.join(' '))).toEqual([]);
    } finally {
      await c.end();
    }
  });

  it("other sessions' statement texts (pg_stat_activity, pg_stat_statements) are refused", async () => {
    // An unmasked identity's statement with a real value in its text, running now.
    const dba = await env.connect('bob');
    const running = dba.query(`SELECT pg_sleep(1.5), '${REAL.ssns[0]}' AS v`);
    try {
      await new Promise((r) => setTimeout(r, 300));
      const d = await svc();
      try {
        const r = await d.query(`SELECT query FROM pg_stat_activity WHERE query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()`);
        expect(leaks(JSON.stringify(r.rows)).length).toBeGreaterThan(0);
      } finally {
        await d.end();
      }
      for (const who of MASKED) {
        const c = await env.connect(who);
        try {
          for (const sql of [
            'SELECT query FROM pg_stat_activity',
            'SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE query LIKE $1',
            'SELECT (SELECT string_agg(query, ¦) FROM pg_stat_activity)'.replace('¦', "','"),
            'SELECT * FROM pg_stat_get_activity(NULL)',
            'SELECT pg_stat_get_backend_activity(s) FROM pg_stat_get_backend_idset() s',
          ]) {
            const e = await c.query(sql, sql.includes('$1') ? ['%123%'] : []).catch((x: unknown) => x);
            expect((e as pg.DatabaseError).code, sql).toBe('42501');
            expect((e as Error).message).toMatch(/statement texts of other sessions/);
          }
        } finally {
          await c.end();
        }
      }
    } finally {
      await running;
      await dba.end();
    }
  });

  // ---- item 5: COPY and free text ---------------------------------------------------------

  const psqlAs = (who: 'alice' | 'agent', sql: string) =>
    runPsql({ port: env.warden.port, user: who, password: PASSWORDS[who], database: 'app', args: ['-A', '-t', '-c', sql] });
  const psqlDirect = (sql: string) =>
    runPsql({ port: env.cluster.port, user: 'warden_svc', password: 'svc-Secret-9f8e', database: 'app', args: ['-A', '-t', '-c', sql] });

  /** COPY statements whose output carries real values directly; through Warden masked (and each output checked). */
  const COPIES: [string, (lines: string[]) => void][] = [
    [
      'COPY customers TO STDOUT',
      (l) => {
        expect(l.map((x) => x.split('\t')[0]).sort()).toEqual(['1', '2']);
        const one = l.find((x) => x.startsWith('1\t'))!.split('\t');
        expect(one[4]).toBe('***-**-6789');
        expect(one[5]).toBe('prefers email');
      },
    ],
    [
      'COPY customers (id, ssn, email) TO STDOUT WITH (FORMAT csv, HEADER)',
      (l) => {
        expect(l[0]).toBe('id,ssn,email');
        expect(l.slice(1).filter((x) => x.startsWith('1,***-**-6789,')), l.join('\n')).toHaveLength(1);
      },
    ],
    [`COPY public.customers (full_name, note) TO STDOUT WITH CSV DELIMITER ';' QUOTE '''' NULL 'nil'`, (l) => expect(l).toHaveLength(2)],
    ['COPY (SELECT email, full_name FROM customers ORDER BY id) TO STDOUT', (l) => expect(l).toHaveLength(2)],
    // A query of bare columns of one relation: planned per column, like a result (the id stays).
    ['COPY (SELECT c.id, ssn, note FROM customers c WHERE id > 0 ORDER BY id) TO STDOUT', (l) => expect(l[0]).toBe('1\t***-**-6789\tprefers email')],
    ['COPY (SELECT * FROM customers ORDER BY id) TO STDOUT WITH CSV', (l) => expect(l[0]!.startsWith('1,')).toBe(true)],
    ['COPY (SELECT * FROM customer_contacts) TO STDOUT WITH (FORMAT csv)', (l) => expect(l).toHaveLength(2)],
    [
      'COPY (SELECT memo FROM notes ORDER BY id) TO STDOUT',
      (l) => {
        expect(l).toHaveLength(3);
        expect(l[2]).toBe('nothing here');
        expect(l[0]).toMatch(/^call .* after 5$/);
      },
    ],
    [`COPY notes TO STDOUT WITH (FORMAT csv, DELIMITER '|')`, (l) => expect(l).toContain('3|nothing here')],
    [`COPY (SELECT replace(memo, ' ', '') FROM notes ORDER BY id) TO STDOUT`, (l) => expect(l).toHaveLength(3)],
    ['COPY (SELECT upper(memo) FROM notes ORDER BY id) TO STDOUT WITH CSV', (l) => expect(l).toHaveLength(3)],
    ['COPY (SELECT reverse(memo) FROM notes ORDER BY id) TO STDOUT', (l) => expect(l).toHaveLength(3)],
    [`COPY (SELECT translate(memo, ' +', '') FROM notes ORDER BY id) TO STDOUT`, (l) => expect(l).toHaveLength(3)],
  ];

  it.each(MASKED)('COPY ... TO STDOUT (%s) is masked like a query result: text and CSV, tables, queries and views; psql', async (who) => {
    for (const [sql, check] of COPIES) {
      const d = await psqlDirect(sql);
      expect(d.code, d.err).toBe(0);
      expect(leaks(d.out).length, `${sql} directly: ${d.out}`).toBeGreaterThan(0);
      const p = await psqlAs(who, sql);
      const all = `${p.out}\n${p.err}`;
      expect(leaks(all), `${sql}: ${all}`).toEqual([]);
      if (p.code !== 0) {
        // Strict mode may refuse a COPY of computed values; relaxed mode runs them all.
        expect(who, `${sql}: ${p.err}`).toBe('alice');
        expect(p.err).toMatch(/masks sensitive data/);
        continue;
      }
      check(p.out.replace(/\n$/, '').split('\n'));
    }
  });

  it('binary COPY and COPY TO a file are refused; postgres.js reads a masked COPY stream', async () => {
    const c = await env.connect('agent');
    try {
      for (const sql of ['COPY customers TO STDOUT WITH (FORMAT binary)', 'COPY customers TO STDOUT BINARY', "COPY (SELECT memo FROM notes) TO '/tmp/x.txt'"]) {
        const e = await c.query(sql).catch((x: unknown) => x);
        expect((e as pg.DatabaseError).code, sql).toBe('42501');
      }
      expect((await c.query('SELECT count(*)::int AS n FROM notes')).rows[0].n).toBe(3);
    } finally {
      await c.end();
    }
    const sql = postgres({ host: '127.0.0.1', port: env.warden.port, user: 'agent', password: PASSWORDS.agent, database: 'app', max: 1 });
    try {
      const stream = await sql`COPY (SELECT id, email, memo FROM customers JOIN notes USING (id)) TO STDOUT WITH (FORMAT csv)`.readable();
      const chunks: Buffer[] = [];
      for await (const ch of stream) chunks.push(Buffer.from(ch as Buffer));
      const out = Buffer.concat(chunks).toString('utf8');
      expect(out.trim().split('\n')).toHaveLength(2);
      expect(leaks(out), out).toEqual([]);
    } finally {
      await sql.end();
    }
  });

  it.each(MASKED)('free text computed from a scanned column (%s) is scanned after normalisation', async (who) => {
    const texts: [string, string][] = [
      [`SELECT replace(memo, ' ', '') AS v FROM notes`, 'nothinghere'],
      ['SELECT upper(memo) AS v FROM notes', 'NOTHING HERE'],
      [`SELECT memo || '' AS v FROM notes`, 'nothing here'],
      ['SELECT reverse(memo) AS v FROM notes', 'ereh gnihton'],
      [`SELECT translate(memo, ' +-', '') AS v FROM notes`, 'nothinghere'],
      [`SELECT regexp_replace(memo, '[^0-9]', '', 'g') AS v FROM notes`, ''],
    ];
    const d = await svc();
    const c = await env.connect(who);
    try {
      let leakedDirectly = 0;
      for (const [q, untouched] of texts) {
        const r0 = await d.query(q);
        if (leaks(JSON.stringify(r0.rows)).length > 0) leakedDirectly++;
        const r = await c.query(q).catch((x: unknown) => x);
        if (r instanceof Error) {
          expect(who).toBe('alice');
          continue;
        }
        const rows = (r as pg.QueryResult).rows;
        const text = JSON.stringify(rows);
        expect(leaks(text), `${q}: ${text}`).toEqual([]);
        // Binary results too (pg's types omit `binary`, which pg supports).
        // A parameter makes pg use the extended protocol, where it asks for binary results.
        const bin = await c.query({ text: `${q} WHERE $1::int IS NOT NULL`, values: [1], binary: true } as unknown as pg.QueryConfig);
        const binText = bin.rows.map((x: { v: unknown }) => String(x.v)).join('\n');
        expect(leaks(binText), `${q} (binary): ${binText}`).toEqual([]);
        // A value with nothing to find passes unchanged.
        expect(rows.map((x) => x.v)).toContain(untouched);
      }
      expect(leakedDirectly).toBe(texts.length);
    } finally {
      await c.end();
      await d.end();
    }
  });
  // ---- the corpus: attempts through channels outside the result rows ---------------------

  interface ChannelAttempt {
    readonly channel: 'error' | 'notice' | 'stats' | 'settings' | 'copy' | 'freetext';
    readonly setup: string[];
    readonly sql: string;
  }
  const corpus = YAML.parse(fs.readFileSync(path.resolve(import.meta.dirname, '../corpus/masking-bypass.yaml'), 'utf8')) as unknown[];
  const channelAttempts = corpus.filter((e): e is ChannelAttempt => typeof e === 'object' && e !== null && typeof (e as { channel?: unknown }).channel === 'string');

  /** Everything a client sees of an attempt: rows, error fields, notices, notifications, ParameterStatus. */
  async function observe(cfg: pg.ClientConfig, a: ChannelAttempt): Promise<{ text: string; outcome: string }> {
    const seen: string[] = [];
    const c = new pg.Client(cfg);
    c.on('notice', (n) => seen.push(errorText(n)));
    c.on('notification', (n) => seen.push(`${n.channel}: ${n.payload ?? ''}`));
    await c.connect();
    (c as unknown as { connection: { on(e: string, f: (m: { parameterName: string; parameterValue: string }) => void): void } }).connection.on('parameterStatus', (m) =>
      seen.push(`${m.parameterName}=${m.parameterValue}`),
    );
    let outcome = 'ok';
    try {
      for (const s of a.setup) {
        const e = await c.query(s).then(
          () => undefined,
          (x: unknown) => x as pg.DatabaseError,
        );
        if (e?.code === '42501') return { text: seen.join('\n') + errorText(e), outcome: '42501 (setup)' };
        if (e) throw new Error(`setup of ${a.sql} failed: ${s}: ${e.message}`);
      }
      const r = await c.query(a.sql).catch((x: unknown) => x as pg.DatabaseError);
      if (r instanceof Error) {
        seen.push(errorText(r));
        outcome = (r as pg.DatabaseError).code ?? 'error';
      } else seen.push(JSON.stringify((Array.isArray(r) ? r : [r]).map((x: pg.QueryResult) => x.rows)));
      await new Promise((res) => setTimeout(res, 30)); // notifications
    } finally {
      await c.end().catch(() => undefined);
    }
    return { text: seen.join('\n'), outcome };
  }

  async function observeCopy(port: number, user: string, password: string, sql: string): Promise<{ text: string; outcome: string }> {
    const p = await runPsql({ port, user, password, database: 'app', args: ['-A', '-t', '-c', sql] });
    return { text: `${p.out}\n${p.err}`, outcome: p.code === 0 ? 'ok' : /42501|masks sensitive data/.test(p.err) ? '42501' : `exit ${p.code}` };
  }

  it(`the corpus's channel attempts (${channelAttempts.length}) return real values directly, and none through Warden`, async () => {
    expect(channelAttempts.length).toBeGreaterThanOrEqual(100);
    expect(new Set(channelAttempts.map((a) => a.channel))).toEqual(new Set(['error', 'notice', 'stats', 'settings', 'copy', 'freetext']));
    const directCfg: pg.ClientConfig = { host: '127.0.0.1', port: env.cluster.port, user: 'warden_svc', password: 'svc-Secret-9f8e', database: 'app' };
    const notDirect: string[] = [];
    const failures: string[] = [];
    const outcomes = new Map<string, number>();
    for (const a of channelAttempts) {
      const binary = /format binary/i.test(a.sql);
      const d = a.channel === 'copy' ? await observeCopy(env.cluster.port, 'warden_svc', 'svc-Secret-9f8e', a.sql) : await observe(directCfg, a);
      // Binary COPY: the value is there in its binary form (not searched for); it is refused through Warden.
      if (!binary && leaks(d.text).length === 0) notDirect.push(`${a.sql}\n    ${d.text.slice(0, 300)}`);
      for (const who of MASKED) {
        const w = a.channel === 'copy' ? await observeCopy(env.warden.port, who, PASSWORDS[who], a.sql) : await observe(env.client(who), a);
        const key = `${a.channel} ${who} ${w.outcome.startsWith('42501') ? 'refused' : w.outcome === 'ok' ? 'ok' : 'error'}`;
        outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
        const found = leaks(w.text);
        if (found.length > 0) failures.push(`${who}: ${a.sql}\n    leaked ${found.join(', ')}: ${w.text.slice(0, 300)}`);
        if (binary && !w.outcome.startsWith('42501')) failures.push(`${who}: ${a.sql} was not refused`);
      }
    }
    expect(notDirect).toEqual([]);
    expect(failures).toEqual([]);
    // Not all refusals: errors and notices arrive (withheld), COPY and free text come back masked.
    expect(outcomes.get('copy agent ok') ?? 0).toBeGreaterThanOrEqual(10);
    expect(outcomes.get('freetext agent ok') ?? 0).toBeGreaterThanOrEqual(10);
    expect(outcomes.get('error agent error') ?? 0).toBeGreaterThanOrEqual(20);
    expect(outcomes.get('notice agent ok') ?? 0).toBeGreaterThanOrEqual(10);
    expect(outcomes.get('stats alice refused')).toBe(channelAttempts.filter((a) => a.channel === 'stats').length);
  }, 300_000);
});
