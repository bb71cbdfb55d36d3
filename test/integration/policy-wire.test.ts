/**
 * The policy enforced on the wire: real rules from a config, real clients,
 * simple and extended protocol, in and out of transactions.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import postgres from 'postgres';
import { startEnv, baseYaml, PASSWORDS, type TestEnv } from '../helpers/warden-env.js';
import { runPsql } from '../helpers/psql.js';

const RULES = `sensitive:
  columns:
    public.customers.email: email
    public.customers.ssn: ssn
rules:
  - name: no-destructive-ddl
    match: { statement: [drop, truncate] }
    action: deny
    reason: Destructive DDL is not run through Warden
  - name: agents-read-only
    match: { kind: agent, statement: [write, ddl] }
    action: deny
  - name: billing-writes-need-approval
    match: { statement: [write], tables: ["billing.*"] }
    action: approve
    approvers: { groups: [dba], count: 1 }
  - name: mask-pii
    match: { not: { groups: [dba] } }
    action: mask
default: allow
# Reject mode: a statement that needs approval fails at once (these tests check what needs it).
approvals: { mode: reject }
`;

let env: TestEnv;

beforeAll(async () => {
  env = await startEnv({ yaml: (p) => baseYaml(p, RULES) });
  await env.cluster.query(
    `set role warden_svc;
     create schema billing;
     create table billing.invoices (id int primary key, amount numeric);
     insert into billing.invoices values (1, 10), (2, 20);
     create table orders (id int primary key, item text);
     insert into orders values (1, 'book');
     create table customers (id int, name text, email text, ssn text);
     insert into customers values (1, 'Ann', 'ann@example.com', '123-45-6789');`,
    'app',
  );
});

afterAll(async () => {
  await env?.stop();
});

async function count(sql: string): Promise<number> {
  return (await env.cluster.query(sql, 'app')).rows[0].n as number;
}

describe('deny', () => {
  it('psql: the refusal names the rule and reason, and the session answers afterwards', async () => {
    const r = await runPsql({ port: env.warden.port, user: 'alice', password: PASSWORDS.alice, database: 'app', args: ['-At', '-f', '-'], input: 'DROP TABLE orders;\nselect count(*) from orders;\n' });
    expect(r.err).toContain('ERROR:  denied by rule "no-destructive-ddl": Destructive DDL is not run through Warden');
    expect(r.out.trim()).toBe('1');
    expect(await count('select count(*)::int as n from orders')).toBe(1);
  });

  it('psql: inside a transaction the refusal aborts it, as a PostgreSQL error would', async () => {
    const r = await runPsql({
      port: env.warden.port,
      user: 'alice',
      password: PASSWORDS.alice,
      database: 'app',
      args: ['-At', '-f', '-'],
      input: "BEGIN;\nINSERT INTO orders VALUES (50, 'tx');\nDROP TABLE orders;\nSELECT 1;\nROLLBACK;\nSELECT count(*) FROM orders;\n",
    });
    expect(r.err).toContain('denied by rule "no-destructive-ddl"');
    expect(r.err).toContain('current transaction is aborted');
    expect(r.out.trim().split('\n').pop()).toBe('1');
  });

  it('pg: simple and extended protocol, in and out of transactions', async () => {
    const c = await env.connect('alice');
    try {
      await expect(c.query('TRUNCATE orders')).rejects.toMatchObject({ code: '42501', message: /no-destructive-ddl/ });
      await expect(c.query('DROP TABLE orders -- $1', [])).rejects.toMatchObject({ code: '42501' });
      expect((await c.query('select id from orders where id = $1', [1])).rows).toEqual([{ id: 1 }]);
      await c.query('begin');
      await c.query('insert into orders values ($1, $2)', [2, 'pen']);
      await expect(c.query('drop table orders')).rejects.toMatchObject({ code: '42501' });
      await expect(c.query('select 1')).rejects.toMatchObject({ code: '25P02' });
      await c.query('rollback');
      expect(await count('select count(*)::int as n from orders')).toBe(1);
    } finally {
      await c.end();
    }
  });

  it('extended protocol: a Parse of the same length as the one before is decided on its own text', async () => {
    // Warden reuses the decoding of a Parse whose bytes repeat; equal length is not equal bytes.
    const c = await env.connect('agent');
    try {
      const allowed = 'select id from orders where id > $1';
      const denied = 'delete from orders where id > $1';
      const same = denied.padEnd(allowed.length, ' ');
      expect(same.length).toBe(allowed.length);
      for (let i = 0; i < 3; i++) {
        expect((await c.query(allowed, [0])).rows).toEqual([{ id: 1 }]);
        await expect(c.query(same, [0])).rejects.toMatchObject({ code: '42501', message: /agents-read-only/ });
      }
      expect(await count('select count(*)::int as n from orders')).toBe(1);
    } finally {
      await c.end();
    }
  });

  it('agents cannot write, wherever the write hides', async () => {
    const sql = postgres({ ...env.client('agent'), username: 'agent', max: 1, onnotice: () => undefined } as postgres.Options<Record<string, never>>);
    try {
      const attempts = [
        "insert into orders values (9, 'x')",
        "select 1; update orders set item = 'y'",
        'with d as (delete from orders returning *) select count(*) from d',
        "DO $$ BEGIN DELETE FROM orders; END $$",
        "do $x$ begin execute 'drop ' || 'table orders'; end $x$",
        'select * into orders_copy from orders',
        "prepare p as delete from orders",
        'explain analyze delete from orders',
        "copy orders from program 'id'",
        'CALL some_procedure()',
        "select set_config('role', 'postgres', false)",
      ];
      for (const a of attempts) {
        await expect(sql.unsafe(a), a).rejects.toMatchObject({ code: '42501' });
      }
      // Extended protocol (postgres.js uses Parse/Bind for parameterized queries).
      await expect(sql`update orders set item = ${'z'} where id = ${1}`).rejects.toMatchObject({ code: '42501' });
      expect((await sql`select count(*)::int as n from orders`)[0].n).toBe(1);
    } finally {
      await sql.end();
    }
    expect(await count("select count(*)::int as n from orders where item = 'book'")).toBe(1);
  });
});

describe('unparsable statements fail closed', () => {
  it('a string PostgreSQL cannot parse is not forwarded when rules could apply', async () => {
    const c = await env.connect('alice');
    try {
      await expect(c.query('DROP TABLE orders; SELEC broken')).rejects.toMatchObject({ code: '42501', message: /parse/i });
      expect((await c.query('select count(*)::int as n from orders')).rows[0].n).toBe(1);
    } finally {
      await c.end();
    }
  });
});

describe('approve (reject mode) refuses at once with a request id; mask masks', () => {
  it('a write to billing needs approval: refused with the rule named, nothing runs', async () => {
    const c = await env.connect('alice');
    try {
      await expect(c.query('update billing.invoices set amount = 0')).rejects.toMatchObject({
        code: '42501',
        message: /rule "billing-writes-need-approval" requires approval/,
      });
      // Unqualified, through a search_path change Warden follows.
      await c.query('set search_path = billing, public');
      await expect(c.query('delete from invoices')).rejects.toMatchObject({ code: '42501', message: /billing-writes-need-approval/ });
    } finally {
      await c.end();
    }
    expect(await count('select count(*)::int as n from billing.invoices where amount > 0')).toBe(2);
  });

  it('sensitive columns under a mask rule come back masked; filtering on them is refused; other reads pass', async () => {
    const c = await env.connect('alice');
    try {
      const r = await c.query('select name, email, ssn from customers');
      expect(r.rows[0].name).toBe('Ann');
      expect(r.rows[0].email).toMatch(/@/);
      expect(r.rows[0].email).not.toBe('ann@example.com');
      expect(r.rows[0].ssn).not.toBe('123-45-6789');
      await expect(c.query("select name from customers where ssn = '123-45-6789'")).rejects.toMatchObject({ code: '42501', message: /masks sensitive data/ });
      expect((await c.query('select name from customers')).rows).toEqual([{ name: 'Ann' }]);
    } finally {
      await c.end();
    }
  });
});

describe('search_path tracking cannot be fooled', () => {
  // Regression cases: a SET that the server rolled back or kept, where Warden must not guess.
  const cases: [string, string[]][] = [
    ['a SET rolled back in the same string', ['BEGIN; SET search_path = public; ROLLBACK']],
    ['a SET followed by a failing statement in the same string', ["BEGIN; SET search_path = billing; COMMIT; SELECT 1/0"]],
    ['a SET LOCAL', ['BEGIN', 'SET LOCAL search_path = billing', 'COMMIT']],
  ];
  for (const [name, setup] of cases) {
    it(`${name}: unqualified writes to billing tables still need approval`, async () => {
      const c = await env.connect('alice');
      try {
        await c.query('set search_path = billing, public');
        for (const sql of setup) await c.query(sql).catch(() => undefined);
        await expect(c.query('delete from invoices')).rejects.toMatchObject({ code: '42501' });
      } finally {
        await c.end();
      }
      expect(await count('select count(*)::int as n from billing.invoices')).toBe(2);
    });
  }

  it('the extended protocol: a SET in a batch that fails does not fool Warden', async () => {
    const sql = postgres({ ...env.client('alice'), username: 'alice', max: 1, onnotice: () => undefined } as postgres.Options<Record<string, never>>);
    try {
      await sql.unsafe('set search_path = billing, public');
      await sql.begin(async (tx) => {
        await tx.unsafe('set search_path = public');
        await tx`select 1/${0}::int`;
      }).catch(() => undefined);
      await expect(sql`delete from invoices where id = ${1}`).rejects.toMatchObject({ code: '42501' });
    } finally {
      await sql.end();
    }
    expect(await count('select count(*)::int as n from billing.invoices')).toBe(2);
  });
});

describe('session safety', () => {
  it('a client cannot change who it is upstream', async () => {
    const c = await env.connect('alice');
    try {
      for (const s of ['SET ROLE postgres', 'SET SESSION AUTHORIZATION postgres', 'RESET ALL', "SELECT set_config('role', 'postgres', false)", "SET warden.identity = 'dana'", 'ALTER SYSTEM SET work_mem = 1']) {
        await expect(c.query(s), s).rejects.toMatchObject({ code: '42501', message: /warden\.session-safety/ });
      }
      expect((await c.query('select current_user as u')).rows[0].u).toBe('warden_svc');
    } finally {
      await c.end();
    }
  });
});
