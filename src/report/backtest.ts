/**
 * Policy backtest: the statements recorded in a period, replayed through the
 * real analyser and the policy decision of a proposed configuration, and what
 * would have changed (docs/reports.md#backtest).
 *
 * For each `statement.begin` / `statement.refused` record of the period:
 * - the recorded text is analysed again (`analyzeSql`) with the default
 *   search_path (`"$user", public`; the session's own is not recorded) and the
 *   upstream user of the proposed config's database of that name;
 * - the identity is the recorded name, kind and on-behalf-of, with the groups its
 *   `session.start` recorded (else the proposed config's); the session is the
 *   recorded database, environment, client address and intent, at the record's time;
 * - the sensitive map is the one in force then: the sensitive types the record
 *   names (what the running Warden found through its map and the catalog) are
 *   given to the decision, and the proposed `sensitive.columns` may add types
 *   for the columns the statement names; a classification the proposal removes
 *   is not taken away;
 * - the proposed `limits:` are replayed on the recorded figures: `max_rows` on
 *   the rows the completion recorded, `rows_per_hour` and `statements_per_minute`
 *   on the identity's statements of the clock hour / minute as recorded.
 *   `max_bytes` and `max_estimated_rows` need what was not recorded (result
 *   bytes, the planner's estimate) and are not replayed.
 *
 * Not replayable (counted, not guessed): a text Warden withheld or capped, a
 * text recorded with the statement's constants normalized to `$n` is replayed
 * as such (rules do not look at constants).
 */
import type { AuditRecord } from '../audit/chain.js';
import type { AuditStore } from '../audit/store.js';
import type { DatabaseConfig, IdentityConfig, LimitConfig, RuleConfig, SensitiveConfig } from '../config/types.js';
import { decide, policyFromConfig, type CompiledPolicy, type Decision } from '../policy/index.js';
import { analyzeSql, initSqlParser, DEFAULT_SEARCH_PATH, type Analysis } from '../sql/index.js';
import { endFacts, isStatement, oneLine, ref, statementFacts, str, strings, type Data, type EndFacts, type StatementFacts } from './facts.js';
import { CappedList, type Listing } from './types.js';
import { nextTurn } from './read-stretch.js';

export const BACKTEST_CATEGORIES = ['newly-refused', 'newly-held', 'newly-masked', 'newly-limited', 'now-allowed', 'now-unmasked'] as const;
export type BacktestCategory = (typeof BACKTEST_CATEGORIES)[number];

export const CATEGORY_TITLES: Record<BacktestCategory, string> = {
  'newly-refused': 'Newly refused',
  'newly-held': 'Newly held for approval',
  'newly-masked': 'Newly masked',
  'newly-limited': 'Newly limited',
  'now-allowed': 'Now allowed',
  'now-unmasked': 'Now unmasked',
};

/** The policy a backtest decides with: the proposed configuration's policy sections. */
export interface ProposedPolicy {
  rules: readonly RuleConfig[];
  default: 'allow' | 'deny';
  sensitive?: SensitiveConfig;
  limits: readonly LimitConfig[];
  identities?: readonly IdentityConfig[];
  databases?: Readonly<Record<string, DatabaseConfig>>;
}

export interface BacktestChange {
  category: BacktestCategory;
  ts: string;
  record: string;
  identity: string;
  kind: string;
  database: string;
  sql: string;
  /** maskedColumns: the result columns the completion says were masked. */
  was: { action: string; rule: string; outcome: 'ran' | 'refused'; masked: boolean; maskedColumns: string[]; rows: number | null };
  now: { action: string; rule: string; reason: string; masked: boolean; limits: string[] };
  /** Why, in a few words (the limit crossed, the rule that decides). */
  detail: string;
}

export interface BacktestResult {
  period: { from: string; to: string; database: string | null };
  store: string;
  /** Statement records of the period read. */
  statements: number;
  replayed: number;
  unchanged: number;
  notReplayable: { total: number; byReason: { key: string; count: number }[] };
  counts: Record<BacktestCategory, number>;
  changes: Record<BacktestCategory, Listing<BacktestChange>>;
  /** What the replay could not take into account. */
  notes: string[];
}

export interface BacktestOptions {
  from: string;
  to: string;
  database?: string;
  policy: ProposedPolicy;
  cap?: number;
  onProgress?(p: { instance: string; done: number }): void;
}

const LIMIT_SQLSTATES = new Set(['54000', '53400']);

function maskedBy(d: Decision): boolean {
  return d.sensitiveTypes.length > 0 && (d.action === 'mask' || (d.action === 'approve' && d.masked));
}

/** A withheld or capped text cannot be replayed: why, or undefined when it can. */
export function unreplayable(r: AuditRecord, f: StatementFacts): string | undefined {
  const d = r.data as Data;
  if (f.sql.startsWith('<statement withheld')) return 'text withheld by Warden (a secret or an unparsable sensitive statement)';
  if (d.sql_length !== undefined || d.sql_sha256 !== undefined) return 'text longer than the recorded cap';
  if (f.sql.trim() === '') return 'no text recorded';
  return undefined;
}

export async function backtest(store: AuditStore, o: BacktestOptions): Promise<BacktestResult> {
  await initSqlParser();
  const cap = o.cap ?? 5000;
  const policy: CompiledPolicy = policyFromConfig({ rules: o.policy.rules as RuleConfig[], default: o.policy.default, sensitive: o.policy.sensitive, limits: o.policy.limits });
  const limitsByName = new Map(o.policy.limits.map((l) => [l.name, l]));
  const configGroups = new Map((o.policy.identities ?? []).map((i) => [i.name, i.groups]));
  const sessionInfo = new Map<string, { groups?: string[]; client?: string }>();
  const analyses = new Map<string, Analysis>();
  const analyse = (sql: string, database: string): Analysis => {
    const user = o.policy.databases?.[database]?.upstream.user;
    const key = `${user ?? ''}\u0000${sql}`;
    let a = analyses.get(key);
    if (!a) {
      if (analyses.size >= 20_000) analyses.clear();
      a = analyzeSql(sql, { searchPath: DEFAULT_SEARCH_PATH, user });
      analyses.set(key, a);
    }
    return a;
  };
  const lists = Object.fromEntries(BACKTEST_CATEGORIES.map((c) => [c, new CappedList<BacktestChange>(cap)])) as Record<BacktestCategory, CappedList<BacktestChange>>;
  const notReplayable = new Map<string, number>();
  // Rates as the proposed limits would count them: per limit, identity and clock minute / hour.
  const perMinute = new Map<string, number>();
  const perHour = new Map<string, number>();
  let statements = 0;
  let replayed = 0;
  let unchanged = 0;

  const judge = (f: StatementFacts, rec: AuditRecord, e: EndFacts | undefined): void => {
    const why = unreplayable(rec, f);
    if (why) {
      notReplayable.set(why, (notReplayable.get(why) ?? 0) + 1);
      return;
    }
    replayed++;
    const info = sessionInfo.get(f.session);
    const groups = info?.groups ?? configGroups.get(f.identity) ?? [];
    const analysis = analyse(f.sql, f.database);
    const d = decide(
      {
        identity: { name: f.identity, kind: (f.kind || 'human') as 'human', groups, ...(f.onBehalfOf ? { onBehalfOf: f.onBehalfOf } : {}) },
        session: { database: f.database, environment: f.environment, clientAddress: info?.client, intent: f.intent, now: new Date(f.ts) },
        analysis,
        sensitiveTypes: new Set(f.sensitive),
      },
      policy,
    );
    const refused = f.type === 'statement.refused';
    const wasAction = f.action ?? 'allow';
    const wasMasked = wasAction === 'mask' || (e !== undefined && e.masked.length > 0);
    const nowMasked = maskedBy(d);
    const limitedThen = (e?.sqlstate !== undefined && LIMIT_SQLSTATES.has(e.sqlstate)) || (refused && f.sqlstate !== undefined && LIMIT_SQLSTATES.has(f.sqlstate));
    // The proposed limits, on what was recorded.
    const crossed: string[] = [];
    const ran = !refused;
    for (const name of d.limits ?? []) {
      const l = limitsByName.get(name);
      if (!l) continue;
      const t = Date.parse(f.ts);
      if (l.statementsPerMinute !== undefined && ran) {
        const k = `${name}\u0000${f.identity}\u0000${Math.floor(t / 60_000)}`;
        const n = (perMinute.get(k) ?? 0) + 1;
        perMinute.set(k, n);
        if (n > l.statementsPerMinute) crossed.push(`${name}: statement ${n} of the minute > statements_per_minute ${l.statementsPerMinute}`);
      }
      if (e !== undefined && l.maxRows !== undefined && e.rows > l.maxRows) crossed.push(`${name}: ${e.rows} rows > max_rows ${l.maxRows}`);
      if (e !== undefined && l.rowsPerHour !== undefined) {
        const k = `${name}\u0000${f.identity}\u0000${Math.floor(t / 3_600_000)}`;
        const before = perHour.get(k) ?? 0;
        perHour.set(k, before + e.rows);
        if (before + e.rows > l.rowsPerHour) crossed.push(`${name}: ${before + e.rows} rows in the hour > rows_per_hour ${l.rowsPerHour}`);
      }
    }
    let category: BacktestCategory | undefined;
    let detail = '';
    if (d.action === 'deny' && wasAction !== 'deny') {
      category = 'newly-refused';
      detail = d.reason;
    } else if (wasAction === 'deny' && refused && d.action !== 'deny') {
      category = 'now-allowed';
      detail = `would be ${d.action} (${d.decisive})`;
    } else if (d.action === 'approve' && wasAction !== 'approve') {
      category = 'newly-held';
      detail = d.reason;
    } else if (wasAction === 'approve' && d.action !== 'approve' && d.action !== 'deny') {
      category = 'now-allowed';
      detail = `no longer held: would be ${d.action} (${d.decisive})`;
    } else if (nowMasked && !wasMasked) {
      category = 'newly-masked';
      detail = `${d.sensitiveTypes.join(', ')} masked by ${d.decisive}`;
    } else if (wasMasked && !nowMasked && f.sensitive.length > 0) {
      category = ran ? 'now-unmasked' : 'now-allowed';
      detail = ran ? `${f.sensitive.join(', ')} would be sent unmasked (${d.decisive})` : `refused by masking then; would be ${d.action} (${d.decisive})`;
    } else if (crossed.length > 0 && ran && !limitedThen) {
      category = 'newly-limited';
      detail = crossed.join('; ');
    }
    if (!category) {
      unchanged++;
      return;
    }
    lists[category].push({
      category,
      ts: f.ts,
      record: ref(f),
      identity: f.identity,
      kind: f.kind,
      database: f.database,
      sql: oneLine(f.sql, 2000),
      was: { action: wasAction, rule: f.rule ?? '', outcome: refused ? 'refused' : 'ran', masked: wasMasked, maskedColumns: e?.masked ?? [], rows: e ? e.rows : null },
      now: { action: d.action, rule: d.decisive, reason: d.reason, masked: nowMasked, limits: [...(d.limits ?? [])] },
      detail,
    });
  };

  let done = 0;
  for (const instance of await store.instances()) {
    const waiting = new Map<number, { f: StatementFacts; r: AuditRecord }>();
    for await (const r of store.query({ instance, since: o.from, until: o.to })) {
      if (++done % 20_000 === 0) o.onProgress?.({ instance, done });
      // A backtest made by a running Warden (the admin API) lets its statements through meanwhile.
      if (done % 500 === 0) await nextTurn();
      const d = r.data as Data;
      if (r.type === 'session.start') {
        const s = str(d.session);
        if (s) sessionInfo.set(s, { groups: Array.isArray(d.groups) ? strings(d.groups) : undefined, client: str(d.client_address) });
        continue;
      }
      if (isStatement(r)) {
        const f = statementFacts(r);
        if (o.database !== undefined && f.database !== o.database) continue;
        statements++;
        // A statement that ran is judged with its completion (rows, masked columns); a refused one now.
        if (f.type === 'statement.begin') waiting.set(r.seq, { f, r });
        else judge(f, r, undefined);
        continue;
      }
      if (r.type === 'statement.end') {
        const e = endFacts(r);
        const w = e ? waiting.get(e.beginSeq) : undefined;
        if (e && w) {
          waiting.delete(e.beginSeq);
          judge(w.f, w.r, e);
        }
      }
    }
    for (const w of waiting.values()) judge(w.f, w.r, undefined);
  }
  const counts = Object.fromEntries(BACKTEST_CATEGORIES.map((c) => [c, lists[c].total])) as Record<BacktestCategory, number>;
  return {
    period: { from: o.from, to: o.to, database: o.database ?? null },
    store: store.description,
    statements,
    replayed,
    unchanged,
    notReplayable: {
      total: [...notReplayable.values()].reduce((a, b) => a + b, 0),
      byReason: [...notReplayable.entries()].map(([key, count]) => ({ key, count })),
    },
    counts,
    changes: Object.fromEntries(BACKTEST_CATEGORIES.map((c) => [c, lists[c].toJSON()])) as Record<BacktestCategory, Listing<BacktestChange>>,
    notes: [
      'search_path: the default "$user", public with the upstream user of the proposed database (a session\'s own search_path is not recorded).',
      'sensitive map: the types each record names (as the running Warden found them) plus those the proposed sensitive.columns add; a removed classification is not taken away.',
      'limits: max_rows, rows_per_hour and statements_per_minute are replayed on the recorded rows and times; max_bytes and max_estimated_rows are not (result bytes and planner estimates are not recorded).',
      'functions, triggers and rules a statement runs are judged from its text only (the catalog of the time is not recorded), so an opaque call is judged fail-closed as the analyser sees it.',
    ],
  };
}

export function formatBacktest(b: BacktestResult): string {
  const lines: string[] = [];
  lines.push(`Backtest ${b.period.from} to ${b.period.to}${b.period.database ? ` (database ${b.period.database})` : ''} on ${b.store}`);
  lines.push(`${b.statements} statement(s) recorded, ${b.replayed} replayed, ${b.unchanged} unchanged, ${b.notReplayable.total} not replayable${b.notReplayable.total ? ` (${b.notReplayable.byReason.map((r) => `${r.count} ${r.key}`).join('; ')})` : ''}`);
  for (const c of BACKTEST_CATEGORIES) lines.push(`  ${CATEGORY_TITLES[c].padEnd(24)} ${String(b.counts[c]).padStart(7)}`);
  for (const c of BACKTEST_CATEGORIES) {
    const l = b.changes[c];
    if (l.total === 0) continue;
    lines.push('', `${CATEGORY_TITLES[c]} (${l.total}):`);
    lines.push(`  ${'time'.padEnd(24)} ${'identity'.padEnd(14)} ${'was'.padEnd(16)} ${'now'.padEnd(16)} statement / why`);
    for (const x of l.items) {
      const was = `${x.was.outcome === 'refused' ? 'refused' : x.was.action}${x.was.masked ? '+mask' : ''}`;
      const now = `${x.now.action}${x.now.masked ? '+mask' : ''}`;
      lines.push(`  ${x.ts.padEnd(24)} ${x.identity.padEnd(14)} ${was.padEnd(16)} ${now.padEnd(16)} ${oneLine(x.sql, 100)}`);
      lines.push(`  ${''.padEnd(24)} ${''.padEnd(14)} ${''.padEnd(16)} ${''.padEnd(16)} → ${oneLine(x.detail, 140)}`);
    }
    if (l.truncated) lines.push(`  … ${l.total - l.items.length} more (--json, or a larger --max-rows)`);
  }
  lines.push('', 'Limits of a backtest:', ...b.notes.map((n) => `  - ${n}`));
  return lines.join('\n');
}
