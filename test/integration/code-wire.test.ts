/**
 * Code Warden used not to look into, on the wire: user functions called in any
 * clause, pg_temp functions created and called in one transaction, rules and
 * triggers that write protected tables. Each attempt must be refused (or held:
 * approvals run in reject mode here) and the upstream checked unchanged.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import postgres from 'postgres';
import { startEnv, baseYaml, PASSWORDS, type TestEnv } from '../helpers/warden-env.js';
import { runPsql } from '../helpers/psql.js';
import { runCli, writeTempConfig } from '../helpers/warden-process.js';

const RULES = `rules:
  - name: no-destructive-ddl
    match: { statement: [drop, truncate] }
    action: deny
    reason: Destructive DDL is not run through Warden
  - name: agents-read-only
    match: { kind: agent, statement: [write, ddl] }
    action: deny
  - name: pay-writes-need-approval
    match: { statement: [write], tables: ["pay.*"] }
    action: approve
    approvers: { groups: [dba], count: 1 }
default: allow
approvals: { mode: reject }
`;

const yaml = (p: number) =>
  baseYaml(p, RULES).replace('    environment: test\n', '    environment: test\n    trusted_functions: ["util.*"]\n');

let env: TestEnv;

beforeAll(async () => {
  env = await startEnv({ yaml });
  await env.cluster.query(
    `set role warden_svc;
     create schema pay;
     create schema util;
     create table pay.ledger (id int, note text);
     insert into pay.ledger values (1, 'opening');
     create table orders (id int primary key, item text);
     insert into orders values (1, 'book');
     create table victim (id int);
     create table audited (id int);
     create function pay.refund(x int) returns int language sql as $$ insert into pay.ledger values (x, 'refund') returning x $$;
     create function pay.refund_pl(x int) returns void language plpgsql as $$ begin insert into pay.ledger values (x, 'pl'); end $$;
     create procedure pay.refund_proc(x int) language plpgsql as $$ begin insert into pay.ledger values (x, 'proc'); end $$;
     create function public.outer_fn() returns int language sql as $$ select pay.refund(77) $$;
     create function public.harmless(x int) returns int language sql immutable as $$ select x + 1 $$;
     create function pay.dyn() returns int language plpgsql as $$ declare r int; begin execute 'select ' || 42 into r; return r; end $$;
     create function util.answer() returns int language plpgsql as $$ declare r int; begin execute 'select ' || 42 into r; return r; end $$;
     create function pay.ledger_trg() returns trigger language plpgsql as $$ begin insert into pay.ledger values (new.id, 'trigger'); return new; end $$;
     create trigger audited_to_ledger after insert on audited for each row execute function pay.ledger_trg();
     create extension pgcrypto;
     create table defaulted (id int, r int default pay.refund(99));
     create table customers (id int primary key);
     insert into customers values (1), (2);
     create table pay.invoices (id int, customer int references customers on delete cascade on update set null);
     insert into pay.invoices values (1, 1);
     create table ruled (id int);
     create rule ruled_to_ledger as on insert to ruled do also insert into pay.ledger values (new.id, 'rule');`,
    'app',
  );
});

afterAll(async () => {
  await env?.stop();
});

async function upstream(sql: string): Promise<unknown> {
  return (await env.cluster.query(sql, 'app')).rows[0]!.v;
}
const ledgerRows = () => upstream('select count(*)::int as v from pay.ledger');
const ordersRows = () => upstream('select count(*)::int as v from orders');

describe('user functions are judged by what their bodies do', () => {
  it('an agent whose writes are denied cannot write through a function, in any clause or protocol', async () => {
    const sql = postgres({ ...env.client('agent'), username: 'agent', max: 1, onnotice: () => undefined } as postgres.Options<Record<string, never>>);
    try {
      const attempts = [
        'select pay.refund(1)',
        'SELECT * FROM pay.refund(2)',
        'VALUES (pay.refund(3))',
        'select (select pay.refund(4)) as x',
        'select 1 where pay.refund(5) > 0',
        'select pay.refund_pl(6)',
        'call pay.refund_proc(7)',
        'select outer_fn()',
        'select harmless(pay.refund(8))',
      ];
      for (const a of attempts) {
        await expect(sql.unsafe(a), a).rejects.toMatchObject({ code: '42501', message: expect.stringMatching(/agents-read-only/) });
      }
      // Extended protocol.
      await expect(sql`select pay.refund(${9})`).rejects.toMatchObject({ code: '42501' });
      // A function that only computes still runs, and so do an extension's (C) functions.
      expect((await sql`select harmless(${1}) as v`)[0]!.v).toBe(2);
      expect((await sql`select length(digest('x', 'sha256')) as v`)[0]!.v).toBe(32);
    } finally {
      await sql.end();
    }
    expect(await ledgerRows()).toBe(1);
  });

  it('an analyst whose writes to pay.* need approval is held (reject mode: refused with a request)', async () => {
    const c = await env.connect('alice');
    try {
      await expect(c.query('select pay.refund(10)')).rejects.toMatchObject({ code: '42501', message: /pay-writes-need-approval.*requires approval/ });
      await expect(c.query('select outer_fn()')).rejects.toMatchObject({ code: '42501', message: /requires approval/ });
      await expect(c.query('select pay.refund($1)', [11])).rejects.toMatchObject({ code: '42501', message: /requires approval/ });
      expect((await c.query('select harmless(1) as v')).rows[0].v).toBe(2);
    } finally {
      await c.end();
    }
    expect(await ledgerRows()).toBe(1);
  });

  it('a function Warden cannot read is opaque: refused with what it could not see and how to vouch for it; a trusted one runs', async () => {
    const c = await env.connect('agent');
    try {
      const err = await c.query('select pay.dyn()').then(
        () => null,
        (e: Error & { code?: string }) => e,
      );
      expect(err).toMatchObject({ code: '42501' });
      expect(err!.message).toMatch(/pay\.dyn\(\) runs dynamic SQL/);
      expect(err!.message).toMatch(/trusted_functions: \["pay\.dyn"\]/);
      // util.* is trusted by the configuration: its dynamic SQL is not judged.
      expect((await c.query('select util.answer() as v')).rows[0].v).toBe(42);
    } finally {
      await c.end();
    }
  });
});

describe('code created in the session', () => {
  it('a pg_temp function whose body drops a table, created and called in one transaction, drops nothing', async () => {
    for (const body of [
      "CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS 'DROP TABLE victim; SELECT 1';",
      "CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN DROP TABLE victim; RETURN 1; END $$;",
    ]) {
      const r = await runPsql({
        port: env.warden.port,
        user: 'alice',
        password: PASSWORDS.alice,
        database: 'app',
        args: ['-At', '-f', '-'],
        input: `BEGIN;\n${body}\nSELECT pg_temp.f();\nCOMMIT;\n`,
      });
      expect(r.err).toContain('denied by rule "no-destructive-ddl"');
      expect(await upstream("select count(*)::int as v from pg_class where relname = 'victim'")).toBe(1);
    }
  });

  it("a pg_temp function is judged by the body the session gave it; one Warden did not see created is opaque", async () => {
    const c = await env.connect('alice');
    try {
      await c.query('begin');
      await c.query("CREATE FUNCTION pg_temp.g() RETURNS int LANGUAGE sql AS 'SELECT 1'");
      expect((await c.query('select pg_temp.g() as v')).rows[0].v).toBe(1);
      // Created inside a DO block: Warden does not keep track of it.
      await c.query("DO $$ BEGIN CREATE FUNCTION pg_temp.h() RETURNS int LANGUAGE sql AS 'SELECT 2'; END $$");
      const err = await c.query('select pg_temp.h()').then(
        () => null,
        (e: Error & { code?: string }) => e,
      );
      expect(err).toMatchObject({ code: '42501' });
      expect(err!.message).toMatch(/pg_temp\.h\(\), a function in the session's temporary schema/);
      expect(err!.message).toMatch(/trusted_functions: \["pg_temp\.h"\]/);
      await c.query('rollback');
      // Rolled back: pg_temp.g() no longer exists as Warden saw it.
      await expect(c.query('select pg_temp.g()')).rejects.toMatchObject({ code: '42501', message: /temporary schema/ });
    } finally {
      await c.end();
    }
  });

  it('a migration creating a function and the trigger that runs it in one transaction is judged by that function', async () => {
    const c = await env.connect('alice');
    try {
      await c.query('begin');
      await c.query("CREATE FUNCTION public.mig_trg() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO victim VALUES (NEW.id); RETURN NEW; END $$");
      await c.query('CREATE TRIGGER mig AFTER INSERT ON audited FOR EACH ROW EXECUTE FUNCTION mig_trg()');
      await c.query('rollback');
      await c.query('begin');
      await expect(
        c.query("CREATE FUNCTION public.mig_bad() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO pay.ledger VALUES (NEW.id, 'mig'); RETURN NEW; END $$"),
      ).rejects.toMatchObject({ code: '42501', message: /requires approval/ });
      await c.query('rollback');
      await c.query('begin');
      await c.query("CREATE FUNCTION public.mig_trg() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$");
      // A function created in the same string counts too.
      await c.query("CREATE FUNCTION public.mig2() RETURNS int LANGUAGE sql AS 'SELECT 1'; SELECT mig2()");
      await c.query('rollback');
    } finally {
      await c.end();
    }
    expect(await upstream("select count(*)::int as v from pg_trigger where tgname = 'mig'")).toBe(0);
  });

  it('a replacement rolled back is forgotten: the function is judged by its committed body again', async () => {
    const c = await env.connect('alice');
    try {
      await c.query('begin');
      await c.query("CREATE OR REPLACE FUNCTION public.outer_fn() RETURNS int LANGUAGE sql AS 'SELECT 1'");
      // In the transaction both bodies count (the catalog's and the session's).
      await expect(c.query('select outer_fn()')).rejects.toMatchObject({ code: '42501', message: /requires approval/ });
      await c.query('rollback').catch(() => undefined);
      await expect(c.query('select outer_fn()')).rejects.toMatchObject({ code: '42501', message: /requires approval/ });
    } finally {
      await c.end();
    }
    expect(await ledgerRows()).toBe(1);
  });

  it('a function created in the open transaction by code Warden does not follow is not in the catalog: opaque', async () => {
    const c = await env.connect('alice');
    try {
      await c.query('begin');
      await c.query("DO $$ BEGIN CREATE FUNCTION public.hidden_fn() RETURNS int LANGUAGE sql AS 'SELECT 1'; END $$");
      await expect(c.query('select hidden_fn()')).rejects.toMatchObject({ code: '42501', message: /hidden_fn\(\), which is not in the catalog/ });
      await c.query('rollback');
    } finally {
      await c.end();
    }
  });
});

describe('rules and triggers', () => {
  it('CREATE RULE ... DO ALSO DELETE FROM a protected table is refused', async () => {
    const c = await env.connect('alice');
    try {
      await expect(c.query('CREATE RULE r AS ON INSERT TO orders DO ALSO DELETE FROM pay.ledger')).rejects.toMatchObject({
        code: '42501',
        message: /pay-writes-need-approval/,
      });
      await expect(c.query("INSERT INTO orders VALUES (2, 'pen')")).resolves.toBeTruthy();
    } finally {
      await c.end();
    }
    expect(await upstream("select count(*)::int as v from pg_rules where rulename = 'r'")).toBe(0);
    expect(await ledgerRows()).toBe(1);
    await env.cluster.query('delete from orders where id = 2', 'app');
  });

  it('CREATE TRIGGER running a function that writes a protected table is refused', async () => {
    const c = await env.connect('alice');
    try {
      await expect(
        c.query('CREATE TRIGGER t2 AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION pay.ledger_trg()'),
      ).rejects.toMatchObject({ code: '42501', message: /pay-writes-need-approval/ });
    } finally {
      await c.end();
    }
    expect(await upstream("select count(*)::int as v from pg_trigger where tgname = 't2'")).toBe(0);
  });

  it('a harmless INSERT into an allowed table whose trigger writes a protected table is held', async () => {
    const c = await env.connect('alice');
    try {
      const err = await c.query('INSERT INTO audited VALUES (1)').then(
        () => null,
        (e: Error & { code?: string }) => e,
      );
      expect(err).toMatchObject({ code: '42501' });
      expect(err!.message).toMatch(/pay-writes-need-approval.*requires approval/);
      await expect(c.query('INSERT INTO audited VALUES ($1)', [2])).rejects.toMatchObject({ code: '42501' });
    } finally {
      await c.end();
    }
    expect(await upstream('select count(*)::int as v from audited')).toBe(0);
    expect(await ledgerRows()).toBe(1);
  });

  it('a harmless INSERT into a table whose rule (made around Warden) writes a protected table is held', async () => {
    const c = await env.connect('alice');
    try {
      const err = await c.query('INSERT INTO ruled VALUES (1)').then(
        () => null,
        (e: Error & { code?: string }) => e,
      );
      expect(err).toMatchObject({ code: '42501' });
      expect(err!.message).toMatch(/pay-writes-need-approval.*requires approval/);
    } finally {
      await c.end();
    }
    expect(await upstream('select count(*)::int as v from ruled')).toBe(0);
    expect(await ledgerRows()).toBe(1);
  });

  it('a DELETE that cascades through a foreign key into a protected table is held; an INSERT is not', async () => {
    const c = await env.connect('alice');
    try {
      await expect(c.query('DELETE FROM customers WHERE id = 1')).rejects.toMatchObject({ code: '42501', message: /pay-writes-need-approval/ });
      await expect(c.query('UPDATE customers SET id = 10 WHERE id = 1')).rejects.toMatchObject({ code: '42501', message: /pay-writes-need-approval/ });
      await expect(c.query('TRUNCATE customers CASCADE')).rejects.toMatchObject({ code: '42501' });
      // Inserting into the referenced table changes nothing else; an update of a table nothing references neither.
      await c.query('INSERT INTO customers VALUES (3)');
    } finally {
      await c.end();
      await env.cluster.query('delete from customers where id = 3', 'app');
    }
    expect(await upstream('select count(*)::int as v from pay.invoices where customer = 1')).toBe(1);
    expect(await upstream('select count(*)::int as v from customers where id = 1')).toBe(1);
  });

  it('an INSERT whose column default calls a function that writes a protected table is held', async () => {
    const c = await env.connect('alice');
    try {
      await expect(c.query('INSERT INTO defaulted (id) VALUES (1)')).rejects.toMatchObject({ code: '42501', message: /pay-writes-need-approval/ });
    } finally {
      await c.end();
    }
    expect(await upstream('select count(*)::int as v from defaulted')).toBe(0);
    expect(await ledgerRows()).toBe(1);
  });

  it('a trigger added later (around Warden) is seen once the catalog version changes, memoized verdicts included', async () => {
    const c = await env.connect('alice');
    try {
      await c.query("INSERT INTO orders VALUES (3, 'cup')");
      await c.query('DELETE FROM orders WHERE id = 3');
      await env.cluster.query('create trigger orders_to_ledger after insert on orders for each row execute function pay.ledger_trg()', 'app');
      env.warden.policy.code!.invalidate('app');
      await expect(c.query("INSERT INTO orders VALUES (3, 'cup')")).rejects.toMatchObject({ code: '42501', message: /requires approval/ });
    } finally {
      await c.end();
      await env.cluster.query('drop trigger orders_to_ledger on orders', 'app');
      env.warden.policy.code!.invalidate('app');
    }
    expect(await ordersRows()).toBe(1);
    expect(await ledgerRows()).toBe(1);
  });
});

describe('cost', () => {
  it('statements that call no function and write nothing read no catalog; built-ins need one index read per catalog version', async () => {
    const code = env.warden.policy.code!;
    code.invalidate('app');
    const c = await env.connect('alice');
    try {
      const before = code.stats.queries;
      for (let i = 0; i < 20; i++) await c.query(`select id, item from orders where id = ${i}`);
      await c.query('select id from orders where id = $1', [1]);
      expect(code.stats.queries - before).toBe(0);
      await c.query('select count(*), lower(item) from orders group by 2');
      const afterIndex = code.stats.queries;
      expect(afterIndex - before).toBe(1);
      for (let i = 0; i < 20; i++) {
        await c.query(`select count(*) from orders where id > ${i}`);
        await c.query(`update orders set item = 'book' where id = ${i}`);
      }
      expect(code.stats.queries).toBe(afterIndex);
      // A user function: read once, then cached.
      await c.query('select harmless(1)');
      await c.query('select harmless(2)');
      expect(code.stats.queries).toBe(afterIndex + 1);
    } finally {
      await c.end();
    }
  });
});

describe('warden policy explain', () => {
  it("shows what a function call's body does, why a call is opaque, and says when the catalog cannot be read", async () => {
    const file = writeTempConfig(yaml(env.cluster.port));
    const r = await runCli(['policy', 'explain', '--config', file, '--as', 'alice', 'select pay.refund(1), outer_fn()']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain('Catalog: functions, triggers and rules read from');
    expect(r.out).toContain('writes pay.ledger via pay.refund()');
    expect(r.out).toMatch(/Decision: APPROVE/);
    const t = await runCli(['policy', 'explain', '--config', file, '--as', 'alice', 'insert into audited values (1)']);
    expect(t.out).toContain('writes pay.ledger via trigger audited_to_ledger on public.audited → pay.ledger_trg()');
    const o = await runCli(['policy', 'explain', '--config', file, '--as', 'agent', '--json', 'select pay.dyn(), util.answer()']);
    const j = JSON.parse(o.out) as { catalog: { read: boolean }; decision: { action: string }; analysis: { statements: { opaqueReasons: string[]; notes: string[] }[] } };
    expect(j.catalog.read).toBe(true);
    expect(j.decision.action).toBe('deny');
    expect(j.analysis.statements[0]!.opaqueReasons.join('\n')).toMatch(/pay\.dyn\(\) runs dynamic SQL.*trusted_functions: \["pay\.dyn"\]/);
    expect(j.analysis.statements[0]!.notes.join('\n')).toContain('util.answer() is trusted by the configuration');
    const off = await runCli(['policy', 'explain', '--config', file, '--as', 'alice', '--no-catalog', 'select pay.refund(1)']);
    expect(off.out).toContain('Catalog: not read (--no-catalog)');
    const down = writeTempConfig(yaml(1));
    const d = await runCli(['policy', 'explain', '--config', down, '--as', 'alice', 'select pay.refund(1)']);
    expect(d.code).toBe(0);
    expect(d.out).toMatch(/Catalog: not read \(cannot read the catalog of app: .*ECONNREFUSED/);
    expect(d.out).not.toContain('svc-Secret');
  }, 60_000);
});
