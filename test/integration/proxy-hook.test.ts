/**
 * The per-statement interception point, proved with a test-only hook: refusing
 * statements (simple and extended protocol, in and out of transactions, with
 * pipelining) and rewriting DataRows, with the session usable afterwards.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import postgres from 'postgres';
import { startEnv, PASSWORDS, type TestEnv } from '../helpers/warden-env.js';
import { runPsql } from '../helpers/psql.js';
import type { RowRewriter, SessionHooks, StatementOutcome, Verdict } from '../../src/contract/statement-hooks.js';
import { decodeDataRow, encodeDataRow, type FieldDescription } from '../../src/wire/index.js';

let env: TestEnv;
const outcomes: { sql: string; outcome: StatementOutcome }[] = [];
const seenParams: string[] = [];

/** Upper-cases every text value of columns named `secret`. */
class UpperSecret implements RowRewriter {
  private idx = -1;
  describe(fields: readonly FieldDescription[]): void {
    this.idx = fields.findIndex((f) => f.name === 'secret');
  }
  rewrite(raw: Buffer, body: Buffer): Buffer {
    if (this.idx < 0) return raw;
    const cols = decodeDataRow(body);
    const v = cols[this.idx];
    if (v) cols[this.idx] = Buffer.from(v.toString('utf8').toUpperCase());
    return encodeDataRow(cols);
  }
}

const hooks: SessionHooks = {
  statement: (_session, stmt): Verdict | Promise<Verdict> => {
    const onDone = (outcome: StatementOutcome) => outcomes.push({ sql: stmt.sql, outcome });
    if (/forbidden_table/i.test(stmt.sql)) {
      return { action: 'error', error: { code: '42501', message: 'denied by rule "test-hook": forbidden_table is off limits' }, onDone };
    }
    if (/crash_the_hook/.test(stmt.sql)) throw new Error('hook exploded');
    if (/slow_hook/.test(stmt.sql)) {
      return new Promise((resolve) => setTimeout(() => resolve({ action: 'forward', onDone }), 100));
    }
    if (/slow_params/.test(stmt.sql) && stmt.protocol === 'extended') {
      // Reads the parameters only after the wait, as the audit and approvals do.
      return new Promise((resolve) =>
        setTimeout(() => {
          seenParams.push(stmt.params.map((p) => p?.toString('utf8') ?? null).join(','));
          resolve({ action: 'forward', onDone });
        }, 100),
      );
    }
    if (/secret/.test(stmt.sql)) return { action: 'forward', rows: new UpperSecret(), onDone };
    return { action: 'forward', onDone };
  },
};

beforeAll(async () => {
  env = await startEnv({ hooks });
  // Set up directly on the cluster: the hook would refuse it.
  await env.cluster.query(
    "set role warden_svc; create table forbidden_table (id int); insert into forbidden_table values (1); create table notes (id int, secret text); insert into notes select g, 'value ' || g from generate_series(1, 5) g",
    'app',
  );
});

afterAll(async () => {
  await env?.stop();
});

describe('refusing statements', () => {
  it('simple protocol: 42501, nothing runs, the session answers afterwards (psql)', async () => {
    const r = await runPsql({
      port: env.warden.port,
      user: 'alice',
      password: PASSWORDS.alice,
      database: 'app',
      args: ['-At', '-f', '-'],
      input: 'drop table forbidden_table;\nselect 7;\n',
    });
    expect(r.err).toContain('denied by rule "test-hook"');
    expect(r.out.trim()).toBe('7');
    expect((await env.cluster.query('select count(*)::int as n from forbidden_table', 'app')).rows[0].n).toBe(1);
  });

  it('simple and extended protocol with pg, outside transactions', async () => {
    const c = await env.connect();
    try {
      await expect(c.query('select * from forbidden_table')).rejects.toMatchObject({ code: '42501', message: /forbidden_table is off limits/ });
      expect((await c.query('select 1 as one')).rows[0].one).toBe(1);
      await expect(c.query('select * from forbidden_table where id = $1', [1])).rejects.toMatchObject({ code: '42501' });
      expect((await c.query('select $1::int as x', [5])).rows[0].x).toBe(5);
      // A named statement refused at Bind: the next use is refused again, others work.
      await expect(c.query({ name: 'fb', text: 'select * from forbidden_table where id = $1', values: [1] })).rejects.toMatchObject({ code: '42501' });
      await expect(c.query({ name: 'fb', text: 'select * from forbidden_table where id = $1', values: [1] })).rejects.toMatchObject({ code: '42501' });
      expect((await c.query({ name: 'ok', text: 'select $1::text as t', values: ['fine'] })).rows[0].t).toBe('fine');
    } finally {
      await c.end();
    }
  });

  it('inside a transaction the refusal aborts it, exactly as a PostgreSQL error would', async () => {
    const c = await env.connect();
    try {
      await c.query('begin');
      await c.query('insert into notes values (100, $1)', ['in tx']);
      await expect(c.query('delete from forbidden_table')).rejects.toMatchObject({ code: '42501' });
      await expect(c.query('select 1')).rejects.toMatchObject({ code: '25P02' });
      await c.query('rollback');
      expect((await c.query('select count(*)::int as n from notes where id = 100')).rows[0].n).toBe(0);
      // Extended protocol refusal inside a transaction.
      await c.query('begin');
      await expect(c.query('delete from forbidden_table where id = $1', [1])).rejects.toMatchObject({ code: '42501' });
      await expect(c.query('select $1::int', [1])).rejects.toMatchObject({ code: '25P02' });
      await c.query('rollback');
      expect((await c.query('select 2 as two')).rows[0].two).toBe(2);
    } finally {
      await c.end();
    }
  });

  it('a refusal in a pipeline affects only its own statement (postgres.js pipelines)', async () => {
    const sql = postgres({ ...env.client(), username: 'alice', max: 1, onnotice: () => undefined } as postgres.Options<Record<string, never>>);
    try {
      const results = await Promise.allSettled([
        sql`select 1 as a`,
        sql`select * from forbidden_table`,
        sql`select 3 as c`,
        sql`select ${'x'}::text as d`,
        sql.unsafe('select * from forbidden_table; select 1'),
        sql`select 6 as f`,
      ]);
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
      const rejected = results[1] as PromiseRejectedResult;
      expect(rejected.reason).toMatchObject({ code: '42501' });
      expect((results[5] as unknown as PromiseFulfilledResult<{ f: number }[]>).value[0].f).toBe(6);
    } finally {
      await sql.end();
    }
  });

  it('an extended batch with a refused Bind behaves like a failed Bind: the rest is skipped until Sync', async () => {
    const sql = postgres({ ...env.client(), username: 'alice', max: 1, onnotice: () => undefined } as postgres.Options<Record<string, never>>);
    try {
      await expect(
        sql.begin(async (tx) => {
          await tx`insert into notes values (200, 'batch')`;
          await tx`select * from forbidden_table`;
        }),
      ).rejects.toMatchObject({ code: '42501' });
      expect((await sql`select count(*)::int as n from notes where id = 200`)[0].n).toBe(0);
    } finally {
      await sql.end();
    }
  });

  it('a failing hook fails closed with XX000 and the session goes on', async () => {
    const c = await env.connect();
    try {
      await expect(c.query('select 1 as crash_the_hook')).rejects.toMatchObject({ code: 'XX000' });
      expect((await c.query('select 2 as two')).rows[0].two).toBe(2);
    } finally {
      await c.end();
    }
  });

  it('FunctionCall messages are refused when statements are governed', async () => {
    // pg has no fast-path API; send the message through the connection's stream.
    const c = await env.connect();
    try {
      const con = (c as unknown as { connection: { stream: import('node:net').Socket } }).connection;
      const body = Buffer.alloc(4 + 2 + 2 + 2);
      body.writeInt32BE(1247, 0); // any function OID
      const msg = Buffer.concat([Buffer.from('F'), Buffer.alloc(4), body]);
      msg.writeInt32BE(4 + body.length, 1);
      // Sent while idle: pg reports the unsolicited ErrorResponse as a client 'error' event.
      const got = new Promise<Error & { code?: string }>((resolve) => c.once('error', resolve));
      con.stream.write(msg);
      const res = await Promise.race([got, new Promise<string>((r) => setTimeout(() => r('timeout'), 3000))]);
      expect(res).toMatchObject({ code: '42501', message: 'the function call protocol message is not allowed through Warden' });
    } finally {
      await c.end().catch(() => undefined);
    }
  });
});

describe('asynchronous verdicts', () => {
  it('a hook that reads bind parameters after it waits sees them as sent, whatever other sessions send meanwhile', async () => {
    const slow = new pg.Client({ host: '127.0.0.1', port: env.warden.port, user: 'alice', password: PASSWORDS.alice, database: 'app' });
    const busy = new pg.Client({ host: '127.0.0.1', port: env.warden.port, user: 'alice', password: PASSWORDS.alice, database: 'app' });
    await slow.connect();
    await busy.connect();
    try {
      const wanted = ['first-' + 'a'.repeat(40), 'second-' + 'b'.repeat(40)];
      const pending = slow.query('SELECT $1::text AS a, $2::text AS b /* slow_params */', wanted);
      // Meanwhile another session's traffic goes through the same read buffer.
      for (let i = 0; i < 20; i++) await busy.query('SELECT $1::text AS x', ['zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz' + i]);
      const r = await pending;
      expect(r.rows[0]).toEqual({ a: wanted[0], b: wanted[1] });
      expect(seenParams.at(-1)).toBe(wanted.join(','));
    } finally {
      await slow.end();
      await busy.end();
    }
  });

  it('waits for the verdict, keeps order under pipelining', async () => {
    const sql = postgres({ ...env.client(), username: 'alice', max: 1, onnotice: () => undefined } as postgres.Options<Record<string, never>>);
    try {
      const order: number[] = [];
      await Promise.all([
        sql`select 1 as slow_hook`.then(() => order.push(1)),
        sql`select 2 as fast`.then(() => order.push(2)),
        sql`select 3 as slow_hook`.then(() => order.push(3)),
      ]);
      expect(order).toEqual([1, 2, 3]);
    } finally {
      await sql.end();
    }
  });
});

describe('rewriting rows', () => {
  it('simple protocol, multi-statement, extended with and without Describe, binary', async () => {
    const c = await env.connect();
    try {
      const r = await c.query('select id, secret from notes where id <= 2 order by id');
      expect(r.rows).toEqual([
        { id: 1, secret: 'VALUE 1' },
        { id: 2, secret: 'VALUE 2' },
      ]);
      const p = await c.query('select secret, id from notes where id = $1', [3]);
      expect(p.rows).toEqual([{ secret: 'VALUE 3', id: 3 }]);
      const multi = await c.query("select 'plain' as other; select secret from notes where id = 4");
      expect((multi as unknown as pg.QueryResult[])[1].rows).toEqual([{ secret: 'VALUE 4' }]);
    } finally {
      await c.end();
    }
    // postgres.js describes the statement, not the portal: Warden injects a hidden portal Describe.
    const sql = postgres({ ...env.client(), username: 'alice', max: 1, onnotice: () => undefined } as postgres.Options<Record<string, never>>);
    try {
      const rows = await sql`select secret from notes where id = ${5}`;
      expect(rows[0].secret).toBe('VALUE 5');
      const rows2 = await sql`select secret from notes where id = ${5}`;
      expect(rows2[0].secret).toBe('VALUE 5');
    } finally {
      await sql.end();
    }
  });

  it('reports each statement outcome (tags, rows, error)', async () => {
    outcomes.length = 0;
    const c = await env.connect();
    try {
      await c.query('select id from notes where id <= 3');
      await expect(c.query('select * from forbidden_table')).rejects.toBeTruthy();
      await c.query('insert into notes values ($1, $2)', [300, 'x']);
    } finally {
      await c.end();
    }
    const sel = outcomes.find((o) => o.sql === 'select id from notes where id <= 3');
    expect(sel?.outcome).toMatchObject({ tags: ['SELECT 3'], rows: 3 });
    const denied = outcomes.find((o) => o.sql === 'select * from forbidden_table');
    expect(denied?.outcome.error?.code).toBe('42501');
    const ins = outcomes.find((o) => o.sql.startsWith('insert into notes'));
    expect(ins?.outcome.tags).toEqual(['INSERT 0 1']);
  });
});
