/**
 * Load: 1,000 concurrent sessions (node-postgres) through a Warden process with the audit log
 * on (sqlite store) and masking, for a bounded time, mixing reads, writes, masked reads,
 * refusals and cancels. Asserts:
 *
 * - no unexpected error (every answer is the one the operation expects: rows, a masked value,
 *   42501 for the refusal, 57014 or completion for a cancelled sleep);
 * - Warden's memory (RSS) stays bounded after warm-up (at most 40% + 32 MB more in the second half);
 * - an audit record for every statement sent (statement.begin or statement.refused), and a
 *   session.start for every session.
 *
 * Sizes: WARDEN_LOAD_SESSIONS (default 1000), WARDEN_LOAD_SECONDS (default 75). The number of
 * sessions is lowered, with a message, when the open-file limit cannot hold them (this process
 * holds one descriptor per session, Warden two). Needs `npm run build` (Warden runs from dist/).
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/embedded/pg-cluster.js';
import { direct, PASSWORDS, startCluster, SVC_PASSWORD } from '../helpers/warden-env.js';
import { rssBytes, startWardenProcess, type WardenProcess } from '../helpers/warden-process.js';

const WANTED = Number(process.env.WARDEN_LOAD_SESSIONS ?? '1000');
const SECONDS = Number(process.env.WARDEN_LOAD_SECONDS ?? '75');
const ROWS = 1000;
/** Mean think time between a session's statements (ms). */
const THINK_MS = Number(process.env.WARDEN_LOAD_THINK_MS ?? '1500');

/** The soft open-file limit of this process (Linux), or Infinity when unknown. */
function openFileLimit(): number {
  try {
    const m = /Max open files\s+(\d+|unlimited)/.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
    return !m || m[1] === 'unlimited' ? Infinity : Number(m[1]);
  } catch {
    return Infinity;
  }
}

// Warden raises its own soft limit to the hard one; this process needs one per session plus cancels.
const FD_LIMIT = openFileLimit();
const SESSIONS = Math.max(10, Math.min(WANTED, Math.floor((FD_LIMIT - 300) / 1.2)));
if (SESSIONS < WANTED) {
  console.warn(`load test: the open-file limit (${FD_LIMIT}) holds ${SESSIONS} sessions, not ${WANTED}; raise it (ulimit -n) for the full run`);
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-load-'));
const auditDb = path.join(dir, 'audit.db');

const REAL_EMAIL = (i: number): string => `person${i}@real.example.com`;

let cluster: PgCluster;
let warden: WardenProcess;

beforeAll(async () => {
  cluster = await startCluster({ max_connections: String(SESSIONS + 50) });
  for (const s of [
    `CREATE TABLE items (id int PRIMARY KEY, n bigint NOT NULL DEFAULT 0)`,
    `INSERT INTO items SELECT g, 0 FROM generate_series(1, ${ROWS}) g`,
    `CREATE TABLE people (id int PRIMARY KEY, email text NOT NULL)`,
    `INSERT INTO people SELECT g, 'person' || g || '@real.example.com' FROM generate_series(1, ${ROWS}) g`,
    'CREATE TABLE events (sid int, n int)',
    'GRANT ALL ON items, people, events TO warden_svc',
  ])
    await direct(cluster, s);
  warden = await startWardenProcess(`version: 1
listen: { host: 127.0.0.1, port: __PORT__ }
databases:
  app:
    upstream: postgres://warden_svc:${SVC_PASSWORD}@127.0.0.1:${cluster.port}/app
identities:
  - { name: alice, kind: human, groups: [analysts], password: ${PASSWORDS.alice} }
sensitive:
  columns:
    public.people.email: email
  key: load-test-mask-key-0123456789abcdef
rules:
  - name: no-drop
    match: { statement: [drop] }
    action: deny
    reason: no destructive DDL through Warden
  - name: mask-pii
    match: { identity: [alice] }
    action: mask
audit:
  store: sqlite:${auditDb}
  instance: load-test
`);
}, 180_000);

afterAll(async () => {
  await warden?.stop();
  await cluster?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** User + system CPU seconds of a process (Linux). */
function cpuSeconds(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

/** Sends a CancelRequest for a client's running statement (as libpq's PQcancel does). */
function cancel(port: number, c: pg.Client): Promise<void> {
  const { processID, secretKey } = c as unknown as { processID: number; secretKey: number };
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => {
      const b = Buffer.alloc(16);
      b.writeInt32BE(16, 0);
      b.writeInt32BE(80877102, 4);
      b.writeInt32BE(processID, 8);
      b.writeInt32BE(secretKey, 12);
      s.end(b);
    });
    s.on('close', () => resolve());
    s.on('error', () => resolve());
  });
}

type Op = 'read' | 'write' | 'insert' | 'masked' | 'refused' | 'cancel';
const MIX: [Op, number][] = [
  ['read', 35],
  ['write', 15],
  ['insert', 10],
  ['masked', 25],
  ['refused', 8],
  ['cancel', 7],
];
function pickOp(): Op {
  let r = Math.random() * 100;
  for (const [op, w] of MIX) if ((r -= w) < 0) return op;
  return 'read';
}

describe(`load: ${SESSIONS} sessions for ${SECONDS} s with audit and masking`, () => {
  it('answers every statement as expected, keeps memory flat, and audits every statement', async () => {
    const port = warden.port;
    const pid = warden.child.pid!;
    const unexpected: string[] = [];
    const cancelDelays: number[] = [];
    const latencies: number[] = [];
    const counts: Record<Op | 'statements' | 'cancelled' | 'cancelMissed', number> = {
      read: 0,
      write: 0,
      insert: 0,
      masked: 0,
      refused: 0,
      cancel: 0,
      statements: 0,
      cancelled: 0,
      cancelMissed: 0,
    };

    // Connect everyone (50 at a time: each login is a SCRAM exchange on both sides).
    const clients: pg.Client[] = [];
    const t0 = Date.now();
    for (let i = 0; i < SESSIONS; i += 50) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(50, SESSIONS - i) }, async () => {
          const c = new pg.Client({ host: '127.0.0.1', port, user: 'alice', password: PASSWORDS.alice, database: 'app' });
          c.on('error', (e) => unexpected.push(`client error: ${e.message}`));
          await c.connect();
          return c;
        }),
      );
      clients.push(...batch);
    }
    const connectMs = Date.now() - t0;

    // Warden's RSS, sampled every second, and its CPU time over the run.
    const rss: { t: number; bytes: number }[] = [];
    const cpu0 = cpuSeconds(pid);
    const start = Date.now();
    const sampler = setInterval(() => rss.push({ t: Date.now() - start, bytes: rssBytes(pid) }), 1_000);
    const deadline = start + SECONDS * 1_000;

    const one = async (c: pg.Client, sid: number): Promise<void> => {
      const op = pickOp();
      const id = 1 + Math.floor(Math.random() * ROWS);
      counts[op]++;
      counts.statements++;
      try {
        switch (op) {
          case 'read': {
            const r = await c.query('SELECT id, n FROM items WHERE id = $1', [id]);
            if (r.rows.length !== 1 || r.rows[0].id !== id) unexpected.push(`read ${id}: ${JSON.stringify(r.rows)}`);
            break;
          }
          case 'write': {
            const r = await c.query('UPDATE items SET n = n + 1 WHERE id = $1', [id]);
            if (r.rowCount !== 1) unexpected.push(`update ${id}: rowCount ${r.rowCount}`);
            break;
          }
          case 'insert': {
            const r = await c.query(`INSERT INTO events (sid, n) VALUES (${sid}, ${id})`);
            if (r.rowCount !== 1) unexpected.push(`insert: rowCount ${r.rowCount}`);
            break;
          }
          case 'masked': {
            const r = await c.query('SELECT id, email FROM people WHERE id = $1', [id]);
            const email = r.rows[0]?.email as string | undefined;
            if (r.rows.length !== 1 || typeof email !== 'string' || email === REAL_EMAIL(id) || email.includes('real.example.com')) {
              unexpected.push(`masked read ${id}: ${JSON.stringify(r.rows)}`);
            }
            break;
          }
          case 'refused': {
            try {
              await c.query('DROP TABLE items');
              unexpected.push('DROP TABLE ran');
            } catch (e) {
              const err = e as { code?: string; message: string };
              if (err.code !== '42501' || !/no-drop|destructive/.test(err.message)) unexpected.push(`refusal: ${err.code} ${err.message}`);
            }
            break;
          }
          case 'cancel': {
            let settled = false;
            const q = c.query('SELECT pg_sleep(4)').then(
              () => ((settled = true), null),
              (e: { code?: string; message: string }) => ((settled = true), e),
            );
            // Long enough for the sleep to have started upstream under load (a cancel that reaches
            // the backend before is ignored, as in PostgreSQL).
            await new Promise((r) => setTimeout(r, 1_000));
            if (settled) {
              unexpected.push(`cancel: the sleep ended before the cancel was sent: ${(await q)?.message ?? 'no error'}`);
              break;
            }
            const sent = Date.now();
            await cancel(port, c);
            const err = await q;
            cancelDelays.push(Date.now() - sent);
            if (err === null) counts.cancelMissed++; // the cancel came after the sleep ended (over 3 s late) or before it started
            else if (err.code === '57014') counts.cancelled++;
            else unexpected.push(`cancel: ${err.code} ${err.message}`);
            break;
          }
        }
      } catch (e) {
        const err = e as { code?: string; message: string };
        unexpected.push(`${op}: ${err.code} ${err.message}`);
      }
    };

    await Promise.all(
      clients.map(async (c, sid) => {
        // Spread the sessions' starts, then think between statements (THINK_MS on average: about
        // 1,000 sessions / 1.5 s = 650 statements a second offered, which two loaded cores serve).
        await new Promise((r) => setTimeout(r, Math.random() * THINK_MS));
        while (Date.now() < deadline) {
          const t = Date.now();
          await one(c, sid);
          latencies.push(Date.now() - t);
          await new Promise((r) => setTimeout(r, THINK_MS * (0.5 + Math.random())));
        }
      }),
    );
    clearInterval(sampler);
    const cpuShare = (cpuSeconds(pid) - cpu0) / ((Date.now() - start) / 1000);
    await Promise.all(clients.map((c) => c.end().catch((e: Error) => unexpected.push(`end: ${e.message}`))));

    // Memory: after a warm-up (the first half), the RSS grows by at most 40% (+32 MB). Under this
    // load Warden's RSS climbs in steps for about two minutes, then stays flat (measured over
    // 200 s: 350 MB at the start, 521 MB at 130 s, 526 MB at 200 s), so longer runs
    // (WARDEN_LOAD_SECONDS=300) see it level.
    const warm = rss.filter((s) => s.t >= (SECONDS * 1000) / 2);
    const pct = (xs: number[], q: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * q))] ?? 0;
    const median = (xs: number[]): number => pct(xs, 0.5);
    const early = median(warm.slice(0, 5).map((s) => s.bytes));
    const late = median(warm.slice(-5).map((s) => s.bytes));
    const peak = Math.max(...rss.map((s) => s.bytes));
    const mb = (b: number): string => `${(b / 2 ** 20).toFixed(0)} MB`;
    console.log(
      `load: ${SESSIONS} sessions (fd limit ${FD_LIMIT}), connected in ${connectMs} ms; ${counts.statements} statements in ${SECONDS} s ` +
        `(${JSON.stringify(counts)}); Warden CPU ${(cpuShare * 100).toFixed(0)}% of a core; statement latency median ${median(latencies)} ms, p99 ${pct(latencies, 0.99)} ms; cancel to error: median ${median(cancelDelays)} ms, max ${Math.max(...cancelDelays)} ms; Warden RSS after warm-up ${mb(early)}, at the end ${mb(late)}, peak ${mb(peak)}`,
    );
    console.log(`Warden RSS (MB) every 10 s: ${rss.filter((_, i) => i % 10 === 9).map((x) => Math.round(x.bytes / 2 ** 20)).join(' ')}`);
    expect(unexpected.slice(0, 20)).toEqual([]);
    expect(counts.statements).toBeGreaterThan(SESSIONS);
    // A cancel that reaches the backend before the sleep starts is ignored (as in PostgreSQL):
    // most must take effect all the same.
    expect(counts.cancelled, 'most cancels took no effect').toBeGreaterThan(counts.cancel / 2);
    expect(late, `RSS grew from ${mb(early)} to ${mb(late)} after warm-up`).toBeLessThan(early * 1.4 + 32 * 2 ** 20);

    // Audit: Warden flushes on a clean stop; then one record per statement, and per session.
    expect(await warden.stop()).toBe(0);
    const db = new Database(auditDb, { readonly: true });
    try {
      const byType = new Map(
        (db.prepare("SELECT type, count(*) AS n FROM records WHERE identity = 'alice' GROUP BY type").all() as { type: string; n: number }[]).map((r) => [r.type, r.n]),
      );
      console.log(`audit records: ${JSON.stringify(Object.fromEntries(byType))}`);
      expect(byType.get('session.start')).toBe(SESSIONS);
      expect(byType.get('session.end')).toBe(SESSIONS);
      expect(byType.get('statement.refused')).toBe(counts.refused);
      expect(byType.get('statement.begin')).toBe(counts.statements - counts.refused);
    } finally {
      db.close();
    }
  }, 600_000 + SECONDS * 1_000);
});
