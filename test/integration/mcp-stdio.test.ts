/**
 * `warden mcp` over stdio, driven by the MCP SDK's own client (Client +
 * StdioClientTransport spawning `node bin/warden.js mcp`; needs `npm run build`).
 * The MCP server is a client of Warden's listener as the token's identity, so the
 * wire's policy, masking, limits, approvals and audit apply: masked results, a
 * denied DROP (also hidden in a multi-statement string), a held statement returned
 * as pending at once, approved through the CLI and run exactly once, audit records
 * with the agent, its on-behalf-of user and the intent, and a max_rows limit
 * halting an over-large result as a tool error.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { direct, startCluster, startEnv, type TestEnv } from '../helpers/warden-env.js';
import { auditRecords, call, DANA, mcpYaml, seed } from '../helpers/mcp.js';
import { BIN, runCli } from '../helpers/warden-process.js';
import { openStateStore } from '../../src/store/open.js';
import { issueToken } from '../../src/governance/tokens.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-mcp-stdio-'));
const auditFile = path.join(dir, 'audit.jsonl');
const configFile = path.join(dir, 'warden.yaml');
let env: TestEnv;
let mcp: Client;

let agentToken: string;

beforeAll(async () => {
  const cluster = await startCluster();
  const yaml = (p: number): string => mcpYaml(p, dir, auditFile);
  env = await startEnv({ cluster, yaml });
  await seed(env);
  fs.writeFileSync(configFile, yaml(cluster.port));
  const state = await openStateStore({ kind: 'sqlite', location: path.join(dir, 'state.db') });
  ({ token: agentToken } = await issueToken(state, env.config.identities.find((i) => i.name === 'agent')!, { ttlMs: 600_000, onBehalfOf: 'alice' }));
  await state.close();
  mcp = new Client({ name: 'test-agent', version: '1.0.0' });
  await mcp.connect(
    new StdioClientTransport({
      command: process.execPath,
      args: [BIN, 'mcp', '--config', configFile, '--port', String(env.warden.port)],
      env: { ...(process.env as Record<string, string>), WARDEN_TOKEN: agentToken, WARDEN_IDENTITY: 'agent' },
      stderr: 'pipe',
    }),
  );
}, 60_000);

afterAll(async () => {
  await mcp?.close();
  const cluster = env?.cluster;
  await env?.stop();
  await cluster?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('warden mcp over stdio', () => {
  it('lists its tools, databases and tables', async () => {
    const tools = (await mcp.listTools()).tools.map((t) => t.name).sort();
    expect(tools).toEqual(['approval_status', 'describe_table', 'explain_policy', 'list_databases', 'list_tables', 'query']);
    const dbs = await call(mcp, 'list_databases');
    expect(dbs.json).toMatchObject({ identity: 'agent', on_behalf_of: 'alice', databases: [{ name: 'app', environment: 'test' }] });
    const tables = await call(mcp, 'list_tables');
    expect(tables.isError, tables.text).toBe(false);
    expect((tables.json!.tables as { name: string }[]).map((t) => t.name)).toEqual(expect.arrayContaining(['accounts', 'customers', 'events']));
  });

  it('the schema as resources: the tables of a database and each table, with sensitivity and masking for this identity', async () => {
    const uris = (await mcp.listResources()).resources.map((r) => r.uri);
    expect(uris).toEqual(expect.arrayContaining(['warden://app/tables', 'warden://app/tables/public.customers', 'warden://app/tables/public.events']));
    const tables = JSON.parse(((await mcp.readResource({ uri: 'warden://app/tables' })).contents[0] as { text: string }).text) as { tables: { name: string }[] };
    expect(tables.tables.map((t) => t.name)).toEqual(expect.arrayContaining(['accounts', 'customers', 'events']));
    const c = JSON.parse(((await mcp.readResource({ uri: 'warden://app/tables/public.customers' })).contents[0] as { text: string }).text) as { columns: unknown[] };
    expect(c.columns).toContainEqual({ name: 'email', type: 'text', nullable: false, sensitive: 'email', masked: true });
    await expect(mcp.readResource({ uri: 'warden://nope/tables' })).rejects.toThrow(/no database named "nope"/);
  });

  it('query returns column types and masked values; describe_table says which columns are sensitive and masked', async () => {
    const r = await call(mcp, 'query', { sql: 'SELECT id, full_name, email FROM customers ORDER BY id' });
    expect(r.isError, r.text).toBe(false);
    expect(r.json).toMatchObject({ status: 'ok', command: 'SELECT', rowCount: 2, truncated: false });
    expect(r.json!.columns).toEqual([
      { name: 'id', type: 'integer' },
      { name: 'full_name', type: 'text' },
      { name: 'email', type: 'text' },
    ]);
    const rows = r.json!.rows as string[][];
    expect(rows.map((x) => x.slice(0, 2))).toEqual([
      ['1', 'Ada Lovelace'],
      ['2', 'Alan Turing'],
    ]);
    expect(r.text).not.toContain('ada@example.com');
    expect(r.text).not.toContain('alan@example.org');
    expect(rows[0]![2]).not.toBe('ada@example.com');

    const d = await call(mcp, 'describe_table', { table: 'public.customers' });
    expect(d.isError, d.text).toBe(false);
    expect(d.json!.columns).toEqual([
      { name: 'id', type: 'integer', nullable: false, sensitive: null, masked: false },
      { name: 'full_name', type: 'text', nullable: true, sensitive: null, masked: false },
      { name: 'email', type: 'text', nullable: false, sensitive: 'email', masked: true },
    ]);
  });

  it('a row cap truncates client-side; params use the extended protocol', async () => {
    const r = await call(mcp, 'query', { sql: 'SELECT id FROM events WHERE id <= $1 ORDER BY id', params: [50], max_rows: 10 });
    expect(r.isError, r.text).toBe(false);
    expect(r.json).toMatchObject({ rowCount: 50, truncated: true });
    expect((r.json!.rows as unknown[]).length).toBe(10);
  });

  it('a DROP is denied by the rule, also hidden after a COMMIT in a multi-statement string, and nothing of it ran', async () => {
    for (const sql of ['DROP TABLE accounts', 'SELECT 1; COMMIT; DROP TABLE accounts']) {
      const r = await call(mcp, 'query', { sql });
      expect(r.isError, r.text).toBe(true);
      expect(r.text).toMatch(/no-destructive-ddl/);
      expect(r.json).toMatchObject({ error: { code: '42501' } });
      expect(r.text).not.toMatch(/\n\s+at /); // no stack trace
    }
    expect((await direct(env.cluster, "SELECT to_regclass('public.accounts') IS NOT NULL AS there")).rows[0]).toEqual({ there: true });
    const e = await call(mcp, 'explain_policy', { sql: 'SELECT 1; DROP TABLE accounts' });
    expect(e.json).toMatchObject({ identity: 'agent', action: 'deny' });
    expect(e.json!.reason).toMatch(/no-destructive-ddl/);
    // Over stdio the catalog is not read (that needs the upstream's credentials, which `warden mcp` does not load):
    // the answer says so, and the running Warden reads it when the statement is sent (HTTP explains it: mcp-http.test.ts).
    const f = await call(mcp, 'explain_policy', { sql: 'SELECT wipe()' });
    expect(f.json).toMatchObject({ catalog: expect.stringMatching(/not read here/) });
    expect((await call(mcp, 'query', { sql: 'SELECT wipe()' })).text).toMatch(/no-destructive-ddl/);
  });

  it('a max_rows limit halts an over-large result as a tool error (54000)', async () => {
    const r = await call(mcp, 'query', { sql: 'SELECT e.id FROM events e' });
    expect(r.isError, r.text).toBe(true);
    expect(r.json).toMatchObject({ error: { code: '54000' } });
    expect(r.text).toMatch(/agent-rows/);
    // The session goes on.
    const ok = await call(mcp, 'query', { sql: 'SELECT count(*) AS n FROM events' });
    expect(ok.json).toMatchObject({ rows: [['5000']], columns: [{ name: 'n', type: 'bigint' }] });
  });

  it('a held statement returns pending at once; approved through the CLI it runs exactly once; audit has the agent, on-behalf-of and intent', async () => {
    const sql = 'UPDATE accounts SET balance = balance + 10 WHERE id = 1';
    const t0 = Date.now();
    const p = await call(mcp, 'query', { sql, reason: 'monthly interest', ticket: 'OPS-7' });
    expect(p.isError, p.text).toBe(false);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(p.json).toMatchObject({ status: 'pending_approval', mode: 'hold' });
    const id = p.json!.request as string;
    expect(id).toMatch(/^apr_/);
    expect(p.json!.approvers).toMatch(/dana/);
    // Other calls go on while it waits.
    expect((await call(mcp, 'query', { sql: 'SELECT balance FROM accounts' })).json).toMatchObject({ rows: [['100']] });
    // Asking again does not send it again.
    expect((await call(mcp, 'query', { sql, reason: 'monthly interest', ticket: 'OPS-7' })).json).toMatchObject({ status: 'pending_approval', request: id });
    expect((await call(mcp, 'approval_status', { request: id })).json).toMatchObject({ status: 'pending_approval', request: id });

    const ok = await runCli(['approvals', 'approve', id, '--as', 'dana', '--reason', 'fine', '--admin-url', `http://127.0.0.1:${env.warden.admin!.port}`], { WARDEN_PASSWORD: DANA });
    expect(ok.code, ok.err).toBe(0);
    const done = await call(mcp, 'approval_status', { request: id, wait_seconds: 20 });
    expect(done.isError, done.text).toBe(false);
    expect(done.json).toMatchObject({ status: 'ok', command: 'UPDATE', rowCount: 1 });
    // Handed out once (then the state store says it was used); the statement ran once.
    expect((await call(mcp, 'approval_status', { request: id })).json).toMatchObject({ status: 'used', request: id });
    expect((await direct(env.cluster, 'SELECT balance FROM public.accounts WHERE id = 1')).rows[0]).toEqual({ balance: 110 });

    await new Promise((r) => setTimeout(r, 300));
    const starts = auditRecords(auditFile, 'session.start').filter((d) => d.identity === 'agent');
    expect(starts.length).toBeGreaterThan(0);
    expect(starts.every((d) => d.on_behalf_of === 'alice' && d.auth === 'token')).toBe(true);
    const begun = auditRecords(auditFile, 'statement.begin').filter((d) => String(d.sql).includes('balance + 10'));
    expect(begun).toHaveLength(1);
    expect(begun[0]).toMatchObject({ identity: 'agent', intent: { reason: 'monthly interest', ticket: 'OPS-7' } });
  }, 40_000);

  it('held inside an open transaction: the session keeps the transaction, refuses other calls until it is decided, then commits', async () => {
    expect((await call(mcp, 'query', { sql: 'BEGIN' })).json).toMatchObject({ command: 'BEGIN' });
    const p = await call(mcp, 'query', { sql: 'UPDATE accounts SET balance = 0 WHERE id = 1' });
    expect(p.json).toMatchObject({ status: 'pending_approval' });
    const id = p.json!.request as string;
    const busy = await call(mcp, 'query', { sql: 'SELECT 1' });
    expect(busy.isError).toBe(true);
    expect(busy.json).toMatchObject({ error: { code: '55000' } });
    expect(busy.text).toContain(id);
    const ok = await runCli(['approvals', 'approve', id, '--as', 'dana', '--reason', 'fine', '--admin-url', `http://127.0.0.1:${env.warden.admin!.port}`], { WARDEN_PASSWORD: DANA });
    expect(ok.code, ok.err).toBe(0);
    expect((await call(mcp, 'approval_status', { request: id, wait_seconds: 20 })).json).toMatchObject({ command: 'UPDATE', rowCount: 1 });
    // Not committed yet: the transaction is the session's.
    expect((await direct(env.cluster, 'SELECT balance FROM public.accounts WHERE id = 1')).rows[0]).toEqual({ balance: 110 });
    expect((await call(mcp, 'query', { sql: 'COMMIT' })).json).toMatchObject({ command: 'COMMIT' });
    expect((await direct(env.cluster, 'SELECT balance FROM public.accounts WHERE id = 1')).rows[0]).toEqual({ balance: 0 });
  }, 40_000);

  it('masked values never appear in errors; a denied held statement comes back as a tool error and never ran', async () => {
    const e = await call(mcp, 'query', { sql: 'SELECT email::int FROM customers' });
    expect(e.isError).toBe(true);
    // Masking refuses a cast of a masked column (it could print the value in its error).
    expect(e.json).toMatchObject({ error: { code: '42501' } });
    expect(e.text).not.toMatch(/ada@example\.com|alan@example\.org/);

    const p = await call(mcp, 'query', { sql: 'DELETE FROM accounts WHERE id = 1' });
    expect(p.json).toMatchObject({ status: 'pending_approval' });
    const id = p.json!.request as string;
    const no = await runCli(['approvals', 'deny', id, '--as', 'dana', '--reason', 'not today', '--admin-url', `http://127.0.0.1:${env.warden.admin!.port}`], { WARDEN_PASSWORD: DANA });
    expect(no.code, no.err).toBe(0);
    const d = await call(mcp, 'approval_status', { request: id, wait_seconds: 20 });
    expect(d.isError).toBe(true);
    expect(d.text).toMatch(/denied by dana: not today/);
    expect(d.json).toMatchObject({ error: { code: '42501' } });
    expect((await direct(env.cluster, 'SELECT count(*)::int AS n FROM public.accounts')).rows[0]).toEqual({ n: 1 });
  }, 30_000);

  it('a call sent while another is being held does not wait behind it', async () => {
    const held = call(mcp, 'query', { sql: 'DELETE FROM accounts WHERE id = 99' });
    const t0 = Date.now();
    const other = await call(mcp, 'query', { sql: 'SELECT count(*) AS n FROM customers' });
    expect(other.json).toMatchObject({ rows: [['2']] });
    expect(Date.now() - t0).toBeLessThan(10_000);
    const p = await held;
    expect(p.json).toMatchObject({ status: 'pending_approval' });
    const no = await runCli(['approvals', 'deny', p.json!.request as string, '--as', 'dana', '--reason', 'cleanup', '--admin-url', `http://127.0.0.1:${env.warden.admin!.port}`], { WARDEN_PASSWORD: DANA });
    expect(no.code, no.err).toBe(0);
  }, 30_000);

  it('bad arguments are refused without a stack trace', async () => {
    const r = (await mcp.callTool({ name: 'query', arguments: { sql: 'SELECT 1', max_rows: 20_000 } }).catch((e: Error) => ({ isError: true, content: [{ type: 'text', text: e.message }] }))) as {
      isError?: boolean;
      content: { text: string }[];
    };
    expect(r.isError).toBe(true);
    expect(r.content.map((c) => c.text).join('\n')).not.toMatch(/\n\s+at /);
  });

  it("loads no secret: a config whose upstream, passwords, masking key and stores are unset variables still serves the agent", async () => {
    // The same file as Warden's, with every secret and store behind a variable the agent's environment does not have.
    const secretless = fs
      .readFileSync(configFile, 'utf8')
      .replace(/upstream: \S+/g, 'upstream: "${MCP_T_UPSTREAM}"')
      .replace(/password: [^\s,}]+/g, (_m, i: number) => `password: "\${MCP_T_PW_${i}}"`)
      .replace(/key: test-mask-key-\S+/, 'key: "${MCP_T_MASK_KEY}"')
      .replace(/store: "sqlite:[^"]+"/, 'store: "${MCP_T_STATE}"')
      .replace(/store: "jsonl:[^"]+"/, 'store: "${MCP_T_AUDIT}"');
    expect(secretless).toContain('${MCP_T_UPSTREAM}');
    expect(secretless).not.toMatch(/sqlite:|svc|agent-pw|test-mask-key/);
    const file = path.join(dir, 'agent-view.yaml');
    fs.writeFileSync(file, secretless);
    const env0 = Object.fromEntries(Object.entries(process.env as Record<string, string>).filter(([k]) => !k.startsWith('MCP_T_')));
    const c = new Client({ name: 'no-secrets', version: '1' });
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [BIN, 'mcp', '--config', file, '--port', String(env.warden.port)],
      env: { ...env0, WARDEN_TOKEN: agentToken, WARDEN_IDENTITY: 'agent' },
      stderr: 'pipe',
    });
    let stderr = '';
    transport.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    await c.connect(transport).catch((e: Error) => {
      throw new Error(`${e.message}: ${stderr}`);
    });
    try {
      expect((await call(c, 'list_databases')).json).toMatchObject({ identity: 'agent', on_behalf_of: 'alice', databases: [{ name: 'app', environment: 'test' }] });
      const r = await call(c, 'query', { sql: 'SELECT email FROM customers ORDER BY id' });
      expect(r.isError, r.text).toBe(false);
      expect(r.text).not.toContain('ada@example.com');
      // The policy is there for explain and describe_table (names, kinds, groups and rules are not secrets).
      expect((await call(c, 'explain_policy', { sql: 'DROP TABLE accounts' })).json).toMatchObject({ action: 'deny' });
      expect((await call(c, 'describe_table', { table: 'customers' })).json!.columns).toContainEqual({ name: 'email', type: 'text', nullable: false, sensitive: 'email', masked: true });
    } finally {
      await c.close();
    }
    // Without the token's identity a token cannot log in: a clear error, not a guess.
    const noId = await runCli(['mcp', '--config', file, '--port', String(env.warden.port)], { WARDEN_TOKEN: agentToken });
    expect(noId.code).not.toBe(0);
    expect(noId.err).toMatch(/WARDEN_IDENTITY/);
  }, 30_000);

  it('session settings (SET search_path, statement_timeout, a custom one) carry over to the connection opened after a hold', async () => {
    for (const s of ['CREATE SCHEMA mcp_s2', 'CREATE TABLE mcp_s2.marker (v text)', "INSERT INTO mcp_s2.marker VALUES ('carried')", 'GRANT USAGE ON SCHEMA mcp_s2 TO warden_svc', 'GRANT SELECT ON mcp_s2.marker TO warden_svc'])
      await direct(env.cluster, s);
    const c = new Client({ name: 'settings', version: '1' });
    await c.connect(
      new StdioClientTransport({
        command: process.execPath,
        args: [BIN, 'mcp', '--config', configFile, '--port', String(env.warden.port)],
        env: { ...(process.env as Record<string, string>), WARDEN_TOKEN: agentToken, WARDEN_IDENTITY: 'agent' },
        stderr: 'pipe',
      }),
    );
    try {
      expect((await call(c, 'query', { sql: 'SET search_path TO mcp_s2, public' })).isError).toBe(false);
      expect((await call(c, 'query', { sql: "SET statement_timeout = '12s'" })).isError).toBe(false);
      expect((await call(c, 'query', { sql: "SET myapp.tenant = 'acme'" })).isError).toBe(false);
      expect((await call(c, 'query', { sql: 'SELECT v FROM marker' })).json).toMatchObject({ rows: [['carried']] });
      // Masking shows a custom setting faked (it could hold a stashed value), but the same value fakes the same way.
      const tenant = await call(c, 'query', { sql: 'SHOW myapp.tenant' });
      expect(tenant.isError, tenant.text).toBe(false);
      const p = await call(c, 'query', { sql: 'UPDATE public.accounts SET balance = balance WHERE id = 1' });
      expect(p.json).toMatchObject({ status: 'pending_approval' });
      // The session's next calls run on a new connection: with the settings the agent set.
      const after = await call(c, 'query', { sql: 'SELECT v FROM marker' });
      expect(after.isError, after.text).toBe(false);
      expect(after.json).toMatchObject({ rows: [['carried']] });
      expect((await call(c, 'query', { sql: 'SHOW statement_timeout' })).json).toMatchObject({ rows: [['12s']] });
      expect((await call(c, 'query', { sql: 'SHOW search_path' })).json).toMatchObject({ rows: [['mcp_s2, public']] });
      expect((await call(c, 'query', { sql: 'SHOW myapp.tenant' })).json!.rows).toEqual(tenant.json!.rows);
      const no = await runCli(['approvals', 'deny', p.json!.request as string, '--as', 'dana', '--reason', 'test over', '--admin-url', `http://127.0.0.1:${env.warden.admin!.port}`], { WARDEN_PASSWORD: DANA });
      expect(no.code, no.err).toBe(0);
    } finally {
      await c.close();
    }
  }, 40_000);

  it('when the agent goes away, its held statement is withdrawn and never runs', async () => {
    const other = new Client({ name: 'short-lived', version: '1' });
    await other.connect(
      new StdioClientTransport({
        command: process.execPath,
        args: [BIN, 'mcp', '--config', configFile, '--port', String(env.warden.port)],
        env: { ...(process.env as Record<string, string>), WARDEN_TOKEN: agentToken, WARDEN_IDENTITY: 'agent' },
        stderr: 'pipe',
      }),
    );
    const p = await call(other, 'query', { sql: 'UPDATE accounts SET balance = -1 WHERE id = 1' });
    expect(p.json).toMatchObject({ status: 'pending_approval' });
    const id = p.json!.request as string;
    await other.close();
    const state = await openStateStore({ kind: 'sqlite', location: path.join(dir, 'state.db') });
    let status = '';
    for (let i = 0; i < 50 && status !== 'cancelled'; i++) {
      status = (await state.getRequest(id))?.status ?? '';
      if (status !== 'cancelled') await new Promise((r) => setTimeout(r, 100));
    }
    await state.close();
    expect(status).toBe('cancelled');
    const late = await runCli(['approvals', 'approve', id, '--as', 'dana', '--reason', 'late', '--admin-url', `http://127.0.0.1:${env.warden.admin!.port}`], { WARDEN_PASSWORD: DANA });
    expect(late.code).not.toBe(0);
    expect((await direct(env.cluster, 'SELECT balance FROM public.accounts WHERE id = 1')).rows[0]).not.toEqual({ balance: -1 });
  }, 30_000);
});
