/**
 * PGlite behind the turn gate (src/embedded/pglite-gate.ts), the demo's
 * upstream on machines without PostgreSQL: several real clients at once, each
 * with its own settings, taking turns on PGlite's single backend.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import postgres from 'postgres';
import { startPglite, type EmbeddedPglite } from '../../src/embedded/pglite.js';
import { runPsql } from '../helpers/psql.js';

let lite: EmbeddedPglite;
const warnings: string[] = [];
const clients: pg.Client[] = [];

async function client(identity: string, extra: Partial<pg.ClientConfig> = {}): Promise<pg.Client> {
  const c = new pg.Client({ host: lite.host, port: lite.port, user: 'postgres', password: lite.password, database: 'postgres', options: `-c warden.identity=${identity}`, ...extra });
  await c.connect();
  clients.push(c);
  return c;
}

beforeAll(async () => {
  lite = await startPglite({ onWarning: (m) => warnings.push(m) });
  const c = await client('setup');
  await c.query('CREATE TABLE items (id int PRIMARY KEY, name text)');
  await c.query("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 100) g");
}, 60_000);

afterAll(async () => {
  await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  await lite?.stop();
});

const who = "SELECT current_setting('warden.identity') AS id, current_setting('search_path') AS sp, current_setting('application_name') AS app";

describe('PGlite behind the turn gate', () => {
  it('gives every connection its own startup settings and its own SETs, whatever ran between', async () => {
    const a = await client('alice', { application_name: 'app-a' });
    const b = await client('bob');
    await a.query('SET search_path = pg_catalog, public');
    for (let i = 0; i < 5; i++) {
      const [ra, rb] = await Promise.all([a.query(who), b.query(who)]);
      expect(ra.rows[0]).toEqual({ id: 'alice', sp: 'pg_catalog, public', app: 'app-a' });
      expect(rb.rows[0].id).toBe('bob');
      expect(rb.rows[0].sp).not.toMatch(/pg_catalog/);
    }
  });

  it('keeps interleaved extended-protocol batches of different clients apart', async () => {
    const a = await client('alice');
    const b = await client('bob');
    const runs = Array.from({ length: 40 }, (_, i) => {
      const c = i % 2 ? a : b;
      return c.query({ text: "SELECT $1::int * 2 AS n, current_setting('warden.identity') AS id", values: [i] });
    });
    const rows = (await Promise.all(runs)).map((r) => r.rows[0]);
    rows.forEach((r, i) => expect(r).toEqual({ n: i * 2, id: i % 2 ? 'alice' : 'bob' }));
  });

  it('lets a transaction finish before another session runs, and rolls back one left open by a client that goes away', async () => {
    const a = await client('alice');
    const b = await client('bob');
    await a.query('BEGIN');
    await a.query("UPDATE items SET name = 'changed' WHERE id = 1");
    let bDone = false;
    const bRead = b.query('SELECT name FROM items WHERE id = 1').then((r) => {
      bDone = true;
      return r.rows[0].name as string;
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(bDone).toBe(false);
    await a.query('COMMIT');
    expect(await bRead).toBe('changed');

    const c = await client('carol');
    await c.query('BEGIN');
    await c.query('DELETE FROM items');
    await c.end();
    expect((await b.query('SELECT count(*)::int AS n FROM items')).rows[0].n).toBe(100);
  });

  it('serves postgres.js (named prepared statements), and psql with COPY TO; refuses COPY FROM STDIN, which would break PGlite', async () => {
    const sqls = [1, 2].map((n) => postgres({ host: lite.host, port: lite.port, user: 'postgres', password: lite.password, database: 'postgres', max: 1, connection: { application_name: `js${n}` } }));
    try {
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => sqls[i % 2]`SELECT name, ${i}::int AS i, current_setting('application_name') AS app FROM items WHERE id = ${i + 2}`),
      );
      results.forEach((r, i) => expect(r[0]).toEqual({ name: `item ${i + 2}`, i, app: `js${(i % 2) + 1}` }));
    } finally {
      await Promise.all(sqls.map((s) => s.end()));
    }
    const psql = (args: string[], input?: string) => runPsql({ port: lite.port, user: 'postgres', password: lite.password, database: 'postgres', args, input });
    const out = await psql(['-v', 'ON_ERROR_STOP=1', '-c', 'COPY (SELECT id FROM items WHERE id <= 3 ORDER BY id) TO STDOUT']);
    expect(out.code, out.err).toBe(0);
    expect(out.out).toBe('1\n2\n3\n');
    const into = await psql(['-c', 'CREATE TABLE copied (n int)', '-c', 'COPY copied FROM STDIN', '-c', 'SELECT count(*) AS rows FROM copied'], '1\n2\n\\.\n');
    expect(into.err).toMatch(/COPY FROM STDIN is not supported by the embedded PGlite/);
    expect(into.out).toMatch(/\b0\b/);
    const a = await client('alice');
    await expect(a.query({ name: 'copy-in', text: 'COPY copied FROM STDIN' })).rejects.toMatchObject({ code: '0A000' });
    await expect(a.query('SELECT 1 AS x; COPY copied FROM STDIN')).rejects.toMatchObject({ code: '0A000' });
    // PGlite still serves everyone.
    expect((await a.query('SELECT count(*)::int AS n FROM items')).rows[0].n).toBe(100);
  });

  it('asks for the password (SCRAM), answers SSLRequest with N, and is not reachable around it', async () => {
    const c = await client('dave', { ssl: false });
    expect((await c.query('SELECT 1 AS one')).rows[0].one).toBe(1);
    const s = new pg.Client({ host: lite.host, port: lite.port, user: 'postgres', password: lite.password, database: 'postgres', ssl: { rejectUnauthorized: false } });
    await expect(s.connect()).rejects.toThrow(/SSL/i);
    const wrong = new pg.Client({ host: lite.host, port: lite.port, user: 'postgres', password: 'guess', database: 'postgres' });
    await expect(wrong.connect()).rejects.toMatchObject({ code: '28P01' });
    const none = new pg.Client({ host: lite.host, port: lite.port, user: 'postgres', database: 'postgres' });
    await expect(none.connect()).rejects.toThrow();
    // PGlite's own (passwordless) server is not on TCP at all: the gate's port is the only one.
    expect(lite.url()).toBe(`postgres://postgres:${lite.password}@127.0.0.1:${lite.port}/postgres`);
    expect((await c.query('SELECT 2 AS two')).rows[0].two).toBe(2);
    expect(warnings).toEqual([]);
  });
});
