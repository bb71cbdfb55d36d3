/**
 * Warden's Prometheus metrics.
 *
 * The statement path never touches prom-client: it bumps plain numbers — a
 * counter slot per bounded label set ({@link StatementCounts}), a fixed bucket
 * array per histogram ({@link FixedHistogram}, one per database, handed to each
 * session once when it starts) — and the registry reads them when it is
 * scraped. Counters are exposed as counters, durations in seconds as
 * histograms, levels as gauges; the standard process and Node.js metrics keep
 * their usual names (`process_cpu_seconds_total`, `nodejs_heap_size_used_bytes`,
 * ...). docs/operations.md lists every metric.
 *
 * @module
 */
import { Registry, collectDefaultMetrics, type Metric } from 'prom-client';
import type { DatabaseConfig, IdentityKind, RuleAction, WardenConfig } from '../config/types.js';
import type { StatementTimers, SessionInfo } from '../contract/statement-hooks.js';
import type { Decision } from '../policy/index.js';
import { FixedHistogram } from '../util/histogram.js';

export { FixedHistogram, AUDIT_WRITE_BUCKETS } from '../util/histogram.js';

/** Time Warden adds to a statement, seconds: 50 µs .. 10 s. */
export const OVERHEAD_BUCKETS: readonly number[] = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10];
/** Time the upstream takes for a statement, seconds: 100 µs .. 60 s. */
export const UPSTREAM_BUCKETS: readonly number[] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** The label value for anything outside a label's bounded set. */
export const OTHER = 'other';
/** The `rule` of a statement refused before the policy because Warden cannot read its text as PostgreSQL will. */
export const UNREADABLE_RULE = 'warden.unreadable';
const BUILTIN_RULE_NAMES = ['default', 'warden.session-safety', 'warden.unparsable', UNREADABLE_RULE];
const KINDS: readonly IdentityKind[] = ['human', 'service', 'agent'];
const ACTIONS: readonly RuleAction[] = ['allow', 'deny', 'mask', 'approve'];
const KIND_INDEX: Readonly<Record<string, number>> = { human: 0, service: 1, agent: 2 };
const ACTION_INDEX: Readonly<Record<string, number>> = { allow: 0, deny: 1, mask: 2, approve: 3 };

/** A metric the registry collects from plain numbers (see {@link collector}). */
interface Sample {
  readonly labels: Record<string, string>;
  readonly value: number;
  readonly metricName?: string;
}

type MetricType = 'counter' | 'gauge' | 'histogram';

/** Registers a metric whose samples are read by `read` at scrape time. */
function collector(registry: Registry, name: string, help: string, type: MetricType, read: () => Sample[]): void {
  const m = {
    name,
    help,
    type,
    aggregator: 'sum',
    get: () => ({ name, help, type, aggregator: 'sum', values: read() }),
    reset: () => undefined,
  };
  registry.registerMetric(m as unknown as Metric);
}

/** The samples of a histogram (cumulative `_bucket`s with `le`, `_sum`, `_count`). */
function histogramSamples(name: string, h: FixedHistogram, labels: Record<string, string>, out: Sample[]): void {
  let acc = 0;
  for (let i = 0; i < h.bounds.length; i++) {
    acc += h.counts[i]!;
    out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: String(h.bounds[i]) }, value: acc });
  }
  acc += h.counts[h.bounds.length]!;
  out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: '+Inf' }, value: acc });
  out.push({ metricName: `${name}_sum`, labels, value: h.sum });
  out.push({ metricName: `${name}_count`, labels, value: h.count });
}

/**
 * Statements by database, identity kind, action and decisive rule. Label
 * values are bounded: databases and rules from the config (names added by a
 * reload join them), kinds and actions from their enums; anything else counts
 * as `other`. One slot per label set in a flat array.
 */
export class StatementCounts {
  private readonly databases = new Map<string, number>();
  private readonly rules = new Map<string, number>();
  private databaseNames: string[] = [];
  private ruleNames: string[] = [];
  /** Indexed ((database * kinds + kind) * actions + action) * rules + rule. */
  private counts = new Float64Array(0);

  constructor(config?: WardenConfig) {
    this.add([OTHER], BUILTIN_RULE_NAMES.concat(OTHER));
    if (config) this.configure(config);
  }

  /** Takes in the names of a (re)loaded config; counts so far are kept. */
  configure(config: WardenConfig): void {
    this.add(
      Object.values(config.databases).map((d) => d.name),
      config.rules.map((r) => r.name),
    );
  }

  private add(databases: readonly string[], rules: readonly string[]): void {
    const newDbs = databases.filter((d) => !this.databases.has(d));
    const newRules = rules.filter((r) => !this.rules.has(r));
    if (newDbs.length === 0 && newRules.length === 0) return;
    const old = this.counts;
    const oldRules = this.ruleNames.length;
    const oldDbs = this.databaseNames.length;
    for (const d of newDbs) {
      this.databases.set(d, this.databaseNames.length);
      this.databaseNames.push(d);
    }
    for (const r of newRules) {
      this.rules.set(r, this.ruleNames.length);
      this.ruleNames.push(r);
    }
    const R = this.ruleNames.length;
    const next = new Float64Array(this.databaseNames.length * KINDS.length * ACTIONS.length * R);
    // Existing slots keep their values: a row of rules per (database, kind, action).
    for (let row = 0; row < oldDbs * KINDS.length * ACTIONS.length; row++) {
      next.set(old.subarray(row * oldRules, (row + 1) * oldRules), row * R);
    }
    this.counts = next;
  }

  /** One statement: a few map and array lookups, no allocation. */
  count(database: string, kind: string, action: string, rule: string): void {
    const d = this.databases.get(database) ?? 0;
    const k = KIND_INDEX[kind];
    const a = ACTION_INDEX[action];
    if (k === undefined || a === undefined) return;
    const r = this.rules.get(rule) ?? this.rules.get(OTHER)!;
    this.counts[((d * KINDS.length + k) * ACTIONS.length + a) * this.ruleNames.length + r]++;
  }

  /** Counts a ruled statement (decision null: refused before the policy, its text unreadable). */
  ruled(s: SessionInfo, decision: Decision | null): void {
    if (decision) this.count(s.database.name, s.identity.kind, decision.action, decision.decisive);
    else this.count(s.database.name, s.identity.kind, 'deny', UNREADABLE_RULE);
  }

  /** Non-zero slots as samples. */
  samples(): Sample[] {
    const out: Sample[] = [];
    const R = this.ruleNames.length;
    const c = this.counts;
    for (let i = 0; i < c.length; i++) {
      if (c[i] === 0) continue;
      const r = i % R;
      const a = Math.floor(i / R) % ACTIONS.length;
      const k = Math.floor(i / (R * ACTIONS.length)) % KINDS.length;
      const d = Math.floor(i / (R * ACTIONS.length * KINDS.length));
      out.push({ labels: { database: this.databaseNames[d]!, identity_kind: KINDS[k]!, action: ACTIONS[a]!, rule: this.ruleNames[r]! }, value: c[i]! });
    }
    return out;
  }
}

/** The statement path's side of the metrics: counts and per-database timers. */
export class StatementMetrics {
  readonly counts: StatementCounts;
  private readonly timersByDb = new Map<string, StatementTimers & { readonly overhead: FixedHistogram; readonly upstream: FixedHistogram }>();

  constructor(config?: WardenConfig) {
    this.counts = new StatementCounts(config);
    if (config) for (const d of Object.values(config.databases)) this.timers(d);
  }

  /** The timers of a database's sessions (handed to each session once; see SessionHooks.timers). */
  timers = (db: DatabaseConfig): StatementTimers => {
    let t = this.timersByDb.get(db.name);
    if (!t) {
      t = { overhead: new FixedHistogram(OVERHEAD_BUCKETS), upstream: new FixedHistogram(UPSTREAM_BUCKETS) };
      this.timersByDb.set(db.name, t);
    }
    return t;
  };

  /** See {@link StatementCounts.ruled} (a function: handed to the policy as is). */
  ruled = (s: SessionInfo, decision: Decision | null): void => this.counts.ruled(s, decision);

  histograms(which: 'overhead' | 'upstream'): [string, FixedHistogram][] {
    return [...this.timersByDb].map(([db, t]) => [db, t[which]]);
  }
}

/** Where the registry reads what it exposes; every source is optional. */
export interface MetricSources {
  sessions(): number;
  statements(): { decided: number; refused: number };
  analysisCache(): { hits: number; misses: number; size: number };
  /** Connections by state (handshake, idle, active, idle_in_transaction, ...). */
  connections?(): Readonly<Record<string, number>>;
  /** Statements this instance holds for an approval. */
  approvalsPending?(): number;
  /** Limits crossed since start, by `limit\u0000measure`. */
  limitsExceeded?(): ReadonlyMap<string, number>;
  statementMetrics?: StatementMetrics;
  audit?: {
    readonly stats: {
      readonly written: number;
      readonly batches: number;
      readonly failures: number;
      readonly lost: number;
      readonly backlog: number;
      readonly healthy: boolean;
      readonly writeSeconds?: FixedHistogram;
    };
  };
  witness?: { readonly stats: { readonly published: number; readonly failures: number } };
  /** Readiness (1 ready, 0 not) and its checks; see readiness.ts. */
  ready?(): { ready: boolean; checks: readonly { check: string; ok: boolean; database?: string }[] };
}

/** The registry behind `/metrics`. */
export function createMetricsRegistry(src: MetricSources): Registry {
  const registry = new Registry();
  // The standard names (process_cpu_seconds_total, nodejs_eventloop_lag_seconds, ...): no prefix.
  collectDefaultMetrics({ register: registry });
  const one = (value: number, labels: Record<string, string> = {}): Sample[] => [{ labels, value }];
  const counter = (name: string, help: string, read: () => number): void => collector(registry, name, help, 'counter', () => one(read()));
  const gauge = (name: string, help: string, read: () => number): void => collector(registry, name, help, 'gauge', () => one(read()));

  gauge('warden_sessions', 'Client sessions currently relayed', () => src.sessions());
  if (src.connections) {
    const read = src.connections;
    collector(registry, 'warden_connections', 'Client connections by state (handshake, idle, active, idle_in_transaction, idle_in_failed_transaction)', 'gauge', () =>
      Object.entries(read()).map(([state, value]) => ({ labels: { state }, value })),
    );
  }
  counter('warden_statements_decided_total', 'Statements decided by the policy since start', () => src.statements().decided);
  counter('warden_statements_refused_total', 'Statements refused since start (by the policy, an approval, masking or an unreadable text)', () => src.statements().refused);
  const sm = src.statementMetrics;
  if (sm) {
    collector(registry, 'warden_statements_total', 'Statements ruled, by database, identity kind, action and decisive rule', 'counter', () => sm.counts.samples());
    const hist = (name: string, help: string, which: 'overhead' | 'upstream'): void =>
      collector(registry, name, help, 'histogram', () => {
        const out: Sample[] = [];
        for (const [database, h] of sm.histograms(which)) histogramSamples(name, h, { database }, out);
        return out;
      });
    hist('warden_statement_overhead_seconds', 'Time from a statement reaching Warden to its forwarding upstream or its refusal (analysis, policy, audit record; an approval wait included)', 'overhead');
    hist('warden_statement_upstream_seconds', 'Time from forwarding a statement upstream to its completion', 'upstream');
  }
  counter('warden_analysis_cache_hits_total', 'Statement analyses served from the cache', () => src.analysisCache().hits);
  counter('warden_analysis_cache_misses_total', 'Statements parsed and analysed', () => src.analysisCache().misses);
  gauge('warden_analysis_cache_entries', 'Analyses held in the cache', () => src.analysisCache().size);
  if (src.approvalsPending) {
    const read = src.approvalsPending;
    gauge('warden_approvals_pending', 'Statements this instance holds waiting for an approval', () => read());
  }
  if (src.limitsExceeded) {
    const read = src.limitsExceeded;
    collector(registry, 'warden_limits_exceeded_total', 'Limits crossed (statements halted, refused or held), by limit and measure', 'counter', () =>
      [...read()].map(([key, value]) => {
        const [limit, measure] = key.split('\u0000');
        return { labels: { limit: limit!, measure: measure! }, value };
      }),
    );
  }
  const audit = src.audit;
  if (audit) {
    counter('warden_audit_records_written_total', 'Audit records written', () => audit.stats.written);
    counter('warden_audit_batches_total', 'Audit writes (group commits)', () => audit.stats.batches);
    counter('warden_audit_write_failures_total', 'Audit writes that failed', () => audit.stats.failures);
    counter('warden_audit_records_lost_total', 'Audit records dropped (backlog full, cut by a failed sync, not encodable)', () => audit.stats.lost);
    gauge('warden_audit_backlog', 'Audit records waiting to be written (the queue depth)', () => audit.stats.backlog);
    gauge('warden_audit_healthy', '1 when the audit store accepts writes', () => (audit.stats.healthy ? 1 : 0));
    const h = audit.stats.writeSeconds;
    if (h) {
      collector(registry, 'warden_audit_write_seconds', 'Time for audit records to become durable: a batch written and committed, or a turn of records written and synced', 'histogram', () => {
        const out: Sample[] = [];
        histogramSamples('warden_audit_write_seconds', h, {}, out);
        return out;
      });
    }
  }
  const witness = src.witness;
  if (witness) {
    counter('warden_audit_witness_published_total', 'Checkpoints written to a witness (one per witness)', () => witness.stats.published);
    counter('warden_audit_witness_failures_total', 'Checkpoints a witness did not get (one per witness; see the log)', () => witness.stats.failures);
  }
  if (src.ready) {
    const ready = src.ready;
    gauge('warden_ready', '1 when /readyz would answer 200 (upstreams reachable, audit writable, latest reload good), as of the latest probes', () => (ready().ready ? 1 : 0));
    collector(registry, 'warden_upstream_up', '1 when the latest readiness probe of the database could connect and log in', 'gauge', () =>
      ready()
        .checks.filter((c) => c.check === 'upstream' && c.database !== undefined)
        .map((c) => ({ labels: { database: c.database! }, value: c.ok ? 1 : 0 })),
    );
  }
  return registry;
}

/** The `state` label of `warden_connections` for a session's activity state (see Session.activity). */
const CONNECTION_STATE: Readonly<Record<string, string>> = {
  idle: 'idle',
  active: 'active',
  'active (COPY)': 'active',
  'idle in transaction': 'idle_in_transaction',
  'idle in transaction (aborted)': 'idle_in_transaction_aborted',
  deciding: 'deciding',
};

/** Connections by state, for `warden_connections`: those in their handshake, and each session's state. */
export function connectionStates(handshaking: number, sessions: Iterable<{ activity(): { readonly state: string } }>): Record<string, number> {
  const out: Record<string, number> = { handshake: handshaking, idle: 0, active: 0, idle_in_transaction: 0, idle_in_transaction_aborted: 0, deciding: 0 };
  for (const s of sessions) {
    const st = CONNECTION_STATE[s.activity().state];
    if (st !== undefined) out[st]!++;
  }
  return out;
}
