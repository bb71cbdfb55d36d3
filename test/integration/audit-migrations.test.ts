/**
 * Migrations through Warden with the audit log on: each migration runs in one
 * transaction (node-pg-migrate, knex, Alembic), with DROP INDEX followed by
 * ALTER TABLE of the same table. The DDL's before/after definitions are read
 * on the session's own connection, in its transaction: they see what the
 * transaction already changed, and nothing waits on the session's own locks
 * (a separate catalog connection waited 5 s for the dropped index's lock and
 * recorded a table created earlier in the transaction as "created").
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseYaml, PASSWORDS, SVC_PASSWORD, startEnv, type TestEnv } from '../helpers/warden-env.js';
import { run } from '../helpers/psql.js';
import { openSqliteStore } from '../../src/audit/store-sqlite.js';
import type { AuditRecord } from '../../src/audit/chain.js';
import type { AuditStore } from '../../src/audit/store.js';

const require = createRequire(import.meta.url);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-migrations-'));
const dbFile = path.join(dir, 'audit.db');
const keyFile = path.join(dir, 'signing.pem');
fs.writeFileSync(keyFile, crypto.generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }));

let env: TestEnv;
let reader: AuditStore;

beforeAll(async () => {
  env = await startEnv({
    yaml: (p) =>
      baseYaml(
        p,
        `audit:
  store: sqlite:${dbFile}
  instance: migrations-test
  signing_key: ${keyFile}
`,
      ),
  });
  reader = await openSqliteStore(dbFile, { readOnly: true });
});

afterAll(async () => {
  await reader?.close();
  await env?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function records(): Promise<AuditRecord[]> {
  const out: AuditRecord[] = [];
  for await (const r of reader.query({})) out.push(r);
  return out;
}

type Json = Record<string, unknown>;
interface Change {
  sql: string;
  before: Json | null;
  after: Json | null;
  read: { before: string; after: string };
}

/** The schema.change records of the statements whose SQL matches, with their before/after of `object`. */
async function changesFor(match: RegExp, object: string, since: number): Promise<Change[]> {
  // The change record may follow its statement by a moment.
  for (let i = 0; i < 50; i++) {
    const all = (await records()).filter((r) => r.seq > since);
    const begins = new Map(all.filter((r) => r.type === 'statement.begin').map((r) => [r.seq, r.data as Json]));
    const out: Change[] = [];
    let missing = false;
    for (const [seq, data] of begins) {
      if (!match.test(String(data.sql))) continue;
      const ch = all.find((r) => r.type === 'schema.change' && (r.data as Json).statement_seq === seq);
      if (!ch) {
        missing = true;
        continue;
      }
      const d = ch.data as Json;
      const o = ((d.objects as Json)[object] ?? {}) as Json;
      out.push({ sql: String(data.sql), before: (o.before ?? null) as Json | null, after: (o.after ?? null) as Json | null, read: d.read as Change['read'] });
    }
    if (!missing && out.length > 0) return out;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no schema.change for ${match}`);
}

async function lastSeq(): Promise<number> {
  const all = await records();
  return all.length ? all[all.length - 1]!.seq : 0;
}

const columnsOf = (def: Json | null): string[] => ((def?.columns as { name: string }[] | undefined) ?? []).map((c) => c.name);
const indexesOf = (def: Json | null): string[] => ((def?.indexes as { name: string }[] | undefined) ?? []).map((c) => c.name);

async function prepare(schema: string): Promise<void> {
  await env.cluster.query(
    `set role warden_svc; create schema ${schema}; create table ${schema}.t (id int primary key, a int, b int); create index t_a_idx on ${schema}.t (a);`,
    'app',
  );
}

describe('DDL in a transaction, read in it', () => {
  it('DROP INDEX then ALTER TABLE in one transaction: no lock wait, and the ALTER has its real before and after', async () => {
    await prepare('m1');
    const since = await lastSeq();
    const c = await env.connect('alice');
    const t0 = Date.now();
    await c.query('BEGIN');
    await c.query('DROP INDEX m1.t_a_idx');
    await c.query('ALTER TABLE m1.t DROP COLUMN b');
    await c.query('COMMIT');
    const elapsed = Date.now() - t0;
    await c.end();
    const [alter] = await changesFor(/ALTER TABLE m1\.t/, 'm1.t', since);
    expect(alter!.read).toEqual({ before: 'transaction', after: 'transaction' });
    // Before the ALTER, inside the transaction: the index is already gone, column b still there.
    expect(indexesOf(alter!.before)).not.toContain('t_a_idx');
    expect(columnsOf(alter!.before)).toEqual(['id', 'a', 'b']);
    expect(columnsOf(alter!.after)).toEqual(['id', 'a']);
    // The catalog connection waited 5 s for the index's lock here.
    expect(elapsed).toBeLessThan(4_000);
  });

  it('ALTER of a table created earlier in the transaction: before is the table as created, not "did not exist"', async () => {
    const since = await lastSeq();
    const c = await env.connect('alice');
    await c.query('BEGIN');
    await c.query('CREATE TABLE public.fresh (id int)');
    await c.query('ALTER TABLE public.fresh ADD COLUMN note text');
    await c.query('ALTER TABLE public.fresh ADD COLUMN more int');
    await c.query('COMMIT');
    await c.end();
    const changes = await changesFor(/ALTER TABLE public\.fresh/, 'public.fresh', since);
    expect(changes.map((x) => [columnsOf(x.before), columnsOf(x.after)])).toEqual([
      [['id'], ['id', 'note']],
      [['id', 'note'], ['id', 'note', 'more']],
    ]);
  });

  it('a transaction that stays open keeps the session usable and the internal reads invisible to the client', async () => {
    const c = await env.connect('alice');
    const notices: string[] = [];
    c.on('notice', (n) => notices.push(n.message ?? ''));
    await c.query('BEGIN');
    await c.query('CREATE TABLE public.visible (id int)');
    await c.query('ALTER TABLE public.visible ADD COLUMN x int');
    // The client's own savepoints and state are untouched by Warden's.
    await c.query('SAVEPOINT mine');
    await expect(c.query('SELECT 1/0')).rejects.toThrow(/division by zero/);
    await c.query('ROLLBACK TO SAVEPOINT mine');
    const r = await c.query("SELECT count(*)::int AS n FROM pg_catalog.pg_attribute WHERE attrelid = 'public.visible'::regclass AND attnum > 0");
    expect(r.rows[0].n).toBe(2);
    await c.query('ROLLBACK');
    await c.end();
    expect(notices).toEqual([]);
  });
});

/** Run a command, returning its duration; fails the test with its output on a non-zero exit. */
async function timed(cmd: string, args: string[], envVars: Record<string, string>, cwd?: string): Promise<number> {
  const t0 = Date.now();
  const r = await run('bash', ['-c', `cd ${JSON.stringify(cwd ?? dir)} && ${[cmd, ...args].map((a) => JSON.stringify(a)).join(' ')}`], { ...process.env, ...envVars });
  if (r.code !== 0) throw new Error(`${cmd} failed (${r.code}): ${r.out}\n${r.err}`);
  return Date.now() - t0;
}

const urlVia = (port: number, user: string, password: string): string => `postgres://${user}:${encodeURIComponent(password)}@127.0.0.1:${port}/app`;

describe('real migration tools', () => {
  it('node-pg-migrate: a migration with DROP INDEX then ALTER TABLE, up and down', async () => {
    const work = fs.mkdtempSync(path.join(dir, 'npm-'));
    fs.mkdirSync(path.join(work, 'migrations'));
    fs.writeFileSync(
      path.join(work, 'migrations', '1700000000000_drop-b.cjs'),
      `exports.up = (pgm) => { pgm.sql('DROP INDEX m2.t_a_idx'); pgm.sql('ALTER TABLE m2.t DROP COLUMN b'); };
exports.down = (pgm) => { pgm.sql('ALTER TABLE m2.t ADD COLUMN b int'); pgm.sql('CREATE INDEX t_a_idx ON m2.t (a)'); };
`,
    );
    await prepare('m2');
    const bin = path.join(path.dirname(require.resolve('node-pg-migrate/package.json')), 'bin', 'node-pg-migrate.js');
    const since = await lastSeq();
    const via = urlVia(env.warden.port, 'alice', PASSWORDS.alice);
    const up = await timed(process.execPath, [bin, 'up', '--migrations-dir', 'migrations', '--use-glob', 'false', '-j', 'cjs'], { DATABASE_URL: via }, work);
    const [alter] = await changesFor(/ALTER TABLE m2\.t DROP COLUMN b/, 'm2.t', since);
    expect(alter!.read.before).toBe('transaction');
    expect(columnsOf(alter!.before)).toEqual(['id', 'a', 'b']);
    expect(indexesOf(alter!.before)).not.toContain('t_a_idx');
    expect(columnsOf(alter!.after)).toEqual(['id', 'a']);
    const down = await timed(process.execPath, [bin, 'down', '--migrations-dir', 'migrations', '-j', 'cjs'], { DATABASE_URL: via }, work);
    // The same, straight to PostgreSQL, for comparison (the lock wait made it 5 s slower through Warden).
    const direct = urlVia(env.cluster.port, 'warden_svc', SVC_PASSWORD);
    const upDirect = await timed(process.execPath, [bin, 'up', '--migrations-dir', 'migrations', '--use-glob', 'false', '-j', 'cjs'], { DATABASE_URL: direct }, work);
    const downDirect = await timed(process.execPath, [bin, 'down', '--migrations-dir', 'migrations', '-j', 'cjs'], { DATABASE_URL: direct }, work);
    console.log(`node-pg-migrate: through Warden up ${up} ms, down ${down} ms; directly up ${upDirect} ms, down ${downDirect} ms`);
    expect(up).toBeLessThan(upDirect + 3_000);
  });

  it('knex: migrate.latest and rollback, each migration in one transaction', async () => {
    await prepare('m3');
    const work = fs.mkdtempSync(path.join(dir, 'knex-'));
    fs.writeFileSync(
      path.join(work, '20240101000000_drop_b.cjs'),
      `exports.up = async (knex) => { await knex.raw('DROP INDEX m3.t_a_idx'); await knex.schema.withSchema('m3').alterTable('t', (t) => t.dropColumn('b')); };
exports.down = async (knex) => { await knex.schema.withSchema('m3').alterTable('t', (t) => t.integer('b')); await knex.raw('CREATE INDEX t_a_idx ON m3.t (a)'); };
`,
    );
    const knexFactory = require('knex') as (c: object) => { migrate: { latest(o: object): Promise<unknown>; rollback(o: object): Promise<unknown> }; destroy(): Promise<void> };
    const knex = knexFactory({ client: 'pg', connection: { host: '127.0.0.1', port: env.warden.port, user: 'alice', password: PASSWORDS.alice, database: 'app' } });
    const since = await lastSeq();
    try {
      const t0 = Date.now();
      await knex.migrate.latest({ directory: work, loadExtensions: ['.cjs'] });
      const up = Date.now() - t0;
      const t1 = Date.now();
      await knex.migrate.rollback({ directory: work, loadExtensions: ['.cjs'] });
      const down = Date.now() - t1;
      const direct = knexFactory({ client: 'pg', connection: { host: '127.0.0.1', port: env.cluster.port, user: 'warden_svc', password: SVC_PASSWORD, database: 'app' } });
      try {
        const t2 = Date.now();
        await direct.migrate.latest({ directory: work, loadExtensions: ['.cjs'] });
        const upDirect = Date.now() - t2;
        const t3 = Date.now();
        await direct.migrate.rollback({ directory: work, loadExtensions: ['.cjs'] });
        const downDirect = Date.now() - t3;
        console.log(`knex: through Warden latest ${up} ms, rollback ${down} ms; directly latest ${upDirect} ms, rollback ${downDirect} ms`);
        expect(up).toBeLessThan(upDirect + 3_000);
        expect(down).toBeLessThan(downDirect + 3_000);
      } finally {
        await direct.destroy();
      }
    } finally {
      await knex.destroy();
    }
    const [alter] = await changesFor(/alter table "m3"\."t" drop column "b"/i, 'm3.t', since);
    expect(alter!.read.before).toBe('transaction');
    expect(columnsOf(alter!.before)).toEqual(['id', 'a', 'b']);
    expect(indexesOf(alter!.before)).not.toContain('t_a_idx');
    expect(columnsOf(alter!.after)).toEqual(['id', 'a']);
  });

  const python = '/usr/bin/python3';
  const haveAlembic = existsSync(python) && run(python, ['-c', 'import alembic, psycopg2'], process.env).then((r) => r.code === 0);

  it('Alembic (psycopg2): upgrade and downgrade, one transaction per migration', async (ctx) => {
    if (!(await haveAlembic)) ctx.skip();
    await prepare('m4');
    const work = fs.mkdtempSync(path.join(dir, 'alembic-'));
    fs.mkdirSync(path.join(work, 'versions'));
    fs.writeFileSync(path.join(work, 'alembic.ini'), `[alembic]\nscript_location = ${work}\n`);
    fs.writeFileSync(
      path.join(work, 'env.py'),
      `import os
from alembic import context
from sqlalchemy import create_engine
engine = create_engine(os.environ['ALEMBIC_URL'])
with engine.connect() as connection:
    context.configure(connection=connection, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
`,
    );
    fs.writeFileSync(
      path.join(work, 'versions', 'a1_drop_b.py'),
      `from alembic import op
revision = 'a1'
down_revision = None
def upgrade():
    op.drop_index('t_a_idx', table_name='t', schema='m4')
    op.drop_column('t', 'b', schema='m4')
def downgrade():
    import sqlalchemy as sa
    op.add_column('t', sa.Column('b', sa.Integer()), schema='m4')
    op.create_index('t_a_idx', 't', ['a'], schema='m4')
`,
    );
    const via = `postgresql+psycopg2://alice:${PASSWORDS.alice}@127.0.0.1:${env.warden.port}/app`;
    const since = await lastSeq();
    const up = await timed(python, ['-m', 'alembic', '-c', path.join(work, 'alembic.ini'), 'upgrade', 'head'], { ALEMBIC_URL: via }, work);
    const down = await timed(python, ['-m', 'alembic', '-c', path.join(work, 'alembic.ini'), 'downgrade', 'base'], { ALEMBIC_URL: via }, work);
    console.log(`Alembic through Warden: upgrade ${up} ms, downgrade ${down} ms`);
    const [alter] = await changesFor(/ALTER TABLE m4\.t DROP COLUMN b/, 'm4.t', since);
    expect(alter!.read.before).toBe('transaction');
    expect(columnsOf(alter!.before)).toEqual(['id', 'a', 'b']);
    expect(indexesOf(alter!.before)).not.toContain('t_a_idx');
    expect(columnsOf(alter!.after)).toEqual(['id', 'a']);
    expect(up).toBeLessThan(6_000);
    // The direct run, for the note: the same migrations straight to PostgreSQL.
    await env.cluster.query('set role warden_svc; drop table m4.t; create table m4.t (id int primary key, a int, b int); create index t_a_idx on m4.t (a); drop table if exists public.alembic_version', 'app');
    const direct = urlVia(env.cluster.port, 'warden_svc', SVC_PASSWORD).replace('postgres://', 'postgresql+psycopg2://');
    const upDirect = await timed(python, ['-m', 'alembic', '-c', path.join(work, 'alembic.ini'), 'upgrade', 'head'], { ALEMBIC_URL: direct }, work);
    console.log(`Alembic directly: upgrade ${upDirect} ms`);
  });
});

void pg;
