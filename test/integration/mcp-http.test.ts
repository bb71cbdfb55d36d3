/**
 * MCP over Streamable HTTP on the admin listener (`/mcp`), driven by the SDK's
 * StreamableHTTPClientTransport with a bearer token: masked results and audit
 * with the agent and its on-behalf-of user; no credential, a wrong one or an
 * expired token refused with 401 (at initialize and on a live session); and
 * `approvals.mode: reject`: the statement is refused at once with a pending
 * result, and once approved through the CLI the identical call runs it once.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { direct, startCluster, startEnv, type TestEnv } from '../helpers/warden-env.js';
import { runCli } from '../helpers/warden-process.js';
import { openStateStore } from '../../src/store/open.js';
import { issueToken } from '../../src/governance/tokens.js';
import { auditRecords, call, DANA, mcpYaml, seed } from '../helpers/mcp.js';
import { makeTestCerts } from '../helpers/certs.js';
import * as jose from 'jose';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-mcp-http-'));
const auditFile = path.join(dir, 'audit.jsonl');
let env: TestEnv;
const clients: Client[] = [];
const ISSUER = 'https://idp.test/';
let signer: Parameters<jose.SignJWT['sign']>[0];

const jwt = (claims: Record<string, unknown>, exp = '10m'): Promise<string> =>
  new jose.SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuer(ISSUER).setAudience('warden').setIssuedAt().setExpirationTime(exp).sign(signer);

const url = (): URL => new URL(`http://127.0.0.1:${env.warden.admin!.port}/mcp`);

async function token(identity: string, ttlMs: number, onBehalfOf?: string): Promise<string> {
  const state = await openStateStore({ kind: 'sqlite', location: path.join(dir, 'state.db') });
  try {
    return (await issueToken(state, env.config.identities.find((i) => i.name === identity)!, { ttlMs, ...(onBehalfOf ? { onBehalfOf } : {}) })).token;
  } finally {
    await state.close();
  }
}

async function connect(bearer: string | undefined): Promise<Client> {
  const c = new Client({ name: 'http-agent', version: '1.0.0' });
  await c.connect(new StreamableHTTPClientTransport(url(), { requestInit: { headers: bearer ? { authorization: `Bearer ${bearer}` } : {} } }));
  clients.push(c);
  return c;
}

const initialize = (bearer?: string): Promise<Response> =>
  fetch(url(), {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...(bearer ? { authorization: `Bearer ${bearer}` } : {}) },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-03-26', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } }),
  });

beforeAll(async () => {
  const cluster = await startCluster();
  // The listener offers TLS (a JWT is accepted over TLS only) and trusts an OIDC issuer.
  const certs = await makeTestCerts();
  const { privateKey, publicKey } = await jose.generateKeyPair('ES256');
  signer = privateKey;
  fs.writeFileSync(path.join(dir, 'jwks.json'), JSON.stringify({ keys: [{ ...(await jose.exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }] }));
  const yaml = (p: number): string =>
    mcpYaml(p, dir, auditFile, 'reject').replace('listen: { host: 127.0.0.1, port: 0 }', `listen: { host: 127.0.0.1, port: 0, tls: { cert: ${certs.serverCert}, key: ${certs.serverKey} } }`) +
    `oidc:
  issuer: ${ISSUER}
  audience: warden
  jwks: ${path.join(dir, 'jwks.json')}
  claims: { name: preferred_username, groups: groups, kind: kind }
`;
  env = await startEnv({ cluster, yaml });
  await seed(env);
}, 60_000);

afterAll(async () => {
  for (const c of clients) await c.close().catch(() => undefined);
  const cluster = env?.cluster;
  await env?.stop();
  await cluster?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('MCP over HTTP on the admin listener', () => {
  it('a bearer token: masked results, and the audit has the agent and its on-behalf-of user', async () => {
    const mcp = await connect(await token('agent', 600_000, 'alice'));
    const r = await call(mcp, 'query', { sql: 'SELECT email FROM customers ORDER BY id', reason: 'dedupe check' });
    expect(r.isError, r.text).toBe(false);
    expect(r.json).toMatchObject({ columns: [{ name: 'email', type: 'text' }], rowCount: 2 });
    expect(r.text).not.toContain('ada@example.com');
    const denied = await call(mcp, 'query', { sql: "SELECT 1; COMMIT; DROP TABLE customers" });
    expect(denied.isError).toBe(true);
    expect(denied.text).toMatch(/no-destructive-ddl/);
    await new Promise((res) => setTimeout(res, 300));
    const begun = auditRecords(auditFile, 'statement.begin').filter((d) => String(d.sql).includes('SELECT email FROM customers'));
    expect(begun).toHaveLength(1);
    expect(begun[0]).toMatchObject({ identity: 'agent', intent: { reason: 'dedupe check' } });
    const starts = auditRecords(auditFile, 'session.start').filter((d) => d.identity === 'agent');
    expect(starts.at(-1)).toMatchObject({ auth: 'token', on_behalf_of: 'alice' });
    // In Warden's process explain_policy reads code from the catalog as `policy explain` does: a function whose body drops a table.
    const f = await call(mcp, 'explain_policy', { sql: 'SELECT wipe()' });
    expect(f.json).toMatchObject({ action: 'deny', catalog: expect.stringMatching(/read from/) });
    expect(f.json!.reason).toMatch(/no-destructive-ddl/);
  });

  it('the transport: JSON answers; GET 405 (no server stream); a notification 202; an unknown protocol version or a non-JSON-RPC body 400; DELETE ends the session', async () => {
    const tok = await token('agent', 600_000);
    const init = await initialize(tok);
    expect(init.status).toBe(200);
    expect(init.headers.get('content-type')).toMatch(/application\/json/);
    expect(await init.json()).toMatchObject({ jsonrpc: '2.0', id: 1, result: { serverInfo: { name: 'warden' } } });
    const sid = init.headers.get('mcp-session-id')!;
    expect(sid).toMatch(/^[0-9a-f-]{36}$/);
    const h = { authorization: `Bearer ${tok}`, 'mcp-session-id': sid, 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
    const post = (body: unknown, extra: Record<string, string> = {}): Promise<Response> => fetch(url(), { method: 'POST', headers: { ...h, ...extra }, body: JSON.stringify(body) });
    expect((await fetch(url(), { method: 'GET', headers: h })).status).toBe(405);
    expect((await post({ jsonrpc: '2.0', method: 'notifications/initialized' })).status).toBe(202);
    const ping = await post({ jsonrpc: '2.0', id: 5, method: 'ping' }, { 'mcp-protocol-version': '2025-03-26' });
    expect(ping.status).toBe(200);
    expect(await ping.json()).toEqual({ jsonrpc: '2.0', id: 5, result: {} });
    const batch = await post([{ jsonrpc: '2.0', id: 6, method: 'ping' }, { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'list_databases', arguments: {} } }]);
    const both = (await batch.json()) as { id: number }[];
    expect(both.map((x) => x.id)).toEqual([6, 7]);
    expect((await post({ jsonrpc: '2.0', id: 8, method: 'ping' }, { 'mcp-protocol-version': '1999-01-01' })).status).toBe(400);
    expect((await post([{ jsonrpc: '2.0', id: 11, method: 'ping' }, { jsonrpc: '2.0', id: 11, method: 'ping' }])).status).toBe(409);
    expect((await post({ hello: 'world' })).status).toBe(400);
    expect((await post({ jsonrpc: '2.0', id: 9, method: 'no/such/method' })).status).toBe(200); // a JSON-RPC error, answered as JSON
    const { 'content-type': _ct, ...bare } = h;
    expect((await fetch(url(), { method: 'DELETE', headers: bare })).status).toBe(200);
    expect((await post({ jsonrpc: '2.0', id: 10, method: 'ping' })).status).toBe(404);
  });

  it('a token limited to one database: list_databases shows only it and its scope', async () => {
    const state = await openStateStore({ kind: 'sqlite', location: path.join(dir, 'state.db') });
    const { token: scoped } = await issueToken(state, env.config.identities.find((i) => i.name === 'agent')!, { ttlMs: 600_000, scope: 'app' });
    await state.close();
    const mcp = await connect(scoped);
    expect((await call(mcp, 'list_databases')).json).toMatchObject({ identity: 'agent', scope: 'app', databases: [{ name: 'app' }] });
    const other = await call(mcp, 'query', { sql: 'SELECT 1', database: 'elsewhere' });
    expect(other.isError).toBe(true);
    expect(other.text).toMatch(/limited to database "app"/);
  });

  it('no credential, a wrong one, a password or an expired token: 401; a live session whose token expires: 401', async () => {
    expect((await initialize()).status).toBe(401);
    expect((await initialize('wdt_' + 'a'.repeat(32))).status).toBe(401);
    expect((await initialize('agent-pw-3')).status).toBe(401);
    await expect(connect(undefined)).rejects.toThrow(/401|authentication required/i);

    const short = await token('agent', 1_500);
    const mcp = await connect(short);
    expect((await call(mcp, 'list_databases')).json).toMatchObject({ identity: 'agent' });
    await new Promise((res) => setTimeout(res, 1_700));
    await expect(mcp.callTool({ name: 'list_databases', arguments: {} })).rejects.toThrow(/401|expired/i);
    expect((await initialize(short)).status).toBe(401);
  });

  it('reject mode: pending at once with the request id, nothing runs; approved through the CLI, the identical call runs it once', async () => {
    const mcp = await connect(await token('agent', 600_000, 'alice'));
    const sql = 'UPDATE accounts SET balance = balance - 5 WHERE id = 1';
    const p = await call(mcp, 'query', { sql, ticket: 'OPS-9' });
    expect(p.isError, p.text).toBe(false);
    expect(p.json).toMatchObject({ status: 'pending_approval', mode: 'reject' });
    const id = p.json!.request as string;
    expect((await call(mcp, 'approval_status', { request: id })).json).toMatchObject({ status: 'pending', request: id, mode: 'reject' });
    // Another identity's request is not shown to this one.
    const bob = await connect(await token('bob', 600_000));
    expect((await call(bob, 'approval_status', { request: id })).isError).toBe(true);
    expect((await direct(env.cluster, 'SELECT balance FROM public.accounts WHERE id = 1')).rows[0]).toEqual({ balance: 100 });
    const ok = await runCli(['approvals', 'approve', id, '--as', 'dana', '--reason', 'ok', '--admin-url', `http://127.0.0.1:${env.warden.admin!.port}`], { WARDEN_PASSWORD: DANA });
    expect(ok.code, ok.err).toBe(0);
    // approval_status reads a reject-mode request from the state store.
    expect((await call(mcp, 'approval_status', { request: id })).json).toMatchObject({ status: 'approved', mode: 'reject', decisions: [{ approver: 'dana', decision: 'approve' }] });
    const ran = await call(mcp, 'query', { sql, ticket: 'OPS-9' });
    expect(ran.json).toMatchObject({ status: 'ok', command: 'UPDATE', rowCount: 1 });
    // Once: the approval is used; a third identical call asks again.
    const again = await call(mcp, 'query', { sql, ticket: 'OPS-9' });
    expect(again.json).toMatchObject({ status: 'pending_approval', mode: 'reject' });
    expect(again.json!.request).not.toBe(id);
    expect((await call(mcp, 'approval_status', { request: id })).json).toMatchObject({ status: 'used' });
    expect((await direct(env.cluster, 'SELECT balance FROM public.accounts WHERE id = 1')).rows[0]).toEqual({ balance: 95 });
  }, 30_000);

  it('an OIDC JWT as the bearer: the identity its claims name (an act claim: the agent, acting for the subject); an expired JWT: 401', async () => {
    const carol = await connect(await jwt({ sub: 'u-1', preferred_username: 'carol', groups: ['analysts'], kind: 'human' }));
    expect((await call(carol, 'list_databases')).json).toMatchObject({ identity: 'carol' });
    const r = await call(carol, 'query', { sql: 'SELECT email FROM customers ORDER BY id' });
    expect(r.isError, r.text).toBe(false);
    expect(r.text).not.toContain('ada@example.com');
    const d = await call(carol, 'describe_table', { table: 'customers' });
    expect(d.json!.columns).toContainEqual({ name: 'email', type: 'text', nullable: false, sensitive: 'email', masked: true });

    const bot = await connect(await jwt({ sub: 'u-2', preferred_username: 'alice-sso', act: { sub: 'trainer-bot', kind: 'agent' } }));
    expect((await call(bot, 'list_databases')).json).toMatchObject({ identity: 'trainer-bot', on_behalf_of: 'alice-sso' });
    expect((await call(bot, 'query', { sql: 'SELECT 42 AS answer' })).json).toMatchObject({ rows: [['42']] });
    await new Promise((res) => setTimeout(res, 300));
    expect(auditRecords(auditFile, 'session.start').filter((x) => x.identity === 'trainer-bot').at(-1)).toMatchObject({ on_behalf_of: 'alice-sso' });

    expect((await initialize(await jwt({ preferred_username: 'carol' }, '-1m'))).status).toBe(401);
    // Signed by someone else: the MCP server finds a name in it, but the listener refuses the login.
    const { privateKey: other } = await jose.generateKeyPair('ES256');
    const forged = await new jose.SignJWT({ preferred_username: 'carol' }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuer(ISSUER).setAudience('warden').setExpirationTime('10m').sign(other);
    expect((await initialize(forged)).status).toBe(401);
  });

  it('failed initializes from one address are limited: after 10 in 5 minutes, 429 with retry-after, even with a good token', async () => {
    // (the previous test's two refusals count too)
    const statuses: number[] = [];
    for (let i = 0; i < 11 && statuses.at(-1) !== 429; i++) statuses.push((await initialize('wdt_' + 'b'.repeat(32))).status);
    expect(statuses[0]).toBe(401);
    expect(statuses.at(-1)).toBe(429);
    expect(statuses.filter((s) => s === 401).length).toBeGreaterThanOrEqual(8);
    const r = await initialize(await token('agent', 600_000));
    expect(r.status).toBe(429);
    expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
  });
});
