/** Real clients through Warden: psql, pg, postgres (porsager), pgbench. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { psqlInterrupted, run, runPsql } from '../helpers/psql.js';
import pg from 'pg';
import postgres from 'postgres';
import { startEnv, PASSWORDS, type TestEnv } from '../helpers/warden-env.js';

let env: TestEnv;

// Warden runs in this process: clients must be spawned asynchronously.
const psql = (args: string[], input?: string) =>
  runPsql({ port: env.warden.port, user: 'alice', password: PASSWORDS.alice, database: 'app', args: ['-v', 'ON_ERROR_STOP=1', ...args], input });

function sqlFor(identity: keyof typeof PASSWORDS = 'alice', extra: postgres.Options<Record<string, never>> = {}) {
  return postgres({ host: '127.0.0.1', port: env.warden.port, user: identity, password: PASSWORDS[identity], database: 'app', max: 1, onnotice: () => undefined, ...extra });
}

beforeAll(async () => {
  env = await startEnv();
  const c = await env.connect();
  await c.query(`CREATE TABLE items (id int primary key, name text, price numeric(10,2), payload bytea, created timestamptz default now())`);
  await c.query(`INSERT INTO items SELECT g, 'item ' || g, g * 1.5, decode(md5(g::text), 'hex') FROM generate_series(1, 100) g`);
  await c.end();
});

afterAll(async () => {
  await env?.stop();
});

describe('psql', () => {
  it('runs simple and multi-statement queries', async () => {
    const r = await psql(['-At', '-c', "select count(*) from items; select 'a' || 'b'"]);
    expect(r.err).toBe('');
    expect(r.out.trim().split('\n')).toEqual(['100', 'ab']);
  });

  it('reports errors and keeps going in the same session', async () => {
    const r = await psql(['-At', '-v', 'ON_ERROR_STOP=0', '-f', '-'], 'select nope;\nselect 42;\n');
    expect(r.err).toContain('column "nope" does not exist');
    expect(r.out.trim()).toBe('42');
  });

  it('COPY FROM STDIN and COPY TO STDOUT', async () => {
    const r = await psql(['-At', '-f', '-'], 'create table cp(a int, b text);\ncopy cp from stdin;\n1\tone\n2\ttwo\n\\.\ncopy (select * from cp order by a) to stdout;\n');
    expect(r.err).toBe('');
    expect(r.out).toContain('1\tone\n2\ttwo');
  });

  it('a ^C cancels pg_sleep(30) through Warden quickly', async () => {
    const { err, elapsedMs } = await psqlInterrupted(['-h', '127.0.0.1', '-p', String(env.warden.port), '-U', 'alice', '-d', 'app', '-c', 'select pg_sleep(30)'], {
      ...process.env,
      PGPASSWORD: PASSWORDS.alice,
    });
    expect(err).toContain('canceling statement due to user request');
    expect(elapsedMs).toBeLessThan(5000);
  });
});

describe('pg (node-postgres)', () => {
  it('simple, parameterized, named prepared, binary results', async () => {
    const c = await env.connect();
    try {
      expect((await c.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
      const r = await c.query('select id, name, price from items where id = $1', [7]);
      expect(r.rows).toEqual([{ id: 7, name: 'item 7', price: '10.50' }]);
      for (let i = 1; i <= 3; i++) {
        const n = await c.query({ name: 'by-id', text: 'select name from items where id = $1', values: [i] });
        expect(n.rows[0].name).toBe(`item ${i}`);
      }
      const b = await c.query({ text: 'select id, price::float8 as p, id::int8 as big, true as t from items where id = $1', values: [3], binary: true } as pg.QueryConfig);
      expect(b.rows[0]).toEqual({ id: 3, p: 4.5, big: '3', t: true });
    } finally {
      await c.end();
    }
  });

  it('errors in the extended protocol leave the session usable; transactions work', async () => {
    const c = await env.connect();
    try {
      await expect(c.query('select $1::int', ['not a number'])).rejects.toMatchObject({ code: '22P02' });
      expect((await c.query('select $1::int + 1 as x', [41])).rows[0].x).toBe(42);
      await c.query('begin');
      await c.query('insert into items(id, name) values (1000, $1)', ['tx']);
      await expect(c.query('select 1/0')).rejects.toMatchObject({ code: '22012' });
      await expect(c.query('select 1')).rejects.toMatchObject({ code: '25P02' });
      await c.query('rollback');
      expect((await c.query('select count(*)::int as n from items where id = 1000')).rows[0].n).toBe(0);
    } finally {
      await c.end();
    }
  });

  it('LISTEN/NOTIFY and notices pass through', async () => {
    const a = await env.connect();
    const b = await env.connect('bob');
    try {
      await a.query('listen warden_test');
      const got = new Promise<pg.Notification>((resolve) => a.on('notification', resolve));
      await b.query("notify warden_test, 'hello'");
      expect((await got).payload).toBe('hello');
      const notice = new Promise<{ message?: string }>((resolve) => a.on('notice', resolve));
      await a.query("do $$ begin raise notice 'note %', 42; end $$");
      expect((await notice).message).toBe('note 42');
    } finally {
      await a.end();
      await b.end();
    }
  });

  it('startup options reach the upstream, minus warden.* settings', async () => {
    const c = new pg.Client({ ...env.client(), options: '-c search_path=pg_catalog,public -c warden.ticket=OPS-12 -c statement_timeout=12345' });
    await c.connect();
    try {
      expect((await c.query('show search_path')).rows[0].search_path).toBe('pg_catalog,public');
      expect((await c.query('show statement_timeout')).rows[0].statement_timeout).toBe('12345ms');
      expect((await c.query("select current_setting('warden.ticket', true) as t")).rows[0].t).toBeNull();
    } finally {
      await c.end();
    }
  });

  it('refuses to let a client choose its upstream role at startup', async () => {
    const c = new pg.Client({ ...env.client(), options: '-c role=postgres' });
    await expect(c.connect()).rejects.toMatchObject({ code: '42501' });
  });

  it('streams a row with a 16 MB value', async () => {
    const c = await env.connect();
    try {
      const r = await c.query("select length(repeat('x', 16*1024*1024)) as n, repeat('y', 16*1024*1024) as big");
      expect(r.rows[0].n).toBe(16 * 1024 * 1024);
      expect(r.rows[0].big.length).toBe(16 * 1024 * 1024);
    } finally {
      await c.end();
    }
  });
});

describe('postgres (porsager)', () => {
  it('prepared statements, pipelining and transactions', async () => {
    const sql = sqlFor();
    try {
      const ids = Array.from({ length: 50 }, (_, i) => i + 1);
      // max: 1 → all 50 queries are pipelined on one connection.
      const rows = await Promise.all(ids.map((id) => sql`select name from items where id = ${id}`));
      expect(rows.map((r) => r[0].name)).toEqual(ids.map((id) => `item ${id}`));
      const results = await Promise.allSettled([sql`select 1 as a`, sql`select nonexistent`, sql`select 3 as c`]);
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
      await sql.begin(async (tx) => {
        await tx`insert into items(id, name) values (2000, 'in tx')`;
      });
      expect((await sql`select name from items where id = 2000`)[0].name).toBe('in tx');
    } finally {
      await sql.end();
    }
  });

  it('COPY in and out', async () => {
    const sql = sqlFor();
    try {
      await sql`create table copy_t (a int, b text)`;
      const w = await sql`copy copy_t from stdin`.writable();
      for (let i = 0; i < 1000; i++) w.write(`${i}\tv${i}\n`);
      await new Promise<void>((resolve, reject) => w.end((err?: Error | null) => (err ? reject(err) : resolve())));
      await new Promise((r) => setTimeout(r, 50));
      expect((await sql`select count(*)::int as n from copy_t`)[0].n).toBe(1000);
      const rd = await sql`copy (select * from copy_t order by a) to stdout`.readable();
      let out = '';
      for await (const chunk of rd) out += chunk.toString();
      expect(out.split('\n').filter(Boolean)).toHaveLength(1000);
      expect(out.startsWith('0\tv0\n1\tv1\n')).toBe(true);
    } finally {
      await sql.end();
    }
  });

  it('cancel stops pg_sleep(30) well within a second', async () => {
    const sql = sqlFor();
    try {
      const q = sql`select pg_sleep(30)`;
      const p = q.execute();
      await new Promise((r) => setTimeout(r, 500));
      const t0 = Date.now();
      await q.cancel();
      await expect(p).rejects.toMatchObject({ code: '57014' });
      const elapsed = Date.now() - t0;
      expect(elapsed).toBeLessThan(1000);
      expect((await sql`select 1 as ok`)[0].ok).toBe(1);
    } finally {
      await sql.end();
    }
  });

  it('reports ParameterStatus changes', async () => {
    const seen: Record<string, string> = {};
    const sql = sqlFor('alice', { onparameter: (k: string, v: string) => (seen[k] = v) } as postgres.Options<Record<string, never>>);
    try {
      await sql`set application_name = 'warden-test-app'`;
      expect(seen.application_name).toBe('warden-test-app');
    } finally {
      await sql.end();
    }
  });
});

describe('a client that vanishes', () => {
  it('mid-statement: Warden cancels the statement upstream', async () => {
    const c = await env.connect('bob');
    c.on('error', () => undefined); // the test itself breaks the connection
    const pid = (await c.query('select pg_backend_pid() as pid')).rows[0].pid as number;
    void c.query('select pg_sleep(30)').catch(() => undefined);
    await new Promise((r) => setTimeout(r, 300));
    (c as unknown as { connection: { stream: import('node:net').Socket } }).connection.stream.destroy();
    const t0 = Date.now();
    let state: string | null = 'active';
    while (Date.now() - t0 < 5000) {
      const r = await env.cluster.query(`select state from pg_stat_activity where pid = ${pid}`, 'app');
      state = r.rows[0]?.state ?? null;
      if (state !== 'active') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(state).not.toBe('active');
  });
});

describe('pgbench', () => {
  it('select-only (simple, extended, prepared) and TPC-B complete without errors', async () => {
    const base = ['-h', '127.0.0.1', '-p', String(env.warden.port), '-U', 'alice', 'app'];
    const e = { ...process.env, PGPASSWORD: PASSWORDS.alice };
    const init = await run('pgbench', ['-i', '-s', '1', '-q', ...base], e);
    expect(init.code, init.err).toBe(0);
    for (const args of [['-S', '-M', 'simple'], ['-S', '-M', 'extended'], ['-S', '-M', 'prepared'], ['-M', 'simple'], ['-M', 'extended']]) {
      const r = await run('pgbench', ['-n', '-c', '8', '-j', '2', '-t', '200', ...args, ...base], e);
      expect(r.code, r.err).toBe(0);
      expect(r.out).toMatch(/number of transactions actually processed: 1600\/1600/);
      expect(r.out).toMatch(/number of failed transactions: 0 /);
    }
  });
});
