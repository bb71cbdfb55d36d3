/**
 * Health and metrics against a real upstream: /readyz answers 503 with the
 * reason while the upstream PostgreSQL is stopped and 200 once it is back
 * (/healthz stays 200: the process is alive); a probe with a wrong upstream
 * password fails with PostgreSQL's reason and never shows the password; the
 * statement path fills warden_statements_total, the per-statement histograms
 * and the connection states.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startEnv, baseYaml, SVC_PASSWORD, type TestEnv } from '../helpers/warden-env.js';
import { startServer, stopServer } from '../helpers/pg-control.js';
import { probeUpstream } from '../../src/admin/readiness.js';

let env: TestEnv;
let base: string;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-health-'));

beforeAll(async () => {
  const audit = `audit:\n  store: sqlite:${path.join(dir, 'audit.db')}\n  on_failure: block\n`;
  env = await startEnv({
    yaml: (p) => baseYaml(p, `admin: { host: 127.0.0.1, port: 0 }\n${audit}rules:\n  - name: no-drop\n    match: { statement: [drop] }\n    action: deny\n  - name: truncate-needs-approval\n    match: { statement: [truncate] }\n    action: approve\n    approvers: { groups: [dba] }\n`),
  });
  base = `http://127.0.0.1:${env.warden.admin!.port}`;
});

afterAll(async () => {
  await env?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

const get = async (p: string): Promise<{ status: number; body: string }> => {
  const r = await fetch(base + p);
  return { status: r.status, body: await r.text() };
};

/** Polls until `f` returns a value (not undefined), or fails after `ms`. */
async function until<T>(f: () => Promise<T | undefined>, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const sample = (text: string, line: RegExp): number => Number(line.exec(text)?.[1] ?? NaN);

it('statements fill warden_statements_total by action and rule, the histograms and the connection states', async () => {
  const c = await env.connect('alice');
  try {
    for (let i = 0; i < 3; i++) await c.query('SELECT 1');
    await expect(c.query('DROP TABLE nothing')).rejects.toMatchObject({ code: '42501' });
    await c.query('BEGIN');
    await c.query('SELECT 2');
    const { body } = await get('/metrics');
    expect(body).toMatch(/^# TYPE warden_statements_total counter$/m);
    expect(sample(body, /^warden_statements_total\{database="app",identity_kind="human",action="allow",rule="default"\} (\d+)$/m)).toBeGreaterThanOrEqual(5);
    expect(body).toMatch(/^warden_statements_total\{database="app",identity_kind="human",action="deny",rule="no-drop"\} 1$/m);
    expect(body).toMatch(/^warden_statements_refused_total 1$/m);
    // Every statement's overhead is timed; forwarded ones also their upstream time.
    const overhead = sample(body, /^warden_statement_overhead_seconds_count\{database="app"\} (\d+)$/m);
    const upstream = sample(body, /^warden_statement_upstream_seconds_count\{database="app"\} (\d+)$/m);
    expect(overhead).toBeGreaterThanOrEqual(6);
    expect(upstream).toBeGreaterThanOrEqual(5);
    expect(upstream).toBeLessThan(overhead);
    expect(sample(body, /^warden_statement_upstream_seconds_sum\{database="app"\} (\S+)$/m)).toBeGreaterThan(0);
    expect(body).toMatch(/^warden_connections\{state="idle_in_transaction"\} 1$/m);
    expect(body).toMatch(/^warden_upstream_up\{database="app"\} 1$/m);
    expect(body).toMatch(/^process_cpu_seconds_total \S+$/m);
    // The audit (sqlite, fsync): its writes timed, its queue depth (completions may still be queued).
    expect(body).toMatch(/^# TYPE warden_audit_write_seconds histogram$/m);
    expect(sample(body, /^warden_audit_write_seconds_count (\d+)$/m)).toBeGreaterThan(0);
    expect(body).toMatch(/^# TYPE warden_audit_backlog gauge$/m);
    expect(sample(body, /^warden_audit_backlog (\d+)$/m)).toBeGreaterThanOrEqual(0);
    expect(body).not.toMatch(/warden_process_/);
  } finally {
    await c.end();
  }
});

it('/readyz: 503 naming the database while the upstream is stopped, 200 once it is back; /healthz stays 200', async () => {
  expect((await get('/readyz')).status).toBe(200);
  await stopServer(env.cluster);
  try {
    const down = await until(
      async () => {
        const r = await get('/readyz');
        return r.status === 503 ? r : undefined;
      },
      10_000,
      '/readyz 503',
    );
    const body = JSON.parse(down.body) as { status: string; reasons: string[]; checks: { check: string; database?: string; ok: boolean; reason?: string }[] };
    expect(body.status).toBe('unavailable');
    expect(body.reasons).toHaveLength(1);
    expect(body.reasons[0]).toMatch(/could not connect to the upstream \(ECONNREFUSED\)/);
    expect(body.checks).toContainEqual(expect.objectContaining({ check: 'upstream', database: 'app', ok: false }));
    expect((await get('/healthz')).status).toBe(200);
    expect((await get('/metrics')).body).toMatch(/^warden_ready 0$/m);
  } finally {
    await startServer(env.cluster);
  }
  const up = await until(
    async () => {
      const r = await get('/readyz');
      return r.status === 200 ? r : undefined;
    },
    10_000,
    '/readyz 200',
  );
  expect(JSON.parse(up.body)).toMatchObject({ status: 'ready', checks: expect.arrayContaining([expect.objectContaining({ check: 'upstream', database: 'app', ok: true })]) });
  // Sessions work again too.
  const c = await env.connect('bob');
  expect((await c.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  await c.end();
}, 40_000);

it('a probe that cannot log in fails with the upstream\'s reason, never the password', async () => {
  const db = env.config.databases.app!;
  const wrong = 'Not-The-Password-4711';
  const err = await probeUpstream({ ...db, upstream: { ...db.upstream, password: wrong } }).then(
    () => undefined,
    (e: Error) => e,
  );
  expect(err).toBeInstanceOf(Error);
  expect(err!.message).toMatch(/password authentication failed for user "warden_svc"/);
  expect(err!.message).not.toContain(wrong);
  expect(err!.message).not.toContain(SVC_PASSWORD);
  await expect(probeUpstream(db)).resolves.toBeUndefined();
});

it('a statement held for an approval: warden_approvals_pending 1 and a connection deciding, both 0 again once it is cancelled', async () => {
  const c = await env.connect('alice');
  c.on('error', () => undefined);
  const held = c.query('TRUNCATE nothing').catch((e: Error) => e);
  try {
    const body = await until(
      async () => {
        const m = (await get('/metrics')).body;
        return /^warden_approvals_pending 1$/m.test(m) ? m : undefined;
      },
      10_000,
      'warden_approvals_pending 1',
    );
    expect(body).toMatch(/^warden_connections\{state="deciding"\} 1$/m);
    expect(body).toMatch(/^warden_statements_total\{database="app",identity_kind="human",action="approve",rule="truncate-needs-approval"\} 1$/m);
  } finally {
    // A CancelRequest with the key Warden gave this client: the request is cancelled.
    const { processID, secretKey } = c as unknown as { processID: number; secretKey: number };
    const cancel = Buffer.alloc(16);
    cancel.writeInt32BE(16, 0);
    cancel.writeInt32BE(80877102, 4);
    cancel.writeInt32BE(processID, 8);
    cancel.writeInt32BE(secretKey, 12);
    await new Promise<void>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port: env.warden.port }, () => s.end(cancel));
      s.on('close', () => resolve());
      s.on('error', () => resolve());
    });
  }
  expect(await held).toMatchObject({ code: '57014' });
  await c.end();
  const after = await until(
    async () => {
      const m = (await get('/metrics')).body;
      return /^warden_approvals_pending 0$/m.test(m) ? m : undefined;
    },
    10_000,
    'warden_approvals_pending 0',
  );
  expect(after).toMatch(/^warden_connections\{state="deciding"\} 0$/m);
});

it('/readyz answers 503 (stopping) while Warden drains on its way out; /healthz still 200', async () => {
  const c = await env.connect('bob');
  c.on('error', () => undefined);
  const running = c.query('SELECT pg_sleep(1.5)').then(
    () => 'done',
    (e: Error) => e.message,
  );
  await new Promise((r) => setTimeout(r, 200));
  const closing = env.warden.close({ drainTimeoutMs: 10_000 });
  try {
    const r = await until(
      async () => {
        const x = await get('/readyz').catch(() => undefined);
        return x?.status === 503 ? x : undefined;
      },
      5_000,
      '/readyz 503 while stopping',
    );
    expect(JSON.parse(r.body)).toMatchObject({
      status: 'unavailable',
      reasons: [expect.stringMatching(/Warden is stopping: it accepts no new connections/)],
    });
    expect((await get('/healthz')).status).toBe(200);
  } finally {
    expect(await running).toBe('done');
    await closing;
    await c.end().catch(() => undefined);
  }
});
