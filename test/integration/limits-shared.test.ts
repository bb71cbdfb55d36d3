/**
 * `limits:` counts shared through a PostgreSQL state store (issue 20), real PostgreSQL and
 * real clients: two Warden instances on one store share `rows_per_hour` (A returns rows, B's
 * statement is halted at the row that crosses the hour's budget) and `statements_per_minute`;
 * the hour's count survives a reload and a restart of A; while the store cannot be reached,
 * each instance goes on counting locally and writes those counts once when it is back.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWarden, type Warden } from '../../src/app.js';
import { parseConfig } from '../../src/config/load.js';
import type { PgCluster } from '../../src/embedded/pg-cluster.js';
import { silentLogger } from '../../src/log/logger.js';
import { baseYaml, PASSWORDS, startCluster } from '../helpers/warden-env.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** Two exchanges of the counters (every 500 ms) and some slack for a loaded machine. */
const EXCHANGES_MS = 1_300;

let cluster: PgCluster;
let dir: string;
let configFile: string;
let a: Warden;
let b: Warden;

const yaml = (pgPort: number, stateUrl: string): string =>
  baseYaml(
    pgPort,
    `state: { store: "${stateUrl}" }
limits:
  - name: bob-hourly
    match: { identity: [bob] }
    rows_per_hour: 150
  - name: alice-rate
    match: { identity: [alice] }
    statements_per_minute: 5
  - name: agent-hourly
    match: { identity: [agent] }
    rows_per_hour: 100
`,
  );

/** A Warden on the config file (so a reload reads it again). */
const start = (): Promise<Warden> => startWarden({ config: parseConfig(fs.readFileSync(configFile, 'utf8'), configFile, {}), log: silentLogger() });

async function connect(w: Warden, who: keyof typeof PASSWORDS): Promise<pg.Client> {
  const c = new pg.Client({ host: '127.0.0.1', port: w.port, user: who, password: PASSWORDS[who], database: 'app' });
  c.on('error', () => undefined); // a session still open when its Warden stops (a failed test)
  await c.connect();
  return c;
}

/** The stored count of a limit for an identity, in the windows that started at or after `since`. */
async function stored(limit: string, identity: string, since: number): Promise<number> {
  const r = await cluster.query(
    `SELECT coalesce(sum(count), 0)::int AS n FROM warden_state.limit_counters WHERE limit_name = '${limit}' AND identity = '${identity}' AND window_start >= ${since}`,
    'wstate',
  );
  return (r.rows[0] as { n: number }).n;
}

async function eventually(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!(await check())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** Waits for the next window when less than `ms` of the current one is left. */
async function notNearTheEnd(windowMs: number, ms: number): Promise<number> {
  const left = windowMs - (Date.now() % windowMs);
  if (left < ms) await sleep(left + 100);
  const t = Date.now();
  return t - (t % windowMs);
}

const errorOf = (p: Promise<unknown>): Promise<Error & { code?: string }> =>
  p.then(
    () => {
      throw new Error('the statement was not halted');
    },
    (e: Error & { code?: string }) => e,
  );

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-limits-shared-'));
  cluster = await startCluster();
  await cluster.query('CREATE DATABASE wstate');
  configFile = path.join(dir, 'warden.yaml');
  fs.writeFileSync(configFile, yaml(cluster.port, cluster.url('wstate')));
  a = await start();
  b = await start();
}, 60_000);

afterAll(async () => {
  await a?.close();
  await b?.close();
  await cluster?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('two instances on one PostgreSQL state store', () => {
  it('rows_per_hour: rows returned by A count on B, and the count survives a reload and a restart of A', async () => {
    const hour = await notNearTheEnd(3_600_000, 20_000);
    const ca = await connect(a, 'bob');
    expect((await ca.query('SELECT g FROM generate_series(1, 100) g')).rowCount).toBe(100);
    await eventually(async () => (await stored('bob-hourly', 'bob', hour)) === 100, 3000, 'A to write its count');
    await sleep(EXCHANGES_MS);
    const cb = await connect(b, 'bob');
    const rows: unknown[] = [];
    const q = new pg.Query('SELECT g FROM generate_series(1, 100) g');
    q.on('row', (r: unknown) => rows.push(r));
    const err = await new Promise<Error & { code?: string }>((resolve, reject) => {
      q.on('error', resolve);
      q.on('end', () => reject(new Error('the statement was not halted')));
      cb.query(q);
    });
    expect(err.code).toBe('54000');
    expect(err.message).toMatch(/limit "bob-hourly": bob may receive 150 rows per hour \(rows_per_hour\); this statement was halted at row 51 with 150 rows received this hour/);
    expect(rows).toHaveLength(50);
    expect((await cb.query('SELECT 1 WHERE false')).rowCount).toBe(0); // B's session goes on
    await eventually(async () => (await stored('bob-hourly', 'bob', hour)) === 150, 3000, 'B to write its count');
    await sleep(EXCHANGES_MS);

    // A reload keeps the counts (and counts nothing twice).
    expect((await a.reload({ trigger: 'SIGHUP' })).ok).toBe(true);
    const r1 = await errorOf(ca.query('SELECT g FROM generate_series(1, 10) g'));
    expect(r1.code).toBe('54000');
    expect(r1.message).toMatch(/halted at row 1 with 150 rows received this hour/);
    await ca.end();

    // A restart of A: read back from the store before its first statement.
    await a.close();
    a = await start();
    const again = await connect(a, 'bob');
    const r2 = await errorOf(again.query('SELECT g FROM generate_series(1, 10) g'));
    expect(r2.code).toBe('54000');
    expect(r2.message).toMatch(/halted at row 1 with 150 rows received this hour/);
    await again.end();
    await cb.end();
    await sleep(EXCHANGES_MS);
    expect(await stored('bob-hourly', 'bob', hour)).toBe(150);
  }, 30_000);

  it('statements_per_minute: three statements on A and two on B, the next one on B is refused with 53400', async () => {
    const minute = await notNearTheEnd(60_000, 8_000);
    const ca = await connect(a, 'alice');
    for (let i = 0; i < 3; i++) await ca.query('SELECT 1');
    await eventually(async () => (await stored('alice-rate', 'alice', minute)) === 3, 3000, 'A to write its count');
    await sleep(EXCHANGES_MS);
    const cb = await connect(b, 'alice');
    for (let i = 0; i < 2; i++) await cb.query('SELECT 2');
    const err = await errorOf(cb.query('SELECT 3'));
    expect(err.code).toBe('53400');
    expect(err.message).toMatch(/limit "alice-rate": alice may start 5 statements per minute \(statements_per_minute\) and reached it; it resets at \d{4}-\d\d-\d\dT\d\d:\d\d:00\.000Z/);
    // A sees B's statements too.
    await sleep(EXCHANGES_MS);
    expect((await errorOf(ca.query('SELECT 4'))).code).toBe('53400');
    await ca.end();
    await cb.end();
  }, 30_000);

  it('while the store cannot be reached, counting goes on locally; the counts are written once when it is back', async () => {
    const hour = await notNearTheEnd(3_600_000, 20_000);
    const c = await connect(b, 'agent');
    await cluster.query(`ALTER DATABASE wstate ALLOW_CONNECTIONS false`);
    await cluster.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'wstate'`);
    try {
      await sleep(EXCHANGES_MS); // a failed exchange or two
      expect((await c.query('SELECT g FROM generate_series(1, 60) g')).rowCount).toBe(60);
      const err = await errorOf(c.query('SELECT g FROM generate_series(1, 60) g'));
      expect(err.code).toBe('54000');
      expect(err.message).toMatch(/limit "agent-hourly": agent may receive 100 rows per hour \(rows_per_hour\); this statement was halted at row 41 with 100 rows received this hour/);
      await sleep(EXCHANGES_MS);
    } finally {
      await cluster.query(`ALTER DATABASE wstate ALLOW_CONNECTIONS true`);
    }
    await eventually(async () => (await stored('agent-hourly', 'agent', hour)) === 100, 5000, 'B to write the counts it kept');
    await sleep(EXCHANGES_MS);
    expect(await stored('agent-hourly', 'agent', hour)).toBe(100);
    // A reads them too.
    const ca = await connect(a, 'agent');
    expect((await errorOf(ca.query('SELECT 1'))).code).toBe('54000');
    await ca.end();
    await c.end();
  }, 30_000);
});
