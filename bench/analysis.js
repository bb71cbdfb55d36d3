// Cost of statement analysis and decision, in microseconds per statement: cold (parsed with
// PostgreSQL's parser and analysed), cached by text, cached by literal shape, the policy decision,
// and the whole per-statement hook as a session runs it (verdict memo). `npm run bench` runs it
// before the pgbench comparison. Pure CPU, single process; no database needed.
import { performance } from 'node:perf_hooks';
import { initSqlParser, analyzeSql, AnalysisCache } from '../dist/sql/index.js';
import { decide, policyFromConfig } from '../dist/policy/index.js';
import { parseConfig } from '../dist/config/load.js';
import { createStatementPolicy } from '../dist/governance/statement-policy.js';
import { silentLogger } from '../dist/log/logger.js';

const N = Number(process.env.BENCH_ANALYSIS_N ?? 20000);
const config = parseConfig(
  `version: 1
databases:
  app: { upstream: "postgres://svc@127.0.0.1/app" }
identities:
  - { name: bencher, kind: service, password: x }
sensitive:
  columns: { public.customers.email: email, public.customers.ssn: ssn }
rules:
  - { name: no-destructive-ddl, match: { statement: [drop, truncate] }, action: deny }
  - { name: agents-read-only, match: { kind: agent, statement: [write, ddl] }, action: deny }
  - { name: billing-writes-need-approval, match: { statement: [write], tables: ["billing.*"] }, action: approve, approvers: { groups: [dba] } }
  - { name: mask-pii-except-dba, match: { not: { groups: [dba] } }, action: mask }
`,
  '/bench/warden.yaml',
  {},
);

const STATEMENTS = {
  select_pk: (i) => `SELECT abalance FROM pgbench_accounts WHERE aid = ${i}`,
  join3: (i) => `SELECT o.id, c.name, sum(l.amount) FROM orders o JOIN customers c ON c.id = o.customer_id JOIN order_lines l ON l.order_id = o.id WHERE o.id > ${i} GROUP BY o.id, c.name ORDER BY 3 DESC LIMIT 10`,
  update: (i) => `UPDATE pgbench_accounts SET abalance = abalance + ${i} WHERE aid = ${i + 1}`,
};

function time(fn) {
  for (let i = 0; i < Math.min(2000, N); i++) fn(i); // warm-up
  const t0 = performance.now();
  for (let i = 0; i < N; i++) fn(i + 1_000_000);
  return ((performance.now() - t0) * 1000) / N;
}

await initSqlParser();
const ctx = { searchPath: ['public'] };
const policy = policyFromConfig(config);
const identity = config.identities[0];
const session = { database: 'app', intent: {}, now: new Date() };
const sp = createStatementPolicy(config, silentLogger());
const fakeSession = {
  id: 'bench', identity, database: config.databases.app, clientAddress: '127.0.0.1', clientPort: 1, tls: false,
  startupParams: new Map(), wardenSettings: new Map(), parameters: new Map(), txStatus: 'I', upstreamSearchPath: 'public',
};

const rows = [];
for (const [name, make] of Object.entries(STATEMENTS)) {
  const cold = time((i) => analyzeSql(make(i), ctx));
  const textCache = new AnalysisCache({ max: 1000 });
  const fixed = make(42);
  const cachedText = time(() => textCache.analyze(fixed, ctx));
  const shapeCache = new AnalysisCache({ max: 1000 });
  const cachedShape = time((i) => shapeCache.analyze(make(i), ctx));
  const analysis = analyzeSql(fixed, ctx);
  const decision = time(() => decide({ identity, session, analysis }, policy));
  const hook = time((i) => sp.hooks.statement(fakeSession, { protocol: 'simple', sql: make(i) }));
  rows.push({ name, cold, cachedText, cachedShape, decision, hook });
}

const f = (x) => x.toFixed(2).padStart(8);
console.log(`Statement analysis cost (µs per statement, ${N} iterations each, one core)\n`);
console.log('statement    cold parse+analyse  cached (text)  cached (shape)  decide  hook (memo)');
for (const r of rows) console.log(`${r.name.padEnd(12)} ${f(r.cold)}            ${f(r.cachedText)}       ${f(r.cachedShape)}    ${f(r.decision)} ${f(r.hook)}`);
console.log('\n' + rows.map((r) => `analysis_us_cold_${r.name}=${r.cold.toFixed(2)} analysis_us_cached_${r.name}=${r.cachedShape.toFixed(2)} hook_us_${r.name}=${r.hook.toFixed(2)}`).join(' '));
