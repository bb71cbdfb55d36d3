/**
 * `limits:` on the wire (issue 20), real PostgreSQL and real clients: a statement halted at
 * max_rows (54000) whose upstream query is cancelled and whose session stays usable, on the
 * simple and the extended protocol and through COPY TO STDOUT; max_bytes; rows_per_hour over
 * several statements; statements_per_minute refusing with 53400; identities the limit does not
 * match are not bound; every crossing recorded as `limit.exceeded`.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseYaml, direct, PASSWORDS, startEnv, type TestEnv } from '../helpers/warden-env.js';
import { runPsql } from '../helpers/psql.js';

let env: TestEnv;
let dir: string;
let auditFile: string;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const ROGUE = 'rogue-pw-5';
const DORA = 'dora-pw-6';
const NEWBIE = 'newbie-pw-7';

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-limits-'));
  auditFile = path.join(dir, 'audit.jsonl');
  env = await startEnv({
    yaml: (p) =>
      baseYaml(
        p,
        `  - name: rogue
    kind: agent
    password: ${ROGUE}
  - name: dora
    kind: human
    groups: [dba]
    password: ${DORA}
  - name: newbie
    kind: service
    password: ${NEWBIE}
admin: { host: 127.0.0.1, port: 0 }
audit: { store: "jsonl:${auditFile}", durability: os }
limits:
  - name: rogue-suspend
    match: { identity: [rogue] }
    max_rows: 10
    on_exceed: suspend
  - name: agent-volume
    match: { kind: [agent] }
    max_rows: 1000
    max_bytes: 64kB
  - name: bob-hourly
    match: { identity: [bob] }
    rows_per_hour: 150
  - name: agent-heavy-reads
    match: { kind: [agent], tables: ["public.big"] }
    max_estimated_rows: 100
    on_exceed: approve
    approvers: { groups: [dba], count: 1 }
  - name: newbie-first-reads
    match: { identity: [newbie] }
    first_touch: approve
    approvers: { groups: [dba] }
  - name: alice-estimate
    match: { identity: [alice], tables: ["public.big"] }
    max_estimated_rows: 50
  - name: alice-rate
    match: { identity: [alice], tables: ["public.rated"] }
    statements_per_minute: 5
`,
      ),
  });
  await direct(env.cluster, 'CREATE TABLE public.rated (id int); INSERT INTO public.rated VALUES (1); GRANT ALL ON public.rated TO warden_svc');
  await direct(env.cluster, 'CREATE TABLE public.big (id int PRIMARY KEY); INSERT INTO public.big SELECT generate_series(1, 1000); ANALYZE public.big; GRANT ALL ON public.big TO warden_svc');
}, 60_000);

afterAll(async () => {
  await env?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

function records(type: string): Record<string, unknown>[] {
  return fs
    .readFileSync(auditFile, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { type: string; data: Record<string, unknown> })
    .filter((r) => r.type === type)
    .map((r) => r.data);
}

/** The admin API as dora, an approver (group dba). */
async function api(method: string, p: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${env.warden.admin!.port}/api/v1${p}`, {
    method,
    headers: { authorization: `Basic ${Buffer.from(`dora:${DORA}`).toString('base64')}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

/** The pending approval request of `who`, once it is there. */
async function pendingOf(who: string): Promise<Record<string, unknown>> {
  for (let i = 0; i < 100; i++) {
    const list = (await api('GET', '/approvals?status=pending')).json.requests as Record<string, unknown>[];
    const p = list.find((r) => r.identity === who);
    if (p) return p;
    await sleep(50);
  }
  throw new Error(`no pending request of ${who}`);
}

/** Rows of a long-running query of the session's backend still in pg_stat_activity. */
async function stillRunning(marker: string): Promise<number> {
  const r = await direct(env.cluster, `SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE '%${marker}%' AND state = 'active' AND pid <> pg_backend_pid()`);
  return (r.rows[0] as { n: number }).n;
}

describe('max_rows', () => {
  it('halts an agent at row 1001 of 100,000 with 54000, cancels the upstream query, and the session goes on (simple protocol)', async () => {
    const c = await env.connect('agent');
    const rows: unknown[] = [];
    const q = new pg.Query('SELECT g, pg_sleep(0.00002) AS halt_simple FROM generate_series(1, 100000) g');
    q.on('row', (r: unknown) => rows.push(r));
    const err = await new Promise<Error & { code?: string }>((resolve, reject) => {
      q.on('error', resolve);
      q.on('end', () => reject(new Error('the statement was not halted')));
      c.query(q);
    });
    expect(err.code).toBe('54000');
    expect(err.message).toMatch(/limit "agent-volume": a statement may return 1000 rows \(max_rows\); this one was halted at row 1001/);
    expect(rows.length).toBe(1000);
    // The upstream statement is gone within a second.
    const t0 = Date.now();
    while ((await stillRunning('halt_simple')) > 0 && Date.now() - t0 < 1000) await sleep(50);
    expect(await stillRunning('halt_simple')).toBe(0);
    // The session is usable.
    expect((await c.query('SELECT 41 + 1 AS x')).rows).toEqual([{ x: 42 }]);
    expect((await c.query('SELECT g FROM generate_series(1, 1000) g')).rowCount).toBe(1000);
    await c.end();
  });

  it('halts on the extended protocol too, and the next statements of the session run', async () => {
    const c = await env.connect('agent');
    const err = await c.query({ text: 'SELECT g, $1::text AS t FROM generate_series(1, 50000) g', values: ['x'] }).catch((e: Error & { code?: string }) => e);
    expect((err as { code?: string }).code).toBe('54000');
    expect((await c.query({ text: 'SELECT $1::int + 1 AS y', values: [1] })).rows).toEqual([{ y: 2 }]);
    // In a transaction block: the halt is an error, and the block goes on as the client expects.
    await c.query('BEGIN');
    await expect(c.query('SELECT g FROM generate_series(1, 2000) g')).rejects.toMatchObject({ code: '54000' });
    await c.query('ROLLBACK');
    expect((await c.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    await c.end();
  });

  it('counts COPY ... TO STDOUT rows: psql gets the 54000 error, not 5,000 rows', async () => {
    const r = await runPsql({ port: env.warden.port, user: 'agent', password: PASSWORDS.agent, database: 'app', args: ['-c', 'COPY (SELECT g FROM generate_series(1, 5000) g) TO STDOUT'] });
    expect(r.err).toMatch(/max_rows/);
    expect(r.out.split('\n').filter(Boolean).length).toBeLessThanOrEqual(1000);
  });

  it('does not bind an identity its match does not cover', async () => {
    const c = await env.connect('alice');
    expect((await c.query('SELECT g FROM generate_series(1, 20000) g')).rowCount).toBe(20000);
    await c.end();
  });
});

describe('max_bytes', () => {
  it('halts an agent once the result passes 64 kB', async () => {
    const c = await env.connect('agent');
    const err = await c.query("SELECT repeat('x', 1000) AS big FROM generate_series(1, 500)").catch((e: Error & { code?: string }) => e);
    expect((err as { code?: string }).code).toBe('54000');
    expect((err as Error).message).toMatch(/max_bytes/);
    expect((await c.query('SELECT 2 AS two')).rows).toEqual([{ two: 2 }]);
    await c.end();
  });
});

describe('rows_per_hour', () => {
  it('counts rows across statements and sessions of the identity, and halts the one that crosses it', async () => {
    const a = await env.connect('bob');
    const b = await env.connect('bob');
    expect((await a.query('SELECT g FROM generate_series(1, 100) g')).rowCount).toBe(100);
    const err = await b.query('SELECT g FROM generate_series(1, 100) g').catch((e: Error & { code?: string }) => e);
    expect((err as { code?: string }).code).toBe('54000');
    expect((err as Error).message).toMatch(/limit "bob-hourly": bob may receive 150 rows per hour \(rows_per_hour\); this statement was halted at row 51/);
    // Statements without rows still run.
    expect((await a.query('SELECT 1 WHERE false')).rowCount).toBe(0);
    await a.end();
    await b.end();
  });
});

describe('statements_per_minute', () => {
  it('refuses the sixth statement on the table within the minute with 53400 and the reset time', async () => {
    // Whatever second of the minute this starts at: 5 pass, the 6th is refused (unless the minute turns over in between).
    const minuteLeft = 60_000 - (Date.now() % 60_000);
    if (minuteLeft < 3000) await sleep(minuteLeft + 100);
    const c = await env.connect('alice');
    for (let i = 0; i < 5; i++) await c.query('SELECT id FROM public.rated');
    const err = await c.query('SELECT id FROM public.rated').catch((e: Error & { code?: string }) => e);
    expect((err as { code?: string }).code).toBe('53400');
    expect((err as Error).message).toMatch(/limit "alice-rate": alice may start 5 statements per minute \(statements_per_minute\) and reached it; it resets at \d{4}-\d\d-\d\dT\d\d:\d\d:00\.000Z/);
    // Statements the limit does not match still run.
    expect((await c.query('SELECT 3 AS three')).rows).toEqual([{ three: 3 }]);
    await c.end();
  });
});

describe('on_exceed: suspend', () => {
  it('halts the statement, ends every session of the identity and refuses its next login until resumed', async () => {
    const cfg = (): pg.ClientConfig => ({ ...env.client('agent'), user: 'rogue', password: ROGUE });
    const a = new pg.Client(cfg());
    const b = new pg.Client(cfg());
    await a.connect();
    await b.connect();
    const bEnded = new Promise<Error & { code?: string }>((resolve) => b.on('error', resolve));
    a.on('error', () => undefined);
    const err = await a.query('SELECT g FROM generate_series(1, 100) g').catch((e: Error & { code?: string }) => e);
    // Halted (54000), and the session itself is ended by the suspension at once (57P01 follows
    // the 54000 on the wire; pg reports whichever it settles the query with).
    expect(['54000', '57P01']).toContain((err as { code?: string }).code);
    expect(await bEnded).toMatchObject({ code: '57P01' });
    expect((await bEnded).message).toMatch(/suspended/);
    const again = new pg.Client(cfg());
    const refused = await again.connect().then(() => null, (e: Error & { code?: string }) => e);
    expect(refused?.code).toBe('28000');
    expect(refused?.message).toMatch(/identity rogue is suspended: limit "rogue-suspend" exceeded: max_rows 11 > 10/);
    // An operator resumes it: it may log in again.
    await env.warden.suspensions!.resume('rogue', 'test');
    const back = new pg.Client(cfg());
    await back.connect();
    expect((await back.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    await back.end();
    await a.end().catch(() => undefined);
  });
});

describe('max_estimated_rows', () => {

  it('holds a cross join estimated over the bound for approval, with the estimate in the request, and runs it once approved', async () => {
    const c = await env.connect('agent');
    // Reads the planner expects to be small run at once.
    expect((await c.query('SELECT id FROM public.big WHERE id = 5')).rows).toEqual([{ id: 5 }]);
    const notices: string[] = [];
    c.on('notice', (n) => notices.push(n.message ?? ''));
    const held = c.query('SELECT a.id AS a, b.id AS b FROM public.big a CROSS JOIN public.big b WHERE a.id <= 3 AND b.id <= 300');
    const pending = await pendingOf('agent');
    const rules = pending.rules as { rule: string; reason?: string }[];
    expect(rules).toEqual([expect.objectContaining({ rule: 'limit:agent-heavy-reads', reason: expect.stringMatching(/^an estimated \d+ rows; max_estimated_rows is 100$/) })]);
    const decided = await api('POST', `/approvals/${String(pending.id)}/approve`, { reason: 'a known report' });
    expect(decided.status).toBe(200);
    const r = await held;
    expect(r.rowCount).toBe(900);
    expect(notices.join('\n')).toContain(String(pending.id));
    await c.end();
  });

  it('refuses a read estimated over the bound with 54000 when on_exceed is halt, naming the estimate', async () => {
    const c = await env.connect('alice');
    const err = await c.query('SELECT id FROM public.big').catch((e: Error & { code?: string }) => e);
    expect((err as { code?: string }).code).toBe('54000');
    expect((err as Error).message).toMatch(/^limit "alice-estimate": a read may be expected to return 50 rows \(max_estimated_rows\); this one has an estimated 1000 rows, so it was not run$/);
    // Narrowed, it runs; so do statements the limit does not cover.
    expect((await c.query('SELECT id FROM public.big WHERE id < 10')).rowCount).toBe(9);
    // Fail closed: what cannot be estimated counts as over the bound (a plan PostgreSQL cannot make apart from the session).
    const tmp = await c.query('SELECT id FROM public.big WHERE id < (SELECT count(*) FROM no_such_table)').catch((e: Error & { code?: string }) => e);
    expect((tmp as { code?: string }).code).toBe('54000');
    expect((tmp as Error).message).toMatch(/no estimate \(PostgreSQL could not plan it apart from the session \(relation "no_such_table" does not exist\)\)/);
    await c.end();
  });
});

describe('first_touch', () => {

  it('holds the first read of a table for approval once, then remembers it; another table asks again', async () => {
    const c = new pg.Client({ ...env.client('bob'), user: 'newbie', password: NEWBIE });
    await c.connect();
    const first = c.query('SELECT id FROM public.rated');
    const p = await pendingOf('newbie');
    expect(p.rules).toEqual([expect.objectContaining({ rule: 'first-touch:newbie-first-reads:public.rated', reason: 'the first read of public.rated by newbie (limit "newbie-first-reads", first_touch)' })]);
    expect((await api('POST', `/approvals/${String(p.id)}/approve`, { reason: 'newbie may read rated' })).status).toBe(200);
    expect((await first).rows).toEqual([{ id: 1 }]);
    // Remembered: no new request, at once (a second session too).
    expect((await c.query('SELECT count(*)::int AS n FROM public.rated')).rows).toEqual([{ n: 1 }]);
    const c2 = new pg.Client({ ...env.client('bob'), user: 'newbie', password: NEWBIE });
    await c2.connect();
    expect((await c2.query('SELECT id FROM public.rated')).rowCount).toBe(1);
    const grants = (await api('GET', '/grants')).json.grants as Record<string, unknown>[];
    expect(grants.some((g) => g.to === 'newbie' || g.identity === 'newbie')).toBe(true);
    // A table never read: asked again; denied, the statement is refused and the session goes on.
    const other = c.query('SELECT id FROM public.big WHERE id = 1').catch((e: Error & { code?: string }) => e);
    const p2 = await pendingOf('newbie');
    expect(p2.id).not.toBe(p.id);
    await api('POST', `/approvals/${String(p2.id)}/deny`, { reason: 'not that one' });
    expect(((await other) as { code?: string }).code).toBeDefined();
    expect((await c.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    await c.end();
    await c2.end();
  });
});

describe('the audit', () => {
  it('records each crossing as limit.exceeded with the limit, the measure, the figure and the statement', async () => {
    await sleep(300);
    const ex = records('limit.exceeded');
    const byMeasure = (m: string): Record<string, unknown>[] => ex.filter((r) => r.measure === m);
    expect(byMeasure('max_rows')[0]).toMatchObject({ identity: 'agent', limit: 'agent-volume', figure: 1001, max: 1000, on_exceed: 'halt' });
    expect(String(byMeasure('max_rows')[0]!.sql)).toContain('halt_simple');
    expect(byMeasure('max_bytes')[0]).toMatchObject({ identity: 'agent', limit: 'agent-volume', max: 65536 });
    expect(byMeasure('rows_per_hour')[0]).toMatchObject({ identity: 'bob', limit: 'bob-hourly', figure: 151, max: 150 });
    expect(byMeasure('statements_per_minute')[0]).toMatchObject({ identity: 'alice', limit: 'alice-rate', figure: 6, max: 5 });
    // And counted in the metrics, by limit and measure.
    const metrics = await (await fetch(`http://127.0.0.1:${env.warden.admin!.port}/metrics`)).text();
    expect(metrics).toContain('# TYPE warden_limits_exceeded_total counter');
    expect(metrics).toMatch(/warden_limits_exceeded_total\{limit="agent-volume",measure="max_rows"\} [1-9]/);
    expect(metrics).toMatch(/warden_limits_exceeded_total\{limit="alice-rate",measure="statements_per_minute"\} 1/);
    // The halted statement's completion carries the error the client saw.
    const ends = records('statement.end').filter((r) => r.sqlstate === '54000');
    expect(ends.length).toBeGreaterThanOrEqual(4);
  });
});
