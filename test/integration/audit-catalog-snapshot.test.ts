/**
 * Catalog snapshots for the audit log (src/audit/catalog-snapshot.ts), against a
 * real PostgreSQL cluster: definitions before/after DDL, their diffs, `null`
 * before CREATE / after DROP, odd names and targets, and the DDL targets the
 * real statement analyzer yields.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalJson, type JsonValue } from '../../src/audit/canonical.js';
import { diffDefinitions } from '../../src/audit/catalog-diff.js';
import {
  ddlTargets,
  snapshotObjects,
  targetKey,
  type ObjectDefinition,
  type Querier,
} from '../../src/audit/catalog-snapshot.js';
import { startPgCluster, type PgCluster } from '../../src/embedded/pg-cluster.js';
import { analyzeSql, initSqlParser, type StatementAnalysis } from '../../src/sql/index.js';

let cluster: PgCluster;
let client: pg.Client;
let q: Querier;

beforeAll(async () => {
  await initSqlParser();
  cluster = await startPgCluster();
  client = new pg.Client({ connectionString: cluster.url('postgres') });
  await client.connect();
  q = (sql, params) => client.query(sql, params);
  await client.query('CREATE ROLE auditor NOLOGIN; CREATE ROLE reader NOLOGIN');
});

afterAll(async () => {
  await client?.end().catch(() => undefined);
  await cluster?.stop();
});

async function snap(schema: string, name: string): Promise<ObjectDefinition | null> {
  const r = await snapshotObjects(q, [{ schema, name }]);
  expect(Object.keys(r)).toEqual([targetKey({ schema, name })]);
  return r[targetKey({ schema, name })]!;
}

function must(def: ObjectDefinition | null): ObjectDefinition {
  expect(def).not.toBeNull();
  return def!;
}

function statements(sql: string, searchPath: string[] = ['public']): readonly StatementAnalysis[] {
  const a = analyzeSql(sql, { searchPath });
  if (!a.ok) throw new Error(a.error);
  return a.statements;
}

/** Plain JSON: survives a JSON round trip unchanged and encodes canonically. */
function expectPlainJson(def: ObjectDefinition): void {
  expect(JSON.parse(JSON.stringify(def))).toEqual(def);
  expect(() => canonicalJson(def as JsonValue)).not.toThrow();
}

describe('tables', () => {
  it('describes a table, then diffs an ALTER; null before CREATE and after DROP', async () => {
    expect(await snap('app', 'accounts')).toBeNull(); // no schema yet
    await client.query('CREATE SCHEMA app');
    expect(await snap('app', 'accounts')).toBeNull(); // schema, no table

    await client.query(`
      CREATE TABLE app.accounts (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        email text NOT NULL DEFAULT 'nobody@example.com',
        name text COLLATE "C",
        score integer CHECK (score >= 0),
        email_lower text GENERATED ALWAYS AS (lower(email)) STORED,
        CONSTRAINT accounts_email_key UNIQUE (email)
      );
      CREATE INDEX accounts_score_idx ON app.accounts (score);
      CREATE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
      CREATE TRIGGER accounts_touch BEFORE UPDATE ON app.accounts FOR EACH ROW EXECUTE FUNCTION app.touch();
      ALTER TABLE app.accounts ENABLE ROW LEVEL SECURITY;
      CREATE POLICY own_rows ON app.accounts FOR SELECT TO auditor USING (email <> '');
      GRANT SELECT ON app.accounts TO reader;
      COMMENT ON TABLE app.accounts IS 'customer accounts';
    `);
    const before = must(await snap('app', 'accounts'));
    expectPlainJson(before);
    expect(before).toMatchObject({ kind: 'table', schema: 'app', name: 'accounts', owner: 'postgres', persistence: 'permanent' });
    expect(before['columns']).toEqual([
      { name: 'id', type: 'bigint', not_null: true, default: null, identity: 'always', generated: null, collation: null, comment: null },
      {
        name: 'email',
        type: 'text',
        not_null: true,
        default: "'nobody@example.com'::text",
        identity: null,
        generated: null,
        collation: null,
        comment: null,
      },
      { name: 'name', type: 'text', not_null: false, default: null, identity: null, generated: null, collation: 'pg_catalog."C"', comment: null },
      { name: 'score', type: 'integer', not_null: false, default: null, identity: null, generated: null, collation: null, comment: null },
      { name: 'email_lower', type: 'text', not_null: false, default: null, identity: null, generated: 'lower(email)', collation: null, comment: null },
    ]);
    expect(before['constraints']).toEqual([
      { name: 'accounts_email_key', definition: 'UNIQUE (email)' },
      { name: 'accounts_pkey', definition: 'PRIMARY KEY (id)' },
      { name: 'accounts_score_check', definition: 'CHECK (score >= 0)' },
    ]);
    expect(before['indexes']).toEqual([
      { name: 'accounts_email_key', definition: 'CREATE UNIQUE INDEX accounts_email_key ON app.accounts USING btree (email)' },
      { name: 'accounts_pkey', definition: 'CREATE UNIQUE INDEX accounts_pkey ON app.accounts USING btree (id)' },
      { name: 'accounts_score_idx', definition: 'CREATE INDEX accounts_score_idx ON app.accounts USING btree (score)' },
    ]);
    expect(before['triggers']).toEqual([
      {
        name: 'accounts_touch',
        definition: 'CREATE TRIGGER accounts_touch BEFORE UPDATE ON app.accounts FOR EACH ROW EXECUTE FUNCTION app.touch()',
        enabled: 'origin',
      },
    ]);
    expect(before['rls_enabled']).toBe(true);
    expect(before['rls_forced']).toBe(false);
    expect(before['policies']).toEqual([
      { name: 'own_rows', permissive: 'PERMISSIVE', cmd: 'SELECT', roles: ['auditor'], qual: "(email <> ''::text)", with_check: null },
    ]);
    expect(before['privileges']).toMatch(/reader=r\/postgres/);
    expect(before['comment']).toBe('customer accounts');
    expect(before['options']).toBeNull();

    await client.query(`
      ALTER TABLE app.accounts ADD COLUMN nickname varchar(40) NOT NULL DEFAULT '';
      ALTER TABLE app.accounts ALTER COLUMN score TYPE bigint;
      ALTER TABLE app.accounts ALTER COLUMN email DROP DEFAULT;
      ALTER TABLE app.accounts DROP COLUMN name;
      ALTER TABLE app.accounts DROP CONSTRAINT accounts_score_check;
      ALTER TABLE app.accounts ADD CONSTRAINT accounts_nick_len CHECK (length(nickname) < 30);
      DROP INDEX app.accounts_score_idx;
      CREATE INDEX accounts_nick_idx ON app.accounts (nickname);
      ALTER TABLE app.accounts DISABLE TRIGGER accounts_touch;
      ALTER POLICY own_rows ON app.accounts USING (email <> 'x');
      CREATE POLICY ins ON app.accounts FOR INSERT WITH CHECK (true);
      ALTER TABLE app.accounts FORCE ROW LEVEL SECURITY;
      ALTER TABLE app.accounts SET (fillfactor = 70);
      REVOKE SELECT ON app.accounts FROM reader;
      ALTER TABLE app.accounts OWNER TO auditor;
      COMMENT ON TABLE app.accounts IS NULL;
    `);
    const after = must(await snap('app', 'accounts'));
    const diff = diffDefinitions(before, after);
    expect(diff).toEqual(
      expect.arrayContaining([
        'owner postgres → auditor',
        'column "name" dropped',
        'column "nickname" added (character varying(40) not null default \'\'::character varying)',
        'column "score" type integer → bigint',
        'column "email" default \'nobody@example.com\'::text → none',
        'constraint "accounts_score_check" dropped',
        'constraint "accounts_nick_len" added (CHECK (length(nickname::text) < 30))',
        'index "accounts_score_idx" dropped',
        'index "accounts_nick_idx" added (CREATE INDEX accounts_nick_idx ON app.accounts USING btree (nickname))',
        'trigger "accounts_touch" enabled origin → disabled',
        'policy "own_rows" changed (qual)',
        'policy "ins" added',
        'row level security forced',
        'options none → ["fillfactor=70"]',
        'comment removed',
      ]),
    );
    expect(diff.some((l) => l.startsWith('privileges '))).toBe(true);
    // Unchanged parts produce no lines.
    expect(diff.some((l) => l.includes('"id"') || l.includes('"email_lower"'))).toBe(false);
    expect(diffDefinitions(after, after)).toEqual([]);

    await client.query('DROP TABLE app.accounts');
    expect(await snap('app', 'accounts')).toBeNull();
    expect(diffDefinitions(after, null)).toEqual(['dropped']);
    expect(diffDefinitions(null, before)).toEqual(['created']);
    expect(diffDefinitions(null, null)).toEqual([]);
  });

  it('handles a name with quotes, upper case and spaces', async () => {
    const sql = 'CREATE TABLE app."Odd ""Name""" ("Mixed Case" int, "sp ace" text)';
    const targets = ddlTargets(statements(sql));
    expect(targets).toEqual([{ schema: 'app', name: 'Odd "Name"' }]);
    const before = await snapshotObjects(q, targets);
    expect(before).toEqual({ 'app."Odd ""Name"""': null });

    await client.query(sql);
    const after = await snapshotObjects(q, targets);
    const def = must(after['app."Odd ""Name"""']!);
    expect(def).toMatchObject({ kind: 'table', schema: 'app', name: 'Odd "Name"' });
    expect((def['columns'] as { name: string }[]).map((c) => c.name)).toEqual(['Mixed Case', 'sp ace']);

    await client.query('ALTER TABLE app."Odd ""Name""" ADD COLUMN "Ünï ""q""" date');
    const altered = must(await snap('app', 'Odd "Name"'));
    expect(diffDefinitions(def, altered)).toEqual(['column "Ünï ""q""" added (date)']);

    await client.query('DROP TABLE app."Odd ""Name"""');
    expect(await snap('app', 'Odd "Name"')).toBeNull();
    // The lower-case spelling is another (missing) object.
    expect(await snap('app', 'odd "name"')).toBeNull();
  });

  it('describes partitioned tables, partitions and their indexes', async () => {
    await client.query(`
      CREATE TABLE app.events (id int, at date) PARTITION BY RANGE (at);
      CREATE TABLE app.events_2024 PARTITION OF app.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
    `);
    const before = must(await snap('app', 'events'));
    expect(before).toMatchObject({ kind: 'partitioned_table', partition_key: 'RANGE (at)', partitions: ['app.events_2024'] });
    const part = must(await snap('app', 'events_2024'));
    expect(part).toMatchObject({
      kind: 'table',
      partition_of: 'app.events',
      partition_bound: "FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')",
    });

    await client.query(`
      CREATE TABLE app.events_2025 PARTITION OF app.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
      CREATE INDEX events_at ON app.events (at);
    `);
    const after = must(await snap('app', 'events'));
    expect(diffDefinitions(before, after)).toEqual([
      'index "events_at" added (CREATE INDEX events_at ON ONLY app.events USING btree (at))',
      'partition "app.events_2025" added',
    ]);
    const idx = must(await snap('app', 'events_at'));
    expect(idx).toMatchObject({ kind: 'partitioned_index', table: 'app.events', owner: 'postgres' });
    expect(idx['definition']).toBe('CREATE INDEX events_at ON ONLY app.events USING btree (at)');
    expect(idx['partitions']).toHaveLength(2);
  });

  it('sees uncommitted DDL of the same session, and the rollback', async () => {
    await client.query('CREATE TABLE app.tx (a int)');
    const before = must(await snap('app', 'tx'));
    await client.query('BEGIN');
    try {
      await client.query('ALTER TABLE app.tx ADD COLUMN b text');
      expect(diffDefinitions(before, await snap('app', 'tx'))).toEqual(['column "b" added (text)']);
    } finally {
      await client.query('ROLLBACK');
    }
    expect(diffDefinitions(before, await snap('app', 'tx'))).toEqual([]);
  });
});

describe('views, sequences, functions, types, schemas', () => {
  it('views and materialized views: definition and columns', async () => {
    await client.query(`
      CREATE TABLE app.orders (id int, total numeric, status text);
      CREATE VIEW app.open_orders AS SELECT id, total FROM app.orders WHERE status = 'open';
      CREATE MATERIALIZED VIEW app.totals AS SELECT status, sum(total) AS s FROM app.orders GROUP BY status;
    `);
    const before = must(await snap('app', 'open_orders'));
    expect(before).toMatchObject({ kind: 'view', owner: 'postgres' });
    expect(String(before['definition'])).toContain("WHERE orders.status = 'open'::text");
    expect((before['columns'] as { name: string; type: string }[]).map((c) => [c.name, c.type])).toEqual([
      ['id', 'integer'],
      ['total', 'numeric'],
    ]);
    expect(before['indexes']).toBeUndefined(); // not applicable to a view

    await client.query(
      "CREATE OR REPLACE VIEW app.open_orders AS SELECT id, total, status FROM app.orders WHERE status IN ('open', 'new')",
    );
    const after = must(await snap('app', 'open_orders'));
    expect(diffDefinitions(before, after)).toEqual(['column "status" added (text)', 'definition changed']);

    const mv = must(await snap('app', 'totals'));
    expect(mv).toMatchObject({ kind: 'materialized_view', indexes: [] });
    expect(String(mv['definition'])).toContain('sum(orders.total)');
  });

  it('sequences: parameters and ownership', async () => {
    await client.query('CREATE SEQUENCE app.seq START 10 CACHE 5');
    const before = must(await snap('app', 'seq'));
    expect(before).toMatchObject({
      kind: 'sequence',
      owned_by: null,
      sequence: { type: 'bigint', start: '10', increment: '1', min: '1', max: '9223372036854775807', cache: '5', cycle: false },
    });
    await client.query('ALTER SEQUENCE app.seq INCREMENT BY 5 CYCLE OWNED BY app.orders.id');
    const after = must(await snap('app', 'seq'));
    expect(diffDefinitions(before, after)).toEqual([
      'owned by none → app.orders.id',
      'sequence increment 1 → 5',
      'sequence cycle false → true',
    ]);
    // nextval does not change the definition.
    await client.query("SELECT nextval('app.seq')");
    expect(diffDefinitions(after, await snap('app', 'seq'))).toEqual([]);
  });

  it('functions: every overload, replaced and dropped ones', async () => {
    await client.query(`
      CREATE FUNCTION app.norm(x integer) RETURNS integer LANGUAGE sql IMMUTABLE AS $$ SELECT abs(x) $$;
      CREATE FUNCTION app.norm(x text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT lower(x) $$;
    `);
    const before = must(await snap('app', 'norm'));
    expectPlainJson(before);
    expect(before).toMatchObject({ kind: 'function', schema: 'app', name: 'norm', owner: 'postgres' });
    const overloads = before['overloads'] as { signature: string; routine_kind: string; result: string; definition: string }[];
    expect(overloads.map((o) => [o.signature, o.routine_kind, o.result])).toEqual([
      ['x integer', 'function', 'integer'],
      ['x text', 'function', 'text'],
    ]);
    expect(overloads[0]!.definition).toContain('CREATE OR REPLACE FUNCTION app.norm(x integer)');
    expect(overloads[0]!.definition).toContain('SELECT abs(x)');

    await client.query(`
      CREATE OR REPLACE FUNCTION app.norm(x integer) RETURNS integer LANGUAGE sql IMMUTABLE AS $$ SELECT abs(x) + 0 $$;
      DROP FUNCTION app.norm(text);
      CREATE PROCEDURE app.norm(a int, b int) LANGUAGE sql AS $$ SELECT 1 $$;
      GRANT EXECUTE ON FUNCTION app.norm(integer) TO reader;
    `);
    const after = must(await snap('app', 'norm'));
    const diff = diffDefinitions(before, after);
    expect(diff).toContain('function "norm"(x text) dropped');
    expect(diff).toContain('procedure "norm"(IN a integer, IN b integer) added');
    expect(diff).toContain('function "norm"(x integer) definition changed');
    expect(diff.some((l) => l.startsWith('function "norm"(x integer) privileges '))).toBe(true);

    await client.query('DROP ROUTINE app.norm(integer), app.norm(int, int)');
    expect(await snap('app', 'norm')).toBeNull();
  });

  it('types: enums, domains and composite types', async () => {
    await client.query(`
      CREATE TYPE app.mood AS ENUM ('sad', 'ok');
      CREATE DOMAIN app.pos AS integer NOT NULL CHECK (VALUE > 0);
      CREATE TYPE app.pair AS (a int, b text);
    `);
    const mood = must(await snap('app', 'mood'));
    expect(mood).toMatchObject({ kind: 'type', type_kind: 'enum', labels: ['sad', 'ok'] });
    await client.query("ALTER TYPE app.mood ADD VALUE 'happy'");
    expect(diffDefinitions(mood, must(await snap('app', 'mood')))).toEqual(['value "happy" added']);

    const pos = must(await snap('app', 'pos'));
    expect(pos).toMatchObject({
      kind: 'type',
      type_kind: 'domain',
      base_type: 'integer',
      not_null: true,
      constraints: [{ name: 'pos_check', definition: 'CHECK (VALUE > 0)' }],
    });
    const pair = must(await snap('app', 'pair'));
    expect(pair).toMatchObject({ kind: 'type', type_kind: 'composite' });
    expect((pair['columns'] as { name: string }[]).map((c) => c.name)).toEqual(['a', 'b']);
  });

  it('schemas: owner, privileges and relation names; null before CREATE and after DROP', async () => {
    expect(await snap('reports', '*')).toBeNull();
    await client.query('CREATE SCHEMA reports; CREATE TABLE reports.daily (d date); CREATE VIEW reports.v AS SELECT 1 AS one');
    const before = must(await snap('reports', '*'));
    expect(before).toMatchObject({ kind: 'schema', schema: 'reports', name: 'reports', owner: 'postgres', relations: ['daily', 'v'] });
    await client.query('CREATE TABLE reports.weekly (w int); DROP VIEW reports.v; GRANT USAGE ON SCHEMA reports TO reader');
    const after = must(await snap('reports', '*'));
    const diff = diffDefinitions(before, after);
    expect(diff).toEqual(expect.arrayContaining(['relation "v" removed', 'relation "weekly" added']));
    expect(diff.some((l) => l.startsWith('privileges none → ') && l.includes('reader=U/postgres'))).toBe(true);
    await client.query('DROP SCHEMA reports CASCADE');
    expect(await snap('reports', '*')).toBeNull();
    expect(await snap('reports', 'daily')).toBeNull();
  });
});

describe('odd targets and errors', () => {
  it('returns null for odd targets and never runs a name as SQL', async () => {
    await client.query('CREATE TABLE app.victim (a int)');
    const odd = [
      { schema: 'app', name: "victim'; DROP TABLE app.victim; --" },
      { schema: "app' OR '1'='1", name: 'victim' },
      { schema: 'app', name: 'nul\0byte' },
      { schema: 'app', name: '' },
      { schema: '', name: 'victim' },
      { schema: 'nope', name: '*' },
      { schema: 'app', name: 'x'.repeat(200) },
      { schema: 'app', name: '\ud800 lone surrogate' },
    ];
    const r = await snapshotObjects(q, odd);
    expect(Object.keys(r)).toHaveLength(odd.length);
    expect(Object.values(r).every((v) => v === null)).toBe(true);
    expect(must(await snap('app', 'victim')).kind).toBe('table');
  });

  it('de-duplicates and caps the targets', async () => {
    const targets = [
      { schema: 'app', name: 'victim' },
      { schema: 'app', name: 'victim' },
      { schema: 'app', name: 'orders' },
      { schema: 'app', name: 'seq' },
    ];
    const capped = await snapshotObjects(q, targets, { maxObjects: 2 });
    expect(Object.keys(capped)).toEqual(['app.victim', 'app.orders']);
    expect(capped['app.orders']!.kind).toBe('table');
    const all = await snapshotObjects(q, targets);
    expect(Object.keys(all)).toEqual(['app.victim', 'app.orders', 'app.seq']);
    expect(await snapshotObjects(q, targets, { maxObjects: 0 })).toEqual({});
  });

  it('maps a server error on one target to null but propagates session and connection errors', async () => {
    let calls = 0;
    const failing =
      (code: string): Querier =>
      async (sql, params) => {
        calls++;
        if (calls === 1) throw Object.assign(new Error('boom'), { code, severity: 'ERROR' });
        return client.query(sql, params);
      };
    calls = 0;
    const r = await snapshotObjects(failing('XX000'), [
      { schema: 'app', name: 'victim' },
      { schema: 'app', name: 'orders' },
    ]);
    expect(r['app.victim']).toBeNull();
    expect(r['app.orders']!.kind).toBe('table');

    calls = 0;
    await expect(snapshotObjects(failing('25P02'), [{ schema: 'app', name: 'victim' }])).rejects.toThrow('boom');
    calls = 0;
    await expect(snapshotObjects(failing('57014'), [{ schema: 'app', name: 'victim' }])).rejects.toThrow('boom');
    const broken: Querier = () => Promise.reject(new Error('Connection terminated unexpectedly'));
    await expect(snapshotObjects(broken, [{ schema: 'app', name: 'victim' }])).rejects.toThrow('Connection terminated');

    const closed = new pg.Client({ connectionString: cluster.url('postgres') });
    await closed.connect();
    await closed.end();
    await expect(snapshotObjects((s, p) => closed.query(s, p), [{ schema: 'app', name: 'victim' }])).rejects.toThrow();
  });
});

describe('ddlTargets over analyzed statements', () => {
  const cases: [string, { schema: string; name: string }[]][] = [
    ['ALTER TABLE accounts ADD COLUMN x int', [{ schema: 'public', name: 'accounts' }]],
    [
      'CREATE INDEX accounts_x ON app.accounts (x)',
      [
        { schema: 'app', name: 'accounts' },
        { schema: 'app', name: 'accounts_x' },
      ],
    ],
    [
      'CREATE INDEX t_x ON t (x)',
      [
        { schema: 'public', name: 't' },
        { schema: 'public', name: 't_x' },
      ],
    ],
    [
      'DROP TABLE a, other.b',
      [
        { schema: 'public', name: 'a' },
        { schema: 'other', name: 'b' },
      ],
    ],
    ['CREATE SCHEMA s', [{ schema: 's', name: '*' }]],
    ['DROP SCHEMA s CASCADE', [{ schema: 's', name: '*' }]],
    ['CREATE FUNCTION app.f(int) RETURNS int LANGUAGE sql AS $$ SELECT 1 $$', [{ schema: 'app', name: 'f' }]],
    ['CREATE FUNCTION g() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$', [{ schema: 'public', name: 'g' }]],
    [
      'DROP FUNCTION app.f(int), g',
      [
        { schema: 'app', name: 'f' },
        { schema: 'public', name: 'g' },
      ],
    ],
    [
      'ALTER FUNCTION app.f(int) RENAME TO h',
      [
        { schema: 'app', name: 'f' },
        { schema: 'app', name: 'h' },
      ],
    ],
    ["COMMENT ON TABLE app.accounts IS 'x'", [{ schema: 'app', name: 'accounts' }]],
    ['GRANT SELECT ON accounts TO reader', [{ schema: 'public', name: 'accounts' }]],
    ['GRANT EXECUTE ON FUNCTION app.f(int) TO reader', [{ schema: 'app', name: 'f' }]],
    ['GRANT SELECT ON ALL TABLES IN SCHEMA app TO reader', [{ schema: 'app', name: '*' }]],
    [
      'ALTER TABLE app.t RENAME TO u',
      [
        { schema: 'app', name: 't' },
        { schema: 'app', name: 'u' },
      ],
    ],
    ["CREATE TYPE app.mood2 AS ENUM ('a')", [{ schema: 'app', name: 'mood2' }]],
    ['CREATE VIEW v AS SELECT * FROM accounts', [{ schema: 'public', name: 'v' }]],
    [
      'CREATE SCHEMA s2 CREATE TABLE t (a int) CREATE INDEX t_a ON t (a)',
      [
        { schema: 's2', name: '*' },
        { schema: 's2', name: 't' },
        { schema: 's2', name: 't_a' },
      ],
    ],
  ];
  for (const [sql, expected] of cases) {
    it(sql, () => {
      expect(ddlTargets(statements(sql))).toEqual(expected);
    });
  }

  it('gives nothing for non-DDL statements (and TRUNCATE)', () => {
    expect(ddlTargets(statements('SELECT * FROM accounts'))).toEqual([]);
    expect(ddlTargets(statements("INSERT INTO accounts VALUES (1); UPDATE t SET a = 2; DELETE FROM u"))).toEqual([]);
    expect(ddlTargets(statements('TRUNCATE accounts'))).toEqual([]);
    expect(ddlTargets(statements('SET search_path = app'))).toEqual([]);
  });

  it('de-duplicates over statements and uses the search path', () => {
    const sts = statements('ALTER TABLE t ADD COLUMN b int; ALTER TABLE t ADD COLUMN c int; CREATE FUNCTION k() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$', [
      'app',
      'public',
    ]);
    expect(ddlTargets(sts, { searchPath: ['app', 'public'] })).toEqual([
      { schema: 'app', name: 't' },
      { schema: 'app', name: 'k' },
    ]);
  });

  it('round trip: targets of real DDL give before/after definitions', async () => {
    const sql = 'CREATE TABLE app.rt (a int); CREATE INDEX rt_a ON app.rt (a); CREATE FUNCTION app.rt_f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$';
    const targets = ddlTargets(statements(sql));
    expect(targets).toEqual([
      { schema: 'app', name: 'rt' },
      { schema: 'app', name: 'rt_a' },
      { schema: 'app', name: 'rt_f' },
    ]);
    const before = await snapshotObjects(q, targets);
    await client.query(sql);
    const after = await snapshotObjects(q, targets);
    expect(Object.values(before)).toEqual([null, null, null]);
    expect(Object.values(after).map((d) => d?.kind)).toEqual(['table', 'index', 'function']);
    expect(diffDefinitions(before['app.rt']!, after['app.rt']!)).toEqual(['created']);

    const drop = 'DROP TABLE app.rt; DROP FUNCTION app.rt_f()';
    const dropTargets = ddlTargets(statements(drop));
    expect(dropTargets).toEqual([
      { schema: 'app', name: 'rt' },
      { schema: 'app', name: 'rt_f' },
    ]);
    await client.query(drop);
    const gone = await snapshotObjects(q, dropTargets);
    expect(gone).toEqual({ 'app.rt': null, 'app.rt_f': null });
    expect(diffDefinitions(after['app.rt']!, gone['app.rt']!)).toEqual(['dropped']);
  });
});
