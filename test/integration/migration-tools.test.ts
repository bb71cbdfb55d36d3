/**
 * Real schema-migration tools through Warden, under a strict policy: node-pg-migrate (its CLI),
 * knex's migrator and kysely's Migrator (their APIs, on `pg`), drizzle's migrator (on
 * postgres.js: named prepared statements, Describe before Execute) and Alembic (psycopg2; skipped
 * when /usr/bin/python3 lacks it, .ci/run installs it). The migrating identity may change the
 * schema by rule (default deny), a strict mask rule covers a column of a table the migrations
 * change, and every statement is audited. Each tool:
 *
 * - creates tables and indexes, adds and alters columns, backfills data, and (but drizzle) builds
 *   an index with CREATE INDEX CONCURRENTLY outside a transaction;
 * - reads its own bookkeeping tables and the catalog (information_schema, pg_catalog);
 * - takes its lock (node-pg-migrate and kysely: advisory locks; knex: knex_migrations_lock);
 * - finds nothing to do when run again, and rolls back;
 * - under a rule that holds DROP for approval, reports the held DROP that expired or a DBA
 *   denied as a clean failure, leaves the schema, its bookkeeping and its lock as they were, and
 *   does not hang; once a DBA approves, the same run goes through. In reject mode the tool fails
 *   at once, and the re-run after the approval runs it.
 *
 * The resulting schema is read from PostgreSQL directly, and the audit log must hold the
 * statements the tools sent, the held DROPs' requests and refusals, and the schema changes.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import postgres from 'postgres';
import { Kysely, Migrator, PostgresDialect, sql, type Migration, type MigrationProvider } from 'kysely';
import { drizzle as drizzlePg } from 'drizzle-orm/postgres-js';
import { migrate as drizzleMigrateFn } from 'drizzle-orm/postgres-js/migrator';
import { baseYaml, startEnv, type TestEnv } from '../helpers/warden-env.js';
import { run } from '../helpers/psql.js';
import { openSqliteStore } from '../../src/audit/store-sqlite.js';
import type { AuditRecord } from '../../src/audit/chain.js';
import type { AuditStore } from '../../src/audit/store.js';

const require = createRequire(import.meta.url);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-migration-tools-'));
const dbFile = path.join(dir, 'audit.db');
const MIGRATOR_PW = 'migrator-pw-7';
const DANA_PW = 'dana-pw-8';

/**
 * The policy: default deny; the migrators may read, write, change the schema, control
 * transactions and set settings; e-mail addresses are masked for everyone (strict). With
 * `holdDrops`, every DROP waits for a DBA's approval (5 s, then it expires).
 */
function yaml(pgPort: number, o: { holdDrops: boolean; mode?: 'hold' | 'reject' }): string {
  return baseYaml(
    pgPort,
    `  - { name: migrator, kind: service, groups: [migrators], password: ${MIGRATOR_PW} }
  - { name: dana, kind: human, groups: [dba], password: ${DANA_PW} }
admin: { host: 127.0.0.1, port: 0 }
audit:
  store: sqlite:${dbFile}
  instance: migration-tools
sensitive:
  columns:
    "*.customers.email": email
approvals:
  mode: ${o.mode ?? 'hold'}
  timeout: ${o.holdDrops ? '5s' : '10m'}
rules:
  - name: migrators-change-the-schema
    match: { groups: [migrators], statement: [read, write, ddl, transaction, set] }
    action: allow
  - name: mask-emails
    match: { sensitive: [email] }
    action: mask
${
  o.holdDrops
    ? `  - name: drops-need-a-dba
    match: { statement: [drop] }
    action: approve
    reason: Dropping needs a DBA
    approvers: { groups: [dba] }
`
    : ''
}default: deny
`,
  );
}

let env: TestEnv;
let reader: AuditStore;

beforeAll(async () => {
  env = await startEnv({ yaml: (p) => yaml(p, { holdDrops: false }) });
  reader = await openSqliteStore(dbFile, { readOnly: true });
});

afterAll(async () => {
  await reader?.close();
  await env?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

const viaWarden = (): pg.ClientConfig => ({ host: '127.0.0.1', port: env.warden.port, user: 'migrator', password: MIGRATOR_PW, database: 'app' });
const urlViaWarden = (): string => `postgres://migrator:${MIGRATOR_PW}@127.0.0.1:${env.warden.port}/app`;

async function q<T extends pg.QueryResultRow = Record<string, unknown>>(text: string): Promise<T[]> {
  return (await env.cluster.query(text, 'app')).rows as T[];
}

/** The schema of `schema` as PostgreSQL has it: columns (name type nullability default), indexes (name valid). */
async function schemaOf(schema: string): Promise<{ columns: Record<string, string[]>; indexes: string[] }> {
  const cols = await q<{ t: string; c: string }>(
    `SELECT table_name AS t, column_name || ' ' || data_type || CASE WHEN is_nullable = 'NO' THEN ' not null' ELSE '' END || coalesce(' default ' || column_default, '') AS c
       FROM information_schema.columns WHERE table_schema = '${schema}' ORDER BY table_name, ordinal_position`,
  );
  const columns: Record<string, string[]> = {};
  for (const r of cols) (columns[r.t] ??= []).push(r.c);
  const idx = await q<{ i: string }>(
    `SELECT c.relname || CASE WHEN x.indisvalid THEN '' ELSE ' INVALID' END AS i FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = '${schema}' ORDER BY 1`,
  );
  return { columns, indexes: idx.map((r) => r.i) };
}

/**
 * Advisory locks held in the cluster, once they are gone (up to 3 s): a tool that failed in a
 * transaction cannot unlock and leaves it to its backend's exit, which follows its disconnect
 * by a moment.
 */
async function advisoryLocks(): Promise<number> {
  let n = 0;
  for (let i = 0; i < 30; i++) {
    n = Number((await q<{ n: string }>(`SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory'`))[0]!.n);
    if (n === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return n;
}

async function auditRecords(): Promise<AuditRecord[]> {
  const out: AuditRecord[] = [];
  for await (const r of reader.query({})) out.push(r);
  return out;
}

/** The SQL of the audited statements of the migrator, in order. */
async function auditedSql(): Promise<string[]> {
  // Records are written a moment after their statement.
  await new Promise((r) => setTimeout(r, 300));
  return (await auditRecords()).filter((r) => r.type === 'statement.begin' && (r.data as { identity?: unknown }).identity === 'migrator').map((r) => String((r.data as { sql?: unknown }).sql));
}

/** Emails as the migrator sees them through Warden, and as they are. */
async function emailsBothWays(schema: string): Promise<{ masked: string[]; real: string[] }> {
  const c = new pg.Client(viaWarden());
  await c.connect();
  try {
    const masked = (await c.query(`SELECT email FROM ${schema}.customers ORDER BY id`)).rows.map((r: { email: string }) => r.email);
    const real = (await q<{ email: string }>(`SELECT email FROM ${schema}.customers ORDER BY id`)).map((r) => r.email);
    return { masked, real };
  } finally {
    await c.end();
  }
}

const expectedSchema = {
  customers: ['id integer not null', 'email text not null', 'name text', 'created_at timestamp with time zone not null', 'status text not null'],
  orders: ['id integer not null', 'customer_id integer not null', 'total numeric'],
};

/** The schema after all three migrations (column defaults aside). */
function stripDefaults(s: { columns: Record<string, string[]>; indexes: string[] }): { columns: Record<string, string[]>; indexes: string[] } {
  return { columns: Object.fromEntries(Object.entries(s.columns).map(([t, cs]) => [t, cs.map((c) => c.replace(/ default .*$/, ''))])), indexes: s.indexes };
}

async function restart(holdDrops: boolean, mode: 'hold' | 'reject' = 'hold'): Promise<void> {
  await env.restart({ yaml: yaml(env.cluster.port, { holdDrops, mode }) });
}

const basic = (user: string, pw: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${pw}`).toString('base64')}`, 'content-type': 'application/json' });

/** Decide the first pending request once it appears (dana, through the admin API); its SQL. */
async function decideWhenPending(decision: 'approve' | 'deny'): Promise<string> {
  const port = env.warden.admin!.port;
  const t0 = Date.now();
  for (;;) {
    const res = await fetch(`http://127.0.0.1:${port}/api/v1/approvals?status=pending`, { headers: basic('dana', DANA_PW) });
    const body = (await res.json()) as { requests: { id: string; sql: string }[] };
    const req = body.requests[0];
    if (req) {
      const r = await fetch(`http://127.0.0.1:${port}/api/v1/approvals/${req.id}/${decision}`, {
        method: 'POST',
        headers: basic('dana', DANA_PW),
        body: JSON.stringify({ reason: decision === 'approve' ? 'planned cleanup' : 'not during the freeze' }),
      });
      expect(r.status).toBe(200);
      return req.sql;
    }
    if (Date.now() - t0 > 10_000) throw new Error('no pending approval request');
    await new Promise((r) => setTimeout(r, 50));
  }
}

// ───────────────────────────── node-pg-migrate ─────────────────────────────

describe('node-pg-migrate (CLI)', () => {
  const schema = 'npm_app';
  const work = path.join(dir, 'node-pg-migrate');
  const bin = path.join(path.dirname(require.resolve('node-pg-migrate/package.json')), 'bin', 'node-pg-migrate.js');
  const cli = (args: string[]) =>
    run(process.execPath, [bin, ...args, '--migrations-dir', path.join(work, 'migrations'), '--use-glob', 'false', '-j', 'cjs', '--schema', schema, '--create-schema'], {
      ...process.env,
      DATABASE_URL: urlViaWarden(),
    }, undefined, 30_000);

  beforeAll(() => {
    fs.mkdirSync(path.join(work, 'migrations'), { recursive: true });
    const m = (name: string, body: string) => fs.writeFileSync(path.join(work, 'migrations', name), body);
    m(
      '1700000000001_create-customers.cjs',
      `exports.up = (pgm) => {
  pgm.createTable('customers', {
    id: 'id',
    email: { type: 'text', notNull: true },
    name: { type: 'text' },
    created_at: { type: 'timestamptz', notNull: true, default: pgm.func('now()') },
  });
  pgm.createTable('orders', {
    id: 'id',
    customer_id: { type: 'integer', notNull: true, references: 'customers', onDelete: 'CASCADE' },
    total: { type: 'numeric' },
  });
  pgm.createIndex('orders', 'customer_id');
  pgm.sql("INSERT INTO customers (email, name) VALUES ('ann@example.com', 'Ann'), ('bo@example.org', 'Bo'), ('cy@example.net', 'Cy')");
};
exports.down = (pgm) => { pgm.dropTable('orders'); pgm.dropTable('customers'); };
`,
    );
    m(
      '1700000000002_add-status.cjs',
      `exports.up = (pgm) => {
  pgm.addColumn('customers', { status: { type: 'text' } });
  pgm.sql("UPDATE customers SET status = 'active' WHERE status IS NULL");
  pgm.alterColumn('customers', 'status', { notNull: true, default: 'active' });
  pgm.createIndex('customers', 'lower(name)', { name: 'customers_name_lower_idx', unique: true });
};
exports.down = (pgm) => { pgm.dropIndex('customers', [], { name: 'customers_name_lower_idx' }); pgm.dropColumn('customers', 'status'); };
`,
    );
    m(
      '1700000000003_status-index.cjs',
      `exports.up = (pgm) => {
  pgm.noTransaction();
  pgm.createIndex('customers', 'status', { name: 'customers_status_idx', concurrently: true });
};
exports.down = (pgm) => {
  pgm.noTransaction();
  pgm.dropIndex('customers', 'status', { name: 'customers_status_idx', concurrently: true });
};
`,
    );
  });

  it('up: tables, indexes (one CONCURRENTLY), a new column and its backfill; the advisory lock is released', async () => {
    const r = await cli(['up']);
    expect(r.code, r.out + r.err).toBe(0);
    const s = stripDefaults(await schemaOf(schema));
    expect(s.columns.customers).toEqual(expectedSchema.customers);
    expect(s.columns.orders).toEqual(expectedSchema.orders);
    expect(s.indexes).toEqual(['customers_name_lower_idx', 'customers_pkey', 'customers_status_idx', 'orders_customer_id_index', 'orders_pkey', 'pgmigrations_pkey']);
    expect(await q(`SELECT DISTINCT status FROM ${schema}.customers`)).toEqual([{ status: 'active' }]);
    expect((await q<{ name: string }>(`SELECT name FROM ${schema}.pgmigrations ORDER BY id`)).map((x) => x.name)).toEqual([
      '1700000000001_create-customers',
      '1700000000002_add-status',
      '1700000000003_status-index',
    ]);
    expect(await advisoryLocks()).toBe(0);
    const audited = await auditedSql();
    expect(audited).toContain('SELECT pg_try_advisory_lock(7241865325823964) AS "lockObtained"');
    expect(audited.some((x) => /CREATE INDEX CONCURRENTLY "customers_status_idx"/.test(x))).toBe(true);
    expect(audited.some((x) => /UPDATE customers SET status = 'active'/.test(x))).toBe(true);
    expect(audited.some((x) => /information_schema\.tables/.test(x))).toBe(true);
  });

  it('a second run has nothing to do; the masked column stays masked for the migrator; the policy is strict', async () => {
    const r = await cli(['up']);
    expect(r.code, r.out + r.err).toBe(0);
    expect(r.out).toContain('No migrations to run!');
    // What the migrators' rule does not cover is refused (default deny), dynamic SQL included.
    const c = new pg.Client(viaWarden());
    await c.connect();
    try {
      await expect(c.query('SELECT pg_reload_conf()')).rejects.toMatchObject({ code: '42501' });
      await expect(c.query("DO $$ BEGIN EXECUTE format('SELECT %s', 1); END $$")).rejects.toMatchObject({ code: '42501', message: expect.stringContaining('dynamic SQL') });
      expect((await c.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
    } finally {
      await c.end();
    }
    const { masked, real } = await emailsBothWays(schema);
    expect(real).toEqual(['ann@example.com', 'bo@example.org', 'cy@example.net']);
    expect(masked).toHaveLength(3);
    for (let i = 0; i < 3; i++) expect(masked[i]).not.toBe(real[i]);
  });

  it('another run holding the lock: the CLI says so and changes nothing', async () => {
    const holder = new pg.Client({ connectionString: env.cluster.url('app') });
    await holder.connect();
    try {
      await holder.query('SELECT pg_advisory_lock(7241865325823964)');
      const r = await cli(['down']);
      expect(r.code).not.toBe(0);
      expect(r.err + r.out).toContain('Another migration is already running');
      expect((await schemaOf(schema)).indexes).toContain('customers_status_idx');
    } finally {
      await holder.end();
    }
  });

  it('down: the CONCURRENTLY index is dropped outside a transaction', async () => {
    const r = await cli(['down']);
    expect(r.code, r.out + r.err).toBe(0);
    expect((await schemaOf(schema)).indexes).not.toContain('customers_status_idx');
    expect((await q(`SELECT count(*)::int AS n FROM ${schema}.pgmigrations`))[0]).toEqual({ n: 2 });
    expect((await auditedSql()).some((x) => /DROP INDEX CONCURRENTLY/.test(x))).toBe(true);
  });
});

// ───────────────────────────── knex ─────────────────────────────

interface KnexLike {
  migrate: {
    latest(o?: object): Promise<[number, string[]]>;
    up(o?: object): Promise<[number, string[]]>;
    down(o?: object): Promise<[number, string[]]>;
  };
  raw(sql: string): Promise<unknown>;
  destroy(): Promise<void>;
}
const knexFactory = require('knex') as (c: object) => KnexLike;

const knexSchema = 'knex_app';
const knexDir = path.join(dir, 'knex');
/** A knex instance through Warden: the search_path set per connection (knex sends SET), migrations in knex_app. */
function knexViaWarden(): KnexLike {
  return knexFactory({ client: 'pg', connection: viaWarden(), searchPath: [knexSchema], pool: { min: 0, max: 2 } });
}
const knexOpts = { directory: knexDir, loadExtensions: ['.cjs'], schemaName: knexSchema };

describe('knex (migrator API)', () => {
  beforeAll(async () => {
    fs.mkdirSync(knexDir, { recursive: true });
    const m = (name: string, body: string) => fs.writeFileSync(path.join(knexDir, name), body);
    m(
      '20240101000001_create_customers.cjs',
      `exports.up = async (knex) => {
  await knex.schema.createTable('customers', (t) => {
    t.increments('id');
    t.text('email').notNullable();
    t.text('name');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.schema.createTable('orders', (t) => {
    t.increments('id');
    t.integer('customer_id').notNullable().references('id').inTable('${knexSchema}.customers').onDelete('CASCADE');
    t.decimal('total');
    t.index(['customer_id'], 'orders_customer_id_index');
  });
  await knex('customers').insert([{ email: 'ann@example.com', name: 'Ann' }, { email: 'bo@example.org', name: 'Bo' }, { email: 'cy@example.net', name: 'Cy' }]);
};
exports.down = async (knex) => { await knex.schema.dropTable('orders'); await knex.schema.dropTable('customers'); };
`,
    );
    m(
      '20240101000002_add_status.cjs',
      `exports.up = async (knex) => {
  await knex.schema.alterTable('customers', (t) => t.text('status'));
  await knex('customers').whereNull('status').update({ status: 'active' });
  await knex.schema.alterTable('customers', (t) => t.text('status').notNullable().defaultTo('active').alter());
  await knex.raw('CREATE UNIQUE INDEX customers_name_lower_idx ON customers (lower(name))');
  // A migration that checks the catalog before acting (information_schema.columns).
  if (!(await knex.schema.hasColumn('customers', 'status'))) throw new Error('status column missing');
};
exports.down = async (knex) => {
  await knex.raw('DROP INDEX customers_name_lower_idx');
  await knex.schema.alterTable('customers', (t) => t.dropColumn('status'));
};
`,
    );
    m(
      '20240101000003_status_index.cjs',
      `exports.config = { transaction: false };
exports.up = async (knex) => { await knex.raw('CREATE INDEX CONCURRENTLY customers_status_idx ON customers (status)'); };
exports.down = async (knex) => { await knex.raw('DROP INDEX CONCURRENTLY customers_status_idx'); };
`,
    );
    const c = new pg.Client(viaWarden());
    await c.connect();
    await c.query(`CREATE SCHEMA ${knexSchema}`);
    await c.end();
  });

  it('latest: tables, indexes (one CONCURRENTLY), a new column and its backfill; knex_migrations_lock is free again', async () => {
    const knex = knexViaWarden();
    try {
      const [batch, log] = await knex.migrate.latest(knexOpts);
      expect(batch).toBe(1);
      expect(log).toEqual(['20240101000001_create_customers.cjs', '20240101000002_add_status.cjs', '20240101000003_status_index.cjs']);
    } finally {
      await knex.destroy();
    }
    const s = stripDefaults(await schemaOf(knexSchema));
    expect(s.columns.customers).toEqual(expectedSchema.customers);
    expect(s.columns.orders).toEqual(expectedSchema.orders);
    expect(s.indexes).toEqual(['customers_name_lower_idx', 'customers_pkey', 'customers_status_idx', 'knex_migrations_lock_pkey', 'knex_migrations_pkey', 'orders_customer_id_index', 'orders_pkey']);
    expect(await q(`SELECT DISTINCT status FROM ${knexSchema}.customers`)).toEqual([{ status: 'active' }]);
    expect(await q(`SELECT is_locked FROM ${knexSchema}.knex_migrations_lock`)).toEqual([{ is_locked: 0 }]);
    const audited = await auditedSql();
    expect(audited).toContain('update "knex_app"."knex_migrations_lock" set "is_locked" = $1 where "is_locked" = $2');
    expect(audited).toContain('CREATE INDEX CONCURRENTLY customers_status_idx ON customers (status)');
    expect(audited.some((x) => /update "customers" set "status" = \$1 where "status" is null/.test(x))).toBe(true);
    expect(audited.some((x) => /information_schema\.columns/.test(x))).toBe(true);
  });

  it('a second run has nothing to do; a lock held elsewhere is reported; the masked column stays masked', async () => {
    const knex = knexViaWarden();
    try {
      expect(await knex.migrate.latest(knexOpts)).toEqual([1, []]);
      await q(`UPDATE ${knexSchema}.knex_migrations_lock SET is_locked = 1`);
      await expect(knex.migrate.down(knexOpts)).rejects.toThrow(/Migration table is already locked/);
      await q(`UPDATE ${knexSchema}.knex_migrations_lock SET is_locked = 0`);
    } finally {
      await knex.destroy();
    }
    expect((await schemaOf(knexSchema)).indexes).toContain('customers_status_idx');
    const { masked, real } = await emailsBothWays(knexSchema);
    expect(real).toEqual(['ann@example.com', 'bo@example.org', 'cy@example.net']);
    for (let i = 0; i < 3; i++) expect(masked[i]).not.toBe(real[i]);
  });

  it('down: the CONCURRENTLY index is dropped outside a transaction', async () => {
    const knex = knexViaWarden();
    try {
      const [, log] = await knex.migrate.down(knexOpts);
      expect(log).toEqual(['20240101000003_status_index.cjs']);
    } finally {
      await knex.destroy();
    }
    expect((await schemaOf(knexSchema)).indexes).not.toContain('customers_status_idx');
    expect(await q(`SELECT count(*)::int AS n FROM ${knexSchema}.knex_migrations`)).toEqual([{ n: 2 }]);
    expect(await auditedSql()).toContain('DROP INDEX CONCURRENTLY customers_status_idx');
  });
});

// ───────────────────────────── kysely ─────────────────────────────

const kyselySchema = 'kysely_app';
type AnyDb = Kysely<Record<string, Record<string, unknown>>>;

function kyselyViaWarden(): AnyDb {
  return new Kysely({ dialect: new PostgresDialect({ pool: new pg.Pool({ ...viaWarden(), max: 2 }) }) });
}

const kyselyMigrations: Record<string, Migration> = {
  '001_create_customers': {
    async up(db: AnyDb) {
      const s = db.schema.withSchema(kyselySchema);
      await s
        .createTable('customers')
        .addColumn('id', 'serial', (c) => c.primaryKey())
        .addColumn('email', 'text', (c) => c.notNull())
        .addColumn('name', 'text')
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .execute();
      await s
        .createTable('orders')
        .addColumn('id', 'serial', (c) => c.primaryKey())
        .addColumn('customer_id', 'integer', (c) => c.notNull().references(`${kyselySchema}.customers.id`).onDelete('cascade'))
        .addColumn('total', 'numeric')
        .execute();
      await s.createIndex('orders_customer_id_index').on('orders').column('customer_id').execute();
      await db
        .withSchema(kyselySchema)
        .insertInto('customers')
        .values([
          { email: 'ann@example.com', name: 'Ann' },
          { email: 'bo@example.org', name: 'Bo' },
          { email: 'cy@example.net', name: 'Cy' },
        ])
        .execute();
    },
    async down(db: AnyDb) {
      await db.schema.withSchema(kyselySchema).dropTable('orders').execute();
      await db.schema.withSchema(kyselySchema).dropTable('customers').execute();
    },
  },
  '002_add_status': {
    async up(db: AnyDb) {
      const s = db.schema.withSchema(kyselySchema);
      await s.alterTable('customers').addColumn('status', 'text').execute();
      await db.withSchema(kyselySchema).updateTable('customers').set({ status: 'active' }).where('status', 'is', null).execute();
      await s.alterTable('customers').alterColumn('status', (c) => c.setNotNull()).execute();
      await s.alterTable('customers').alterColumn('status', (c) => c.setDefault('active')).execute();
      await s.createIndex('customers_name_lower_idx').unique().on('customers').expression(sql`lower(name)`).execute();
      // What kysely's introspection reads (pg_catalog) sees the new column in the open transaction.
      const tables = await db.introspection.getTables();
      const customers = tables.find((t) => t.schema === kyselySchema && t.name === 'customers');
      if (!customers?.columns.some((c) => c.name === 'status' && !c.isNullable)) throw new Error('status column missing');
    },
    async down(db: AnyDb) {
      await db.schema.withSchema(kyselySchema).dropIndex('customers_name_lower_idx').execute();
      await db.schema.withSchema(kyselySchema).alterTable('customers').dropColumn('status').execute();
    },
  },
};
const kyselyConcurrent: Record<string, Migration> = {
  '003_status_index': {
    async up(db: AnyDb) {
      await sql`CREATE INDEX CONCURRENTLY customers_status_idx ON ${sql.table(`${kyselySchema}.customers`)} (status)`.execute(db);
    },
    async down(db: AnyDb) {
      await sql`DROP INDEX CONCURRENTLY ${sql.table(`${kyselySchema}.customers_status_idx`)}`.execute(db);
    },
  },
};

function kyselyMigrator(db: AnyDb, migrations: Record<string, Migration>, disableTransactions = false): Migrator {
  const provider: MigrationProvider = { getMigrations: async () => migrations };
  return new Migrator({ db, provider, migrationTableSchema: kyselySchema, disableTransactions });
}

describe('kysely (Migrator API)', () => {
  it('two migrators at once: the advisory lock serialises them, each migration runs once', async () => {
    const a = kyselyViaWarden();
    const b = kyselyViaWarden();
    try {
      const [ra, rb] = await Promise.all([kyselyMigrator(a, kyselyMigrations).migrateToLatest(), kyselyMigrator(b, kyselyMigrations).migrateToLatest()]);
      expect(ra.error).toBeUndefined();
      expect(rb.error).toBeUndefined();
      const ran = [...(ra.results ?? []), ...(rb.results ?? [])].map((r) => `${r.migrationName} ${r.status}`).sort();
      expect(ran).toEqual(['001_create_customers Success', '002_add_status Success']);
    } finally {
      await a.destroy();
      await b.destroy();
    }
    expect(await advisoryLocks()).toBe(0);
    const audited = await auditedSql();
    expect(audited.filter((x) => /select pg_advisory_lock\(3853314791062309107\)/.test(x)).length).toBeGreaterThanOrEqual(2);
  });

  it('CREATE INDEX CONCURRENTLY with transactions disabled; a second run has nothing to do; down', async () => {
    const db = kyselyViaWarden();
    const all = { ...kyselyMigrations, ...kyselyConcurrent };
    try {
      const r = await kyselyMigrator(db, all, true).migrateToLatest();
      expect(r.error).toBeUndefined();
      expect(r.results?.map((x) => `${x.migrationName} ${x.status}`)).toEqual(['003_status_index Success']);
      const s = stripDefaults(await schemaOf(kyselySchema));
      expect(s.columns.customers).toEqual(expectedSchema.customers);
      expect(s.columns.orders).toEqual(expectedSchema.orders);
      expect(s.indexes).toEqual(['customers_name_lower_idx', 'customers_pkey', 'customers_status_idx', 'kysely_migration_lock_pkey', 'kysely_migration_pkey', 'orders_customer_id_index', 'orders_pkey']);
      expect(await q(`SELECT DISTINCT status FROM ${kyselySchema}.customers`)).toEqual([{ status: 'active' }]);
      const again = await kyselyMigrator(db, all).migrateToLatest();
      expect(again.error).toBeUndefined();
      expect(again.results).toEqual([]);
      const down = await kyselyMigrator(db, all, true).migrateDown();
      expect(down.error).toBeUndefined();
      expect(down.results?.map((x) => `${x.migrationName} ${x.direction} ${x.status}`)).toEqual(['003_status_index Down Success']);
    } finally {
      await db.destroy();
    }
    expect((await schemaOf(kyselySchema)).indexes).not.toContain('customers_status_idx');
    expect(await advisoryLocks()).toBe(0);
    const { masked, real } = await emailsBothWays(kyselySchema);
    for (let i = 0; i < 3; i++) expect(masked[i]).not.toBe(real[i]);
    const audited = await auditedSql();
    expect(audited.some((x) => /CREATE INDEX CONCURRENTLY customers_status_idx/.test(x))).toBe(true);
    expect(audited.some((x) => /pg_catalog\.pg_attribute|pg_attribute/.test(x))).toBe(true);
  });
});

// ───────────────────────────── drizzle (on postgres.js) ─────────────────────────────

const drizzleSchema = 'drizzle_app';
const drizzleDir = path.join(dir, 'drizzle');
const drizzleJournal: { idx: number; version: string; when: number; tag: string; breakpoints: boolean }[] = [];

/** A drizzle-kit style migration: statements separated by breakpoints, listed in meta/_journal.json. */
function drizzleMigration(tag: string, statements: string[]): void {
  fs.mkdirSync(path.join(drizzleDir, 'meta'), { recursive: true });
  fs.writeFileSync(path.join(drizzleDir, `${tag}.sql`), statements.join('\n--> statement-breakpoint\n'));
  drizzleJournal.push({ idx: drizzleJournal.length, version: '7', when: 1_700_000_000_000 + drizzleJournal.length, tag, breakpoints: true });
  fs.writeFileSync(path.join(drizzleDir, 'meta', '_journal.json'), JSON.stringify({ version: '7', dialect: 'postgresql', entries: drizzleJournal }));
}

/** drizzle's migrator on postgres.js (named prepared statements, Describe before Execute) through Warden. */
async function drizzleMigrate(): Promise<void> {
  const client = postgres({ host: '127.0.0.1', port: env.warden.port, user: 'migrator', password: MIGRATOR_PW, database: 'app', max: 1, onnotice: () => undefined });
  try {
    await drizzleMigrateFn(drizzlePg(client), { migrationsFolder: drizzleDir });
  } finally {
    await client.end();
  }
}

describe('drizzle (migrator on postgres.js)', () => {
  beforeAll(() => {
    const t = `"${drizzleSchema}"`;
    drizzleMigration('0000_create', [
      `CREATE SCHEMA ${t};`,
      `CREATE TABLE ${t}."customers" ("id" serial PRIMARY KEY NOT NULL, "email" text NOT NULL, "name" text, "created_at" timestamp with time zone DEFAULT now() NOT NULL);`,
      `CREATE TABLE ${t}."orders" ("id" serial PRIMARY KEY NOT NULL, "customer_id" integer NOT NULL, "total" numeric);`,
      `ALTER TABLE ${t}."orders" ADD CONSTRAINT "orders_customer_id_customers_id_fk" FOREIGN KEY ("customer_id") REFERENCES ${t}."customers"("id") ON DELETE cascade ON UPDATE no action;`,
      `CREATE INDEX "orders_customer_id_index" ON ${t}."orders" USING btree ("customer_id");`,
      `INSERT INTO ${t}."customers" ("email", "name") VALUES ('ann@example.com', 'Ann'), ('bo@example.org', 'Bo'), ('cy@example.net', 'Cy');`,
    ]);
    drizzleMigration('0001_status', [
      `ALTER TABLE ${t}."customers" ADD COLUMN "status" text;`,
      `UPDATE ${t}."customers" SET "status" = 'active' WHERE "status" IS NULL;`,
      `ALTER TABLE ${t}."customers" ALTER COLUMN "status" SET DEFAULT 'active';`,
      `ALTER TABLE ${t}."customers" ALTER COLUMN "status" SET NOT NULL;`,
      `CREATE UNIQUE INDEX "customers_name_lower_idx" ON ${t}."customers" USING btree (lower("name"));`,
      `CREATE INDEX "customers_status_idx" ON ${t}."customers" USING btree ("status");`,
    ]);
  });

  it('migrate: both migrations in one transaction; a second run has nothing to do; the masked column stays masked', async () => {
    await drizzleMigrate();
    const s = stripDefaults(await schemaOf(drizzleSchema));
    expect(s.columns.customers).toEqual(expectedSchema.customers);
    expect(s.columns.orders).toEqual(expectedSchema.orders);
    expect(s.indexes).toEqual(['customers_name_lower_idx', 'customers_pkey', 'customers_status_idx', 'orders_customer_id_index', 'orders_pkey']);
    expect(await q(`SELECT DISTINCT status FROM ${drizzleSchema}.customers`)).toEqual([{ status: 'active' }]);
    expect(await q(`SELECT count(*)::int AS n FROM drizzle.__drizzle_migrations`)).toEqual([{ n: 2 }]);
    const before = (await auditedSql()).length;
    await drizzleMigrate();
    expect(await q(`SELECT count(*)::int AS n FROM drizzle.__drizzle_migrations`)).toEqual([{ n: 2 }]);
    const second = (await auditedSql()).slice(before);
    expect(second.some((x) => /^select id, hash, created_at from "drizzle"\."__drizzle_migrations"/.test(x))).toBe(true);
    expect(second.some((x) => /ALTER TABLE|CREATE INDEX/.test(x))).toBe(false);
    const { masked, real } = await emailsBothWays(drizzleSchema);
    for (let i = 0; i < 3; i++) expect(masked[i]).not.toBe(real[i]);
  });
});

// ───────────────────────────── Alembic (psycopg2) ─────────────────────────────

const python = '/usr/bin/python3';
const haveAlembic = fs.existsSync(python) && run(python, ['-c', 'import alembic, psycopg2'], process.env).then((r) => r.code === 0);
const alembicSchema = 'alembic_app';
const alembicDir = path.join(dir, 'alembic');

function alembicVersion(rev: string, down: string | null, upgrade: string, downgrade: string): void {
  fs.writeFileSync(
    path.join(alembicDir, 'versions', `${rev}.py`),
    `import sqlalchemy as sa
from alembic import op
revision = '${rev}'
down_revision = ${down ? `'${down}'` : 'None'}
S = '${alembicSchema}'
def upgrade():
${upgrade.replace(/^/gm, '    ')}
def downgrade():
${downgrade.replace(/^/gm, '    ')}
`,
  );
}

const alembic = (...args: string[]) =>
  run(python, ['-m', 'alembic', '-c', path.join(alembicDir, 'alembic.ini'), ...args], {
    ...process.env,
    ALEMBIC_URL: `postgresql+psycopg2://migrator:${MIGRATOR_PW}@127.0.0.1:${env.warden.port}/app`,
  }, undefined, 30_000);

describe('Alembic (psycopg2)', () => {
  beforeAll(async () => {
    fs.mkdirSync(path.join(alembicDir, 'versions'), { recursive: true });
    fs.writeFileSync(path.join(alembicDir, 'alembic.ini'), `[alembic]\nscript_location = ${alembicDir}\n`);
    fs.writeFileSync(
      path.join(alembicDir, 'env.py'),
      `import os
from alembic import context
from sqlalchemy import create_engine
engine = create_engine(os.environ['ALEMBIC_URL'])
with engine.connect() as connection:
    context.configure(connection=connection, transaction_per_migration=True, version_table_schema='${alembicSchema}')
    with context.begin_transaction():
        context.run_migrations()
`,
    );
    alembicVersion(
      'a1',
      null,
      `op.create_table('customers', sa.Column('id', sa.Integer, primary_key=True), sa.Column('email', sa.Text, nullable=False), sa.Column('name', sa.Text),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False), schema=S)
op.create_table('orders', sa.Column('id', sa.Integer, primary_key=True), sa.Column('customer_id', sa.Integer, sa.ForeignKey(S + '.customers.id', ondelete='CASCADE'), nullable=False),
    sa.Column('total', sa.Numeric), schema=S)
op.create_index('orders_customer_id_index', 'orders', ['customer_id'], schema=S)
op.execute("INSERT INTO ${alembicSchema}.customers (email, name) VALUES ('ann@example.com', 'Ann'), ('bo@example.org', 'Bo'), ('cy@example.net', 'Cy')")`,
      `op.drop_table('orders', schema=S)
op.drop_table('customers', schema=S)`,
    );
    alembicVersion(
      'a2',
      'a1',
      `op.add_column('customers', sa.Column('status', sa.Text), schema=S)
op.execute("UPDATE ${alembicSchema}.customers SET status = 'active' WHERE status IS NULL")
op.alter_column('customers', 'status', nullable=False, server_default='active', schema=S)
op.create_index('customers_name_lower_idx', 'customers', [sa.text('lower(name)')], unique=True, schema=S)
# The catalog as the migration sees it (SQLAlchemy's inspector reads pg_catalog).
cols = [c['name'] for c in sa.inspect(op.get_bind()).get_columns('customers', schema=S)]
assert 'status' in cols, cols`,
      `op.drop_index('customers_name_lower_idx', table_name='customers', schema=S)
op.drop_column('customers', 'status', schema=S)`,
    );
    alembicVersion(
      'a3',
      'a2',
      `with op.get_context().autocommit_block():
    op.create_index('customers_status_idx', 'customers', ['status'], schema=S, postgresql_concurrently=True)`,
      `with op.get_context().autocommit_block():
    op.drop_index('customers_status_idx', table_name='customers', schema=S, postgresql_concurrently=True)`,
    );
    const c = new pg.Client(viaWarden());
    await c.connect();
    await c.query(`CREATE SCHEMA ${alembicSchema}`);
    await c.end();
  });

  it('upgrade head (CONCURRENTLY in an autocommit block), nothing to do the second time, downgrade -1', async (ctx) => {
    if (!(await haveAlembic)) ctx.skip();
    const up = await alembic('upgrade', 'head');
    expect(up.code, up.out + up.err).toBe(0);
    const s = stripDefaults(await schemaOf(alembicSchema));
    expect(s.columns.customers).toEqual(expectedSchema.customers);
    expect(s.columns.orders).toEqual(expectedSchema.orders);
    expect(s.indexes).toEqual(['alembic_version_pkc', 'customers_name_lower_idx', 'customers_pkey', 'customers_status_idx', 'orders_customer_id_index', 'orders_pkey']);
    expect(await q(`SELECT DISTINCT status FROM ${alembicSchema}.customers`)).toEqual([{ status: 'active' }]);
    expect(await q(`SELECT version_num FROM ${alembicSchema}.alembic_version`)).toEqual([{ version_num: 'a3' }]);
    const before = (await auditedSql()).length;
    const again = await alembic('upgrade', 'head');
    expect(again.code, again.out + again.err).toBe(0);
    expect((await auditedSql()).slice(before).some((x) => /CREATE|ALTER|INSERT|UPDATE/i.test(x))).toBe(false);
    const down = await alembic('downgrade', '-1');
    expect(down.code, down.out + down.err).toBe(0);
    expect((await schemaOf(alembicSchema)).indexes).not.toContain('customers_status_idx');
    expect(await q(`SELECT version_num FROM ${alembicSchema}.alembic_version`)).toEqual([{ version_num: 'a2' }]);
    const audited = await auditedSql();
    expect(audited.some((x) => /CREATE INDEX CONCURRENTLY customers_status_idx/.test(x))).toBe(true);
    expect(audited.some((x) => /DROP INDEX CONCURRENTLY/.test(x))).toBe(true);
    expect(audited.some((x) => /pg_catalog\.pg_attribute/.test(x))).toBe(true);
    const { masked, real } = await emailsBothWays(alembicSchema);
    for (let i = 0; i < 3; i++) expect(masked[i]).not.toBe(real[i]);
  });
});

// ───────────────────────────── the audit's schema changes ─────────────────────────────

describe('the audit', () => {
  it("has each tool's ADD COLUMN status with the table before and after, read in the migration's transaction", async () => {
    type Json = Record<string, unknown>;
    const columnsOf = (def: Json | null | undefined): string[] => ((def?.columns as { name: string }[] | undefined) ?? []).map((c) => c.name);
    const schemas = ['npm_app', 'knex_app', 'kysely_app', 'drizzle_app', ...((await haveAlembic) ? ['alembic_app'] : [])];
    let seen: string[] = [];
    for (let i = 0; i < 50; i++) {
      const records = await auditRecords();
      const begins = new Map(records.filter((r) => r.type === 'statement.begin').map((r) => [r.seq, r.data as Json]));
      seen = [];
      for (const r of records.filter((x) => x.type === 'schema.change')) {
        const d = r.data as Json;
        const begin = begins.get(d.statement_seq as number);
        if (!begin || !/\badd\s+(column\s+)?"?status"?\s/i.test(String(begin.sql))) continue;
        for (const schema of schemas) {
          const o = (d.objects as Json)[`${schema}.customers`] as { before?: Json; after?: Json } | undefined;
          if (!o) continue;
          expect(columnsOf(o.before), schema).toEqual(['id', 'email', 'name', 'created_at']);
          expect(columnsOf(o.after), schema).toEqual(['id', 'email', 'name', 'created_at', 'status']);
          expect(d.read, schema).toEqual({ before: 'transaction', after: 'transaction' });
          seen.push(schema);
        }
      }
      if (seen.length >= schemas.length) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(seen.sort()).toEqual([...schemas].sort());
  });
});

// ───────────────────────────── DROP held for approval ─────────────────────────────

describe('a rule holds DROP for a DBA: each tool reports the held DROP cleanly, then runs it once approved', () => {
  beforeAll(async () => {
    await restart(true);
    fs.writeFileSync(
      path.join(dir, 'node-pg-migrate', 'migrations', '1700000000004_drop-orders.cjs'),
      `exports.up = (pgm) => { pgm.dropTable('orders'); };\nexports.down = false;\n`,
    );
    fs.writeFileSync(path.join(knexDir, '20240101000004_drop_orders.cjs'), `exports.up = (knex) => knex.schema.dropTable('orders');\nexports.down = async () => {};\n`);
  });

  const tableExists = async (schema: string, table: string): Promise<boolean> =>
    (await q<{ t: string | null }>(`SELECT to_regclass('${schema}.${table}')::text AS t`))[0]!.t !== null;

  it('node-pg-migrate: the DROP expires unapproved, the CLI fails with the reason within seconds, the lock is released; approved, it runs', async () => {
    const bin = path.join(path.dirname(require.resolve('node-pg-migrate/package.json')), 'bin', 'node-pg-migrate.js');
    const cli = () =>
      run(
        process.execPath,
        [bin, 'up', '--migrations-dir', path.join(dir, 'node-pg-migrate', 'migrations'), '--use-glob', 'false', '-j', 'cjs', '--schema', 'npm_app'],
        { ...process.env, DATABASE_URL: urlViaWarden() },
        undefined,
        30_000,
      );
    const t0 = Date.now();
    const r = await cli();
    const elapsed = Date.now() - t0;
    expect(r.code).not.toBe(0);
    expect(r.err + r.out).toMatch(/approval request apr_\S+ for rule "drops-need-a-dba" \(Dropping needs a DBA\) expired after 5s without enough approvals; the statement was not run/);
    expect(elapsed).toBeLessThan(15_000);
    // 003 (the CONCURRENTLY index, outside a transaction) ran; 004 was rolled back whole.
    expect(await tableExists('npm_app', 'orders')).toBe(true);
    expect((await schemaOf('npm_app')).indexes).toContain('customers_status_idx');
    expect((await q<{ name: string }>(`SELECT name FROM npm_app.pgmigrations ORDER BY id`)).map((x) => x.name)).not.toContain('1700000000004_drop-orders');
    expect(await advisoryLocks()).toBe(0);

    const [again, heldSql] = await Promise.all([cli(), decideWhenPending('approve')]);
    expect(heldSql).toBe('DROP TABLE "orders";');
    expect(again.code, again.out + again.err).toBe(0);
    expect(await tableExists('npm_app', 'orders')).toBe(false);
    expect((await q<{ name: string }>(`SELECT name FROM npm_app.pgmigrations ORDER BY id DESC LIMIT 1`))[0]!.name).toBe('1700000000004_drop-orders');
    expect(await advisoryLocks()).toBe(0);
  });

  it('knex: a DBA denies the DROP, latest rejects with the denial and frees knex_migrations_lock; approved, it runs', async () => {
    let knex = knexViaWarden();
    try {
      const [result] = await Promise.allSettled([knex.migrate.latest(knexOpts), decideWhenPending('deny')]);
      expect(result.status).toBe('rejected');
      const err = (result as PromiseRejectedResult).reason as { code?: string; message: string };
      expect(err.code).toBe('42501');
      expect(err.message).toMatch(/approval request apr_\S+ for rule "drops-need-a-dba" .*was denied by dana: not during the freeze; the statement was not run/);
    } finally {
      await knex.destroy();
    }
    expect(await tableExists(knexSchema, 'orders')).toBe(true);
    expect(await q(`SELECT is_locked FROM ${knexSchema}.knex_migrations_lock`)).toEqual([{ is_locked: 0 }]);
    expect((await q<{ name: string }>(`SELECT name FROM ${knexSchema}.knex_migrations ORDER BY id`)).map((x) => x.name)).toEqual([
      '20240101000001_create_customers.cjs',
      '20240101000002_add_status.cjs',
      '20240101000003_status_index.cjs',
    ]);

    knex = knexViaWarden();
    try {
      const [[, log]] = await Promise.all([knex.migrate.latest(knexOpts), decideWhenPending('approve')]);
      expect(log).toEqual(['20240101000004_drop_orders.cjs']);
    } finally {
      await knex.destroy();
    }
    expect(await tableExists(knexSchema, 'orders')).toBe(false);
    expect(await q(`SELECT is_locked FROM ${knexSchema}.knex_migrations_lock`)).toEqual([{ is_locked: 0 }]);
  });

  it('kysely: a DBA denies the DROP, the result carries the error and the migration is rolled back; approved, it runs', async () => {
    const withDrop: Record<string, Migration> = {
      ...kyselyMigrations,
      '004_drop_orders': {
        async up(db: AnyDb) {
          await db.schema.withSchema(kyselySchema).dropTable('orders').execute();
        },
      },
    };
    const db = kyselyViaWarden();
    try {
      const [r] = await Promise.all([kyselyMigrator(db, withDrop).migrateToLatest(), decideWhenPending('deny')]);
      expect(String((r.error as Error | undefined)?.message)).toMatch(/approval request apr_\S+ for rule "drops-need-a-dba" .*was denied by dana: not during the freeze/);
      expect(r.results?.map((x) => `${x.migrationName} ${x.status}`)).toEqual(['004_drop_orders Error']);
      expect(await tableExists(kyselySchema, 'orders')).toBe(true);
      expect(await advisoryLocks()).toBe(0);

      const [ok] = await Promise.all([kyselyMigrator(db, withDrop).migrateToLatest(), decideWhenPending('approve')]);
      expect(ok.error).toBeUndefined();
      expect(ok.results?.map((x) => `${x.migrationName} ${x.status}`)).toEqual(['004_drop_orders Success']);
    } finally {
      await db.destroy();
    }
    expect(await tableExists(kyselySchema, 'orders')).toBe(false);
    expect(await advisoryLocks()).toBe(0);
  });

  it('drizzle: a DBA denies the DROP, migrate rejects with the reason and the whole migration is rolled back; approved, it runs', async () => {
    drizzleMigration('0002_drop_orders', [`ALTER TABLE "${drizzleSchema}"."customers" ADD COLUMN "note" text;`, `DROP TABLE "${drizzleSchema}"."orders" CASCADE;`]);
    // drizzle wraps the server's error ("Failed query: ..."), which it keeps as the cause.
    const [err] = await Promise.all([drizzleMigrate().then(() => null, (e: Error & { cause?: { code?: string; message?: string } }) => e), decideWhenPending('deny')]);
    expect(err?.message).toMatch(/Failed query: \nDROP TABLE "drizzle_app"\."orders" CASCADE;/);
    expect(err?.cause?.code).toBe('42501');
    expect(err?.cause?.message).toMatch(/approval request apr_\S+ for rule "drops-need-a-dba" .*was denied by dana: not during the freeze/);
    expect(await tableExists(drizzleSchema, 'orders')).toBe(true);
    expect((await schemaOf(drizzleSchema)).columns.customers).not.toContain('note text');
    expect(await q(`SELECT count(*)::int AS n FROM drizzle.__drizzle_migrations`)).toEqual([{ n: 2 }]);
    await Promise.all([drizzleMigrate(), decideWhenPending('approve')]);
    expect(await tableExists(drizzleSchema, 'orders')).toBe(false);
    expect(stripDefaults(await schemaOf(drizzleSchema)).columns.customers).toContain('note text');
    expect(await q(`SELECT count(*)::int AS n FROM drizzle.__drizzle_migrations`)).toEqual([{ n: 3 }]);
  });

  it('Alembic: the DROP expires, alembic exits with the reason and the migration is rolled back; approved, it runs', async (ctx) => {
    if (!(await haveAlembic)) ctx.skip();
    alembicVersion('a4', 'a3', `op.add_column('customers', sa.Column('note', sa.Text), schema=S)\nop.drop_table('orders', schema=S)`, 'pass');
    const t0 = Date.now();
    const r = await alembic('upgrade', 'head');
    expect(Date.now() - t0).toBeLessThan(20_000);
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/psycopg2\.errors\.InsufficientPrivilege: approval request apr_\S+ for rule "drops-need-a-dba" \(Dropping needs a DBA\) expired after 5s/);
    // a3 (CONCURRENTLY, in its autocommit block) ran; a4 was rolled back whole.
    expect(await q(`SELECT version_num FROM ${alembicSchema}.alembic_version`)).toEqual([{ version_num: 'a3' }]);
    expect(await tableExists(alembicSchema, 'orders')).toBe(true);
    expect((await schemaOf(alembicSchema)).columns.customers).not.toContain('note text');
    const [ok] = await Promise.all([alembic('upgrade', 'head'), decideWhenPending('approve')]);
    expect(ok.code, ok.out + ok.err).toBe(0);
    expect(await tableExists(alembicSchema, 'orders')).toBe(false);
    expect(await q(`SELECT version_num FROM ${alembicSchema}.alembic_version`)).toEqual([{ version_num: 'a4' }]);
  });

  it('the audit has each held DROP: its request, its refusal (expired or denied), then the approved run', async () => {
    await new Promise((r) => setTimeout(r, 300));
    const records = await auditRecords();
    type D = { tables?: string[]; error?: string; status?: string; request?: string; identity?: string };
    const data = (r: AuditRecord) => r.data as D;
    const alembicRan = await haveAlembic;
    for (const schema of ['npm_app', 'knex_app', 'kysely_app', 'drizzle_app', ...(alembicRan ? ['alembic_app'] : [])]) {
      const of = (type: string) => records.filter((r) => r.type === type && data(r).identity === 'migrator' && (data(r).tables ?? []).includes(`${schema}.orders`));
      expect(of('approval.requested'), schema).toHaveLength(2);
      const refused = of('statement.refused');
      expect(refused, schema).toHaveLength(1);
      expect(data(refused[0]!).error, schema).toMatch(/(expired after 5s without enough approvals|was denied by dana: not during the freeze); the statement was not run/);
      expect(of('statement.begin').filter((r) => /drop table/i.test(String((r.data as { sql?: unknown }).sql))), schema).toHaveLength(1);
    }
    const resolved = records.filter((r) => r.type === 'approval.resolved').map((r) => data(r).status);
    expect(resolved.filter((x) => x === 'approved')).toHaveLength(alembicRan ? 5 : 4);
    expect(resolved.filter((x) => x === 'expired')).toHaveLength(alembicRan ? 2 : 1);
    expect(resolved.filter((x) => x === 'denied')).toHaveLength(3);
  });
});

describe('approvals in reject mode (for CI): the DROP fails at once, and the same run succeeds once approved', () => {
  beforeAll(async () => {
    await restart(true, 'reject');
    fs.writeFileSync(
      path.join(dir, 'node-pg-migrate', 'migrations', '1700000000005_drop-lower-email-index.cjs'),
      `exports.up = (pgm) => { pgm.dropIndex('customers', [], { name: 'customers_name_lower_idx' }); };\nexports.down = false;\n`,
    );
  });

  it('node-pg-migrate: exits at once with the request id; after approval the re-run drops the index', async () => {
    const bin = path.join(path.dirname(require.resolve('node-pg-migrate/package.json')), 'bin', 'node-pg-migrate.js');
    const cli = () =>
      run(process.execPath, [bin, 'up', '--migrations-dir', path.join(dir, 'node-pg-migrate', 'migrations'), '--use-glob', 'false', '-j', 'cjs', '--schema', 'npm_app'], {
        ...process.env,
        DATABASE_URL: urlViaWarden(),
      }, undefined, 30_000);
    const t0 = Date.now();
    const r = await cli();
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(r.code).not.toBe(0);
    const m = /rule "drops-need-a-dba" \(Dropping needs a DBA\) requires approval: request (apr_\w+) was created; run the identical statement again once it is approved/.exec(r.err + r.out);
    expect(m, r.err + r.out).not.toBeNull();
    expect((await schemaOf('npm_app')).indexes).toContain('customers_name_lower_idx');
    expect(await advisoryLocks()).toBe(0);
    const heldSql = await decideWhenPending('approve');
    expect(heldSql).toBe('DROP INDEX "customers_name_lower_idx";');
    const again = await cli();
    expect(again.code, again.out + again.err).toBe(0);
    expect((await schemaOf('npm_app')).indexes).not.toContain('customers_name_lower_idx');
    expect((await q<{ name: string }>(`SELECT name FROM npm_app.pgmigrations ORDER BY id DESC LIMIT 1`))[0]!.name).toBe('1700000000005_drop-lower-email-index');
  });
});
