/**
 * The PGlite demo with a session that keeps a transaction open while Warden must read the
 * catalog for it (its sensitive-column map is stale: older than 30 s, or dropped after DDL, as
 * here). PGlite's one backend serves that transaction only, so a read on Warden's catalog
 * connection waits behind it: the statement used to wait 6 s and be refused, and so were
 * ROLLBACK and COMMIT — the session, and every session queued behind it, locked up. Now the
 * read runs in the session's own transaction, and a failed transaction ends without one.
 */
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startDemo, type Demo } from '../../src/demo/demo.js';
import { freePort } from '../../src/embedded/free-port.js';
import { createLogger, silentLogger } from '../../src/log/logger.js';

let demo: Demo;
const clients: pg.Client[] = [];

async function login(who: 'alice' | 'dana'): Promise<pg.Client> {
  const m = new RegExp(`PGPASSWORD=(\\S+) psql "host=127.0.0.1 port=(\\d+) user=${who} dbname=app"`).exec(demo.banner)!;
  const c = new pg.Client({ host: '127.0.0.1', port: Number(m[2]), user: who, password: m[1], database: 'app' });
  await c.connect();
  clients.push(c);
  return c;
}

/** The statement's result, and how long it took. */
async function timed<T>(p: Promise<T>): Promise<{ value: T; ms: number }> {
  const t0 = Date.now();
  const value = await p;
  return { value, ms: Date.now() - t0 };
}

beforeAll(async () => {
  const before = process.env.WARDEN_DEMO_UPSTREAM;
  process.env.WARDEN_DEMO_UPSTREAM = 'pglite';
  try {
    demo = await startDemo(process.env.WARDEN_TEST_LOG ? createLogger('debug') : silentLogger(), { port: await freePort(), adminPort: await freePort() });
  } finally {
    if (before === undefined) delete process.env.WARDEN_DEMO_UPSTREAM;
    else process.env.WARDEN_DEMO_UPSTREAM = before;
  }
}, 90_000);

afterAll(async () => {
  await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  const dir = demo ? /The audit log is kept after the demo stops, in (\S+) \(/.exec(demo.banner)?.[1] : undefined;
  await demo?.stop();
  if (dir) (await import('node:fs')).rmSync(dir, { recursive: true, force: true });
});

it('a masked session whose map must be read inside its open transaction goes on, and ROLLBACK ends it; the session queued behind it then runs', async () => {
  const alice = await login('alice');
  const dana = await login('dana');
  const fake = (await alice.query('SELECT email FROM customers WHERE id = 3')).rows[0].email as string;
  await alice.query('BEGIN');
  // DDL drops the map: the next statements need the catalog while the transaction is open.
  await alice.query('CREATE TABLE scratch (id int, note text)');
  // The DBA's session waits for its turn behind alice's transaction (PGlite: one at a time).
  let danaDone = false;
  const danaRead = dana.query('SELECT count(*)::int AS n FROM customers').then((r) => ((danaDone = true), r.rows[0].n as number));
  const own = await timed(alice.query('SELECT id, note FROM scratch'));
  expect(own.value.rows).toEqual([]);
  expect(own.ms).toBeLessThan(4_000);
  // Still masked, with the map read in the transaction; and through the extended protocol.
  const masked = await timed(alice.query('SELECT email FROM customers WHERE id = $1', [3]));
  expect(masked.value.rows[0].email).toBe(fake);
  expect(masked.ms).toBeLessThan(4_000);
  expect(danaDone).toBe(false);
  const rb = await timed(alice.query('ROLLBACK'));
  expect(rb.ms).toBeLessThan(4_000);
  expect(await danaRead).toBe(40);
  // Rolled back; the session is usable and masked.
  await expect(alice.query('SELECT * FROM scratch')).rejects.toMatchObject({ code: '42P01' });
  expect((await alice.query('SELECT email FROM customers WHERE id = 3')).rows[0].email).toBe(fake);
}, 60_000);

it('a failed transaction of a masked session ends with ROLLBACK at once, its map not read', async () => {
  const alice = await login('alice');
  await alice.query('BEGIN');
  await alice.query('CREATE TABLE scratch2 (x int)');
  await expect(alice.query('SELECT 1/0')).rejects.toMatchObject({ code: '22012' });
  // The transaction is aborted, and the map was dropped by the DDL.
  const rb = await timed(alice.query('ROLLBACK'));
  expect(rb.ms).toBeLessThan(4_000);
  expect((await alice.query('SELECT count(*)::int AS n FROM customers')).rows[0].n).toBe(40);
  await expect(alice.query('SELECT * FROM scratch2')).rejects.toMatchObject({ code: '42P01' });
}, 60_000);
