// The audit log's cost on the hot path, in microseconds of main-thread time per statement: the
// whole per-statement hook as a session runs it (analysis from the memo, decision, audit record
// written ahead to the journal, completion recorded), with the audit log off and on (sqlite store,
// durability os and fsync). Statements are issued in waves of BENCH_AUDIT_WAVE (default 8, as
// pgbench -c 8) per event-loop turn, as concurrent sessions produce them. The index worker runs
// at the lowest priority on its own thread and is not counted here (bench/run.js counts it).
// `npm run bench` runs it; no database needed.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { initSqlParser } from '../dist/sql/index.js';
import { parseConfig } from '../dist/config/load.js';
import { createStatementPolicy } from '../dist/governance/statement-policy.js';
import { createStatementAuditor } from '../dist/governance/statement-audit.js';
import { AuditLog } from '../dist/audit/log.js';
import { openSqliteStore } from '../dist/audit/store-sqlite.js';
import { silentLogger } from '../dist/log/logger.js';

const N = Number(process.env.BENCH_AUDIT_HOOK_N ?? 40000);
const WAVE = Number(process.env.BENCH_AUDIT_WAVE ?? 8);
const config = parseConfig(
  `version: 1
databases:
  bench: { upstream: "postgres://svc@127.0.0.1/bench" }
identities:
  - { name: bencher, kind: service, password: x }
`,
  '/bench/warden.yaml',
  {},
);
await initSqlParser();
const identity = config.identities[0];
const sessions = Array.from({ length: WAVE }, (_, i) => ({
  id: `w-bench-${i}`, identity, database: config.databases.bench, clientAddress: '127.0.0.1', clientPort: 1000 + i, tls: false,
  auth: { method: 'scram' }, startupParams: new Map([['application_name', 'pgbench']]), wardenSettings: new Map(), parameters: new Map(),
  txStatus: 'I', upstreamSearchPath: '"$user", public',
}));
const sql = (i) => `SELECT abalance FROM pgbench_accounts WHERE aid = ${i};`;
const outcome = { tags: ['SELECT 1'], rows: 1 };

async function run(hooks, n) {
  let i = 0;
  const t0 = performance.now();
  let busy = 0;
  while (i < n) {
    const s0 = performance.now();
    const pending = [];
    for (let k = 0; k < WAVE && i < n; k++, i++) {
      const v = hooks.statement(sessions[k], { protocol: 'simple', sql: sql(i % 100000) });
      pending.push(v instanceof Promise ? v.then((x) => x.onDone?.(outcome)) : v.onDone?.(outcome));
    }
    busy += performance.now() - s0;
    await Promise.all(pending);
    // One event-loop turn per wave, as sessions' reads arrive: the log's per-turn work (the
    // completions' batch, the shared sync) runs here as it does in Warden, and is counted.
    await new Promise((r) => setImmediate(r));
  }
  return { wall: ((performance.now() - t0) * 1000) / n, busy: (busy * 1000) / n };
}

/** CPU time of this process' main thread (µs), from /proc (Linux); NaN elsewhere. */
function mainThreadCpu() {
  try {
    const f = fs.readFileSync(`/proc/${process.pid}/task/${process.pid}/stat`, 'utf8');
    const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1e6) / 100; // utime + stime, in clock ticks of 10 ms
  } catch {
    return NaN;
  }
}

async function measure(label, durability) {
  let audit;
  let dir;
  let auditor;
  if (durability) {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-audit-hook-'));
    audit = await AuditLog.open({ store: await openSqliteStore(path.join(dir, 'audit.db'), { durability }), instance: 'bench', onFailure: 'block', log: silentLogger() });
    auditor = createStatementAuditor({ audit, config, log: silentLogger() });
  }
  const sp = createStatementPolicy(config, silentLogger(), { auditor });
  for (const s of sessions) auditor?.sessionStart(s);
  await run(sp.hooks, Math.min(5000, N)); // warm-up
  const cpu0 = process.cpuUsage();
  const main0 = mainThreadCpu();
  const r = await run(sp.hooks, N);
  const cpu = process.cpuUsage(cpu0);
  const main = (mainThreadCpu() - main0) / N;
  await audit?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  return { label, ...r, cpu: (cpu.user + cpu.system) / N, main };
}

if (process.env.BENCH_AUDIT_HOOK_ONLY) {
  // One target alone (for a profile): off, os or fsync.
  const only = process.env.BENCH_AUDIT_HOOK_ONLY;
  const r = await measure(only, only === 'off' ? undefined : only);
  console.log(JSON.stringify(r));
  process.exit(0);
}
const rows = [await measure('audit off'), await measure('audit sqlite os', 'os'), await measure('audit sqlite fsync', 'fsync')];
console.log(`Audit hot path (µs per statement, ${N} statements in waves of ${WAVE})\n`);
console.log('target               hook (sync part)  wall per stmt  main-thread CPU per stmt  process CPU per stmt (incl. indexer)');
for (const r of rows) console.log(`${r.label.padEnd(20)} ${r.busy.toFixed(2).padStart(16)} ${r.wall.toFixed(2).padStart(14)} ${r.main.toFixed(2).padStart(25)} ${r.cpu.toFixed(2).padStart(21)}`);
const off = rows[0];
const os_ = rows[1];
console.log(`\naudit_hook_main_us_off=${off.main.toFixed(2)} audit_hook_main_us_os=${os_.main.toFixed(2)} audit_hook_main_delta_us_os=${(os_.main - off.main).toFixed(2)} audit_hook_process_delta_us_os=${(os_.cpu - off.cpu).toFixed(2)} audit_hook_main_delta_us_fsync=${(rows[2].main - off.main).toFixed(2)}`);
