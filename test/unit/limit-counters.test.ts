/**
 * Limit counters shared through the state store (governance/limit-counters.ts): two instances
 * on one sqlite state file (two Wardens on one host), a restart, pruning, a store that cannot
 * be reached (counting goes on locally, nothing is counted twice when it comes back), and the
 * limit service's rows_per_hour and statements_per_minute over two instances.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { createStoreLimitCounters, KEEP_MS, type StoreLimitCounters } from '../../src/governance/limit-counters.js';
import { createLimitService } from '../../src/governance/limits.js';
import type { Decision } from '../../src/policy/index.js';
import type { SessionInfo, StatementSource } from '../../src/contract/statement-hooks.js';
import { createLogger, silentLogger } from '../../src/log/logger.js';
import { openSqliteState } from '../../src/store/sqlite.js';
import type { StateStore } from '../../src/store/types.js';

const HOUR = 3_600_000;
const T0 = Date.parse('2026-03-02T10:20:30.000Z');
const HOUR0 = Date.parse('2026-03-02T10:00:00.000Z');
const MINUTE0 = Date.parse('2026-03-02T10:20:00.000Z');

let dir: string;
const opened: { close(): Promise<void> }[] = [];

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-limit-counters-'));
});
afterEach(async () => {
  for (const x of opened.splice(0).reverse()) await x.close();
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

let fileNo = 0;
const newFile = (): string => path.join(dir, `state-${++fileNo}.db`);

async function store(file: string): Promise<StateStore> {
  const s = await openSqliteState(file);
  opened.push(s);
  return s;
}

/** Counters on `s` with a settable clock; no background exchanges in the test's way (syncMs: an hour). */
function counters(s: StateStore, clock: { t: number }, log = silentLogger()): StoreLimitCounters {
  const c = createStoreLimitCounters({ store: s, log, syncMs: HOUR, now: () => clock.t });
  opened.push(c);
  return c;
}

/** A logger whose records are kept. */
function capturingLog(): { log: ReturnType<typeof createLogger>; lines: { level: string; msg: string }[] } {
  const lines: { level: string; msg: string }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l) as { level: string; msg: string });
      done();
    },
  });
  return { log: createLogger('info', sink), lines };
}

/** A store that can be taken down and brought back. */
function flaky(s: StateStore): StateStore & { down: boolean; calls: number } {
  const w = Object.create(s) as StateStore & { down: boolean; calls: number };
  w.down = false;
  w.calls = 0;
  w.syncLimitCounts = (adds, since, prune) => {
    w.calls++;
    return w.down ? Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:5432')) : s.syncLimitCounts(adds, since, prune);
  };
  return w;
}

function storedRows(file: string): { kind: string; limit_name: string; identity: string; window_start: number; count: number }[] {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare('SELECT * FROM limit_counters ORDER BY kind, limit_name, identity, window_start').all() as never;
  } finally {
    db.close();
  }
}

describe('two instances on one sqlite state store', () => {
  it('each counts its own additions at once, and the other instance sees them after an exchange', async () => {
    const file = newFile();
    const clock = { t: T0 };
    const a = counters(await store(file), clock);
    const b = counters(await store(file), clock);
    await a.start();
    await b.start();
    a.add('rows', 'hourly', 'bob', HOUR0, 100);
    expect(a.get('rows', 'hourly', 'bob', HOUR0)).toBe(100); // not written yet: counted here
    expect(b.get('rows', 'hourly', 'bob', HOUR0)).toBe(0);
    await a.sync();
    expect(a.get('rows', 'hourly', 'bob', HOUR0)).toBe(100); // written: counted once
    await b.sync();
    expect(b.get('rows', 'hourly', 'bob', HOUR0)).toBe(100);
    b.add('rows', 'hourly', 'bob', HOUR0, 30);
    b.add('statements', 'rate', 'bob', MINUTE0, 1);
    expect(b.get('rows', 'hourly', 'bob', HOUR0)).toBe(130);
    await b.sync();
    await a.sync();
    expect(a.get('rows', 'hourly', 'bob', HOUR0)).toBe(130);
    expect(a.get('statements', 'rate', 'bob', MINUTE0)).toBe(1);
    // Exchanges again and again count nothing twice.
    for (let i = 0; i < 3; i++) await Promise.all([a.sync(), b.sync()]);
    expect([a.get('rows', 'hourly', 'bob', HOUR0), b.get('rows', 'hourly', 'bob', HOUR0)]).toEqual([130, 130]);
    // Other windows, limits and identities are apart.
    expect(a.get('rows', 'hourly', 'bob', HOUR0 - HOUR)).toBe(0);
    expect(a.get('rows', 'hourly', 'alice', HOUR0)).toBe(0);
    expect(a.get('rows', 'other', 'bob', HOUR0)).toBe(0);
    expect(storedRows(file).map((r) => [r.kind, r.identity, r.count])).toEqual([
      ['rows', 'bob', 130],
      ['statements', 'bob', 1],
    ]);
  });

  it('adds made on both instances while exchanging are all counted (atomic increments)', async () => {
    const file = newFile();
    const clock = { t: T0 };
    const a = counters(await store(file), clock);
    const b = counters(await store(file), clock);
    const work: Promise<void>[] = [];
    for (let i = 0; i < 50; i++) {
      a.add('statements', 'rate', 'agent', MINUTE0, 1);
      b.add('statements', 'rate', 'agent', MINUTE0, 2);
      if (i % 7 === 0) work.push(a.sync(), b.sync());
    }
    await Promise.all(work);
    await a.sync();
    await b.sync();
    await a.sync();
    expect(a.get('statements', 'rate', 'agent', MINUTE0)).toBe(150);
    expect(b.get('statements', 'rate', 'agent', MINUTE0)).toBe(150);
    expect(storedRows(file)[0]!.count).toBe(150);
  });

  it('a restarted instance starts from the stored counts (close writes the last ones)', async () => {
    const file = newFile();
    const clock = { t: T0 };
    const a = counters(await store(file), clock);
    a.add('rows', 'hourly', 'bob', HOUR0, 70);
    await a.close(); // never exchanged before: close writes them
    const again = counters(await store(file), clock);
    expect(again.get('rows', 'hourly', 'bob', HOUR0)).toBe(0);
    await again.start();
    expect(again.get('rows', 'hourly', 'bob', HOUR0)).toBe(70);
  });

  it('reads only the current windows, and deletes windows older than two hours', async () => {
    const file = newFile();
    const clock = { t: T0 };
    const a = counters(await store(file), clock);
    a.add('rows', 'hourly', 'bob', HOUR0, 5);
    a.add('statements', 'rate', 'bob', MINUTE0, 2);
    await a.sync();
    // The next minute: the old minute is dropped here (still stored), the hour goes on.
    clock.t += 60_000;
    await a.sync();
    expect(a.get('statements', 'rate', 'bob', MINUTE0)).toBe(0);
    expect(a.get('rows', 'hourly', 'bob', HOUR0)).toBe(5);
    expect(storedRows(file)).toHaveLength(2);
    // Two hours and more later (and the prune's minute passed): both are deleted from the store.
    clock.t = HOUR0 + KEEP_MS + HOUR;
    await a.sync();
    expect(storedRows(file)).toEqual([]);
    expect(a.get('rows', 'hourly', 'bob', HOUR0)).toBe(0);
  });

  it('a current window an operator deleted from the store starts again from 0', async () => {
    const file = newFile();
    const clock = { t: T0 };
    const a = counters(await store(file), clock);
    a.add('rows', 'hourly', 'bob', HOUR0, 500);
    await a.sync();
    const db = new Database(file);
    db.prepare("DELETE FROM limit_counters WHERE identity = 'bob'").run();
    db.close();
    await a.sync();
    expect(a.get('rows', 'hourly', 'bob', HOUR0)).toBe(0);
  });
});

describe('when the state store cannot be reached', () => {
  it('counting goes on locally, a warning is logged once, and the counts are written once when it is back', async () => {
    const file = newFile();
    const clock = { t: T0 };
    const s = flaky(await store(file));
    const { log, lines } = capturingLog();
    const a = counters(s, clock, log);
    a.add('rows', 'hourly', 'bob', HOUR0, 10);
    await a.sync();
    s.down = true;
    a.add('rows', 'hourly', 'bob', HOUR0, 20);
    for (let i = 0; i < 3; i++) await a.sync();
    expect(a.failing).toBe(true);
    expect(a.get('rows', 'hourly', 'bob', HOUR0)).toBe(30);
    a.add('rows', 'hourly', 'bob', HOUR0, 5);
    expect(a.get('rows', 'hourly', 'bob', HOUR0)).toBe(35);
    const warnings = lines.filter((l) => l.level === 'warn');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.msg).toMatch(/cannot be written or read; counting goes on in this instance only/);
    expect(storedRows(file)[0]!.count).toBe(10);
    s.down = false;
    await a.sync();
    expect(a.failing).toBe(false);
    expect(lines.some((l) => l.level === 'info' && /reachable again/.test(l.msg))).toBe(true);
    expect(a.get('rows', 'hourly', 'bob', HOUR0)).toBe(35);
    expect(storedRows(file)[0]!.count).toBe(35);
    await a.sync();
    expect(storedRows(file)[0]!.count).toBe(35);
  });

  it('a closed store (Warden stopping) neither throws nor blocks: get and add stay synchronous', async () => {
    const file = newFile();
    const clock = { t: T0 };
    const s = await store(file);
    const a = counters(s, clock);
    await s.close();
    a.add('statements', 'rate', 'x', MINUTE0, 1);
    await a.start(); // resolves although the store cannot be read
    expect(a.get('statements', 'rate', 'x', MINUTE0)).toBe(1);
    expect(a.failing).toBe(true);
  });
});

describe('the limit service over two instances', () => {
  const session = (name: string): SessionInfo =>
    ({ id: `s-${name}`, identity: { name, kind: 'agent', groups: [] }, database: { name: 'app' }, auth: { method: 'password' } }) as unknown as SessionInfo;
  const stmt: StatementSource = { sql: 'SELECT * FROM t', protocol: 'simple' } as unknown as StatementSource;
  const decision = { limits: ['agent-hourly'] } as unknown as Decision;

  it('rows_per_hour and statements_per_minute hold across the instances', async () => {
    const file = newFile();
    const clock = { t: T0 };
    const ca = counters(await store(file), clock);
    const cb = counters(await store(file), clock);
    const limits = [{ name: 'agent-hourly', match: {}, rowsPerHour: 150, statementsPerMinute: 3, onExceed: 'halt' as const }];
    const a = createLimitService({ limits, log: silentLogger(), counters: ca, now: () => clock.t });
    const b = createLimitService({ limits, log: silentLogger(), counters: cb, now: () => clock.t });
    const r1 = a.check(session('rogue'), stmt, decision);
    expect(r1.limit?.maxRows).toBe(150);
    r1.onDone!({ tags: ['SELECT 100'], rows: 100 });
    await ca.sync();
    await cb.sync();
    const r2 = b.check(session('rogue'), stmt, decision);
    expect(r2.limit?.maxRows).toBe(50);
    expect(r2.limit!.exceeded(51, 0).message).toMatch(/halted at row 51 with 150 rows received this hour/);
    // Two statements on A, one on B: the fourth, on B, is refused.
    expect(a.check(session('rogue'), stmt, decision).refusal).toBeUndefined();
    await ca.sync();
    await cb.sync();
    expect(b.check(session('rogue'), stmt, decision).refusal?.code).toBe('53400');
  });
});

describe('cost per statement', () => {
  it('get and add are map lookups (measured; reported by the test)', async () => {
    const clock = { t: T0 };
    const c = counters(await store(':memory:'), clock);
    for (let i = 0; i < 200; i++) c.add('rows', 'hourly', `id-${i}`, HOUR0, 1);
    const N = 1_000_000;
    let sink = 0;
    for (let i = 0; i < 100_000; i++) sink += c.get('rows', 'hourly', 'id-7', HOUR0); // warm-up
    sink = 0;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) sink += c.get('rows', 'hourly', 'id-42', HOUR0);
    const t1 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) c.add('statements', 'rate', 'id-42', MINUTE0, 1);
    const t2 = process.hrtime.bigint();
    const getNs = Number(t1 - t0) / N;
    const addNs = Number(t2 - t1) / N;
    console.log(`limit counters: get ${getNs.toFixed(0)} ns, add ${addNs.toFixed(0)} ns per call (store-backed)`);
    expect(sink).toBe(N);
    expect(c.get('statements', 'rate', 'id-42', MINUTE0)).toBe(N);
    // A loaded 2-core machine: a generous bound, far below any store round trip.
    expect(getNs).toBeLessThan(5_000);
    expect(addNs).toBeLessThan(5_000);
  });
});
