/**
 * Approvers see exactly what runs (issue 15): an UPDATE padded with a comment longer than
 * 16 KiB and ending in `OR true` used to be shown as "... WHERE id = 1" (cut at 16,384
 * characters without a marker) and, approved, updated every row. Now the API, `warden
 * approvals show`/`list`, the webhook and the audit record carry the whole statement (and
 * whole parameters), with its length and SHA-256; lists abbreviate visibly. Also: a
 * maintenance command (now class `maintenance`, `write`) on a protected table is held.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseYaml, direct, startCluster, startEnv, type TestEnv } from '../helpers/warden-env.js';
import { runCli } from '../helpers/warden-process.js';

const DANA = 'dana-pw-4';
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-approval-text-'));
const auditFile = path.join(dir, 'audit.jsonl');

const PAD = `/* ${'padding so that the approver only sees the start. '.repeat(400)} */`; // ~20,000 characters
const SNEAKY = `UPDATE billing.invoices SET status = 'paid' WHERE id = 1 ${PAD} OR true`;

function yaml(pgPort: number, adminPort: number, hook: number): string {
  return baseYaml(
    pgPort,
    `  - { name: dana, kind: human, groups: [dba], password: ${DANA} }
admin: { host: 127.0.0.1, port: ${adminPort} }
state: { store: "sqlite:${path.join(dir, 'state.db')}" }
audit: { store: "jsonl:${auditFile}", durability: os }
approvals:
  mode: hold
  timeout: 20s
  text_cap: 30000
  webhook: http://127.0.0.1:${hook}/hook
rules:
  - name: billing-writes-need-approval
    match: { statement: [write], tables: ["billing.*"] }
    action: approve
    approvers: { groups: [dba], count: 1 }
`,
  );
}

const auth = { authorization: `Basic ${Buffer.from(`dana:${DANA}`).toString('base64')}`, 'content-type': 'application/json' };

interface View {
  id: string;
  sql: string;
  sqlLength: number;
  sqlSha256: string;
  sqlTruncated: boolean;
  params?: (string | null)[];
}

describe('approvers see the whole statement', () => {
  let env: TestEnv;
  let hookServer: http.Server;
  const hooks: { text: string; request: Record<string, unknown> }[] = [];
  let admin = 0;
  let cliConfig = '';

  beforeAll(async () => {
    hookServer = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        hooks.push(JSON.parse(body) as (typeof hooks)[number]);
        res.end('ok');
      });
    });
    await new Promise<void>((r) => hookServer.listen(0, '127.0.0.1', () => r()));
    const hookPort = (hookServer.address() as net.AddressInfo).port;
    const cluster = await startCluster();
    for (const s of [
      'CREATE SCHEMA billing',
      'CREATE TABLE billing.invoices (id int PRIMARY KEY, status text)',
      "INSERT INTO billing.invoices SELECT g, 'open' FROM generate_series(1, 10) g",
      'GRANT ALL ON SCHEMA billing TO warden_svc',
      'GRANT ALL ON ALL TABLES IN SCHEMA billing TO warden_svc',
    ])
      await direct(cluster, s);
    env = await startEnv({ cluster, yaml: (p) => yaml(p, 0, hookPort) });
    admin = env.warden.admin!.port;
    cliConfig = path.join(dir, 'cli.yaml');
    fs.writeFileSync(cliConfig, yaml(cluster.port, admin, hookPort).replace(/state: .*\n/, 'state: { store: "sqlite::memory:" }\n').replace(/audit: .*\n/, ''));
  });
  afterAll(async () => {
    const cluster = env?.cluster;
    await env?.stop();
    await cluster?.stop();
    await new Promise((r) => hookServer?.close(r));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function pendingId(): Promise<string> {
    const t0 = Date.now();
    for (;;) {
      const body = (await (await fetch(`http://127.0.0.1:${admin}/api/v1/approvals?status=pending`, { headers: auth })).json()) as { requests: View[] };
      if (body.requests.length > 0) return body.requests[0]!.id;
      if (Date.now() - t0 > 5_000) throw new Error('no pending approval request');
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  const statuses = async (): Promise<string> =>
    (await direct(env.cluster, "SELECT string_agg(status, ',' ORDER BY id) AS s FROM billing.invoices")).rows[0].s as string;

  it('a >16 KiB UPDATE ending in OR true: the API, the CLI, the webhook and the audit show the OR true', async () => {
    expect(SNEAKY.length).toBeGreaterThan(16_384 + 1000);
    const before = await statuses();
    const c = await env.connect('alice');
    try {
      const held = c.query(SNEAKY).catch((e: pg.DatabaseError) => e);
      const id = await pendingId();

      // The API: the whole text, its length and hash.
      const list = (await (await fetch(`http://127.0.0.1:${admin}/api/v1/approvals?status=pending`, { headers: auth })).json()) as { requests: View[] };
      const one = (await (await fetch(`http://127.0.0.1:${admin}/api/v1/approvals/${id}`, { headers: auth })).json()) as View;
      for (const v of [list.requests[0]!, one]) {
        expect(v.sql).toBe(SNEAKY);
        expect(v.sql.endsWith('OR true')).toBe(true);
        expect(v.sqlLength).toBe(SNEAKY.length);
        expect(v.sqlTruncated).toBe(false);
        expect(v.sqlSha256).toBe(crypto.createHash('sha256').update(SNEAKY).digest('hex'));
      }
      const raw = await fetch(`http://127.0.0.1:${admin}/api/v1/approvals/${id}/sql`, { headers: auth });
      expect(raw.headers.get('x-warden-sql-length')).toBe(String(SNEAKY.length));
      expect(await raw.text()).toBe(SNEAKY);

      // The CLI: show prints the statement line by line with its length; list abbreviates visibly.
      const show = await runCli(['approvals', 'show', id, '--config', cliConfig, '--as', 'dana'], { WARDEN_PASSWORD: DANA });
      expect(show.code, show.err).toBe(0);
      expect(show.out).toContain('*/ OR true');
      expect(show.out).toContain(`${SNEAKY.length.toLocaleString('en-US')} characters, sha256 ${one.sqlSha256}`);
      const ls = await runCli(['approvals', 'list', '--config', cliConfig, '--as', 'dana'], { WARDEN_PASSWORD: DANA });
      expect(ls.code, ls.err).toBe(0);
      expect(ls.out).toContain(`… [${SNEAKY.length.toLocaleString('en-US')} characters: approvals show ${id}]`);

      // The webhook: the request carries the whole text; the chat text says it is cut, and how long it is.
      const t0 = Date.now();
      while (!hooks.some((h) => h.request.id === id) && Date.now() - t0 < 5_000) await new Promise((r) => setTimeout(r, 50));
      const hook = hooks.find((h) => h.request.id === id)!;
      expect(hook.request.sql).toBe(SNEAKY);
      expect(hook.request.sql_length).toBe(SNEAKY.length);
      expect(hook.text).toContain(`of ${SNEAKY.length.toLocaleString('en-US')} characters; sha256 ${one.sqlSha256}`);

      // The audit record of the request.
      const records = fs
        .readFileSync(auditFile, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { type: string; data: Record<string, unknown> });
      const requested = records.find((r) => r.type === 'approval.requested' && r.data.request === id)!;
      expect(requested.data.sql).toBe(SNEAKY);
      expect(requested.data.sql_sha256).toBe(one.sqlSha256);

      // Seeing the OR true, the approver denies: nothing changes.
      const res = await fetch(`http://127.0.0.1:${admin}/api/v1/approvals/${id}/deny`, { method: 'POST', headers: auth, body: JSON.stringify({ reason: 'OR true updates every row' }) });
      expect(res.status).toBe(200);
      expect(((await held) as pg.DatabaseError).code).toBe('42501');
    } finally {
      await c.end();
    }
    expect(await statuses()).toBe(before);
  }, 60_000);

  it('above approvals.text_cap: a visible marker with the length and hash; --full and ?full=true give it all', async () => {
    const big = `UPDATE billing.invoices SET status = 'paid' WHERE id = 1 /* ${'z'.repeat(40_000)} */ OR true`;
    const hash = crypto.createHash('sha256').update(big).digest('hex');
    const c = await env.connect('alice');
    try {
      const held = c.query(big).catch((e: pg.DatabaseError) => e);
      const id = await pendingId();
      const cut = (await (await fetch(`http://127.0.0.1:${admin}/api/v1/approvals/${id}`, { headers: auth })).json()) as View;
      expect(cut).toMatchObject({ sqlLength: big.length, sqlSha256: hash, sqlTruncated: true });
      expect(cut.sql).not.toContain('OR true');
      expect(cut.sql).toContain(`…[cut by Warden: showing 30,000 of ${big.length.toLocaleString('en-US')} characters; sha256 of the full text ${hash}`);
      const full = (await (await fetch(`http://127.0.0.1:${admin}/api/v1/approvals/${id}?full=true`, { headers: auth })).json()) as View;
      expect(full.sql).toBe(big);
      const show = await runCli(['approvals', 'show', id, '--config', cliConfig, '--as', 'dana'], { WARDEN_PASSWORD: DANA });
      expect(show.out).toContain(`NOTE: only the first part of the statement is shown (${big.length.toLocaleString('en-US')} characters in all): warden approvals show ${id} --full`);
      expect(show.out).not.toContain('OR true');
      const showFull = await runCli(['approvals', 'show', id, '--full', '--config', cliConfig, '--as', 'dana'], { WARDEN_PASSWORD: DANA });
      expect(showFull.out).toContain('*/ OR true');
      expect(showFull.out).not.toContain('NOTE:');
      // The audit record carries the marker, the length and the hash.
      const requested = fs
        .readFileSync(auditFile, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { type: string; data: Record<string, unknown> })
        .find((r) => r.type === 'approval.requested' && r.data.request === id)!;
      expect(requested.data).toMatchObject({ sql_length: big.length, sql_sha256: hash, sql_truncated: true });
      await fetch(`http://127.0.0.1:${admin}/api/v1/approvals/${id}/deny`, { method: 'POST', headers: auth, body: JSON.stringify({ reason: 'no' }) });
      expect(((await held) as pg.DatabaseError).code).toBe('42501');
    } finally {
      await c.end();
    }
    expect(await statuses()).not.toContain('paid');
  }, 60_000);

  it('parameters longer than 256 characters are shown whole (extended protocol)', async () => {
    const value = `${'x'.repeat(20_000)}-and-the-end`;
    const c = await env.connect('alice');
    try {
      const held = c.query('UPDATE billing.invoices SET status = $1 WHERE id = $2', [value, 2]).catch((e: pg.DatabaseError) => e);
      const id = await pendingId();
      const one = (await (await fetch(`http://127.0.0.1:${admin}/api/v1/approvals/${id}`, { headers: auth })).json()) as View;
      expect(one.params).toEqual([value, '2']);
      const show = await runCli(['approvals', 'show', id, '--config', cliConfig, '--as', 'dana'], { WARDEN_PASSWORD: DANA });
      expect(show.out).toContain('-and-the-end"');
      await fetch(`http://127.0.0.1:${admin}/api/v1/approvals/${id}/deny`, { method: 'POST', headers: auth, body: JSON.stringify({ reason: 'no' }) });
      expect(((await held) as pg.DatabaseError).code).toBe('42501');
    } finally {
      await c.end();
    }
    expect(await statuses()).not.toContain('x');
  }, 60_000);

  it('maintenance on an approval-protected table is held: VACUUM FULL waits, and runs only once approved', async () => {
    const node = async (): Promise<number> => (await direct(env.cluster, "SELECT pg_relation_filenode('billing.invoices')::int AS n")).rows[0].n as number;
    const before = await node();
    const c = await env.connect('alice');
    try {
      const held = c.query('VACUUM FULL billing.invoices');
      const id = await pendingId();
      const one = (await (await fetch(`http://127.0.0.1:${admin}/api/v1/approvals/${id}`, { headers: auth })).json()) as View & { classes: string[]; tables: string[] };
      expect(one.classes).toEqual(expect.arrayContaining(['maintenance', 'write']));
      expect(one.tables).toEqual(['billing.invoices']);
      expect(await node()).toBe(before); // nothing ran yet
      const res = await fetch(`http://127.0.0.1:${admin}/api/v1/approvals/${id}/approve`, { method: 'POST', headers: auth, body: JSON.stringify({ reason: 'maintenance window' }) });
      expect(res.status).toBe(200);
      await held;
      expect(await node()).not.toBe(before); // rewritten once approved
    } finally {
      await c.end();
    }
  }, 60_000);

  it('a line break cannot hide the rest of a statement behind a -- comment in show', async () => {
    const sql = "UPDATE billing.invoices SET status = 'void' WHERE id = 3 -- fix one row\nOR id > 0";
    const c = await env.connect('alice');
    try {
      const held = c.query(sql).catch((e: pg.DatabaseError) => e);
      const id = await pendingId();
      const show = await runCli(['approvals', 'show', id, '--config', cliConfig, '--as', 'dana'], { WARDEN_PASSWORD: DANA });
      // Each line on its own line, as PostgreSQL reads it.
      expect(show.out).toMatch(/\| UPDATE billing\.invoices SET status = 'void' WHERE id = 3 -- fix one row\n\s+\| OR id > 0/);
      const ls = await runCli(['approvals', 'list', '--config', cliConfig, '--as', 'dana'], { WARDEN_PASSWORD: DANA });
      expect(ls.out).toContain('⏎ OR id');
      await fetch(`http://127.0.0.1:${admin}/api/v1/approvals/${id}/deny`, { method: 'POST', headers: auth, body: JSON.stringify({ reason: 'no' }) });
      expect(((await held) as pg.DatabaseError).code).toBe('42501');
    } finally {
      await c.end();
    }
  }, 60_000);
});
