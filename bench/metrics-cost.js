// What the metrics cost the statement path, in nanoseconds per statement (no database needed;
// run after `npm run build`: node bench/metrics-cost.js):
// - the session's part: the arrival and forwarding times, the overhead histogram, a timed
//   StatementRun (instead of the shared untimed one) and its upstream time at completion;
// - the policy's part: warden_statements_total's counter slot (stats.ruled), measured through the
//   real statement pipeline (rulings from the session memo, as pgbench's statements get them).
// Main-thread CPU time (process.cpuUsage: this machine's other processes do not count); rounds
// alternate on/off; the median of the per-round differences is reported.
import { performance } from 'node:perf_hooks';
import { initSqlParser } from '../dist/sql/index.js';
import { parseConfig } from '../dist/config/load.js';
import { createStatementPolicy } from '../dist/governance/statement-policy.js';
import { StatementMetrics } from '../dist/admin/metrics.js';
import { StatementRun } from '../dist/proxy/session/tracker.js';
import { silentLogger } from '../dist/log/logger.js';

const N = Number(process.env.BENCH_METRICS_N ?? 200000);
const ROUNDS = Number(process.env.BENCH_METRICS_ROUNDS ?? 9);
const config = parseConfig(
  `version: 1
databases:
  bench: { upstream: "postgres://svc@127.0.0.1/bench" }
identities:
  - { name: bencher, kind: service, password: x }
rules:
  - { name: no-drop, match: { statement: [drop] }, action: deny }
`,
  '/bench/warden.yaml',
  {},
);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
/** CPU time of this process so far, ns. */
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
};

// ---- the session's part ----------------------------------------------------------------------
const metrics = new StatementMetrics(config);
const timers = metrics.timers(config.databases.bench);
const SHARED = new StatementRun(undefined, undefined);
let sink = 0;
function sessionPart(on, n) {
  const t = cpu();
  for (let i = 0; i < n; i++) {
    // decide(): arrival
    const t0 = on ? performance.now() : 0;
    // apply(): forwarding
    let run;
    if (on) {
      const sentAt = performance.now();
      timers.overhead.observe((sentAt - t0) / 1000);
      run = new StatementRun(undefined, undefined);
      run.sentAt = sentAt;
      run.timer = timers.upstream;
    } else run = SHARED;
    // the tracker: completion
    run.finish();
    sink += run.rows;
  }
  return (cpu() - t) / n;
}

// ---- the policy's part -----------------------------------------------------------------------
await initSqlParser();
const policy = createStatementPolicy(config, silentLogger());
const session = {
  id: 'bench', identity: config.identities[0], database: config.databases.bench, clientAddress: '127.0.0.1', clientPort: 1, tls: false,
  auth: { method: 'password' }, startupParams: new Map(), wardenSettings: new Map(), parameters: new Map(), txStatus: 'I', upstreamSearchPath: '"$user", public',
  onInterrupt: () => () => undefined,
};
policy.hooks.sessionStart(session);
const sql = (i) => `SELECT abalance FROM pgbench_accounts WHERE aid = ${i};`;
const texts = Array.from({ length: 1000 }, (_, i) => sql(i));
function policyPart(on, n) {
  policy.stats.ruled = on ? metrics.ruled : undefined;
  const t = cpu();
  for (let i = 0; i < n; i++) {
    const v = policy.hooks.statement(session, { protocol: 'simple', sql: texts[i % 1000] });
    if (v instanceof Promise) throw new Error('expected a synchronous verdict');
  }
  return (cpu() - t) / n;
}

for (const f of [sessionPart, policyPart]) {
  f(true, N / 4);
  f(false, N / 4);
}
const report = (name, f) => {
  const diffs = [];
  const offs = [];
  for (let r = 0; r < ROUNDS; r++) {
    const off = f(false, N);
    const on = f(true, N);
    diffs.push(on - off);
    offs.push(off);
  }
  console.log(`${name}: +${median(diffs).toFixed(0)} ns per statement (off: ${median(offs).toFixed(0)} ns; rounds: ${diffs.map((d) => d.toFixed(0)).join(' ')})`);
};
report('session (times, histograms, timed run)', sessionPart);
report('policy (warden_statements_total slot)', policyPart);
if (sink < 0) console.log(sink);
const total = metrics.counts.samples().reduce((a, s) => a + s.value, 0);
console.log(`counted ${total} statements; overhead histogram count ${timers.overhead.count}, upstream ${timers.upstream.count}`);
