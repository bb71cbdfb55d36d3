/**
 * The statement-bypass corpus (test/corpus/statement-bypass.yaml): attempts to
 * get a statement past Warden's policy — lexing tricks, code Warden would not
 * look into, misclassified statements, undecided execution paths. Each attempt
 * is first shown to really change the database when run directly, then run
 * through Warden with real clients; afterwards the upstream must be exactly
 * as it was, and some step must have been refused.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, SVC_PASSWORD, PASSWORDS, type TestEnv } from '../helpers/warden-env.js';
import { startEnv } from '../helpers/warden-env.js';
import { run } from '../helpers/psql.js';
import { Wire, cstr, int32, message } from '../helpers/raw-wire.js';
import { errorsOf, extendedMessages, queryMessage, rawLogin, untilReady } from '../helpers/raw-session.js';

type Step = string | { execute: string };
interface Attempt {
  id: string;
  class: string;
  as: 'alice' | 'bob' | 'agent';
  why: string;
  bytes?: boolean;
  env?: Record<string, string>;
  clients?: Client[];
  real?: boolean;
  steps: Step[];
}
type Client = 'psql' | 'pg' | 'pg-extended' | 'raw';

const corpus = YAML.parse(fs.readFileSync(new URL('../corpus/statement-bypass.yaml', import.meta.url), 'utf8')) as { attempts: Attempt[] };

const FIXTURE = `
drop schema if exists pay, queue, util, arch, p2 cascade;
drop table if exists balances_parent, bp, ball, bkid, v2, v3, victim, victim_src, notes, balances, events, inbox, withdefault, checked cascade;
drop view if exists refund_view, rv, balances_v, balances_vv, pay_v, txv cascade;
drop materialized view if exists mv cascade;
create schema pay; create schema queue; create schema util;
create table victim (id int primary key, v text);
insert into victim select g, 'v' || g from generate_series(1, 3) g;
create table victim_src (id int);
create materialized view victim_mv as select * from victim_src;
create table pay.ledger (id int primary key, amount numeric);
insert into pay.ledger values (1, 10), (2, 20);
create table queue.jobs (id serial primary key, payload text);
create table notes (id serial primary key, body text);
create view nv as select * from notes;
create table balances (id int primary key, amount numeric);
insert into balances values (1, 5);
create function pay.refund(i int) returns int language sql as $$ insert into pay.ledger values (100 + i, -1) returning id $$;
create function queue.enqueue(p text) returns void language plpgsql as $$ begin insert into queue.jobs (payload) values (p); end $$;
create function util.twice(i int) returns int language sql as $$ select pay.refund(i) + pay.refund(i + 1000) $$;
create function util.wipe() returns void language plpgsql as $$ begin delete from victim; end $$;
create function util.run(q text) returns void language plpgsql as $$ begin execute q; end $$;
create function util.definer_wipe() returns void language sql security definer as $$ delete from victim $$;
create function util.harmless() returns int language sql as $$ select 1 $$;
create function util.trg_wipe() returns trigger language plpgsql as $$ begin delete from victim; return new; end $$;
create function util.trg_pay() returns trigger language plpgsql as $$ begin delete from pay.ledger where id = 1; return new; end $$;
create function util.evt_wipe() returns event_trigger language plpgsql as $$ begin delete from victim; end $$;
create procedure pay.reset() language sql as $$ delete from pay.ledger $$;
create table events (id serial primary key, body text);
insert into events (body) values ('first');
create trigger events_t after insert or update on events for each row execute function util.trg_pay();
create table inbox (id serial primary key, body text);
create rule inbox_r as on insert to inbox do also delete from pay.ledger where id = 2;
create table withdefault (id int default pay.refund(70), body text);
create table checked (v int check (pay.refund(v + 80) > 0));
create table balances_parent (id int, amount numeric);
alter table balances inherit balances_parent;
create view balances_v as select * from balances;
create view balances_vv as select id, amount from balances_v where id > 0;
create view pay_v as select id from pay.ledger;

`;

/** What must not change: protected tables' contents and the user catalog (relations, functions, triggers, rules, policies). */
const FINGERPRINT = `
select md5(string_agg(x, '|' order by x)) as f from (
  select 'rel:' || n.nspname || '.' || c.relname || ':' || c.relkind::text as x
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
   where n.nspname in ('public', 'pay', 'queue', 'util') and c.relkind in ('r', 'v', 'm', 'p', 'f')
  union all
  select 'fn:' || p.oid::regprocedure::text || ':' || md5(coalesce(p.prosrc, '')) || ':' || p.prosecdef::text
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname in ('public', 'pay', 'queue', 'util')
  union all select 'trg:' || tgrelid::regclass::text || '.' || tgname from pg_trigger where not tgisinternal
  union all select 'evt:' || evtname from pg_event_trigger
  union all select 'rule:' || schemaname || '.' || tablename || '.' || rulename from pg_rules where schemaname in ('public', 'pay', 'queue', 'util')
  union all select 'pol:' || tablename || '.' || policyname from pg_policies
  union all select t || ':' || fp.rows(t) from unnest(array['public.victim', 'pay.ledger', 'queue.jobs', 'public.balances']) t
) s`;

/** Rows of a table as a hash, or 'gone' (a dropped table must not break the fingerprint). In a schema of its own. */
const FP_FUNCTION = `
create schema if not exists fp;
create or replace function fp.rows(t text) returns text language plpgsql as $$
declare r text;
begin
  if to_regclass(t) is null then return 'gone'; end if;
  execute format('select md5(coalesce(string_agg(x::text, '','' order by x::text), '''')) from %s x', t) into r;
  return r;
end $$;`;

const YAML_CONFIG = (pgPort: number): string => `version: 1
listen: { host: 127.0.0.1, port: 0 }
databases:
  app:
    upstream: postgres://warden_svc:${SVC_PASSWORD}@127.0.0.1:${pgPort}/app
    environment: test
identities:
  - name: alice
    kind: human
    groups: [analysts]
    password: ${PASSWORDS.alice}
  - name: bob
    kind: human
    groups: [developers]
    password: ${PASSWORDS.bob}
  - name: agent
    kind: agent
    password: ${PASSWORDS.agent}
rules:
  - name: no-destructive-ddl
    match: { statement: [drop, truncate] }
    action: deny
    reason: Destructive DDL is not run through Warden
  - name: agents-read-only
    match: { kind: agent, statement: [write, ddl] }
    action: deny
  - name: ddl-developers-only
    match: { not: { groups: [developers] }, statement: [ddl] }
    action: deny
  - name: victim-protected
    match: { statement: [write], tables: ["public.victim"] }
    action: deny
  - name: no-balance-updates
    match: { statement: [update], tables: ["public.balances"] }
    action: deny
  - name: pay-writes-need-approval
    match: { statement: [write], tables: ["pay.*"] }
    action: approve
    approvers: { groups: [dba], count: 1 }
default: allow
approvals: { mode: reject }
`;

let env: TestEnv;
let admin: pg.Client;
let baseline: string;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-bypass-'));

async function fingerprint(): Promise<string> {
  return (await admin.query(FINGERPRINT)).rows[0].f as string;
}

async function resetFixture(): Promise<void> {
  await admin.query(FIXTURE);
  baseline = await fingerprint();
}

beforeAll(async () => {
  const cluster = await startCluster();
  env = await startEnv({ cluster, yaml: YAML_CONFIG });
  admin = new pg.Client({ host: '127.0.0.1', port: cluster.port, user: 'warden_svc', password: SVC_PASSWORD, database: 'app' });
  await admin.connect();
  await admin.query('set client_min_messages = warning');
  await admin.query(FP_FUNCTION);
  await resetFixture();
});

afterAll(async () => {
  await admin?.end();
  await env?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

const asText = (a: Attempt, s: string): Buffer => Buffer.from(s, a.bytes ? 'latin1' : 'utf8');

let fileNo = 0;
/** psql, one -c per step in one session (each -c string is sent as one Query, bytes as they are). */
async function viaPsql(a: Attempt, port: number, user: string, password: string): Promise<{ errors: string[] }> {
  const files: string[] = [];
  for (const s of a.steps) {
    if (typeof s !== 'string') throw new Error(`${a.id}: psql cannot send a protocol Execute`);
    const f = path.join(dir, `s${fileNo++}.sql`);
    fs.writeFileSync(f, asText(a, s));
    files.push(f);
  }
  const cs = files.map((_, i) => `-c "$(cat "$F${i}")"`).join(' ');
  const r = await run('bash', ['-c', `psql -X -q -h 127.0.0.1 -p ${port} -U ${user} -d app ${cs}`], {
    ...process.env,
    PGPASSWORD: password,
    PGCONNECT_TIMEOUT: '10',
    ...Object.fromEntries(files.map((f, i) => [`F${i}`, f])),
    ...a.env,
  });
  return { errors: r.err.split('\n').filter((l) => /^(psql:.*)?ERROR:/.test(l) || l.startsWith('ERROR:')) };
}

async function viaPg(a: Attempt, extended: boolean): Promise<{ errors: string[] }> {
  const c = new pg.Client(env.client(a.as));
  c.on('error', () => undefined);
  await c.connect();
  const errors: string[] = [];
  try {
    for (const s of a.steps) {
      if (typeof s !== 'string') throw new Error(`${a.id}: pg cannot send a protocol Execute`);
      try {
        // pg's own option (its types do not list it): the extended protocol even without parameters.
        await c.query(extended ? ({ text: s, queryMode: 'extended' } as pg.QueryConfig) : s);
      } catch (err) {
        errors.push(`${(err as { code?: string }).code}: ${(err as Error).message}`);
      }
    }
  } finally {
    await c.end().catch(() => undefined);
  }
  return { errors };
}

/** Raw protocol: each step as Parse/Bind/Execute/Sync (or a bare Execute of a named portal). */
async function viaRaw(a: Attempt): Promise<{ errors: string[] }> {
  const startup: Record<string, string> = {};
  if (a.env?.PGCLIENTENCODING) startup.client_encoding = a.env.PGCLIENTENCODING;
  if (a.env?.PGOPTIONS) startup.options = a.env.PGOPTIONS;
  const { wire, error } = await rawLogin(env.warden.port, a.as, PASSWORDS[a.as], startup);
  const errors: string[] = [];
  if (error) return { errors: [`${error.C}: ${error.M}`] };
  try {
    for (const s of a.steps) {
      if (typeof s === 'string') {
        // Transaction control and multi-statement strings go as simple queries, everything else extended.
        const simple = /^\s*(BEGIN|COMMIT|ROLLBACK|SET|DECLARE)\b/i.test(s) || s.includes(';');
        wire.write(simple ? queryMessage(asText(a, s)) : extendedMessages(asText(a, s)));
      } else {
        wire.write(Buffer.concat([message('E', Buffer.concat([cstr(s.execute), int32(0)])), message('S')]));
      }
      for (const e of errorsOf(await untilReady(wire))) errors.push(`${e.C}: ${e.M}`);
    }
  } finally {
    wire.write(message('X'));
    wire.destroy();
    Wire.opened.delete(wire);
  }
  return { errors };
}

function clientsOf(a: Attempt): Client[] {
  if (a.clients) return a.clients;
  if (a.bytes) return ['psql', 'raw'];
  return ['psql', 'pg', 'pg-extended'];
}

/** The upstream settles (a client's session may still be ending): wait briefly for it. */
async function settledFingerprint(): Promise<string> {
  let f = await fingerprint();
  for (let i = 0; i < 10 && f !== baseline; i++) {
    await new Promise((r) => setTimeout(r, 50));
    f = await fingerprint();
  }
  return f;
}

describe('statement-bypass corpus', () => {
  it('has at least 120 attempts with unique ids', () => {
    expect(corpus.attempts.length).toBeGreaterThanOrEqual(120);
    expect(new Set(corpus.attempts.map((a) => a.id)).size).toBe(corpus.attempts.length);
  });

  it.each(corpus.attempts.map((a) => [a.id, a] as const))('%s', async (_id, a) => {
    if (a.real !== false && clientsOf(a).includes('psql')) {
      // Directly, the attempt really changes the database.
      await viaPsql(a, env.cluster.port, 'warden_svc', SVC_PASSWORD);
      const after = await fingerprint();
      expect(after, `${a.id} changes nothing when run directly: not a real attempt`).not.toBe(baseline);
      await resetFixture();
    }
    for (const client of clientsOf(a)) {
      const r =
        client === 'psql'
          ? await viaPsql(a, env.warden.port, a.as, PASSWORDS[a.as])
          : client === 'raw'
            ? await viaRaw(a)
            : await viaPg(a, client === 'pg-extended');
      const after = await settledFingerprint();
      if (after !== baseline) await resetFixture();
      expect(after === baseline, `${a.id} via ${client} changed the upstream (${a.why}); errors: ${r.errors.join(' | ')}`).toBe(true);
      expect(r.errors.length, `${a.id} via ${client}: nothing was refused`).toBeGreaterThan(0);
    }
  });
});
