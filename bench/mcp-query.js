// What one MCP `query` call costs compared with the same statement sent on the wire.
// One private PostgreSQL cluster, one Warden (in this process, with the admin listener) and an
// agent token; the same parameterized statement (a 1-row and a 100-row SELECT) is run N times,
// one after the other, by:
//   wire   node-postgres logged in to Warden with the token (the path the MCP server itself uses)
//   stdio  the MCP SDK client → `warden mcp` (a child process) → Warden
//   http   the MCP SDK client → POST /mcp on the admin listener → Warden
// and the median and p95 latency per call are printed (ms). Needs `npm run build`.
// Usage: node bench/mcp-query.js   (BENCH_MCP_N, default 300)
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
import { startWarden } from '../dist/app.js';
import { silentLogger } from '../dist/log/logger.js';
import { openStateStore } from '../dist/store/open.js';
import { issueToken } from '../dist/governance/tokens.js';

const N = Number(process.env.BENCH_MCP_N ?? 300);
const WARM = 30;
const BIN = path.resolve(import.meta.dirname, '../bin/warden.js');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-bench-mcp-'));
const cluster = await startPgCluster();
await cluster.query("CREATE ROLE warden_svc LOGIN PASSWORD 'svc-bench'");
await cluster.query('CREATE DATABASE app OWNER warden_svc');
await cluster.query('CREATE TABLE t (id int PRIMARY KEY, name text, amount numeric)', 'app');
await cluster.query("INSERT INTO t SELECT g, 'name ' || g, g * 1.5 FROM generate_series(1, 10000) g", 'app');
await cluster.query('GRANT ALL ON t TO warden_svc', 'app');
const yaml = `version: 1
listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
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
const warden = await startWarden({ config, log: silentLogger() });
const state = await openStateStore({ kind: 'sqlite', location: path.join(dir, 'state.db') });
const { token } = await issueToken(state, config.identities[0], { ttlMs: 3_600_000, onBehalfOf: 'bench-user' });
await state.close();

const ONE = 'SELECT id, name, amount FROM t WHERE id = $1';
const HUNDRED = 'SELECT id, name, amount FROM t WHERE id > $1 ORDER BY id LIMIT 100';

async function time(label, fn) {
  for (let i = 0; i < WARM; i++) await fn(i);
  const ms = [];
  for (let i = 0; i < N; i++) {
    const t0 = performance.now();
    await fn(i);
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  const r = { median: ms[Math.floor(N / 2)], p95: ms[Math.floor(N * 0.95)] };
  console.log(`${label.padEnd(22)} median ${r.median.toFixed(3)} ms   p95 ${r.p95.toFixed(3)} ms`);
  return r;
}

const wire = new pg.Client({ host: '127.0.0.1', port: warden.port, user: 'agent', password: token, database: 'app', types: { getTypeParser: () => (v) => v } });
await wire.connect();
const results = {};
results.wire1 = await time('wire 1 row', (i) => wire.query({ text: ONE, values: [1 + (i % 9000)], rowMode: 'array' }));
results.wire100 = await time('wire 100 rows', (i) => wire.query({ text: HUNDRED, values: [i % 9000], rowMode: 'array' }));
await wire.end();

async function viaMcp(label, transport) {
  const c = new Client({ name: 'bench', version: '1' });
  await c.connect(transport);
  const call = async (sql, p) => {
    const r = await c.callTool({ name: 'query', arguments: { sql, params: [p], max_rows: 100 } });
    if (r.isError) throw new Error(r.content[0].text);
  };
  results[`${label}1`] = await time(`${label} 1 row`, (i) => call(ONE, 1 + (i % 9000)));
  results[`${label}100`] = await time(`${label} 100 rows`, (i) => call(HUNDRED, i % 9000));
  await c.close();
}
await viaMcp('stdio', new StdioClientTransport({ command: process.execPath, args: [BIN, 'mcp', '--config', configFile, '--port', String(warden.port)], env: { ...process.env, WARDEN_TOKEN: token } }));
await viaMcp('http', new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${warden.admin.port}/mcp`), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));

for (const k of ['stdio', 'http'])
  for (const n of ['1', '100'])
    console.log(`${k} ${n} row(s): +${(results[k + n].median - results['wire' + n].median).toFixed(3)} ms over the wire (median)`);
await warden.close();
await cluster.stop();
fs.rmSync(dir, { recursive: true, force: true });
