/**
 * Approvals over the wire: held statements released by an approval (the real
 * result comes back), denied, expired, cancelled by the client (nothing runs);
 * reject mode with the re-run; self-approval refused; a quorum of two; a
 * just-in-time grant; the webhook; the CLI; and two Warden instances sharing a
 * PostgreSQL state store, the approval given on the other one.
 */
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseYaml, PASSWORDS, startCluster, direct, type TestEnv, startEnv } from '../helpers/warden-env.js';
import { runCli } from '../helpers/warden-process.js';
import type { PgCluster } from '../../src/embedded/pg-cluster.js';
import { parseConfig } from '../../src/config/load.js';
import { startWarden, type Warden } from '../../src/app.js';
import { silentLogger } from '../../src/log/logger.js';

const DBA = { dana: 'dana-pw-4', erin: 'erin-pw-5' };
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-approvals-'));

function yaml(pgPort: number, o: { mode?: 'hold' | 'reject'; state: string; hook?: number; adminPort?: number; listenPort?: number }): string {
  return baseYaml(
    pgPort,
    `  - { name: dana, kind: human, groups: [dba], password: ${DBA.dana} }
  - { name: erin, kind: human, groups: [dba], password: ${DBA.erin} }
admin: { host: 127.0.0.1, port: ${o.adminPort ?? 0} }
state: { store: "${o.state}" }
approvals:
  mode: ${o.mode ?? 'hold'}
  timeout: 4s
${o.hook ? `  webhook: http://127.0.0.1:${o.hook}/hook\n` : ''}rules:
  - name: billing-writes-need-approval
    match: { statement: [write], tables: ["billing.*"] }
    action: approve
    reason: Billing changes need a DBA
    approvers: { groups: [dba], count: 1 }
  - name: vault-needs-two
    match: { statement: [write], tables: ["vault.*"] }
    action: approve
    approvers: { groups: [dba], count: 2 }
`,
  ).replace(/listen: \{ host: 127\.0\.0\.1, port: 0 \}/, `listen: { host: 127.0.0.1, port: ${o.listenPort ?? 0} }`);
}

const basic = (user: string, pw: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${pw}`).toString('base64')}`, 'content-type': 'application/json' });

async function pending(adminPort: number, timeoutMs = 3_000): Promise<{ id: string; identity: string; sql: string; rules: { rule: string }[] }> {
  const t0 = Date.now();
  for (;;) {
    const res = await fetch(`http://127.0.0.1:${adminPort}/api/v1/approvals?status=pending`, { headers: basic('dana', DBA.dana) });
    const body = (await res.json()) as { requests: { id: string; identity: string; sql: string; rules: { rule: string }[] }[] };
    if (body.requests.length > 0) return body.requests[0];
    if (Date.now() - t0 > timeoutMs) throw new Error('no pending approval request');
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function decide(adminPort: number, id: string, who: keyof typeof DBA, decision: 'approve' | 'deny', reason: string, extra: Record<string, unknown> = {}): Promise<Response> {
  return fetch(`http://127.0.0.1:${adminPort}/api/v1/approvals/${id}/${decision}`, { method: 'POST', headers: basic(who, DBA[who]), body: JSON.stringify({ reason, ...extra }) });
}

async function status(cluster: PgCluster, id: number): Promise<string> {
  return (await direct(cluster, `SELECT status FROM billing.invoices WHERE id = ${id}`)).rows[0].status as string;
}

describe('approvals (hold mode)', () => {
  let env: TestEnv;
  let hookServer: http.Server;
  const hooks: unknown[] = [];

  beforeAll(async () => {
    hookServer = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        hooks.push(JSON.parse(body));
        res.end('ok');
      });
    });
    await new Promise<void>((r) => hookServer.listen(0, '127.0.0.1', () => r()));
    const hookPort = (hookServer.address() as net.AddressInfo).port;
    const cluster = await startCluster();
    for (const s of [
      'CREATE SCHEMA billing',
      'CREATE TABLE billing.invoices (id int PRIMARY KEY, status text)',
      "INSERT INTO billing.invoices SELECT g, 'open' FROM generate_series(1, 20) g",
      'CREATE SCHEMA vault',
      'CREATE TABLE vault.secrets (id int, v text)',
      'GRANT ALL ON SCHEMA billing, vault TO warden_svc',
      'GRANT ALL ON ALL TABLES IN SCHEMA billing, vault TO warden_svc',
    ])
      await direct(cluster, s);
    env = await startEnv({ cluster, yaml: (p) => yaml(p, { state: `sqlite:${path.join(dir, 'state.db')}`, hook: hookPort }) });
  });
  afterAll(async () => {
    const cluster = env?.cluster;
    await env?.stop();
    await cluster?.stop();
    await new Promise((r) => hookServer?.close(r));
  });

  it('hold → approve: the very statement runs on the same session and the client gets its real result', async () => {
    const c = await env.connect('alice');
    try {
      await c.query('BEGIN');
      const held = c.query("UPDATE billing.invoices SET status = 'paid' WHERE id = 1");
      const req = await pending(env.warden.admin!.port);
      expect(req).toMatchObject({ identity: 'alice', rules: [{ rule: 'billing-writes-need-approval' }] });
      expect(req.sql).toContain("UPDATE billing.invoices SET status = 'paid'");
      expect(await status(env.cluster, 1)).toBe('open'); // nothing ran yet
      // Someone who is neither the requester, an approver nor an auditor does not see it.
      const nosy = await fetch(`http://127.0.0.1:${env.warden.admin!.port}/api/v1/approvals?status=pending`, { headers: basic('bob', PASSWORDS.bob) });
      expect(((await nosy.json()) as { requests: unknown[] }).requests).toEqual([]);
      expect((await fetch(`http://127.0.0.1:${env.warden.admin!.port}/api/v1/approvals/${req.id}`, { headers: basic('bob', PASSWORDS.bob) })).status).toBe(404);
      // Other sessions are not blocked meanwhile.
      const other = await env.connect('bob');
      expect((await other.query('SELECT count(*)::int AS n FROM billing.invoices')).rows[0].n).toBe(20);
      await other.end();
      const res = await decide(env.warden.admin!.port, req.id, 'dana', 'approve', 'month-end close');
      expect(res.status).toBe(200);
      const r = await held;
      expect(r.rowCount).toBe(1);
      await c.query('COMMIT'); // the transaction survived the wait
      expect(await status(env.cluster, 1)).toBe('paid');
    } finally {
      await c.end();
    }
    // The webhook got the documented, Slack-compatible JSON.
    const hook = hooks.find((h) => (h as { request: { id: string } }).request.id !== undefined) as { text: string; request: { id: string; identity: string; rules: unknown[] }; links: { show?: string } };
    expect(hook.text).toMatch(/alice asks to run a statement on app/);
    expect(hook.request.identity).toBe('alice');
  });

  it('hold → deny: 42501 naming the approver and the reason; nothing runs', async () => {
    const c = await env.connect('alice');
    try {
      const held = c.query("UPDATE billing.invoices SET status = 'void' WHERE id = 2").catch((e: pg.DatabaseError) => e);
      const req = await pending(env.warden.admin!.port);
      await decide(env.warden.admin!.port, req.id, 'erin', 'deny', 'not during the freeze');
      const err = (await held) as pg.DatabaseError;
      expect(err.code).toBe('42501');
      expect(err.message).toMatch(new RegExp(`approval request ${req.id} .* was denied by erin: not during the freeze`));
      expect(await status(env.cluster, 2)).toBe('open');
      expect((await c.query('SELECT 1 AS one')).rows[0].one).toBe(1); // the session goes on
    } finally {
      await c.end();
    }
  });

  it('hold → timeout: expired, nothing runs', async () => {
    const c = await env.connect('alice');
    try {
      const t0 = Date.now();
      const err = (await c.query("UPDATE billing.invoices SET status = 'late' WHERE id = 3").catch((e: pg.DatabaseError) => e)) as pg.DatabaseError;
      expect(err.code).toBe('42501');
      expect(err.message).toMatch(/expired after 4s without enough approvals/);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(3_500);
      expect(await status(env.cluster, 3)).toBe('open');
    } finally {
      await c.end();
    }
  });

  it('hold → the client cancels: nothing runs, the request is cancelled', async () => {
    const c = await env.connect('alice');
    try {
      const held = c.query("UPDATE billing.invoices SET status = 'gone' WHERE id = 4").catch((e: pg.DatabaseError) => e);
      const req = await pending(env.warden.admin!.port);
      // A CancelRequest with the key Warden gave this client.
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
      const err = (await held) as pg.DatabaseError;
      expect(err.code).toBe('57014');
      expect(err.message).toMatch(/cancel/);
      const after = (await (await fetch(`http://127.0.0.1:${env.warden.admin!.port}/api/v1/approvals/${req.id}`, { headers: basic('dana', DBA.dana) })).json()) as { status: string };
      expect(after.status).toBe('cancelled');
      // Approving it now is refused, and nothing ever ran.
      expect((await decide(env.warden.admin!.port, req.id, 'dana', 'approve', 'too late')).status).toBe(409);
      expect(await status(env.cluster, 4)).toBe('open');
    } finally {
      await c.end();
    }
  });

  it('nobody approves their own request; approvers must be in the rule groups; a quorum of two', async () => {
    const admin = env.warden.admin!.port;
    const d = new pg.Client({ ...env.client('alice'), user: 'dana', password: DBA.dana });
    await d.connect();
    try {
      const held = d.query("INSERT INTO vault.secrets VALUES (1, 'x')");
      // Handled from the start: on a slow machine it may expire before the assertion below is reached.
      held.catch(() => undefined);
      const req = await pending(admin);
      const self = await decide(admin, req.id, 'dana', 'approve', 'mine');
      expect(self.status).toBe(403);
      expect(((await self.json()) as { error: string }).error).toMatch(/cannot decide their own request/);
      const alice = await fetch(`http://127.0.0.1:${admin}/api/v1/approvals/${req.id}/approve`, { method: 'POST', headers: basic('alice', PASSWORDS.alice), body: JSON.stringify({ reason: 'sure' }) });
      expect(alice.status).toBe(403);
      const one = await decide(admin, req.id, 'erin', 'approve', 'ok by me');
      expect(((await one.json()) as { status: string }).status).toBe('pending'); // 1 of 2
      const again = await decide(admin, req.id, 'erin', 'approve', 'twice');
      expect(again.status).toBe(409);
      // dana asked, so only erin can approve: the quorum of two is never met.
      const cfgFile = path.join(dir, 'cli.yaml');
      fs.writeFileSync(cfgFile, yaml(env.cluster.port, { state: 'sqlite::memory:', adminPort: admin }));
      const list = await runCli(['approvals', 'list', '--config', cfgFile, '--as', 'erin', '--json'], { WARDEN_PASSWORD: DBA.erin });
      expect(list.code, list.err).toBe(0);
      expect((JSON.parse(list.out) as { id: string }[]).map((r) => r.id)).toContain(req.id);
      const noPw = await runCli(['approvals', 'list', '--config', cfgFile, '--as', 'erin'], { WARDEN_PASSWORD: '' });
      expect(noPw.code).toBe(2);
      expect(noPw.err).toMatch(/WARDEN_PASSWORD/);
      const wrongPw = await runCli(['approvals', 'list', '--config', cfgFile, '--as', 'erin'], { WARDEN_PASSWORD: 'nope' });
      expect(wrongPw.code).toBe(1);
      expect(wrongPw.err).toMatch(/password authentication failed.*HTTP 401/);
      await expect(held).rejects.toMatchObject({ code: '42501' }); // expires
    } finally {
      await d.end();
    }
  });

  it('a quorum of two distinct approvers releases the statement (alice requests; dana and erin approve, one via the CLI)', async () => {
    const admin = env.warden.admin!.port;
    const c = await env.connect('alice');
    try {
      const held = c.query("INSERT INTO vault.secrets VALUES (2, 'y')");
      held.catch(() => undefined); // asserted below; handled now so an early expiry is a failed assertion, not an unhandled rejection
      const req = await pending(admin);
      expect(((await (await decide(admin, req.id, 'dana', 'approve', 'first')).json()) as { status: string }).status).toBe('pending');
      const cfgFile = path.join(dir, 'cli2.yaml');
      fs.writeFileSync(cfgFile, yaml(env.cluster.port, { state: 'sqlite::memory:', adminPort: admin }));
      // One CLI start inside the approval's 4 s (a CLI start takes seconds on a loaded machine); `show` after it.
      const ok = await runCli(['approvals', 'approve', req.id, '--config', cfgFile, '--as', 'erin', '--reason', 'second'], { WARDEN_PASSWORD: DBA.erin });
      expect(ok.code, ok.err).toBe(0);
      expect(ok.out).toMatch(/approved/);
      expect((await held).rowCount).toBe(1);
      const show = await runCli(['approvals', 'show', req.id, '--config', cfgFile, '--as', 'erin'], { WARDEN_PASSWORD: DBA.erin });
      expect(show.out).toMatch(/vault-needs-two \(2 of dba\)/);
      expect(show.out).toMatch(/approved by dana/);
      expect((await direct(env.cluster, 'SELECT count(*)::int AS n FROM vault.secrets WHERE id = 2')).rows[0].n).toBe(1);
    } finally {
      await c.end();
    }
  });

  it('a just-in-time grant lets the next statements through, then expires', async () => {
    const admin = env.warden.admin!.port;
    const c = await env.connect('alice');
    try {
      const held = c.query("UPDATE billing.invoices SET status = 'g1' WHERE id = 5");
      const req = await pending(admin);
      const res = await decide(admin, req.id, 'dana', 'approve', 'batch of fixes', { grant_minutes: 0.05 }); // 3 s
      expect(res.status).toBe(200);
      expect((await held).rowCount).toBe(1);
      // Within the grant: no request, runs at once.
      const t0 = Date.now();
      expect((await c.query("UPDATE billing.invoices SET status = 'g2' WHERE id = 6")).rowCount).toBe(1);
      expect(Date.now() - t0).toBeLessThan(2_000);
      await new Promise((r) => setTimeout(r, 3_200));
      const after = c.query("UPDATE billing.invoices SET status = 'g3' WHERE id = 7").catch((e: pg.DatabaseError) => e);
      const next = await pending(admin);
      expect(next.id).not.toBe(req.id);
      await decide(admin, next.id, 'dana', 'deny', 'grant is over');
      expect(((await after) as pg.DatabaseError).code).toBe('42501');
      expect(await status(env.cluster, 7)).toBe('open');
    } finally {
      await c.end();
    }
  }, 20_000);
});

describe('approvals (reject mode) and two instances sharing a PostgreSQL state store', () => {
  let cluster: PgCluster;
  const wardens: Warden[] = [];
  beforeAll(async () => {
    cluster = await startCluster();
    for (const s of [
      'CREATE SCHEMA billing',
      'CREATE TABLE billing.invoices (id int PRIMARY KEY, status text)',
      "INSERT INTO billing.invoices SELECT g, 'open' FROM generate_series(1, 5) g",
      'GRANT ALL ON SCHEMA billing TO warden_svc',
      'GRANT ALL ON ALL TABLES IN SCHEMA billing TO warden_svc',
    ])
      await direct(cluster, s);
  });
  afterAll(async () => {
    for (const w of wardens) await w.close();
    await cluster?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('reject mode: fails at once with the request id; once approved the identical statement runs once', async () => {
    const config = parseConfig(yaml(cluster.port, { state: `sqlite:${path.join(dir, 'reject-state.db')}`, mode: 'reject' }), path.join(dir, 'r.yaml'), {});
    const w = await startWarden({ config, log: silentLogger() });
    wardens.push(w);
    const c = new pg.Client({ host: '127.0.0.1', port: w.port, user: 'alice', password: PASSWORDS.alice, database: 'app' });
    await c.connect();
    try {
      const sql = "UPDATE billing.invoices SET status = 'paid' WHERE id = 1";
      const e1 = (await c.query(sql).catch((e: pg.DatabaseError) => e)) as pg.DatabaseError;
      expect(e1.code).toBe('42501');
      const id = /request (apr_\w+)/.exec(e1.message)?.[1];
      expect(id).toBeDefined();
      expect(e1.hint).toMatch(/warden approvals approve apr_/);
      expect((await decide(w.admin!.port, id!, 'dana', 'approve', 'ok')).status).toBe(200);
      // A different statement is not covered.
      await expect(c.query("UPDATE billing.invoices SET status = 'paid' WHERE id = 2")).rejects.toMatchObject({ code: '42501' });
      expect((await c.query(sql)).rowCount).toBe(1);
      // Only once.
      await expect(c.query(sql)).rejects.toMatchObject({ code: '42501' });
      expect((await direct(cluster, 'SELECT status FROM billing.invoices WHERE id = 1')).rows[0].status).toBe('paid');
    } finally {
      await c.end();
    }
  });

  it('two Warden instances share a PostgreSQL state store: approved on B, released on A', async () => {
    await cluster.query('CREATE DATABASE warden_state');
    const state = cluster.url('warden_state');
    const a = await startWarden({ config: parseConfig(yaml(cluster.port, { state }), path.join(dir, 'a.yaml'), {}), log: silentLogger() });
    wardens.push(a);
    const b = await startWarden({ config: parseConfig(yaml(cluster.port, { state }), path.join(dir, 'b.yaml'), {}), log: silentLogger() });
    wardens.push(b);
    const c = new pg.Client({ host: '127.0.0.1', port: a.port, user: 'alice', password: PASSWORDS.alice, database: 'app' });
    await c.connect();
    try {
      const held = c.query("UPDATE billing.invoices SET status = 'via-b' WHERE id = 3");
      const req = await pending(b.admin!.port); // B sees A's request
      expect((await decide(b.admin!.port, req.id, 'erin', 'approve', 'from the other instance')).status).toBe(200);
      expect((await held).rowCount).toBe(1);
      expect((await direct(cluster, 'SELECT status FROM billing.invoices WHERE id = 3')).rows[0].status).toBe('via-b');
    } finally {
      await c.end();
    }
  });
});
