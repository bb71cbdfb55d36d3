/**
 * `warden mcp`'s own stdio transport in the real process (needs `npm run build`), driven with raw
 * JSON-RPC lines instead of the SDK client: malformed input is answered with JSON-RPC errors and
 * the process keeps serving; the fast path (ping, plainly valid `query` calls) gives the same
 * governed answers as the SDK path — masked values, a denied DROP (also behind COMMIT in one
 * string), audit records — and arguments zod refuses are refused by the SDK with its error,
 * nothing sent to Warden.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, startEnv, type TestEnv } from '../helpers/warden-env.js';
import { auditRecords, mcpYaml, seed } from '../helpers/mcp.js';
import { BIN } from '../helpers/warden-process.js';
import { openStateStore } from '../../src/store/open.js';
import { issueToken } from '../../src/governance/tokens.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-mcp-lines-'));
const auditFile = path.join(dir, 'audit.jsonl');
const configFile = path.join(dir, 'warden.yaml');
let env: TestEnv;
let proc: ChildProcessWithoutNullStreams;
let out = '';
let stderr = '';

type Msg = Record<string, unknown> & { id?: unknown; result?: Record<string, unknown>; error?: { code: number; message: string } };

/** The answer lines received so far (every stdout line must be JSON). */
const lines = (): Msg[] => out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Msg);

async function answer(pred: (m: Msg) => boolean, ms = 10_000): Promise<Msg> {
  const end = Date.now() + ms;
  for (;;) {
    const m = lines().find(pred);
    if (m) return m;
    if (Date.now() > end) throw new Error(`no answer; stdout: ${out}\nstderr: ${stderr}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const send = (raw: string): void => void proc.stdin.write(raw);
const request = async (id: number, method: string, params?: unknown): Promise<Msg> => {
  send(JSON.stringify({ jsonrpc: '2.0', id, method, ...(params !== undefined ? { params } : {}) }) + '\n');
  return answer((m) => m.id === id);
};
const toolText = (m: Msg): string => ((m.result?.content as { text: string }[] | undefined) ?? []).map((c) => c.text).join('\n');

beforeAll(async () => {
  const cluster = await startCluster();
  const yaml = (p: number): string => mcpYaml(p, dir, auditFile);
  env = await startEnv({ cluster, yaml });
  await seed(env);
  fs.writeFileSync(configFile, yaml(cluster.port));
  const state = await openStateStore({ kind: 'sqlite', location: path.join(dir, 'state.db') });
  const { token } = await issueToken(state, env.config.identities.find((i) => i.name === 'agent')!, { ttlMs: 600_000, onBehalfOf: 'alice' });
  await state.close();
  proc = spawn(process.execPath, [BIN, 'mcp', '--config', configFile, '--port', String(env.warden.port)], {
    env: { ...process.env, WARDEN_TOKEN: token, WARDEN_IDENTITY: 'agent' },
  });
  proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const init = await request(1, 'initialize', { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } });
  expect(init.result).toMatchObject({ serverInfo: { name: 'warden' } });
  send('{"jsonrpc":"2.0","method":"notifications/initialized"}\n');
}, 60_000);

afterAll(async () => {
  proc?.kill();
  const cluster = env?.cluster;
  await env?.stop();
  await cluster?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('warden mcp: raw JSON-RPC lines on stdin', () => {
  it('answers malformed input with JSON-RPC errors and keeps serving', async () => {
    out = '';
    send('not json at all\n');
    send('[{"jsonrpc":"2.0","id":90,"method":"ping"}]\n');
    send('{"jsonrpc":"2.0","id":91}\n');
    send('{"jsonrpc":"2.0","id":92,"method":"tools/call","params":{"name":"query","arguments":"SELECT 1"}}\n');
    send('{"jsonrpc":"2.0","id":93,"method":"ping"}\r\n');
    await answer((m) => m.id === 93);
    await answer((m) => m.id === 92);
    const got = lines();
    expect(got.filter((m) => m.error?.code === -32700)).toHaveLength(1);
    expect(got.filter((m) => m.id === null && m.error?.code === -32600 && /batches/.test(m.error.message))).toHaveLength(1);
    expect(got.find((m) => m.id === 91)).toMatchObject({ error: { code: -32600 } });
    expect(got.find((m) => m.id === 92)?.error).toBeDefined(); // the SDK refuses arguments that are not an object
    expect(got.find((m) => m.id === 93)).toEqual({ jsonrpc: '2.0', id: 93, result: {} });
    expect(proc.exitCode).toBeNull();
  });

  it('a query call on the fast path: masked values, types, the intent in the audit', async () => {
    const r = await request(10, 'tools/call', { name: 'query', arguments: { sql: 'SELECT id, email FROM customers WHERE id = $1', params: [1], reason: 'lines test' } });
    const body = JSON.parse(toolText(r)) as { status: string; columns: unknown[]; rows: string[][] };
    expect(body).toMatchObject({ status: 'ok', columns: [{ name: 'id', type: 'integer' }, { name: 'email', type: 'text' }] });
    expect(body.rows[0]![0]).toBe('1');
    expect(body.rows[0]![1]).not.toBe('ada@example.com');
    expect(toolText(r)).not.toContain('ada@example.com');
    await new Promise((res) => setTimeout(res, 300));
    const begun = auditRecords(auditFile, 'statement.begin').filter((d) => String(d.sql).includes('SELECT id, email FROM customers WHERE id = $1'));
    expect(begun).toHaveLength(1);
    expect(begun[0]).toMatchObject({ identity: 'agent', intent: { reason: 'lines test' } });
  });

  it('a denied DROP, alone or behind COMMIT in one string, is a tool error naming the rule; nothing was dropped', async () => {
    for (const [id, sql] of [
      [20, 'DROP TABLE customers'],
      [21, 'COMMIT; DROP TABLE customers'],
    ] as const) {
      const r = await request(id, 'tools/call', { name: 'query', arguments: { sql } });
      expect(r.result?.isError, JSON.stringify(r)).toBe(true);
      expect(toolText(r)).toMatch(/no-destructive-ddl/);
    }
    const still = await request(22, 'tools/call', { name: 'query', arguments: { sql: 'SELECT count(*) FROM customers' } });
    expect(JSON.parse(toolText(still))).toMatchObject({ status: 'ok', rows: [['2']] });
  });

  it('arguments zod refuses get the SDK’s validation error, and nothing reaches Warden', async () => {
    await new Promise((res) => setTimeout(res, 300));
    const before = auditRecords(auditFile, 'statement.begin').length;
    const r = await request(30, 'tools/call', { name: 'query', arguments: { sql: 'SELECT 1', max_rows: 0 } });
    expect(r.result?.isError).toBe(true);
    expect(toolText(r)).toMatch(/Input validation error: Invalid arguments for tool query/);
    await new Promise((res) => setTimeout(res, 200));
    expect(auditRecords(auditFile, 'statement.begin').length).toBe(before);
    expect(stderr).not.toMatch(/at .*\.js:\d+/); // no stack trace
  });
});
