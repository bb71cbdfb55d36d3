// What one MCP `query` call costs compared with the same statement sent on the wire, measured in
// one run. One private PostgreSQL cluster, one Warden (`warden start`: its own process, with the
// admin listener, as deployed; the clients run in this process) and an agent token. The same
// parameterized statement (a 1-row and a 100-row SELECT) is run N times, one after the other, by:
//   wire   node-postgres logged in to Warden with the token (the path the MCP server itself uses)
//   session  the MCP server's WireSession (src/mcp/wire-session.ts) in this process: node-postgres plus its queue,
//          hold detection and result sets (session − wire: that shell's own cost)
//   stdio  the MCP SDK client → `warden mcp` (a child process) → Warden
//   http   the MCP SDK client → POST /mcp on the admin listener → Warden
// and, to split the MCP side's cost:
//   ping       the SDK client's `ping` over the same transport (an empty JSON-RPC round trip:
//              the transport's floor, no tool, no statement)
//   httpFloor  fetch GET /healthz on the admin listener (HTTP itself: no MCP)
//   httpRawPing  the ping POSTed to /mcp by plain fetch (the server's share, without the SDK client)
//   json       encoding the statement's result alone as the tool answers it (the result object →
//              JSON text → the JSON-RPC response line), and decoding it as the client does
//   layer      the MCP server alone in this process (PassThrough streams, a canned result): its CPU per ping
//              and per query call, through the SDK's stdio transport and dispatch and through Warden's own
//              transport and fast path (see layerCost)
// For each: the median latency of N calls, and the CPU time per call of each process (this one,
// Warden's, `warden mcp`'s), read from /proc (all threads) — CPU is far less disturbed than
// latency by other work on a shared machine. BENCH_MCP_ROUNDS rounds (default 3); the summary is
// the median of the rounds. Needs `npm run build`.
// Usage: node bench/mcp-query.js   (BENCH_MCP_N, default 300; BENCH_MCP_ROUNDS, default 3;
//        BENCH_MCP_WARM, calls before each measure, default 1000;
//        BENCH_MCP_ONLY=stdio|http|rawping to run one transport (rawping: only httpFloor and
//        httpRawPing, to profile Warden's side), or a list such as wire,stdio (the wire and that
//        transport: enough for the MCP − wire figures); BENCH_MCP_WARDEN_ARGS and BENCH_MCP_MCP_ARGS:
//        node options for Warden's and `warden mcp`'s processes, e.g. "--cpu-prof --cpu-prof-dir=DIR")
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startPgCluster } from '../dist/embedded/pg-cluster.js';
import { parseConfig } from '../dist/config/load.js';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { freePort } from '../dist/embedded/free-port.js';
import { openStateStore } from '../dist/store/open.js';
import { issueToken } from '../dist/governance/tokens.js';
import { queryResult } from '../dist/mcp/server.js';
import { WireSession } from '../dist/mcp/wire-session.js';

const N = Number(process.env.BENCH_MCP_N ?? 300);
const ROUNDS = Number(process.env.BENCH_MCP_ROUNDS ?? 3);
const ONLY_LIST = (process.env.BENCH_MCP_ONLY ?? '').split(',').filter(Boolean);
const ONLY = ONLY_LIST.length === 1 ? ONLY_LIST[0] : undefined;
/** Whether a path is measured: all by default; BENCH_MCP_ONLY names one (alone: without the wire) or a list. */
const runs = (k) => ONLY_LIST.length === 0 || ONLY_LIST.includes(k) || (ONLY === 'rawping' && k === 'http');
// Calls before each measure. A process's first few thousand calls still grow its heap (page faults) and compile
// (V8's background threads count in the CPU figures): `warden mcp` used twice the CPU per call in its first
// 2,000 calls than later. 1,000 by default (it was 30).
const WARM = Number(process.env.BENCH_MCP_WARM ?? 1000);
const BIN = path.resolve(import.meta.dirname, '../bin/warden.js');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-bench-mcp-'));
const cluster = await startPgCluster();
await cluster.query("CREATE ROLE warden_svc LOGIN PASSWORD 'svc-bench'");
await cluster.query('CREATE DATABASE app OWNER warden_svc');
await cluster.query('CREATE TABLE t (id int PRIMARY KEY, name text, amount numeric)', 'app');
await cluster.query("INSERT INTO t SELECT g, 'name ' || g, g * 1.5 FROM generate_series(1, 10000) g", 'app');
await cluster.query('GRANT ALL ON t TO warden_svc', 'app');
const [listenPort, adminPort] = [await freePort(), await freePort()];
const yaml = `version: 1
listen: { host: 127.0.0.1, port: ${listenPort} }
admin: { host: 127.0.0.1, port: ${adminPort} }
databases:
  app: { upstream: "postgres://warden_svc:svc-bench@127.0.0.1:${cluster.port}/app" }
identities:
  - { name: agent, kind: agent, password: agent-bench-pw }
state: { store: "sqlite:${path.join(dir, 'state.db')}" }
rules:
  - { name: no-destructive-ddl, match: { statement: [drop, truncate] }, action: deny }
`;
const configFile = path.join(dir, 'warden.yaml');
fs.writeFileSync(configFile, yaml);
const config = parseConfig(yaml, configFile, {});
// BENCH_MCP_WARDEN_ARGS: extra node options for Warden's process (e.g. --cpu-prof --cpu-prof-dir=DIR).
const wardenProc = spawn(process.execPath, [...(process.env.BENCH_MCP_WARDEN_ARGS ?? '').split(' ').filter(Boolean), BIN, 'start', '--config', configFile, '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'inherit'] });
for (let i = 0; ; i++) {
  const up = await new Promise((r) => net.connect({ host: '127.0.0.1', port: adminPort }).on('connect', function () { this.destroy(); r(true); }).on('error', () => r(false)));
  if (up) break;
  if (i > 150) throw new Error('warden did not start');
  await new Promise((r) => setTimeout(r, 100));
}
const warden = { port: listenPort, admin: { port: adminPort } };
const state = await openStateStore({ kind: 'sqlite', location: path.join(dir, 'state.db') });
const { token } = await issueToken(state, config.identities[0], { ttlMs: 3_600_000, onBehalfOf: 'bench-user' });
await state.close();

const ONE = 'SELECT id, name, amount FROM t WHERE id = $1';
const HUNDRED = 'SELECT id, name, amount FROM t WHERE id > $1 ORDER BY id LIMIT 100';

/** CPU time (ms) a process has used, all its threads (Linux: /proc/PID/task/TID/schedstat, ns on CPU). */
function cpuMs(pid) {
  if (pid === undefined) return 0;
  let ns = 0;
  try {
    for (const t of fs.readdirSync(`/proc/${pid}/task`)) ns += Number(fs.readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]);
  } catch {
    return NaN;
  }
  return ns / 1e6;
}
/** The processes whose CPU a call uses: this one (the clients), Warden's, and `warden mcp`'s (stdio). */
const cpuNow = () => ({ client: cpuMs(process.pid), warden: cpuMs(wardenProc.pid), mcp: cpuMs(clients?.stdio?.benchTransport.pid ?? undefined) });

async function time(fn, n = N) {
  for (let i = 0; i < WARM; i++) await fn(i);
  const ms = [];
  const c0 = cpuNow();
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn(i);
    ms.push(performance.now() - t0);
  }
  const c1 = cpuNow();
  ms.sort((a, b) => a - b);
  const cpu = {};
  for (const k of Object.keys(c0)) cpu[k] = (c1[k] - c0[k]) / n;
  return { median: ms[Math.floor(n / 2)], p95: ms[Math.floor(n * 0.95)], cpu };
}

/** Encoding a result as the tool answers it, and decoding it as the client does: per call, in ms (median of batches). */
function jsonCost(sets) {
  const res = queryResult({ kind: 'result', sets, notices: [] });
  const once = () => JSON.stringify({ result: queryResult({ kind: 'result', sets, notices: [] }), jsonrpc: '2.0', id: 7 });
  const line = once();
  const batch = 200;
  const enc = [];
  const dec = [];
  for (let r = 0; r < 31; r++) {
    let t0 = performance.now();
    for (let i = 0; i < batch; i++) once();
    enc.push((performance.now() - t0) / batch);
    t0 = performance.now();
    for (let i = 0; i < batch; i++) JSON.parse(JSON.parse(line).result.content[0].text);
    dec.push((performance.now() - t0) / batch);
  }
  enc.sort((a, b) => a - b);
  dec.sort((a, b) => a - b);
  return { encode: enc[15], decode: dec[15], bytes: Buffer.byteLength(line), text: res.content[0].text.length };
}

const wire = new pg.Client({ host: '127.0.0.1', port: warden.port, user: 'agent', password: token, database: 'app', types: { getTypeParser: () => (v) => v } });
await wire.connect();
const session = new WireSession({ host: '127.0.0.1', port: warden.port, user: 'agent', password: token });
if (await session.login('app')) throw new Error('WireSession login failed');

// The result sets the tool encodes, as the wire returns them (text values, type names).
const sample = async (sql, p) => {
  const r = await wire.query({ text: sql, values: [p], rowMode: 'array' });
  return [{ command: r.command, rowCount: r.rowCount, columns: r.fields.map((f) => ({ name: f.name, type: f.dataTypeID === 23 ? 'integer' : f.dataTypeID === 1700 ? 'numeric' : 'text' })), rows: r.rows, truncated: false }];
};
const sets1 = await sample(ONE, 1);
const sets100 = await sample(HUNDRED, 0);
const json1 = jsonCost(sets1);
const json100 = jsonCost(sets100);

/**
 * The MCP layer alone, in this process: Warden's MCP server answering request lines through PassThrough
 * streams (no pipe, no other process), its statement's result canned (no wire). CPU per call (this process,
 * process.cpuUsage), median of 5 batches of 2,000, for a ping and for query calls of 1 and 100 rows:
 *   sdk     the SDK's StdioServerTransport and dispatch (zod for the message, the params, the arguments and
 *           the result), as `warden mcp` ran before its own transport;
 *   warden  Warden's stdio transport and fast path, as `warden mcp` runs now (skipped on a build without them).
 * Each includes this harness's own share (writing the request line, reading the answer line), the same for both.
 */
async function layerCost() {
  const { PassThrough } = await import('node:stream');
  const server = await import('../dist/mcp/server.js');
  const { StdioServerTransport } = await import('@modelcontextprotocol/sdk/server/stdio.js');
  let lean;
  try {
    lean = (await import('../dist/mcp/stdio-transport.js')).LineTransport;
  } catch {
    lean = undefined;
  }
  const outcome = (sets) => ({ kind: 'result', sets, notices: [] });
  const wire = { run: async (_db, _sql, params) => outcome(params[0] === 0 ? sets100 : sets1), status: () => ({ known: false }), handedOut: () => false };
  const ctx = { config: () => config, caller: { user: 'agent', identity: config.identities[0], credential: 'token' }, wire };
  const variants = { sdk: (i, o) => new StdioServerTransport(i, o) };
  if (lean && server.createFastPath) variants.warden = (i, o) => new lean(i, o, server.createFastPath(ctx));
  const out = {};
  for (const [name, make] of Object.entries(variants)) {
    const input = new PassThrough();
    const output = new PassThrough();
    const mcp = server.createWardenMcpServer(ctx);
    await mcp.connect(make(input, output));
    let text = '';
    let waiter;
    output.on('data', (c) => {
      text += c;
      const nl = text.indexOf('\n');
      if (nl !== -1) {
        const line = text.slice(0, nl);
        text = text.slice(nl + 1);
        waiter(line);
      }
    });
    let id = 0;
    const request = (method, params) =>
      new Promise((resolve) => {
        waiter = resolve;
        input.write(JSON.stringify({ jsonrpc: '2.0', id: ++id, method, ...(params ? { params } : {}) }) + '\n');
      });
    await request('initialize', { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'bench', version: '1' } });
    input.write('{"jsonrpc":"2.0","method":"notifications/initialized"}\n');
    const perCall = async (f) => {
      for (let i = 0; i < 2000; i++) await f(i);
      const batches = [];
      for (let b = 0; b < 5; b++) {
        const c0 = process.cpuUsage();
        for (let i = 0; i < 2000; i++) await f(i);
        const c = process.cpuUsage(c0);
        batches.push((c.user + c.system) / 1000 / 2000);
      }
      return batches.sort((a, b) => a - b)[2];
    };
    const query = (p) => request('tools/call', { name: 'query', arguments: { sql: p === 0 ? HUNDRED : ONE, params: [p], max_rows: 100 } });
    const check = JSON.parse(await query(1));
    if (!check.result?.content?.[0]?.text?.includes('"status":"ok"')) throw new Error(`layer bench: ${JSON.stringify(check)}`);
    out[name] = { ping: await perCall(() => request('ping')), q1: await perCall((i) => query(1 + i)), q100: await perCall(() => query(0)) };
    await mcp.close();
  }
  return out;
}
const layer = await layerCost();

async function mcpClient(kind) {
  const transport =
    kind === 'stdio'
      ? new StdioClientTransport({ command: process.execPath, args: [...(process.env.BENCH_MCP_MCP_ARGS ?? '').split(' ').filter(Boolean), BIN, 'mcp', '--config', configFile, '--port', String(warden.port)], env: { ...process.env, WARDEN_TOKEN: token, WARDEN_IDENTITY: 'agent' } })
      : new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${warden.admin.port}/mcp`), { requestInit: { headers: { authorization: `Bearer ${token}` } } });
  const c = new Client({ name: 'bench', version: '1' });
  await c.connect(transport);
  c.benchTransport = transport;
  return c;
}
var clients = {};
for (const k of ['stdio', 'http']) if (runs(k)) clients[k] = await mcpClient(k);

async function round() {
  const r = {};
  if (ONLY_LIST.length === 0 || ONLY_LIST.includes('wire')) {
    r.wire1 = await time((i) => wire.query({ text: ONE, values: [1 + (i % 9000)], rowMode: 'array' }));
    r.wire100 = await time((i) => wire.query({ text: HUNDRED, values: [i % 9000], rowMode: 'array' }));
    // The MCP server's own client (WireSession: the queue, hold detection, result sets) in this process: its cost over the bare client.
    r.session1 = await time((i) => session.run('app', ONE, [1 + (i % 9000)], 100, WireSession.keyOf('app', ONE, [1 + (i % 9000)])));
    r.session100 = await time((i) => session.run('app', HUNDRED, [i % 9000], 100, WireSession.keyOf('app', HUNDRED, [i % 9000])));
  }
  // The HTTP floor: fetch's round trip to the admin listener (GET /healthz: fastify, no MCP, no statement).
  if (clients.http) {
    r.httpFloor = await time(async () => (await fetch(`http://127.0.0.1:${warden.admin.port}/healthz`)).arrayBuffer());
    // The same ping as the SDK client sends, by plain fetch (the server's share without the SDK client's).
    const headers = {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-session-id': clients.http.benchTransport.sessionId,
      'mcp-protocol-version': clients.http.benchTransport.protocolVersion ?? '2025-06-18',
    };
    r.httpRawPing = await time(async (i) => {
      const res = await fetch(`http://127.0.0.1:${warden.admin.port}/mcp`, { method: 'POST', headers, body: JSON.stringify({ jsonrpc: '2.0', id: 1e6 + i, method: 'ping' }) });
      const j = await res.json();
      if (!j.result) throw new Error(JSON.stringify(j));
    });
  }
  if (ONLY === 'rawping') return r;
  for (const [k, c] of Object.entries(clients)) {
    const call = async (sql, p) => {
      const x = await c.callTool({ name: 'query', arguments: { sql, params: [p], max_rows: 100 } });
      if (x.isError) throw new Error(x.content[0].text);
    };
    r[`${k}Ping`] = await time(() => c.ping());
    r[`${k}1`] = await time((i) => call(ONE, 1 + (i % 9000)));
    r[`${k}100`] = await time((i) => call(HUNDRED, i % 9000));
  }
  return r;
}

const f = (x) => (x === undefined || Number.isNaN(x) ? '   -  ' : x.toFixed(3));
const rounds = [];
for (let i = 0; i < ROUNDS; i++) {
  const r = await round();
  rounds.push(r);
  console.log(`round ${i + 1}: ` + Object.entries(r).map(([k, v]) => `${k} ${f(v.median)}`).join('  '));
}
const medianOf = (v) => {
  v = v.filter((x) => x !== undefined && !Number.isNaN(x)).sort((a, b) => a - b);
  return v.length ? v[Math.floor(v.length / 2)] : undefined;
};
const med = (k) => medianOf(rounds.map((r) => r[k]?.median));
const cpu = (k, part) => medianOf(rounds.map((r) => r[k]?.cpu[part]));
const cpuTotal = (k) => medianOf(rounds.map((r) => (r[k] ? r[k].cpu.client + r[k].cpu.warden + (r[k].cpu.mcp || 0) : undefined)));
console.log(`\nmedian of ${ROUNDS} rounds of ${N} calls each, ms per call (load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')})`);
console.log('measure        latency   CPU: client  warden  warden-mcp  total');
for (const k of Object.keys(rounds[0])) console.log(`${k.padEnd(14)} ${f(med(k)).padStart(7)}        ${f(cpu(k, 'client'))}   ${f(cpu(k, 'warden'))}   ${f(cpu(k, 'mcp'))}      ${f(cpuTotal(k))}`);
console.log(`json of the result (encode the tool answer and its JSON-RPC line; decode both): 1 row ${json1.bytes} B encode ${f(json1.encode)} decode ${f(json1.decode)}; 100 rows ${json100.bytes} B encode ${f(json100.encode)} decode ${f(json100.decode)}`);
for (const n of ['1', '100']) {
  const j = n === '1' ? json1 : json100;
  for (const k of Object.keys(clients)) {
    console.log(
      `${n.padStart(3)} row(s) ${k.padEnd(5)}: latency MCP − wire ${f(med(k + n) - med('wire' + n))} (ping alone ${f(med(k + 'Ping'))});  CPU MCP − wire ${f(cpuTotal(k + n) - cpuTotal('wire' + n))} (ping alone ${f(cpuTotal(k + 'Ping'))}; MCP − wire − ping ${f(cpuTotal(k + n) - cpuTotal('wire' + n) - cpuTotal(k + 'Ping'))});  JSON encode ${f(j.encode)} + decode ${f(j.decode)}`,
    );
  }
}
// The MCP server's own CPU per call in `warden mcp` (stdio): the call's CPU there, less the ping's (the transport's
// share, read and write), less what the wire client spent on the same statement (node-postgres: the MCP server does
// that work too). What is left is the MCP layer's own work — dispatch, validation, the tool, the JSON — to be set
// against the JSON encoding alone.
if (clients.stdio && rounds[0].wire1) {
  for (const n of ['1', '100']) {
    const j = n === '1' ? json1 : json100;
    const own = cpu('stdio' + n, 'mcp') - cpu('stdioPing', 'mcp') - cpu('wire' + n, 'client');
    console.log(`${n.padStart(3)} row(s) warden mcp's own CPU per call: query ${f(cpu('stdio' + n, 'mcp'))} − ping ${f(cpu('stdioPing', 'mcp'))} − wire client ${f(cpu('wire' + n, 'client'))} = ${f(own)}  (JSON encode ${f(j.encode)})`);
  }
}
console.log('\nthe MCP layer alone (in this process, canned result, no pipe): CPU µs per call; query − ping against the JSON encoding');
for (const [name, l] of Object.entries(layer)) {
  const us = (x) => (x * 1000).toFixed(1).padStart(6);
  console.log(`${name.padEnd(7)} ping ${us(l.ping)}  query 1 row ${us(l.q1)} (− ping ${us(l.q1 - l.ping)}, JSON ${us(json1.encode)})  query 100 rows ${us(l.q100)} (− ping ${us(l.q100 - l.ping)}, JSON ${us(json100.encode)})`);
}
for (const c of Object.values(clients)) await c.close();
await wire.end();
await session.close();
wardenProc.kill('SIGINT');
await new Promise((r) => wardenProc.once('exit', r));
await cluster.stop();
fs.rmSync(dir, { recursive: true, force: true });
