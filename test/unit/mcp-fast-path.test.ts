/**
 * The fast path of Warden's MCP transports (src/mcp/server.ts, createFastPath): `ping` and
 * `query` calls with plainly valid arguments are answered without the SDK's dispatch. It must
 * accept exactly what the tool's zod schema accepts, answer exactly as the SDK path does, and
 * leave everything else (arguments zod refuses, other tools, task augmentation, odd `_meta`) to
 * the SDK, which refuses it with zod's error. Driven with the SDK's own client over Warden's
 * stdio transport (PassThrough streams instead of a process's stdin and stdout).
 */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { parseConfig } from '../../src/config/load.js';
import { createFastPath, createWardenMcpServer, queryArgsOf, queryInputShape, MAX_ROW_CAP, type McpContext } from '../../src/mcp/server.js';
import { LineTransport } from '../../src/mcp/stdio-transport.js';
import type { WireSession } from '../../src/mcp/wire-session.js';
import type { Caller } from '../../src/mcp/identity.js';
import { MAX_INTENT_VALUE } from '../../src/intent/sqlcommenter.js';
import type { FastPath } from '../../src/mcp/jsonrpc.js';

const config = parseConfig(
  `version: 1
databases:
  app: { upstream: "postgres://svc:pw@127.0.0.1:5432/app" }
identities:
  - { name: bot, kind: agent, password: bot-pw }
`,
  '<mcp-fast-path-test>',
  {},
);

interface Sent {
  database: string;
  sql: string;
  params: unknown;
  cap: number;
}

function context(): { ctx: McpContext; sent: Sent[] } {
  const sent: Sent[] = [];
  const wire = {
    run: async (database: string, sql: string, params: unknown, cap: number) => {
      sent.push({ database, sql, params, cap });
      if (sql.includes('boom')) throw new Error('the wire broke');
      return { kind: 'result', sets: [{ command: 'SELECT', rowCount: 1, columns: [{ name: 'x', type: 'text' }], rows: [['a "quoted" ✓']], truncated: false }], notices: [] };
    },
    status: () => ({ known: false }),
    handedOut: () => false,
  } as unknown as WireSession;
  const caller: Caller = { user: 'bot', identity: config.identities[0]!, credential: 'token' };
  return { ctx: { config: () => config, caller, wire }, sent };
}

/** The server on Warden's stdio transport (with or without the fast path), and the SDK client on a line transport of the other ends. */
async function connect(fast: boolean): Promise<{ client: Client; sent: Sent[]; fastCalls: string[] }> {
  const { ctx, sent } = context();
  const toServer = new PassThrough();
  const toClient = new PassThrough();
  const fastCalls: string[] = [];
  const path = createFastPath(ctx);
  const spy: FastPath = (r) => {
    const a = path(r);
    if (a) fastCalls.push(r.method);
    return a;
  };
  const server = createWardenMcpServer(ctx);
  await server.connect(new LineTransport(toServer, toClient, fast ? spy : undefined));
  const client = new Client({ name: 't', version: '1' });
  await client.connect(new LineTransport(toClient, toServer));
  return { client, sent, fastCalls };
}

/** The valid and invalid arguments of `query`. */
const corpus: unknown[] = [
  { sql: 'SELECT 1' },
  { sql: 'SELECT $1, $2, $3, $4', params: ['a', 1, true, null] },
  { sql: 'SELECT 1', params: [] },
  { sql: 'SELECT 1', database: 'app', reason: 'r', ticket: 't', max_rows: 5 },
  { sql: 'SELECT 1', max_rows: 1 },
  { sql: 'SELECT 1', max_rows: MAX_ROW_CAP },
  { sql: 'SELECT 1', reason: 'x'.repeat(MAX_INTENT_VALUE), ticket: '' },
  { sql: 'SELECT 1', unknown_key: { deep: true } },
  { sql: 'SELECT 1', params: [1.5, -0, 1e300] },
  {},
  { sql: '' },
  { sql: 1 },
  { sql: null },
  { sql: ['SELECT 1'] },
  { sql: 'SELECT 1', database: null },
  { sql: 'SELECT 1', database: 5 },
  { sql: 'SELECT 1', params: 'a' },
  { sql: 'SELECT 1', params: { 0: 'a' } },
  { sql: 'SELECT 1', params: [{}] },
  { sql: 'SELECT 1', params: [[1]] },
  { sql: 'SELECT 1', params: [undefined] },
  { sql: 'SELECT 1', params: [Number.NaN] },
  { sql: 'SELECT 1', params: [Number.POSITIVE_INFINITY] },
  { sql: 'SELECT 1', params: null },
  { sql: 'SELECT 1', reason: 'x'.repeat(MAX_INTENT_VALUE + 1) },
  { sql: 'SELECT 1', ticket: 'x'.repeat(MAX_INTENT_VALUE + 1) },
  { sql: 'SELECT 1', reason: 5 },
  { sql: 'SELECT 1', ticket: null },
  { sql: 'SELECT 1', max_rows: 0 },
  { sql: 'SELECT 1', max_rows: -1 },
  { sql: 'SELECT 1', max_rows: 1.5 },
  { sql: 'SELECT 1', max_rows: MAX_ROW_CAP + 1 },
  { sql: 'SELECT 1', max_rows: '5' },
  { sql: 'SELECT 1', max_rows: null },
  { sql: 'SELECT 1', max_rows: Number.NaN },
  null,
  'SELECT 1',
  ['SELECT 1'],
  5,
];

describe('the query arguments without zod', () => {
  it('accepts exactly what the zod schema accepts, with the same values', () => {
    const schema = z.object(queryInputShape);
    for (const a of corpus) {
      const zod = schema.safeParse(a);
      const ours = queryArgsOf(a);
      expect({ a, accepted: ours !== undefined }).toEqual({ a, accepted: zod.success });
      if (zod.success) expect(ours).toEqual(zod.data);
    }
  });
});

describe('the fast path', () => {
  it('answers ping and valid query calls itself, with the answer the SDK path gives', async () => {
    const fast = await connect(true);
    const slow = await connect(false);
    expect(await fast.client.ping()).toEqual({});
    const calls = [
      { sql: 'SELECT 1' },
      { sql: 'SELECT $1', params: ['x'], reason: 'why', ticket: 'T-1', max_rows: 7 },
      { sql: 'SELECT 1', database: 'nope' },
      { sql: 'boom' },
    ];
    for (const args of calls) {
      const a = await fast.client.callTool({ name: 'query', arguments: args });
      const b = await slow.client.callTool({ name: 'query', arguments: args });
      expect(a).toEqual(b);
    }
    expect(fast.sent).toEqual(slow.sent);
    expect(fast.sent[1]).toMatchObject({ sql: "/* reason='why',ticket='T-1' */ SELECT $1", params: ['x'], cap: 7 });
    expect(fast.fastCalls).toEqual(['ping', 'tools/call', 'tools/call', 'tools/call', 'tools/call']);
    // A tool that throws: a tool error with its message, as the SDK makes it.
    const boom = await fast.client.callTool({ name: 'query', arguments: { sql: 'boom' } });
    expect(boom).toMatchObject({ isError: true, content: [{ type: 'text', text: 'the wire broke' }] });
  });

  it('leaves arguments zod refuses to the SDK, which refuses them with its error; nothing is sent', async () => {
    const { client, sent, fastCalls } = await connect(true);
    for (const args of [{ sql: '' }, { sql: 'SELECT 1', params: [{}] }, { sql: 'SELECT 1', max_rows: 0 }, { sql: 'SELECT 1', reason: 'x'.repeat(MAX_INTENT_VALUE + 1) }]) {
      const r = await client.callTool({ name: 'query', arguments: args });
      expect(r.isError).toBe(true);
      expect((r.content as { text: string }[])[0]!.text).toMatch(/Input validation error: Invalid arguments for tool query/);
    }
    expect(sent).toEqual([]);
    expect(fastCalls).toEqual([]);
  });

  it('leaves other tools, task augmentation and other _meta to the SDK', async () => {
    const { ctx } = context();
    const path = createFastPath(ctx);
    const q = { name: 'query', arguments: { sql: 'SELECT 1' } };
    expect(path({ id: 1, method: 'tools/call', params: { name: 'list_databases', arguments: {} } })).toBeUndefined();
    expect(path({ id: 1, method: 'tools/call', params: { ...q, task: { ttl: 1000 } } })).toBeUndefined();
    expect(path({ id: 1, method: 'tools/call', params: { ...q, _meta: { 'io.modelcontextprotocol/related-task': { taskId: 'x' } } } })).toBeUndefined();
    expect(path({ id: 1, method: 'tools/call', params: { ...q, _meta: { progressToken: 1.5 } } })).toBeUndefined();
    expect(path({ id: 1, method: 'tools/call', params: { ...q, _meta: 'x' } })).toBeUndefined();
    expect(path({ id: 1, method: 'tools/call', params: { ...q, arguments: [] } })).toBeUndefined();
    expect(path({ id: 1, method: 'tools/call', params: { name: 'query', arguments: 'SELECT 1' } })).toBeUndefined();
    expect(path({ id: 1, method: 'tools/call', params: { name: 'query' } })).toBeUndefined(); // no sql: zod's error
    expect(path({ id: 1, method: 'tools/call' })).toBeUndefined();
    expect(path({ id: 1, method: 'ping', params: { other: 1 } })).toBeUndefined();
    expect(path({ id: 1, method: 'tools/list' })).toBeUndefined();
    await expect(path({ id: 1, method: 'tools/call', params: { ...q, _meta: { progressToken: 'p' } } })).resolves.toMatchObject({ content: [{ type: 'text' }] });
    await expect(path({ id: 1, method: 'ping', params: { _meta: { progressToken: 3 } } })).resolves.toEqual({});
  });

  it('a query call cancelled by the client gets no answer, as on the SDK path', async () => {
    const { ctx } = context();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const run = ctx.wire.run.bind(ctx.wire);
    (ctx.wire as { run: WireSession['run'] }).run = async (...a) => {
      await gate;
      return run(...a);
    };
    const input = new PassThrough();
    const output = new PassThrough();
    const server = createWardenMcpServer(ctx);
    await server.connect(new LineTransport(input, output, createFastPath(ctx)));
    const lines: JSONRPCMessage[] = [];
    output.on('data', (c: Buffer) => lines.push(...c.toString().split('\n').filter(Boolean).map((l) => JSON.parse(l) as JSONRPCMessage)));
    const send = (m: unknown): boolean => input.write(JSON.stringify(m) + '\n');
    send({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'query', arguments: { sql: 'SELECT 1' } } });
    send({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'query', arguments: { sql: 'SELECT 2' } } });
    send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 1, reason: 'changed my mind' } });
    release();
    await new Promise((r) => setTimeout(r, 50));
    expect(lines.map((l) => (l as { id: unknown }).id)).toEqual([2]);
  });
});

describe("Warden's stdio transport", () => {
  async function serve(): Promise<{ input: PassThrough; output: PassThrough; answers: () => Promise<Record<string, unknown>[]>; transport: Transport }> {
    const { ctx } = context();
    const input = new PassThrough();
    const output = new PassThrough();
    const transport = new LineTransport(input, output, createFastPath(ctx), 1024);
    await createWardenMcpServer(ctx).connect(transport);
    let text = '';
    output.on('data', (c: Buffer) => (text += c.toString()));
    const answers = async (): Promise<Record<string, unknown>[]> => {
      await new Promise((r) => setTimeout(r, 30));
      const out = text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
      text = '';
      return out;
    };
    return { input, output, answers, transport };
  }

  it('answers malformed input with JSON-RPC errors and keeps serving', async () => {
    const { input, answers } = await serve();
    input.write('this is not json\n');
    input.write('{"jsonrpc":"2.0","id":3,\n');
    input.write('[{"jsonrpc":"2.0","id":4,"method":"ping"}]\n');
    input.write('{"jsonrpc":"1.0","id":5,"method":"ping"}\n');
    input.write('{"jsonrpc":"2.0","id":{"x":1},"method":"ping"}\n');
    input.write('{"jsonrpc":"2.0","id":6,"method":"ping","params":[1]}\n');
    input.write('\n  \r\n');
    input.write('{"jsonrpc":"2.0","id":7,"method":"no/such/method"}\n');
    input.write('{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":5}}\n');
    input.write('{"jsonrpc":"2.0","id":9,"method":"ping"}\r\n');
    const a = await answers();
    // The transport's own answers, at once and in order.
    expect(a.slice(0, 6)).toEqual([
      { jsonrpc: '2.0', id: null, error: { code: -32700, message: expect.stringMatching(/^Parse error/) } },
      { jsonrpc: '2.0', id: null, error: { code: -32700, message: expect.stringMatching(/^Parse error/) } },
      { jsonrpc: '2.0', id: null, error: { code: -32600, message: expect.stringMatching(/batches are not taken/) } },
      { jsonrpc: '2.0', id: 5, error: { code: -32600, message: expect.stringMatching(/not a JSON-RPC 2.0 message/) } },
      { jsonrpc: '2.0', id: null, error: { code: -32600, message: expect.stringMatching(/not a JSON-RPC 2.0 message/) } },
      { jsonrpc: '2.0', id: 6, error: { code: -32600, message: expect.stringMatching(/not a JSON-RPC 2.0 message/) } },
    ]);
    // The SDK's answers to well-formed messages it refuses, and the ping after them all.
    const byId = (id: number): Record<string, unknown> | undefined => a.slice(6).find((m) => m.id === id);
    expect(a.length).toBe(9);
    expect(byId(7)).toEqual({ jsonrpc: '2.0', id: 7, error: { code: -32601, message: 'Method not found' } });
    expect(byId(8)).toMatchObject({ jsonrpc: '2.0', id: 8, error: { message: expect.stringMatching(/expected string/) } });
    expect(byId(9)).toEqual({ jsonrpc: '2.0', id: 9, result: {} });
  });

  it('reads messages split across chunks (also inside a UTF-8 character) and several in one chunk', async () => {
    const { input, answers } = await serve();
    const call = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'query', arguments: { sql: "SELECT 'é✓'" } } }) + '\n');
    const cut = call.indexOf(Buffer.from('✓')) + 1; // inside the three bytes of ✓
    input.write(call.subarray(0, 5));
    input.write(call.subarray(5, cut));
    input.write(Buffer.concat([call.subarray(cut), Buffer.from('{"jsonrpc":"2.0","id":2,"method":"ping"}\n{"jsonrpc":"2.0","id":3,"method":"ping"}\n')]));
    const a = await answers();
    expect(a.map((m) => m.id).sort()).toEqual([1, 2, 3]);
    const answer = a.find((m) => m.id === 1) as { result: { content: { text: string }[] } };
    expect(answer.result.content[0]!.text).toContain('a \\"quoted\\" ✓'); // the canned row, through the whole line
  });

  it('drops a message longer than the limit, answers Invalid Request, and reads the next one', async () => {
    const { input, answers } = await serve();
    const long = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'query', arguments: { sql: 'x'.repeat(3000) } } });
    for (let i = 0; i < long.length; i += 500) input.write(long.slice(i, i + 500));
    input.write('\n{"jsonrpc":"2.0","id":2,"method":"ping"}\n');
    expect(await answers()).toEqual([
      { jsonrpc: '2.0', id: null, error: { code: -32600, message: expect.stringMatching(/longer than 1024 bytes/) } },
      { jsonrpc: '2.0', id: 2, result: {} },
    ]);
  });

  it('a write error on its output (the client went away) closes the transport instead of throwing', async () => {
    const { output, transport } = await serve();
    let closed = false;
    const onclose = transport.onclose;
    transport.onclose = () => {
      closed = true;
      onclose?.();
    };
    output.emit('error', Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
    expect(closed).toBe(true);
    await transport.send({ jsonrpc: '2.0', id: 1, result: {} }); // after close: dropped, no throw
  });

  it('works with the SDK client as the in-memory pair does (initialize, list, resources)', async () => {
    const { client } = await connect(true);
    const tools = (await client.listTools()).tools.map((t) => t.name);
    expect(tools).toContain('query');
    const query = (await client.listTools()).tools.find((t) => t.name === 'query')!;
    expect(Object.keys(query.inputSchema.properties ?? {})).toEqual(['sql', 'database', 'params', 'reason', 'ticket', 'max_rows']);
    expect(query.inputSchema.required).toEqual(['sql']);
    expect((await client.listResourceTemplates()).resourceTemplates.map((t) => t.name).sort()).toEqual(['table', 'tables']);
  });
});
