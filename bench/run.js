#!/usr/bin/env node
// Warden benchmark: the same pgbench workload against the same database reached three ways,
// direct, through PgBouncer (session mode) and through Warden, in ONE run. See bench/README.md.
//
//   npm run bench                 # build, then the full run
//   node bench/run.js --quick     # 5 s per run, 1 round (smoke test)
//
// Plain ESM JavaScript on purpose: `node bench/run.js` runs after `npm run build`, using the
// compiled dist/embedded/pg-cluster.js for the private PostgreSQL cluster.

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, fdatasyncSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const RESULTS_DIR = path.join(ROOT, 'bench', 'results');
const argv = process.argv.slice(2);

if (argv.includes('--help') || argv.includes('-h')) {
  console.log(`usage: node bench/run.js [--quick]
  --quick   5 s per run, 1 round (smoke test)
env: BENCH_SECONDS (15) BENCH_ROUNDS (2) BENCH_CLIENTS (8) BENCH_THREADS (2 if clients even, else 1)
     BENCH_SCALE (10) BENCH_TARGETS (comma list, default all but the node_relay references)
     BENCH_CASES (comma list, default all) BENCH_WARDEN_NODE_FLAGS (extra node flags for Warden)
     BENCH_BASE_ROOT (another built checkout: adds <target>_base targets run from it)
     BENCH_BASE_TARGETS (comma list, default warden,warden_rules)`);
  process.exit(0);
}

/* ------------------------------------------------------------------------------------------ */
/* Configuration                                                                               */
/* ------------------------------------------------------------------------------------------ */

function envInt(name, dflt, min = 1) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) {
    console.error(`bench: ${name} must be an integer >= ${min} (got ${JSON.stringify(raw)})`);
    process.exit(2);
  }
  return n;
}

function envList(name) {
  const raw = process.env[name];
  if (!raw) return undefined;
  return raw.split(',').map((s) => s.trim()).filter(Boolean);
}

const quick = argv.includes('--quick');
const clients = envInt('BENCH_CLIENTS', 8);
const config = {
  quick,
  seconds: quick ? 5 : envInt('BENCH_SECONDS', 15),
  rounds: quick ? 1 : envInt('BENCH_ROUNDS', 2),
  clients,
  threads: envInt('BENCH_THREADS', clients % 2 === 0 ? 2 : 1),
  scale: envInt('BENCH_SCALE', 10),
};
if (config.clients % config.threads !== 0) {
  console.error(`bench: BENCH_CLIENTS (${config.clients}) must be a multiple of BENCH_THREADS (${config.threads})`);
  process.exit(2);
}

/** Secrets: generated here, passed to pgbench via PGPASSWORD only, and redacted from any output. */
const secrets = {
  svcPassword: randomBytes(16).toString('hex'), // warden_svc, the upstream role (direct and PgBouncer log in as it)
  wardenPassword: randomBytes(16).toString('hex'), // identity `bencher` at Warden
};
function redact(s) {
  let out = String(s);
  for (const v of Object.values(secrets)) if (v) out = out.split(v).join('***');
  return out;
}

const DB = 'bench';
const SVC_ROLE = 'warden_svc';
const WARDEN_IDENTITY = 'bencher';
/** Extra node flags for Warden's process (BENCH_WARDEN_NODE_FLAGS, space-separated), for experiments such as --single-threaded-gc. */
const WARDEN_NODE_FLAGS = (process.env.BENCH_WARDEN_NODE_FLAGS ?? '').split(/\s+/).filter(Boolean);
const SCRIPTS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'scripts');

/* ------------------------------------------------------------------------------------------ */
/* Cases and targets: extend these lists to add workloads or proxies/configurations            */
/* ------------------------------------------------------------------------------------------ */

/**
 * A case is one pgbench workload. `args` are extra pgbench options (e.g. `-S`, `-M extended`,
 * `-f file`); the common ones (-n -T -c -j, connection) are added by runPgbench().
 * `statements` is how many statements pgbench sends per transaction of the case (Warden's CPU
 * per statement divides by it): -S sends one SELECT; the built-in TPC-B-like script sends BEGIN,
 * three UPDATEs, a SELECT, an INSERT and END; a -f script is counted by scriptStatements().
 */
const cases = [
  { name: 'select_only', description: 'built-in select-only script, simple protocol', args: ['-S', '-M', 'simple'], statements: 1 },
  { name: 'select_only_extended', description: 'built-in select-only script, extended protocol', args: ['-S', '-M', 'extended'], statements: 1 },
  { name: 'tpcb', description: 'built-in TPC-B-like script (BEGIN, 5 statements, END), simple protocol', args: ['-M', 'simple'], statements: 7 },
  // Ten rows of four columns per statement: with `warden_mask`, `filler` (char(84)) is a
  // sensitive column, so every row has a masked cell (compare with `warden`, unmasked).
  { name: 'select_rows', description: '10 rows × 4 columns per statement (bench/scripts/select_rows.sql), extended protocol', args: ['-M', 'extended', '-f', path.join(SCRIPTS_DIR, 'select_rows.sql')], statements: scriptStatements(path.join(SCRIPTS_DIR, 'select_rows.sql')) },
];

/** SQL commands in a pgbench script: `;`-terminated text outside meta-command (`\`) lines and comments. */
function scriptStatements(file) {
  let n = 0;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const l = line.replace(/--.*$/, '').trim();
    if (l === '' || l.startsWith('\\')) continue;
    n += (l.match(/;/g) ?? []).length;
  }
  return Math.max(n, 1);
}

/**
 * A target is one way to reach the `bench` database. `start(ctx)` returns a connection
 * `{ host, port, user, password, stop() }`, or `{ skip: 'reason' }`; a throw marks the target as
 * failed (its runs are reported as errors and the bench exits non-zero).
 * `baseline: true` targets are what others are compared with; the others get ratios on the
 * last output line.
 */
const targets = [
  { name: 'direct', baseline: true, description: 'straight to PostgreSQL over TCP', start: startDirect },
  { name: 'pgbouncer', baseline: true, description: 'PgBouncer, pool_mode=session', start: startPgBouncer },
  // References for a Node.js proxy, run only when named in BENCH_TARGETS (see bench/README.md).
  { name: 'node_relay', baseline: false, optIn: true, description: 'a bare Node.js socket.pipe() relay, no framing (bench/node-relay.js)', start: (ctx) => startNodeRelay(ctx, 'pipe') },
  { name: 'node_relay_onread', baseline: false, optIn: true, description: "a bare Node.js relay reading like Warden's (net onread), no framing", start: (ctx) => startNodeRelay(ctx, 'onread') },
  { name: 'node_relay_native', baseline: false, optIn: true, description: "a bare relay through Warden's native socket I/O, a JavaScript call per read", start: (ctx) => startNodeRelay(ctx, 'native') },
  wardenTarget('warden', 'Warden, no rules (every statement still analysed: session safety)', {}),
  // A realistic rule set (the product spec's): deny destructive DDL, agents read-only, billing
  // writes need approval, mask PII for everyone but DBAs. pgbench's statements match the mask
  // rule but touch no sensitive column, so they run; every statement is analysed and decided.
  wardenTarget('warden_rules', 'Warden with a realistic rule set', {
    sensitive: {
      columns: {
        'public.customers.email': 'email',
        'public.customers.ssn': 'ssn',
        'billing.*.card_number': 'credit_card',
      },
    },
    rules: [
      { name: 'no-destructive-ddl', match: { statement: ['drop', 'truncate'] }, action: 'deny', reason: 'Destructive DDL is not run through Warden' },
      { name: 'agents-read-only', match: { kind: 'agent', statement: ['write', 'ddl'] }, action: 'deny' },
      { name: 'billing-writes-need-approval', match: { statement: ['write'], tables: ['billing.*'] }, action: 'approve', approvers: { groups: ['dba'], count: 1 } },
      { name: 'mask-pii-except-dba', match: { not: { groups: ['dba'] } }, action: 'mask' },
    ],
  }),
  // Masking: pgbench_accounts.filler is classified sensitive and masked (fake, type-preserving)
  // for the bencher; every statement goes through the masking verdict and the row masker.
  wardenTarget('warden_mask', 'Warden masking a sensitive column (filler) for the bencher', {
    sensitive: { columns: { 'public.pgbench_accounts.filler': 'name' }, key: 'bench-mask-key-0123456789' },
    rules: [{ name: 'mask-for-everyone', match: { identity: [WARDEN_IDENTITY] }, action: 'mask' }],
  }),
  // Limits (docs/limits.md). `warden_limits`: the spec's agent limits configured, none matching
  // the bencher (a service): what configuring limits costs everyone else. `warden_limits_agent`:
  // the bencher is an agent bound by them (max_rows, max_bytes, and rates too high to trip),
  // so each statement is counted and its rows read whole. `warden_limits_estimate`: also
  // max_estimated_rows, one EXPLAIN per read.
  wardenTarget('warden_limits', 'Warden with agent limits configured, none matching the bencher', { limits: benchLimits('agent') }),
  wardenTarget('warden_limits_agent', 'Warden with agent limits binding the bencher (max_rows, max_bytes, rates)', () => ({
    identities: [{ name: WARDEN_IDENTITY, kind: 'agent', password: secrets.wardenPassword }],
    limits: benchLimits('agent'),
  })),
  { ...wardenTarget('warden_limits_estimate', 'Warden with agent limits binding the bencher, max_estimated_rows too (an EXPLAIN per read)', () => ({
    identities: [{ name: WARDEN_IDENTITY, kind: 'agent', password: secrets.wardenPassword }],
    limits: [...benchLimits('agent'), { name: 'bench-estimates', match: { kind: ['agent'] }, max_estimated_rows: 10000 }],
  })), optIn: true },
  // The audit log on (sqlite, the default store): every statement's record is durable (fsync'd
  // by the writer thread, group-committed) before the statement is forwarded. Compare with
  // `warden` (audit off) as ratios to direct.
  wardenTarget('warden_audit', 'Warden with the audit log (sqlite, write-ahead, on_failure: block)', (ctx) => ({
    audit: { store: `sqlite:${path.join(ctx.dir, 'audit.db')}`, on_failure: 'block' },
  })),
  // The same with `durability: os`: records reach the OS before statements run (survive a crash
  // of Warden, like kill -9) but are not fsync'd per group commit.
  wardenTarget('warden_audit_os', 'Warden with the audit log (sqlite, durability: os)', (ctx) => ({
    audit: { store: `sqlite:${path.join(ctx.dir, 'audit.db')}`, on_failure: 'block', durability: 'os' },
  })),
  wardenTarget('warden_audit_jsonl_os', 'Warden with the audit log (jsonl, durability: os)', (ctx) => ({
    audit: { store: `jsonl:${path.join(ctx.dir, 'audit.jsonl')}`, on_failure: 'block', durability: 'os' },
  })),
  // The JSONL store (one write + fdatasync per group commit).
  wardenTarget('warden_audit_jsonl', 'Warden with the audit log (jsonl)', (ctx) => ({
    audit: { store: `jsonl:${path.join(ctx.dir, 'audit.jsonl')}`, on_failure: 'block' },
  })),
  // More Warden configurations are added like this; the fragment is deep-merged into the base
  // warden.yaml (objects merge, arrays and scalars replace). It may also be a function
  // (ctx) => fragment, with ctx.dir a private temp dir.
];

// BENCH_BASE_ROOT=/path/to/another/built/checkout adds `<target>_base` for each Warden target
// named in BENCH_BASE_TARGETS (default: warden, warden_rules), run from that checkout in the same
// run: a change's cost is measured against the code before it, interleaved, on the same machine.
if (process.env.BENCH_BASE_ROOT) {
  const baseRoot = path.resolve(process.env.BENCH_BASE_ROOT);
  for (const name of envList('BENCH_BASE_TARGETS') ?? ['warden', 'warden_rules']) {
    const t = targets.find((x) => x.name === name && x.fragment !== undefined);
    if (!t) {
      console.error(`bench: BENCH_BASE_TARGETS: ${name} is not a Warden target`);
      process.exit(2);
    }
    targets.push(wardenTarget(`${name}_base`, `${t.description}, from ${baseRoot}`, t.fragment, baseRoot));
  }
}

/* ------------------------------------------------------------------------------------------ */
/* Process helpers                                                                             */
/* ------------------------------------------------------------------------------------------ */

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
/** Long-running children started with detached: true (own process group), killed on exit. */
const children = new Set();
let currentPgbench;

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

function median(xs) {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

function postgresIds() {
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  return { uid, gid };
}

function which(cmd, extra = []) {
  for (const dir of [...(process.env.PATH ?? '').split(path.delimiter), ...extra]) {
    if (!dir) continue;
    const p = path.join(dir, cmd);
    if (existsSync(p)) return p;
  }
  return undefined;
}

/** Run a command to completion; resolve { code, stdout, stderr } (never rejects on exit code). */
function runCapture(cmd, args, { env, timeoutMs = 120_000, cwd } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      stderr += `\n[bench] killed after ${timeoutMs} ms`;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), signal, stdout, stderr, child });
    });
    if (cmd.endsWith('pgbench')) currentPgbench = child;
  });
}

/** Spawn a long-running server in its own process group with stdout+stderr to `logFile`. */
function spawnServer(name, cmd, args, { cwd, logFile, env } = {}) {
  const fd = openSync(logFile, 'a');
  let child;
  try {
    child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', fd, fd], detached: true });
  } finally {
    closeSync(fd);
  }
  const entry = { name, child, exited: false, code: null, signal: null };
  children.add(entry);
  child.on('exit', (code, signal) => {
    entry.exited = true;
    entry.code = code;
    entry.signal = signal;
  });
  child.on('error', (err) => {
    entry.exited = true;
    entry.error = err;
  });
  return entry;
}

async function stopServer(entry) {
  if (!entry) return;
  children.delete(entry);
  if (entry.exited || !entry.child.pid) return;
  try {
    process.kill(-entry.child.pid, 'SIGTERM');
  } catch {
    return;
  }
  for (let i = 0; i < 50 && !entry.exited; i++) await sleep(100);
  if (!entry.exited) {
    try {
      process.kill(-entry.child.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

function canConnect(host, port) {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.setTimeout(1000);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('timeout', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(false));
  });
}

/** The last `maxLines` lines (at most `maxChars`) of a log file, or '' if unreadable. */
async function tail(file, maxLines = 20, maxChars = 3000) {
  try {
    let s = (await readFile(file, 'utf8')).trimEnd();
    const lines = s.split('\n');
    if (lines.length > maxLines) s = '…\n' + lines.slice(-maxLines).join('\n');
    return s.length > maxChars ? '…' + s.slice(-maxChars) : s;
  } catch {
    return '';
  }
}

/** Wait until host:port accepts TCP; fail early when the server process exits. */
async function waitForPort(entry, host, port, timeoutMs, logFile) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (entry.exited) {
      const how = entry.error ? String(entry.error.message) : `exit code ${entry.code}${entry.signal ? `, signal ${entry.signal}` : ''}`;
      const out = (await tail(logFile)).trim();
      throw new Error(`${entry.name} exited (${how}) before listening on ${host}:${port}${out ? `; its output:\n${indent(out)}` : ''}`);
    }
    if (await canConnect(host, port)) return;
    if (Date.now() > deadline) {
      const out = (await tail(logFile)).trim();
      throw new Error(`${entry.name} did not listen on ${host}:${port} within ${timeoutMs} ms${out ? `; its output:\n${indent(out)}` : ''}`);
    }
    await sleep(100);
  }
}

/** Spawn a server and wait until it listens on 127.0.0.1:port; stopped again if it does not. */
async function spawnListening(name, cmd, args, { cwd, logFile, port, timeoutMs }) {
  const entry = spawnServer(name, cmd, args, { cwd, logFile });
  try {
    await waitForPort(entry, '127.0.0.1', port, timeoutMs, logFile);
  } catch (err) {
    await stopServer(entry);
    throw err;
  }
  return entry;
}

function indent(s, pad = '    ') {
  return s
    .split('\n')
    .map((l) => pad + l)
    .join('\n');
}

/* ------------------------------------------------------------------------------------------ */
/* Targets                                                                                     */
/* ------------------------------------------------------------------------------------------ */

async function startDirect(ctx) {
  return { host: '127.0.0.1', port: ctx.cluster.port, user: SVC_ROLE, password: secrets.svcPassword, stop: async () => {} };
}

async function startNodeRelay(ctx, mode) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'warden-bench-relay-'));
  ctx.tmpDirs.push(dir);
  const port = await ctx.freePort();
  const logFile = path.join(dir, 'relay.log');
  const args = [path.join(ROOT, 'bench', 'node-relay.js'), String(port), '127.0.0.1', String(ctx.cluster.port), mode];
  const entry = await spawnListening(`node_relay_${mode}`, process.execPath, args, { cwd: ROOT, logFile, port, timeoutMs: 10_000 });
  return { host: '127.0.0.1', port, user: SVC_ROLE, password: secrets.svcPassword, alive: () => !entry.exited, stop: () => stopServer(entry) };
}

async function findOrInstallPgBouncer() {
  let bin = which('pgbouncer', ['/usr/sbin', '/usr/local/sbin', '/sbin']);
  if (bin) return bin;
  if (!isRoot) return { skip: 'pgbouncer is not installed (and we are not root, so not installing it): skipping the PgBouncer target' };
  console.log('bench: pgbouncer not found; installing it with apt-get (root)…');
  const r = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', 'pgbouncer'], {
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    encoding: 'utf8',
    timeout: 300_000,
  });
  bin = which('pgbouncer', ['/usr/sbin', '/usr/local/sbin', '/sbin']);
  if (!bin) throw new Error(`apt-get install -y pgbouncer failed (exit ${r.status}): ${(r.stderr || r.stdout || '').trim().slice(-1500)}`);
  return bin;
}

async function startPgBouncer(ctx) {
  const bin = await findOrInstallPgBouncer();
  if (typeof bin === 'object') return bin;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'warden-bench-pgbouncer-'));
  ctx.tmpDirs.push(dir);
  const port = await ctx.freePort();
  const ini = path.join(dir, 'pgbouncer.ini');
  const userlist = path.join(dir, 'userlist.txt');
  const logFile = path.join(dir, 'pgbouncer.log');
  await writeFile(
    ini,
    [
      '[databases]',
      `${DB} = host=127.0.0.1 port=${ctx.cluster.port} dbname=${DB}`,
      '',
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = scram-sha-256',
      `auth_file = ${userlist}`,
      'pool_mode = session',
      'max_client_conn = 100',
      'default_pool_size = 20',
      'ignore_startup_parameters = extra_float_digits',
      `logfile = ${logFile}`,
      `pidfile = ${path.join(dir, 'pgbouncer.pid')}`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  // The plain password: PgBouncer uses it both to check clients (SCRAM) and to log in upstream.
  await writeFile(userlist, `"${SVC_ROLE}" "${secrets.svcPassword}"\n`, { mode: 0o600 });

  let cmd = bin;
  let args = ['-q', ini];
  if (isRoot) {
    // PgBouncer refuses to run as root.
    const { uid, gid } = postgresIds();
    for (const f of [dir, ini, userlist]) await chown(f, uid, gid);
    cmd = which('runuser', ['/usr/sbin', '/sbin']) ?? 'runuser';
    args = ['-u', 'postgres', '--', bin, ...args];
  }
  const consoleLog = path.join(dir, 'console.log');
  let entry;
  try {
    entry = await spawnListening('pgbouncer', cmd, args, { cwd: dir, logFile: consoleLog, port, timeoutMs: 15_000 });
  } catch (err) {
    const log = (await tail(logFile)).trim();
    throw new Error(`${err.message}${log ? `\n  pgbouncer.log:\n${indent(log)}` : ''}`);
  }
  const version = spawnSync(bin, ['--version'], { encoding: 'utf8' }).stdout?.split('\n')[0]?.trim();
  return { host: '127.0.0.1', port, user: SVC_ROLE, password: secrets.svcPassword, version, stop: () => stopServer(entry) };
}

function isPlainObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function deepMerge(base, extra) {
  if (!isPlainObject(base) || !isPlainObject(extra)) return extra === undefined ? base : extra;
  const out = { ...base };
  for (const [k, v] of Object.entries(extra)) out[k] = k in out ? deepMerge(out[k], v) : v;
  return out;
}

/** The spec's agent limits, with rates no benchmark run reaches (they are counted, never crossed). */
function benchLimits(kind) {
  return [
    { name: 'agent-volume', match: { kind: [kind] }, max_rows: 1000, max_bytes: '20MB', rows_per_hour: 1_000_000_000, statements_per_minute: 1_000_000_000, on_exceed: 'halt' },
  ];
}

/** A Warden target; `fragment` (object or (ctx) => object) is merged into the base warden.yaml. */
function wardenTarget(name, description, fragment, root = ROOT) {
  return {
    name,
    baseline: false,
    description,
    fragment,
    async start(ctx) {
      const dir = await mkdtemp(path.join(os.tmpdir(), `warden-bench-${name}-`));
      ctx.tmpDirs.push(dir);
      const port = await ctx.freePort();
      const base = {
        version: 1,
        listen: { host: '127.0.0.1', port },
        databases: {
          [DB]: { upstream: `postgres://${SVC_ROLE}:${secrets.svcPassword}@127.0.0.1:${ctx.cluster.port}/${DB}` },
        },
        identities: [{ name: WARDEN_IDENTITY, kind: 'service', password: secrets.wardenPassword }],
      };
      const extra = typeof fragment === 'function' ? fragment({ ...ctx, dir }) : fragment;
      const yamlFile = path.join(dir, 'warden.yaml');
      await writeFile(yamlFile, YAML.stringify(deepMerge(base, extra ?? {})), { mode: 0o600 });

      const logFile = path.join(dir, 'warden.log');
      const args = [...WARDEN_NODE_FLAGS, path.join(root, 'bin', 'warden.js'), 'start', '--config', yamlFile, '--log-level', 'warn'];
      const entry = await spawnListening(name, process.execPath, args, { cwd: root, logFile, port, timeoutMs: 20_000 });
      return {
        host: '127.0.0.1',
        port,
        user: WARDEN_IDENTITY,
        password: secrets.wardenPassword,
        logFile,
        /** Warden's process (node itself, no wrapper): its CPU time is read from /proc per run. */
        pid: entry.child.pid,
        alive: () => !entry.exited,
        /** Exit status and log tail, for error reports. */
        diagnose: async () => {
          const status = entry.exited ? `${name} exited (code ${entry.code}${entry.signal ? `, signal ${entry.signal}` : ''})` : `${name} still running`;
          const out = await tail(logFile, 10);
          return out ? `${status}; its last output:\n${indent(out)}` : status;
        },
        stop: () => stopServer(entry),
      };
    },
  };
}

/* ------------------------------------------------------------------------------------------ */
/* Warden's CPU time and the machine's fdatasync latency                                       */
/* ------------------------------------------------------------------------------------------ */

let clockTicks;
/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ, 100 on Linux). */
function clkTck() {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** utime + stime (ticks) and the thread's name from a /proc .../stat file; undefined if it is gone. */
function readStat(file) {
  let s;
  try {
    s = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const close = s.lastIndexOf(')');
  const comm = s.slice(s.indexOf('(') + 1, close);
  const f = s.slice(close + 2).split(' '); // f[0] is field 3 (state): field N is f[N - 3]
  return { comm, ticks: Number(f[11]) + Number(f[12]), sys: Number(f[12]) };
}

/**
 * A snapshot of a process's CPU time: the whole process (/proc/<pid>/stat: every thread, also
 * those that ended), its main thread (/proc/<pid>/task/<pid>/stat: the event loop) and each live
 * thread by id (worker threads, the libuv pool, V8's helpers).
 */
function cpuSnapshot(pid) {
  if (!pid) return undefined;
  const total = readStat(`/proc/${pid}/stat`);
  if (!total) return undefined;
  const main = readStat(`/proc/${pid}/task/${pid}/stat`);
  const threads = new Map();
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const t = readStat(`/proc/${pid}/task/${tid}/stat`);
      if (t) threads.set(tid, t);
    }
  } catch {
    /* the process ended */
  }
  return { pid, total: total.ticks, sys: total.sys, main: main?.ticks ?? NaN, threads };
}

/**
 * CPU between two snapshots, in µs per statement (`statements` = transactions × statements per
 * transaction): total, main thread (the event loop), and the busiest other threads by id (Node
 * names them all `node`: a worker thread, such as an audit writer, is one of them; threads that
 * ended in between count in the total only).
 */
function cpuPerStatement(before, after, statements) {
  if (!before || !after || !(statements > 0)) return undefined;
  const us = (ticks) => (ticks * 1e6) / clkTck() / statements;
  const others = [];
  for (const [tid, t] of after.threads) {
    const d = t.ticks - (before.threads.get(tid)?.ticks ?? 0);
    if (d > 0 && tid !== String(after.pid)) others.push({ tid: Number(tid), name: t.comm, usPerStmt: Number(us(d).toFixed(2)) });
  }
  others.sort((a, b) => b.usPerStmt - a.usPerStmt);
  return {
    cpuSeconds: (after.total - before.total) / clkTck(),
    totalUsPerStmt: us(after.total - before.total),
    mainUsPerStmt: us(after.main - before.main),
    /** The kernel's share (stime) of the total: syscalls, page faults. */
    sysUsPerStmt: us(after.sys - before.sys),
    otherThreadsUsPerStmt: us(after.total - before.total - (after.main - before.main)),
    busiestOtherThreads: others.slice(0, 4),
  };
}

/**
 * After a run: wait until Warden's process is quiet (at most one clock tick of CPU in 200 ms),
 * at most `maxMs`, and return that snapshot and how long it took. Work Warden defers past the
 * statements (an index filled in the background, a backlog) is done then and counts in the run's
 * CPU per statement.
 */
async function settleCpu(pid, maxMs = 15_000) {
  const t0 = Date.now();
  let prev = cpuSnapshot(pid);
  for (;;) {
    if (!prev || Date.now() - t0 >= maxMs) return { snap: prev, ms: Date.now() - t0 };
    await sleep(200);
    const next = cpuSnapshot(pid);
    if (!next || next.total - prev.total <= 1) return { snap: next ?? prev, ms: Date.now() - t0 };
    prev = next;
  }
}

function quantile(xs, q) {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  return v[Math.min(v.length - 1, Math.floor(q * v.length))];
}

/**
 * The machine's fdatasync latency where the audit stores live (the Warden targets' temp dirs are
 * made in os.tmpdir()): append 512 bytes and fdatasync, in a loop for `ms`, like a journal's
 * group commit. Samples in ms; the file is removed after.
 */
async function measureFdatasync(ms = 1000) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'warden-bench-fsync-'));
  const file = path.join(dir, 'journal');
  const buf = randomBytes(512);
  const samples = [];
  const fd = openSync(file, 'a', 0o600);
  try {
    const end = process.hrtime.bigint() + BigInt(ms) * 1_000_000n;
    for (;;) {
      const t0 = process.hrtime.bigint();
      if (t0 > end && samples.length >= 20) break;
      writeSync(fd, buf);
      fdatasyncSync(fd);
      samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
      if (samples.length >= 100_000) break;
    }
  } finally {
    closeSync(fd);
    await rm(dir, { recursive: true, force: true });
  }
  return { dir: os.tmpdir(), samples: samples.length, medianMs: median(samples), p90Ms: quantile(samples, 0.9), maxMs: Math.max(...samples) };
}

/* ------------------------------------------------------------------------------------------ */
/* pgbench                                                                                     */
/* ------------------------------------------------------------------------------------------ */

function pgEnv(conn) {
  return {
    PGPASSWORD: conn.password,
    PGSSLMODE: process.env.PGSSLMODE ?? 'disable',
    PGCONNECT_TIMEOUT: '10',
  };
}

/** Check a target end to end (libpq, like pgbench) before benchmarking it. */
async function probe(conn) {
  const r = await runCapture(
    'psql',
    ['-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', conn.host, '-p', String(conn.port), '-U', conn.user, '-d', DB, '-c', 'SELECT count(*) FROM pgbench_branches'],
    { env: pgEnv(conn), timeoutMs: 20_000 },
  );
  if (r.code !== 0) throw new Error(`probe query failed (psql exit ${r.code}): ${redact((r.stderr || r.stdout).trim())}`);
  const n = Number(r.stdout.trim());
  if (n !== config.scale) throw new Error(`probe query returned ${JSON.stringify(r.stdout.trim())}, expected ${config.scale}`);
}

/** Collapse pgbench's per-client error lines ("client 3 aborted in command 1 ...") into counted unique lines. */
function summarizeErrors(lines, maxUnique = 4) {
  const counts = new Map();
  for (const l of lines) {
    const key = l.replace(/\bclient \d+\b/g, 'client N').replace(/\bcommand \d+\b/g, 'command N').trim();
    if (key) counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const uniq = [...counts.entries()].map(([l, n]) => (n > 1 ? `${n}× ${l}` : l));
  return (uniq.length > maxUnique ? ['…', ...uniq.slice(-maxUnique)] : uniq).join(' | ');
}

function parsePgbench(out) {
  const num = (re) => {
    const m = out.match(re);
    return m ? Number(m[1]) : undefined;
  };
  return {
    tps: num(/tps = ([\d.]+) \(without initial connection time\)/) ?? num(/tps = ([\d.]+) \(excluding connections establishing\)/) ?? num(/tps = ([\d.]+)/),
    latencyMs: num(/latency average = ([\d.]+) ms/),
    processed: num(/number of transactions actually processed: (\d+)/),
    failed: num(/number of failed transactions: (\d+)/),
  };
}

async function runPgbench(testCase, conn) {
  const args = [
    '-n',
    '-T', String(config.seconds),
    '-c', String(config.clients),
    '-j', String(config.threads),
    '-h', conn.host,
    '-p', String(conn.port),
    '-U', conn.user,
    ...testCase.args,
    DB,
  ];
  const started = Date.now();
  const cpuBefore = cpuSnapshot(conn.pid);
  const r = await runCapture('pgbench', args, { env: pgEnv(conn), timeoutMs: (config.seconds + 90) * 1000 });
  currentPgbench = undefined;
  const wallMs = Date.now() - started;
  const settled = conn.pid ? await settleCpu(conn.pid) : undefined;
  const cpuAfter = settled?.snap;
  const out = `${r.stdout}\n${r.stderr}`;
  const parsed = parsePgbench(out);
  const statements = parsed.processed * testCase.statements;
  const cpu = cpuPerStatement(cpuBefore, cpuAfter, statements);
  if (cpu) cpu.settleMs = settled.ms; // how long Warden kept working after pgbench ended (≈200 ms: not at all)
  let error;
  if (r.code !== 0) {
    const lines = redact(r.stderr || r.stdout)
      .trim()
      .split('\n')
      .filter((l) => !/^(starting vacuum|transaction type|scaling factor|query mode|number of (clients|threads))/.test(l));
    error = `pgbench exit ${r.code}: ${summarizeErrors(lines)}`;
  } else if (parsed.failed !== undefined && parsed.failed > 0) {
    error = `${parsed.failed} failed transactions`;
  } else if (!Number.isFinite(parsed.tps)) {
    error = `could not parse tps from pgbench output: ${redact(out.trim()).slice(-500)}`;
  } else if (parsed.processed === 0) {
    error = 'no transactions processed';
  }
  return { ...parsed, statements, wallMs, cpu, error };
}

/* ------------------------------------------------------------------------------------------ */
/* Output                                                                                      */
/* ------------------------------------------------------------------------------------------ */

function fmt(n, digits = 2) {
  return Number.isFinite(n) ? n.toFixed(digits) : '-';
}

function printTable(rows) {
  const header = ['case', 'target', 'TPS', 'latency ms', 'vs direct', 'vs pgbouncer', 'CPU µs/stmt', 'main µs/stmt', 'runs / note'];
  const note = header.length - 1;
  const body = rows.map((r) => [
    r.case,
    r.target,
    fmt(r.tps, 1),
    fmt(r.latencyMs, 3),
    fmt(r.ratioVsDirect),
    fmt(r.ratioVsPgbouncer),
    fmt(r.cpuUsPerStmt, 1),
    fmt(r.mainUsPerStmt, 1),
    r.error ? `ERROR: ${r.error}` : r.skipped ? `skipped: ${r.skipped}` : r.tpsRuns.map((t) => t.toFixed(0)).join(', '),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => (i === note ? 0 : b[i].length))));
  const right = new Set([2, 3, 4, 5, 6, 7]);
  const line = (cells) => cells.map((c, i) => (i === note ? c : right.has(i) ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ');
  console.log(line(header));
  console.log(line(widths.map((w, i) => (i === note ? '-----------' : '-'.repeat(w)))));
  let prev;
  for (const [i, b] of body.entries()) {
    if (prev !== undefined && rows[i].case !== prev) console.log('');
    prev = rows[i].case;
    console.log(line(b));
  }
}

/* ------------------------------------------------------------------------------------------ */
/* Audit: ratios against audit-off and the fsync bound, and issue 18's acceptance              */
/* ------------------------------------------------------------------------------------------ */

const AUDIT_OFF = 'warden';
const AUDIT_OS = 'warden_audit_os';
const AUDIT_FSYNC = 'warden_audit';
/** The acceptance (issue 18): pgbench select-only, -c 8, the SQLite store against audit-off. */
const ACCEPTANCE = { case: 'select_only', clients: 8, osRatio: 0.9, cpuDeltaUs: 5, fsyncRatio: 0.8 };

/**
 * Per case: `warden_audit_os` TPS / `warden` TPS, and `warden_audit` (durability: fsync) TPS /
 * the fsync bound = min(audit-off TPS, clients / (fdatasync latency × statements per
 * transaction)): each client waits for one durable record per statement, so with group commit
 * (all clients' records in one fdatasync) no client can do more than 1 / latency statements a
 * second. For select-only (one statement) it is the issue's min(audit-off, 8 / fdatasync latency).
 * And each audit level's CPU per statement minus audit-off's.
 */
function auditSummary(results, selectedCases, fdatasyncMs) {
  const out = {};
  // With BENCH_BASE_ROOT and BENCH_BASE_TARGETS naming these three, their `_base` twins get rows
  // `<case>@base` too: the audit before and after a change, in one run.
  const variants = [
    ['', ''],
    ['@base', '_base'],
  ];
  for (const [variant, suffix] of variants) {
    for (const c of selectedCases) {
      const off = results[c.name][AUDIT_OFF + suffix];
      const osr = results[c.name][AUDIT_OS + suffix];
      const fsy = results[c.name][AUDIT_FSYNC + suffix];
      if (!osr && !fsy) continue;
      const fsyncCapTps = config.clients / ((fdatasyncMs / 1000) * c.statements);
      const boundTps = Math.min(off?.tps ?? NaN, fsyncCapTps);
      out[c.name + variant] = {
        statementsPerTransaction: c.statements,
        offTps: off?.tps ?? NaN,
        osTps: osr?.tps ?? NaN,
        fsyncTps: fsy?.tps ?? NaN,
        fsyncCapTps,
        fsyncBoundTps: boundTps,
        osVsOff: (osr?.tps ?? NaN) / (off?.tps ?? NaN),
        fsyncVsBound: (fsy?.tps ?? NaN) / boundTps,
        fsyncVsOff: (fsy?.tps ?? NaN) / (off?.tps ?? NaN),
        cpuUsPerStmt: { off: off?.cpuUsPerStmt ?? NaN, os: osr?.cpuUsPerStmt ?? NaN, fsync: fsy?.cpuUsPerStmt ?? NaN },
        mainUsPerStmt: { off: off?.mainUsPerStmt ?? NaN, os: osr?.mainUsPerStmt ?? NaN, fsync: fsy?.mainUsPerStmt ?? NaN },
        osCpuDeltaUs: (osr?.cpuUsPerStmt ?? NaN) - (off?.cpuUsPerStmt ?? NaN),
        fsyncCpuDeltaUs: (fsy?.cpuUsPerStmt ?? NaN) - (off?.cpuUsPerStmt ?? NaN),
      };
    }
  }
  return out;
}

/** The acceptance lines: { name, value, limit, pass } (pass undefined when a side is missing). */
function auditAcceptance(summary) {
  const a = summary[ACCEPTANCE.case];
  const check = (name, value, op, limit, text) => ({ name, value, op, limit, text, pass: Number.isFinite(value) ? (op === '>=' ? value >= limit : value <= limit) : undefined });
  if (!a) return [];
  return [
    check('os_vs_off', a.osVsOff, '>=', ACCEPTANCE.osRatio, `durability: os TPS / audit-off TPS`),
    check('os_cpu_delta_us', a.osCpuDeltaUs, '<=', ACCEPTANCE.cpuDeltaUs, `durability: os CPU/statement − audit-off's (µs)`),
    check('fsync_cpu_delta_us', a.fsyncCpuDeltaUs, '<=', ACCEPTANCE.cpuDeltaUs, `durability: fsync CPU/statement − audit-off's (µs)`),
    check('fsync_vs_bound', a.fsyncVsBound, '>=', ACCEPTANCE.fsyncRatio, `durability: fsync TPS / min(audit-off TPS, clients / fdatasync)`),
  ];
}

function printAudit(summary, acceptance, fdatasync) {
  const cases = Object.keys(summary);
  if (cases.length === 0) return;
  const fd = fdatasync;
  console.log(
    `fdatasync of 512 bytes appended, in ${fd.dir}: median ${fmt(fd.medianMs, 3)} ms, p90 ${fmt(fd.p90Ms, 3)} ms ` +
      `(median of ${fd.runs.length} measurements' medians: ${fd.runs.map((r) => fmt(r.medianMs, 3)).join(', ')} ms; ${fd.samples} samples)`,
  );
  console.log(`Audit (SQLite store, on_failure: block) against audit-off (${AUDIT_OFF}); fsync bound = min(audit-off TPS, ${config.clients} clients / (${fmt(fd.medianMs, 3)} ms × statements per transaction))`);
  console.log('');
  const header = ['case', 'off TPS', 'os TPS', 'os/off', 'fsync TPS', 'bound TPS', 'fsync/bound', 'CPU µs/stmt off', 'os', 'fsync', 'main µs/stmt off', 'os', 'fsync'];
  const body = cases.map((c) => {
    const a = summary[c];
    return [c, fmt(a.offTps, 0), fmt(a.osTps, 0), fmt(a.osVsOff), fmt(a.fsyncTps, 0), fmt(a.fsyncBoundTps, 0), fmt(a.fsyncVsBound), fmt(a.cpuUsPerStmt.off, 1), fmt(a.cpuUsPerStmt.os, 1), fmt(a.cpuUsPerStmt.fsync, 1), fmt(a.mainUsPerStmt.off, 1), fmt(a.mainUsPerStmt.os, 1), fmt(a.mainUsPerStmt.fsync, 1)];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  console.log(line(header));
  console.log(line(widths.map((w) => '-'.repeat(w))));
  for (const b of body) console.log(line(b));
  console.log('');
  const note = config.clients === ACCEPTANCE.clients ? '' : ` — NOTE: this run has ${config.clients} clients, the acceptance is for ${ACCEPTANCE.clients}`;
  console.log(`Audit acceptance (issue 18: ${ACCEPTANCE.case}, pgbench -c ${ACCEPTANCE.clients}, same run; information, not the exit code)${note}`);
  if (acceptance.length === 0) {
    console.log(`  n/a: the ${ACCEPTANCE.case} case was not run`);
  }
  for (const l of acceptance) {
    const verdict = l.pass === undefined ? 'n/a ' : l.pass ? 'PASS' : 'FAIL';
    const value = l.name.endsWith('_us') ? `${l.value >= 0 ? '+' : ''}${fmt(l.value, 1)} µs` : fmt(l.value);
    const limit = l.name.endsWith('_us') ? `+${l.limit} µs` : fmt(l.limit);
    console.log(`  ${verdict}  ${l.text.padEnd(62)} ${value.padStart(9)}  (${l.op === '>=' ? '≥' : '≤'} ${limit})`);
  }
  const missing = [AUDIT_OFF, AUDIT_OS, AUDIT_FSYNC].filter((t) => !selectedTargetNames.has(t));
  if (missing.length) console.log(`  (targets not run: ${missing.join(', ')}; their lines are n/a)`);
  for (const c of cases.filter((c) => c !== ACCEPTANCE.case && !c.endsWith('@base'))) {
    const a = summary[c];
    console.log(`  info  ${c}: os/off ${fmt(a.osVsOff)}, fsync/bound ${fmt(a.fsyncVsBound)} (fsync/off ${fmt(a.fsyncVsOff)}), CPU/statement off ${fmt(a.cpuUsPerStmt.off, 1)} / os ${fmt(a.cpuUsPerStmt.os, 1)} / fsync ${fmt(a.cpuUsPerStmt.fsync, 1)} µs`);
  }
  console.log('');
}

let selectedTargetNames = new Set();

/* ------------------------------------------------------------------------------------------ */
/* Main                                                                                        */
/* ------------------------------------------------------------------------------------------ */

const state = { cluster: undefined, started: [], tmpDirs: [], cleaning: undefined };

async function cleanup() {
  state.cleaning ??= (async () => {
    for (const t of state.started.reverse()) {
      try {
        await t.conn.stop();
      } catch {
        /* best effort */
      }
    }
    for (const entry of [...children]) await stopServer(entry);
    if (state.cluster) {
      try {
        await state.cluster.stop();
      } catch (err) {
        console.error(`bench: stopping the cluster failed: ${err.message}`);
      }
    }
    for (const d of state.tmpDirs) await rm(d, { recursive: true, force: true }).catch(() => {});
  })();
  return state.cleaning;
}

process.on('exit', () => {
  // Last resort (crash, process.exit): kill server process groups, remove temp dirs.
  // The cluster has its own exit hook in pg-cluster.js.
  for (const entry of children) {
    try {
      if (!entry.exited && entry.child.pid) process.kill(-entry.child.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  for (const d of state.tmpDirs) {
    try {
      rmSync(d, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  }
});

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    if (state.interrupted) return;
    state.interrupted = true;
    console.log('');
    console.error(`bench: ${sig}, cleaning up…`);
    if (currentPgbench && currentPgbench.exitCode === null) currentPgbench.kill('SIGTERM');
    cleanup().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  });
}

/** After SIGINT/SIGTERM the signal handler owns the exit: park main() so it prints nothing more. */
function haltIfInterrupted() {
  return state.interrupted ? new Promise(() => {}) : Promise.resolve();
}

async function loadClusterModule() {
  const modPath = path.join(ROOT, 'dist', 'embedded', 'pg-cluster.js');
  if (!existsSync(modPath)) {
    throw new Error(`${path.relative(ROOT, modPath)} not found: run \`npm run build\` first (or use \`npm run bench\`)`);
  }
  return import(new URL('../dist/embedded/pg-cluster.js', import.meta.url).href);
}

function selectByEnv(list, envName) {
  const want = envList(envName);
  if (!want) return list.filter((x) => !x.optIn);
  const unknown = want.filter((w) => !list.some((x) => x.name === w));
  if (unknown.length) throw new Error(`${envName}: unknown name(s) ${unknown.join(', ')}; known: ${list.map((x) => x.name).join(', ')}`);
  return list.filter((x) => want.includes(x.name));
}

async function main() {
  const selectedTargets = selectByEnv(targets, 'BENCH_TARGETS');
  const selectedCases = selectByEnv(cases, 'BENCH_CASES');
  selectedTargetNames = new Set(selectedTargets.map((t) => t.name));
  for (const tool of ['pgbench', 'psql']) {
    if (!which(tool)) throw new Error(`${tool} not found on PATH (it comes with the PostgreSQL client package)`);
  }
  const { startPgCluster, freePort } = await loadClusterModule();

  console.log(
    `bench: ${config.quick ? 'QUICK ' : ''}${selectedCases.length} case(s) × ${selectedTargets.length} target(s) × ${config.rounds} round(s), ` +
      `${config.seconds} s each, ${config.clients} clients, ${config.threads} threads, scale ${config.scale}`,
  );

  // 1. The cluster and the pgbench database, owned by warden_svc.
  let t0 = Date.now();
  const cluster = await startPgCluster({ settings: { max_connections: '200', shared_buffers: '128MB' } });
  state.cluster = cluster;
  const pgVersion = (await cluster.query('SHOW server_version')).rows[0].server_version;
  await cluster.query(`CREATE ROLE ${SVC_ROLE} LOGIN PASSWORD '${secrets.svcPassword}'`);
  await cluster.query(`CREATE DATABASE ${DB} OWNER ${SVC_ROLE}`);
  const svcConn = { host: '127.0.0.1', port: cluster.port, user: SVC_ROLE, password: secrets.svcPassword };
  const init = await runCapture(
    'pgbench',
    ['-i', '-q', '-s', String(config.scale), '-h', svcConn.host, '-p', String(svcConn.port), '-U', SVC_ROLE, DB],
    { env: pgEnv(svcConn), timeoutMs: 30 * 60_000 },
  );
  if (init.code !== 0) throw new Error(`pgbench -i failed (exit ${init.code}): ${redact(init.stderr.trim()).slice(-2000)}`);
  console.log(`bench: PostgreSQL ${pgVersion} on 127.0.0.1:${cluster.port}, pgbench -i -s ${config.scale} done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  // Warden's processes inherit this environment, so they load the addon exactly when this does.
  const { nativeIo } = await import(new URL('../dist/proxy/transport/native-io.js', import.meta.url).href);
  const socketIo = nativeIo.available ? 'native' : `node (${nativeIo.reason})`;
  console.log(`bench: Warden relays through ${nativeIo.available ? 'its native socket I/O addon' : `Node.js sockets: ${nativeIo.reason}`}`);

  // 2. The targets.
  const ctx = { cluster, freePort, tmpDirs: state.tmpDirs, root: ROOT };
  const targetState = new Map(); // name -> { conn?, error?, skipped? }
  for (const target of selectedTargets) {
    t0 = Date.now();
    try {
      await haltIfInterrupted();
      const conn = await target.start(ctx);
      if (conn.skip) {
        console.log(`bench: ${target.name}: ${conn.skip}`);
        targetState.set(target.name, { skipped: conn.skip });
        continue;
      }
      state.started.push({ name: target.name, conn });
      await probe(conn);
      targetState.set(target.name, { conn });
      console.log(`bench: ${target.name} ready on ${conn.host}:${conn.port}${conn.version ? ` (${conn.version})` : ''} in ${Date.now() - t0} ms`);
    } catch (err) {
      const msg = redact(err?.message ?? String(err));
      targetState.set(target.name, { error: `start failed: ${msg}` });
      console.error(`bench: ${target.name} FAILED to start: ${msg}`);
    }
  }

  // Warden's CPU while idle (nothing connected), over one second for all Warden targets at once:
  // a process that spins while idle inflates its CPU per statement by that much per second.
  // (After a second to finish starting up.)
  const idle = [...targetState.entries()].filter(([, ts]) => ts.conn?.pid).map(([name, ts]) => ({ name, ts }));
  if (idle.length) {
    await sleep(1000);
    for (const t of idle) t.before = cpuSnapshot(t.ts.conn.pid);
    await sleep(1000);
    for (const t of idle) {
      const after = cpuSnapshot(t.ts.conn.pid);
      if (t.before && after) t.ts.idleCpuMsPerS = ((after.total - t.before.total) * 1000) / clkTck();
    }
    console.log(`bench: Warden CPU while idle (ms per s): ${idle.map((t) => `${t.name} ${fmt(t.ts.idleCpuMsPerS, 0)}`).join(', ')}`);
  }

  // The machine's fdatasync latency, where the audit stores are (before and after the runs).
  // Only when an audit target runs (the bound needs it).
  const auditTargets = new Set([AUDIT_OS, AUDIT_FSYNC, `${AUDIT_OS}_base`, `${AUDIT_FSYNC}_base`]);
  const withAudit = selectedTargets.some((t) => auditTargets.has(t.name));
  const fdatasyncRuns = [];
  const measureFsync = async (when) => {
    if (!withAudit) return;
    const m = await measureFdatasync(1000);
    fdatasyncRuns.push({ when, ...m });
    console.log(`bench: fdatasync (${when}): median ${fmt(m.medianMs, 3)} ms, p90 ${fmt(m.p90Ms, 3)} ms over ${m.samples} appends of 512 bytes in ${m.dir}`);
  };
  await measureFsync('before the runs');

  // 3. The runs: per case, rounds of interleaved targets.
  const runs = {}; // case -> target -> [run]
  for (const c of selectedCases) {
    runs[c.name] = {};
    for (let round = 1; round <= config.rounds; round++) {
      for (const target of selectedTargets) {
        const ts = targetState.get(target.name);
        const list = (runs[c.name][target.name] ??= []);
        if (!ts.conn) continue;
        if (list.some((r) => r.error)) continue; // failed once for this case: don't repeat it
        if (ts.conn.alive && !ts.conn.alive()) {
          const diag = ts.conn.diagnose ? redact(await ts.conn.diagnose()) : '';
          list.push({ round, error: `${target.name} process is no longer running`, diagnosis: diag });
          console.log(`bench: ${c.name.padEnd(22)} round ${round}/${config.rounds}  ${target.name.padEnd(12)} … FAILED: not running${diag ? `\n${indent(diag)}` : ''}`);
          continue;
        }
        await haltIfInterrupted();
        // fdatasync right before each durability: fsync run: the disk as that run finds it.
        if (target.name === AUDIT_FSYNC || target.name === `${AUDIT_FSYNC}_base`) await measureFsync(`before ${c.name} round ${round}`);
        process.stdout.write(`bench: ${c.name.padEnd(22)} round ${round}/${config.rounds}  ${target.name.padEnd(12)} … `);
        const r = await runPgbench(c, ts.conn);
        await haltIfInterrupted();
        if (r.error && ts.conn.diagnose) r.diagnosis = redact(await ts.conn.diagnose());
        list.push({ round, ...r });
        const busyAfter = r.cpu && r.cpu.settleMs > 400 ? `; busy ${fmt(r.cpu.settleMs / 1000, 1)} s after pgbench ended, counted` : '';
        const cpu = r.cpu ? `, Warden CPU ${fmt(r.cpu.totalUsPerStmt, 1)} µs/stmt (main thread ${fmt(r.cpu.mainUsPerStmt, 1)}, others ${fmt(r.cpu.otherThreadsUsPerStmt, 1)}; kernel ${fmt(r.cpu.sysUsPerStmt, 1)}${busyAfter})` : '';
        console.log(r.error ? `FAILED: ${r.error}${r.diagnosis ? `\n${indent(r.diagnosis)}` : ''}` : `${r.tps.toFixed(1)} tps, ${r.latencyMs?.toFixed(3)} ms${cpu}`);
      }
    }
  }
  await measureFsync('after the runs');
  const fdatasync = {
    dir: os.tmpdir(),
    samples: fdatasyncRuns.reduce((n, r) => n + r.samples, 0),
    // The median of the measurements' medians (before the runs, before each durability: fsync
    // run, after the runs): one disturbed measurement does not decide the bound. p90 likewise.
    medianMs: median(fdatasyncRuns.map((r) => r.medianMs)),
    p90Ms: median(fdatasyncRuns.map((r) => r.p90Ms)),
    runs: fdatasyncRuns,
  };

  // 4. Aggregate.
  const rows = [];
  const results = {};
  for (const c of selectedCases) {
    results[c.name] = {};
    for (const target of selectedTargets) {
      const ts = targetState.get(target.name);
      const list = runs[c.name][target.name] ?? [];
      const failed = list.find((r) => r.error);
      const error = ts.error ? `${target.name} failed to start (see below)` : failed?.error;
      const ok = error ? [] : list;
      results[c.name][target.name] = {
        tps: median(ok.map((r) => r.tps)),
        latencyMs: median(ok.map((r) => r.latencyMs)),
        // Warden targets: Warden's CPU (all threads; the main thread) per statement, median of the runs.
        cpuUsPerStmt: median(ok.map((r) => r.cpu?.totalUsPerStmt)),
        mainUsPerStmt: median(ok.map((r) => r.cpu?.mainUsPerStmt)),
        tpsRuns: ok.map((r) => r.tps),
        latencyRuns: ok.map((r) => r.latencyMs),
        runs: list,
        error,
        skipped: ts.skipped,
      };
    }
    const direct = results[c.name].direct?.tps;
    const bouncer = results[c.name].pgbouncer?.tps;
    for (const target of selectedTargets) {
      const r = results[c.name][target.name];
      r.ratioVsDirect = r.tps / direct;
      r.ratioVsPgbouncer = r.tps / bouncer;
      rows.push({ case: c.name, target: target.name, ...r });
    }
  }

  const ratios = {};
  for (const target of selectedTargets.filter((t) => !t.baseline)) {
    const suffix = target.name === 'warden' ? '' : `@${target.name}`;
    for (const c of selectedCases) {
      const r = results[c.name][target.name];
      ratios[`ratio_vs_pgbouncer_${c.name}${suffix}`] = r.ratioVsPgbouncer;
      ratios[`ratio_vs_direct_${c.name}${suffix}`] = r.ratioVsDirect;
    }
  }
  // Warden's CPU per statement (µs, all threads) for every Warden target and case.
  const machine = {};
  for (const target of selectedTargets.filter((t) => t.fragment !== undefined)) {
    const suffix = target.name === 'warden' ? '' : `@${target.name}`;
    for (const c of selectedCases) machine[`cpu_us_per_stmt_${c.name}${suffix}`] = results[c.name][target.name].cpuUsPerStmt;
  }
  const audit = auditSummary(results, selectedCases, fdatasync.medianMs);
  const acceptance = auditAcceptance(audit);
  if (Object.keys(audit).length > 0) {
    machine.fdatasync_ms = fdatasync.medianMs;
    machine.fdatasync_p90_ms = fdatasync.p90Ms;
    for (const [c, a] of Object.entries(audit)) {
      machine[`audit_os_vs_off_${c}`] = a.osVsOff;
      machine[`audit_fsync_vs_bound_${c}`] = a.fsyncVsBound;
      machine[`audit_fsync_bound_tps_${c}`] = a.fsyncBoundTps;
      machine[`audit_os_cpu_delta_us_${c}`] = a.osCpuDeltaUs;
      machine[`audit_fsync_cpu_delta_us_${c}`] = a.fsyncCpuDeltaUs;
    }
  }

  const errors = rows
    .filter((r) => r.error && !targetState.get(r.target).error)
    .map((r) => `${r.case}/${r.target}: ${r.error}`);
  const targetErrors = [...targetState.entries()].filter(([, s]) => s.error).map(([n, s]) => `${n}: ${s.error}`);

  // 5. Report.
  console.log('');
  console.log(`Results (median of ${config.rounds} round(s) of ${config.seconds} s; TPS without connection time; ratio = target TPS / baseline TPS)`);
  console.log('');
  printTable(rows);
  console.log('');
  printAudit(audit, acceptance, fdatasync);
  if (targetErrors.length) {
    console.log('Targets that failed to start:');
    for (const e of targetErrors) console.log(indent(e, '  '));
    console.log('');
  }

  let gitRev;
  try {
    gitRev = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    /* not a git checkout */
  }
  const json = {
    finishedAt: new Date().toISOString(),
    gitRev,
    config,
    environment: {
      node: process.version,
      cpus: os.cpus().length,
      postgres: pgVersion,
      pgbench: spawnSync('pgbench', ['--version'], { encoding: 'utf8' }).stdout?.trim(),
      pgbouncer: targetState.get('pgbouncer')?.conn?.version,
      wardenSocketIo: socketIo,
    },
    cases: selectedCases.map(({ name, description, args }) => ({ name, description, args })),
    targets: selectedTargets.map(({ name, description, baseline }) => ({ name, description, baseline, ...pick(targetState.get(name)) })),
    results,
    ratios,
    fdatasync,
    audit: Object.keys(audit).length > 0 ? { summary: audit, acceptance: { ...ACCEPTANCE, lines: acceptance } } : undefined,
    machineReadable: machine,
    errors: [...targetErrors, ...errors],
  };
  await mkdir(RESULTS_DIR, { recursive: true });
  const gi = path.join(RESULTS_DIR, '.gitignore');
  if (!existsSync(gi)) await writeFile(gi, '*\n!.gitignore\n');
  await writeFile(path.join(RESULTS_DIR, 'latest.json'), JSON.stringify(json, jsonReplacer, 2) + '\n');
  console.log(`Full results: ${path.relative(process.cwd(), path.join(RESULTS_DIR, 'latest.json')) || 'bench/results/latest.json'}`);

  await cleanup();

  const failed = errors.length > 0 || targetErrors.length > 0;
  if (failed) console.log(`bench: ${errors.length + targetErrors.length} failure(s); exiting non-zero`);
  // The LAST line: machine-readable ratios (NaN when a side is missing or failed).
  // Then Warden's CPU per statement and the audit's ratios, deltas and acceptance.
  const verdicts = acceptance.map((l) => l.pass);
  const accept = verdicts.length === 0 || verdicts.some((p) => p === undefined) ? 'NA' : verdicts.every(Boolean) ? 'PASS' : 'FAIL';
  const digits = (k) => (k.startsWith('fdatasync') ? 3 : k.includes('_tps_') ? 0 : k.startsWith('ratio') || k.includes('_vs_') ? 2 : 1);
  const keys = [...Object.entries(ratios), ...Object.entries(machine)].map(([k, v]) => `${k}=${fmt(v, digits(k))}`.replace(/=-$/, '=NaN'));
  if (acceptance.length) keys.push(`audit_acceptance=${accept}`);
  console.log(keys.join(' '));
  return failed ? 1 : 0;
}

function pick(s) {
  if (!s) return {};
  return { error: s.error, skipped: s.skipped, host: s.conn?.host, port: s.conn?.port, user: s.conn?.user, idleCpuMsPerS: s.idleCpuMsPerS };
}

function jsonReplacer(_k, v) {
  return typeof v === 'number' && !Number.isFinite(v) ? null : v;
}

main().then(
  (code) => process.exit(code),
  async (err) => {
    console.error(`bench: ${redact(err?.stack ?? err)}`);
    await cleanup();
    process.exit(1);
  },
);
