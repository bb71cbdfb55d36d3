/**
 * Sessions and the kill switch (issue 19 §2), on a real PostgreSQL with real clients:
 * `GET /api/v1/sessions` and who may read it, `warden sessions kill` ending a psql session
 * with 57P01 while its statement is cancelled upstream, and `warden identity suspend`
 * refusing logins on a second Warden that shares a PostgreSQL state store and ending the
 * identity's sessions on both, until `resume`.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { baseYaml, direct, PASSWORDS, startCluster, startEnv, type TestEnv } from '../helpers/warden-env.js';
import { runPsql } from '../helpers/psql.js';
import { runCli } from '../helpers/warden-process.js';
import { makeTestCerts, type TestCerts } from '../helpers/certs.js';
import { parseConfig } from '../../src/config/load.js';
import { startWarden, type Warden } from '../../src/app.js';
import { silentLogger } from '../../src/log/logger.js';
import type { PgCluster } from '../../src/embedded/pg-cluster.js';

const OLGA = 'olga-operator-pw-7';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let cluster: PgCluster;
let env: TestEnv;
let second: Warden;
let dir: string;
let certs: TestCerts;
const yaml = (pgPort: number, stateUrl: string, auditFile: string): string =>
  withTls(baseYaml(
    pgPort,
    `  - name: olga
    kind: human
    groups: [ops]
    password: ${OLGA}
admin: { host: 127.0.0.1, port: 0, operators: [ops], auditors: [analysts] }
state: { store: "${stateUrl}" }
audit: { store: "jsonl:${auditFile}", durability: os }
rules:
  - name: held-needs-ops
    match: { tables: ["held.*"] }
    action: approve
    approvers: { groups: [ops], count: 1 }
`,
  ));
/** TLS offered, not required: the listing tells TLS sessions apart. */
const withTls = (y: string): string =>
  y.replace('listen: { host: 127.0.0.1, port: 0 }', `listen: { host: 127.0.0.1, port: 0, tls: { cert: ${certs.serverCert}, key: ${certs.serverKey}, require: false } }`);

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-sessions-'));
  certs = await makeTestCerts();
  cluster = await startCluster();
  await cluster.query('CREATE DATABASE wstate');
  const stateUrl = cluster.url('wstate');
  env = await startEnv({ cluster, yaml: (p) => yaml(p, stateUrl, path.join(dir, 'a.jsonl')) });
  second = await startWarden({ config: parseConfig(yaml(cluster.port, stateUrl, path.join(dir, 'b.jsonl')), '/tmp/warden-test-b.yaml', {}), log: silentLogger() });
}, 60_000);

afterAll(async () => {
  await second?.close();
  await env?.stop();
  await cluster?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  await certs?.cleanup();
});

const adminUrl = (w: Warden): string => `http://127.0.0.1:${w.admin!.port}`;
const passwordOf = (who: string): string => (who === 'olga' ? OLGA : PASSWORDS[who as keyof typeof PASSWORDS]);

async function api(w: Warden, who: string, method: string, p: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${adminUrl(w)}/api/v1${p}`, {
    method,
    headers: { authorization: `Basic ${Buffer.from(`${who}:${passwordOf(who)}`).toString('base64')}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

type Listed = Record<string, unknown> & { id: string; identity: string; state: string };

async function sessions(w: Warden): Promise<Listed[]> {
  const r = await api(w, 'olga', 'GET', '/sessions');
  expect(r.status).toBe(200);
  return r.json.sessions as Listed[];
}

async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

function auditTypes(file: string): { type: string; data: Record<string, unknown> }[] {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { type: string; data: Record<string, unknown> });
}

const cliEnv = { WARDEN_PASSWORD: OLGA };

it('lists sessions with who, where, state and the statement as the audit shows it; readers only', async () => {
  const c = new pg.Client({ ...env.client('bob'), application_name: 'nightly-job' });
  await c.connect();
  const idle = await env.connect('agent');
  const overTls = new pg.Client({ ...env.client('alice'), ssl: { rejectUnauthorized: false } });
  await overTls.connect();
  try {
    const running = c.query("SELECT pg_sleep(2), 'postgres://u:hunter2@db.example/x' AS dsn");
    const bob = await until('bob active', async () => (await sessions(env.warden)).find((s) => s.identity === 'bob' && s.state === 'active'));
    expect(bob).toMatchObject({
      kind: 'service',
      on_behalf_of: null,
      auth: 'password',
      database: 'app',
      client_address: '127.0.0.1',
      tls: false,
      tls_version: null,
      application_name: 'nightly-job',
      approval_request: null,
    });
    expect(bob.statement).toContain('pg_sleep(2)');
    expect(bob.statement).toContain("'<redacted>'");
    expect(bob.statement).not.toContain('hunter2');
    expect(bob.statement_duration_ms).toBeGreaterThanOrEqual(0);
    expect(Date.parse(bob.started_at as string)).toBeLessThanOrEqual(Date.now());
    const agent = (await sessions(env.warden)).find((s) => s.identity === 'agent')!;
    expect(agent).toMatchObject({ kind: 'agent', state: 'idle', statement: null, statement_duration_ms: null });
    // pg settles a query at its ErrorResponse, which may reach it in a segment before the
    // ReadyForQuery that makes the session idle: wait for the state rather than race it.
    const agentIn = (state: string): Promise<Record<string, unknown>> =>
      until(`agent ${state}`, async () => (await sessions(env.warden)).find((s) => s.identity === 'agent' && s.state === state));
    await idle.query('BEGIN');
    expect(await agentIn('idle in transaction')).toMatchObject({ statement: 'BEGIN' });
    await idle.query('SELECT 1/0').catch(() => undefined);
    expect(await agentIn('idle in transaction (aborted)')).toMatchObject({ statement: 'SELECT 1/0' });
    await idle.query('ROLLBACK');
    expect((await sessions(env.warden)).find((s) => s.identity === 'alice')).toMatchObject({ tls: true, tls_version: expect.stringMatching(/^TLSv1\.[23]$/) });

    // Auditors read; nobody else; only operators kill.
    expect((await api(env.warden, 'alice', 'GET', '/sessions')).status).toBe(200);
    const denied = await api(env.warden, 'bob', 'GET', '/sessions');
    expect(denied.status).toBe(403);
    expect(denied.json.error).toMatch(/admin\.operators or admin\.auditors/);
    const notOperator = await api(env.warden, 'alice', 'POST', `/sessions/${bob.id}/kill`, { reason: 'x' });
    expect(notOperator.status).toBe(403);
    expect(notOperator.json.error).toMatch(/killing a session needs membership of one of the groups ops \(admin\.operators\)/);
    expect((await api(env.warden, 'alice', 'POST', '/identities/bob/suspend', { reason: 'x' })).status).toBe(403);
    expect((await api(env.warden, 'olga', 'POST', '/sessions/000000000000/kill', { reason: 'x' })).status).toBe(404);
    expect((await api(env.warden, 'olga', 'POST', `/sessions/${bob.id}/kill`, {})).status).toBe(400);
    await running;
  } finally {
    await c.end();
    await idle.end();
    await overTls.end();
  }
});

it('a statement held for approval is listed as waiting for approval with its request; killing the session cancels the request', async () => {
  const c = await env.connect('bob');
  const errors: Error[] = [];
  c.on('error', (e) => errors.push(e));
  const held = c.query('SELECT * FROM held.t').then(
    () => null,
    (e: Error & { code?: string }) => e,
  );
  const s = await until('bob waiting', async () => (await sessions(env.warden)).find((x) => x.identity === 'bob' && x.state === 'waiting for approval'));
  expect(s.approval_request).toMatch(/^apr_/);
  expect(s.statement).toBe('SELECT * FROM held.t');
  expect((await api(env.warden, 'olga', 'POST', `/sessions/${s.id}/kill`, { reason: 'not today' })).status).toBe(200);
  const err = await held;
  expect(err).toMatchObject({ code: '57P01', message: 'terminated by an operator (olga): not today' });
  const r = await until('request cancelled', async () => {
    const x = await api(env.warden, 'olga', 'GET', `/approvals/${s.approval_request as string}`);
    return x.json.status === 'pending' ? undefined : x.json;
  }, 5_000);
  expect(r.status).toBe('cancelled');
  await c.end().catch(() => undefined);
});

it('sessions kill ends a psql session with 57P01 and the reason; its statement is cancelled upstream; audited', async () => {
  const psql = runPsql({ port: env.warden.port, user: 'alice', password: PASSWORDS.alice, database: 'app', args: ['-v', 'VERBOSITY=verbose', '-c', 'SELECT pg_sleep(60)'] });
  const running = "SELECT count(*)::int AS n FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)'";
  await until('pg_sleep upstream', async () => ((await direct(cluster, running)).rows[0].n === 1 ? true : undefined));
  const s = await until('alice active', async () => (await sessions(env.warden)).find((x) => x.identity === 'alice' && x.state === 'active'));
  const t0 = Date.now();
  const kill = await runCli(['sessions', 'kill', s.id, '--reason', 'runaway query', '--as', 'olga', '--admin-url', adminUrl(env.warden)], cliEnv);
  expect(kill.err).toBe('');
  expect(kill.out).toContain(`session ${s.id} (alice) ended`);
  const r = await psql;
  expect(r.code).not.toBe(0);
  expect(r.err).toMatch(/FATAL:\s+57P01: terminated by an operator \(olga\): runaway query/);
  // The statement is gone from the upstream (a CancelRequest, not left to run for a minute).
  await until('pg_sleep cancelled', async () => ((await direct(cluster, running)).rows[0].n === 0 ? true : undefined), 5_000);
  expect(Date.now() - t0).toBeLessThan(15_000);
  expect((await sessions(env.warden)).some((x) => x.id === s.id)).toBe(false);
  const killed = auditTypes(path.join(dir, 'a.jsonl')).find((x) => x.type === 'session.killed' && x.data.session === s.id);
  expect(killed?.data).toMatchObject({ session: s.id, identity: 'alice', by: 'olga', reason: 'runaway query' });
});

it('identity suspend: refused on a second instance sharing the PostgreSQL state store, its sessions end on both; resume lets it in again', async () => {
  const onB = new pg.Client({ ...env.client('alice'), port: second.port });
  await onB.connect();
  const bErrors: Error[] = [];
  onB.on('error', (e) => bErrors.push(e));
  await onB.query('SELECT 1');
  const psql = runPsql({ port: env.warden.port, user: 'alice', password: PASSWORDS.alice, database: 'app', args: ['-v', 'VERBOSITY=verbose', '-c', 'SELECT pg_sleep(60)'] });
  await until('alice active on A', async () => (await sessions(env.warden)).find((x) => x.identity === 'alice' && x.state === 'active'));

  const sus = await runCli(['identity', 'suspend', 'alice', '--reason', 'leaked password', '--as', 'olga', '--admin-url', adminUrl(env.warden)], cliEnv);
  const t0 = Date.now(); // B polls the store every 2 s
  expect(sus.err).toBe('');
  expect(sus.out).toMatch(/identity alice suspended; 1 session\(s\) ended here/);
  const r = await psql;
  expect(r.err).toMatch(/FATAL:\s+57P01: terminating connection: identity alice was suspended by olga: leaked password/);

  // Instance B: logins refused, and its running session ended, within a few seconds.
  const refused = await until('refused on B', async () => {
    const c = new pg.Client({ ...env.client('alice'), port: second.port });
    try {
      await c.connect();
      await c.end();
      return undefined;
    } catch (err) {
      return err as Error & { code?: string };
    }
  });
  expect(Date.now() - t0).toBeLessThan(6_000);
  expect(refused).toMatchObject({ code: '28000', message: 'identity alice is suspended: leaked password' });
  await until('B session ended', async () => (bErrors.length > 0 || (await onB.query('SELECT 1').then(() => false, () => true)) ? true : undefined), 5_000);
  expect((await sessions(second)).some((x) => x.identity === 'alice')).toBe(false);
  // Others still get in; the refusal is for alice alone.
  const bob = new pg.Client({ ...env.client('bob'), port: second.port });
  await bob.connect();
  await bob.end();
  // A suspended identity may not use the API either (here: read the audit log as an auditor).
  const listed = await api(second, 'alice', 'GET', '/audit/records');
  expect(listed).toMatchObject({ status: 403, json: { error: 'identity alice is suspended: leaked password' } });

  // Resume on B: A lets alice in again within a few seconds.
  const resumed = await api(second, 'olga', 'POST', '/identities/alice/resume');
  expect(resumed).toMatchObject({ status: 200, json: { resumed: 'alice', by: 'olga' } });
  const back = await until('alice back on A', async () => {
    const c = new pg.Client(env.client('alice'));
    try {
      await c.connect();
      return c;
    } catch {
      return undefined;
    }
  });
  expect((await back.query('SELECT 1 AS one')).rows[0].one).toBe(1);
  await back.end();
  expect((await api(second, 'olga', 'POST', '/identities/alice/resume')).status).toBe(404);

  // Records nobody waits for are flushed shortly after (the jsonl store's lazy flush): wait for them.
  const recorded = (file: string, type: string): Promise<Record<string, unknown>> =>
    until(`${type} in ${file}`, async () => auditTypes(path.join(dir, file)).find((x) => x.type === type)?.data);
  expect(await recorded('a.jsonl', 'identity.suspended')).toMatchObject({ identity: 'alice', by: 'olga', reason: 'leaked password' });
  expect(await recorded('b.jsonl', 'identity.resumed')).toMatchObject({ identity: 'alice', by: 'olga' });
  const b = auditTypes(path.join(dir, 'b.jsonl'));
  expect(b.find((x) => x.type === 'login.failed' && x.data.reason === 'identity suspended')?.data).toMatchObject({ identity: 'alice' });
});
