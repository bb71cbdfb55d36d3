/**
 * The metrics registry (src/admin/metrics.ts): every metric is exposed with the
 * right TYPE (counters as counters, durations as histograms, levels as
 * gauges), the standard process and Node.js metrics keep their usual names (no
 * `warden_process_process_` prefix), statement label values stay bounded, and
 * histograms are cumulative. Also: the admin listener's /healthz and /readyz
 * (readiness from a stand-in probe).
 */
import { describe, expect, it } from 'vitest';
import { createMetricsRegistry, FixedHistogram, StatementMetrics, StatementCounts, OVERHEAD_BUCKETS } from '../../src/admin/metrics.js';
import { buildAdmin } from '../../src/admin/server.js';
import { Readiness } from '../../src/admin/readiness.js';
import { parseConfig } from '../../src/config/load.js';
import type { SessionInfo } from '../../src/contract/statement-hooks.js';
import type { Decision } from '../../src/policy/index.js';
import { silentLogger } from '../../src/log/logger.js';
import { AUDIT_WRITE_BUCKETS } from '../../src/util/histogram.js';

const config = parseConfig(
  `version: 1
databases:
  app: { upstream: "postgres://svc:pw@127.0.0.1:5432/app" }
  billing: { upstream: "postgres://svc:pw@127.0.0.1:5432/billing" }
identities:
  - { name: alice, kind: human, password: a }
  - { name: bot, kind: agent, password: b }
rules:
  - name: no-drop
    match: { statement: [drop] }
    action: deny
`,
  '/tmp/metrics-test.yaml',
  {},
);

/** Each metric family's TYPE, from the text exposition. */
function types(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\n')) {
    const t = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (t) m.set(t[1]!, t[2]!);
  }
  return m;
}

/** Sample lines: name{labels} value. */
function samples(text: string, name: string): { labels: Record<string, string>; value: number }[] {
  const out: { labels: Record<string, string>; value: number }[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ labels, value: Number(m[3]) });
  }
  return out;
}

const session = (db: string, kind: string): SessionInfo => ({ database: { name: db }, identity: { kind } }) as unknown as SessionInfo;
const decision = (action: string, decisive: string): Decision => ({ action, decisive }) as unknown as Decision;

function registryWithEverything(sm = new StatementMetrics(config)) {
  const writeSeconds = new FixedHistogram(AUDIT_WRITE_BUCKETS);
  writeSeconds.observe(0.002);
  return createMetricsRegistry({
    sessions: () => 3,
    statements: () => ({ decided: 10, refused: 2 }),
    analysisCache: () => ({ hits: 5, misses: 5, size: 4 }),
    connections: () => ({ handshake: 1, idle: 2, active: 1 }),
    approvalsPending: () => 1,
    statementMetrics: sm,
    audit: { stats: { written: 7, batches: 2, failures: 0, lost: 0, backlog: 4, healthy: true, writeSeconds } },
    witness: { stats: { published: 1, failures: 0 } },
    ready: () => ({ ready: false, checks: [{ check: 'upstream', database: 'app', ok: false }] }),
  });
}

describe('metrics registry', () => {
  it('exposes every metric with the right type', async () => {
    const text = await registryWithEverything().metrics();
    const t = types(text);
    const expected: Record<string, string> = {
      warden_sessions: 'gauge',
      warden_connections: 'gauge',
      warden_statements_total: 'counter',
      warden_statements_decided_total: 'counter',
      warden_statements_refused_total: 'counter',
      warden_statement_overhead_seconds: 'histogram',
      warden_statement_upstream_seconds: 'histogram',
      warden_analysis_cache_hits_total: 'counter',
      warden_analysis_cache_misses_total: 'counter',
      warden_analysis_cache_entries: 'gauge',
      warden_approvals_pending: 'gauge',
      warden_audit_records_written_total: 'counter',
      warden_audit_batches_total: 'counter',
      warden_audit_write_failures_total: 'counter',
      warden_audit_records_lost_total: 'counter',
      warden_audit_backlog: 'gauge',
      warden_audit_healthy: 'gauge',
      warden_audit_write_seconds: 'histogram',
      warden_audit_witness_published_total: 'counter',
      warden_audit_witness_failures_total: 'counter',
      warden_ready: 'gauge',
      warden_upstream_up: 'gauge',
      // The standard process and Node.js metrics, under their usual names.
      process_cpu_seconds_total: 'counter',
      process_resident_memory_bytes: 'gauge',
      process_start_time_seconds: 'gauge',
      nodejs_eventloop_lag_seconds: 'gauge',
      nodejs_heap_size_used_bytes: 'gauge',
      nodejs_gc_duration_seconds: 'histogram',
    };
    for (const [name, type] of Object.entries(expected)) expect(t.get(name), name).toBe(type);
    for (const [name, type] of t) {
      // Prometheus conventions: a counter ends in _total; nothing is double-prefixed.
      if (type === 'counter') expect(name, name).toMatch(/_total$/);
      if (name.startsWith('warden_') && name.endsWith('_total')) expect(type, name).toBe('counter');
      expect(name).not.toMatch(/^warden_process_|process_process_/);
      if (name.startsWith('warden_') && /_seconds$/.test(name)) expect(type, name).toBe('histogram');
    }
    expect(samples(text, 'warden_statements_refused_total')).toEqual([{ labels: {}, value: 2 }]);
    expect(samples(text, 'warden_connections')).toContainEqual({ labels: { state: 'idle' }, value: 2 });
    expect(samples(text, 'warden_upstream_up')).toEqual([{ labels: { database: 'app' }, value: 0 }]);
    expect(samples(text, 'warden_audit_write_seconds_count')).toEqual([{ labels: {}, value: 1 }]);
  });

  it('counts statements by database, identity kind, action and rule; label values stay bounded', async () => {
    const sm = new StatementMetrics(config);
    for (let i = 0; i < 3; i++) sm.ruled(session('app', 'human'), decision('allow', 'default'));
    sm.ruled(session('app', 'agent'), decision('deny', 'no-drop'));
    sm.ruled(session('billing', 'human'), decision('deny', 'a-rule-nobody-configured'));
    sm.ruled(session('nowhere', 'human'), decision('allow', 'default'));
    sm.ruled(session('app', 'human'), null);
    const text = await registryWithEverything(sm).metrics();
    const got = samples(text, 'warden_statements_total');
    expect(got).toHaveLength(5);
    expect(got).toContainEqual({ labels: { database: 'app', identity_kind: 'human', action: 'allow', rule: 'default' }, value: 3 });
    expect(got).toContainEqual({ labels: { database: 'app', identity_kind: 'agent', action: 'deny', rule: 'no-drop' }, value: 1 });
    expect(got).toContainEqual({ labels: { database: 'billing', identity_kind: 'human', action: 'deny', rule: 'other' }, value: 1 });
    expect(got).toContainEqual({ labels: { database: 'other', identity_kind: 'human', action: 'allow', rule: 'default' }, value: 1 });
    expect(got).toContainEqual({ labels: { database: 'app', identity_kind: 'human', action: 'deny', rule: 'warden.unreadable' }, value: 1 });
  });

  it('a reload adds its rule and database names; the counts so far are kept', async () => {
    const counts = new StatementCounts(config);
    counts.count('app', 'human', 'allow', 'default');
    counts.count('app', 'agent', 'deny', 'no-drop');
    counts.count('app', 'human', 'deny', 'new-rule');
    const reloaded = parseConfig(
      `version: 1
databases:
  app: { upstream: "postgres://svc:pw@127.0.0.1:5432/app" }
  reports: { upstream: "postgres://svc:pw@127.0.0.1:5432/reports" }
identities:
  - { name: alice, kind: human, password: a }
rules:
  - { name: new-rule, match: { statement: [truncate] }, action: deny }
`,
      '/tmp/metrics-test.yaml',
      {},
    );
    counts.configure(reloaded);
    counts.count('app', 'human', 'deny', 'new-rule');
    counts.count('reports', 'service', 'allow', 'default');
    const got = counts.samples();
    expect(got).toContainEqual({ labels: { database: 'app', identity_kind: 'human', action: 'allow', rule: 'default' }, value: 1 });
    expect(got).toContainEqual({ labels: { database: 'app', identity_kind: 'agent', action: 'deny', rule: 'no-drop' }, value: 1 });
    expect(got).toContainEqual({ labels: { database: 'app', identity_kind: 'human', action: 'deny', rule: 'other' }, value: 1 });
    expect(got).toContainEqual({ labels: { database: 'app', identity_kind: 'human', action: 'deny', rule: 'new-rule' }, value: 1 });
    expect(got).toContainEqual({ labels: { database: 'reports', identity_kind: 'service', action: 'allow', rule: 'default' }, value: 1 });
  });

  it('histograms are cumulative, with +Inf, _sum and _count, per database', async () => {
    const sm = new StatementMetrics(config);
    const t = sm.timers(config.databases.app!);
    t.overhead.observe(0.00001);
    t.overhead.observe(0.0003);
    t.overhead.observe(50);
    t.upstream.observe(0.002);
    const text = await registryWithEverything(sm).metrics();
    const buckets = samples(text, 'warden_statement_overhead_seconds_bucket').filter((s) => s.labels.database === 'app');
    expect(buckets).toHaveLength(OVERHEAD_BUCKETS.length + 1);
    expect(buckets.find((b) => b.labels.le === '0.00005')!.value).toBe(1);
    expect(buckets.find((b) => b.labels.le === '0.0005')!.value).toBe(2);
    expect(buckets.find((b) => b.labels.le === '10')!.value).toBe(2);
    expect(buckets.find((b) => b.labels.le === '+Inf')!.value).toBe(3);
    for (let i = 1; i < buckets.length; i++) expect(buckets[i]!.value).toBeGreaterThanOrEqual(buckets[i - 1]!.value);
    expect(samples(text, 'warden_statement_overhead_seconds_count')).toContainEqual({ labels: { database: 'app' }, value: 3 });
    expect(samples(text, 'warden_statement_overhead_seconds_sum').find((s) => s.labels.database === 'app')!.value).toBeCloseTo(50.00031, 6);
    expect(samples(text, 'warden_statement_upstream_seconds_count')).toEqual([
      { labels: { database: 'app' }, value: 1 },
      { labels: { database: 'billing' }, value: 0 },
    ]);
  });
});

describe('admin listener: /healthz, /readyz, /metrics', () => {
  it('/healthz is alive while /readyz answers 503 with the reasons, then 200', async () => {
    let up = false;
    let reload: { ok: boolean; at?: string; error?: string } = { ok: true };
    const sources = {
      sessions: () => 0,
      statements: () => ({ decided: 0, refused: 0 }),
      analysisCache: () => ({ hits: 0, misses: 0, size: 0 }),
      databases: () => Object.values(config.databases),
      reload: () => reload,
    };
    const readiness = new Readiness({
      databases: sources.databases,
      reload: sources.reload,
      log: silentLogger(),
      onDemandMinMs: 0,
      probe: async (db) => {
        if (!up) throw new Error(`could not connect to the upstream (ECONNREFUSED) for ${db.name}`);
      },
    });
    const app = buildAdmin(sources, { readiness });
    try {
      expect((await app.inject({ url: '/healthz' })).statusCode).toBe(200);
      let r = await app.inject({ url: '/readyz' });
      expect(r.statusCode).toBe(503);
      const body = r.json() as { status: string; reasons: string[]; checks: { check: string; database?: string; ok: boolean }[] };
      expect(body.status).toBe('unavailable');
      expect(body.reasons).toEqual(['could not connect to the upstream (ECONNREFUSED) for app', 'could not connect to the upstream (ECONNREFUSED) for billing']);
      expect(body.checks.filter((c) => c.check === 'upstream').map((c) => [c.database, c.ok])).toEqual([
        ['app', false],
        ['billing', false],
      ]);
      expect((await app.inject({ url: '/metrics' })).body).toMatch(/^warden_ready 0$/m);
      up = true;
      r = await app.inject({ url: '/readyz' });
      expect(r.statusCode).toBe(200);
      expect(r.json()).toMatchObject({ status: 'ready' });
      expect((await app.inject({ url: '/metrics' })).body).toMatch(/^warden_upstream_up\{database="app"\} 1$/m);
      reload = { ok: false, at: '2026-12-07T18:00:00.000Z', error: 'rules[0].action: must be one of allow, deny, mask, approve' };
      r = await app.inject({ url: '/readyz' });
      expect(r.statusCode).toBe(503);
      expect((r.json() as { reasons: string[] }).reasons[0]).toMatch(/latest configuration reload failed.*rules\[0\]\.action/);
    } finally {
      await app.close();
    }
  });

  it('/readyz: the audit store failing under on_failure: block is a reason; under continue it is not', async () => {
    const stats = { healthy: false, lastError: 'disk full' };
    const mk = (onFailure: 'block' | 'continue') =>
      new Readiness({ databases: () => [], audit: { onFailure, stats }, log: silentLogger() });
    expect(mk('block').current()).toMatchObject({ ready: false, checks: [{ check: 'audit', ok: false, reason: expect.stringMatching(/disk full.*block/) }] });
    expect(mk('continue').current()).toMatchObject({ ready: true, checks: [{ check: 'audit', ok: true }] });
    stats.healthy = true;
    expect(mk('block').current().ready).toBe(true);
  });
});
