/**
 * `limits:` — how much and how fast, where the rules decide *what* (docs/limits.md).
 *
 * The policy names the limits that apply to a statement (`Decision.limits`: those whose
 * match holds or may hold); this step enforces their figures:
 *
 * - `statements_per_minute`: statements the identity starts per clock minute, all its
 *   sessions (with a state store, on every instance using it: limit-counters.ts); beyond it
 *   the statement is refused (53400) with the time the minute ends.
 * - `max_rows`, `max_bytes`: the statement's results are bounded ({@link RowLimit}): the
 *   session halts it at the row that would cross the bound (54000), cancels it upstream,
 *   and the session stays usable.
 * - `rows_per_hour`: rows returned to the identity per clock hour; what is left of the hour
 *   bounds each statement as max_rows does.
 * - `on_exceed: suspend`: the identity is also suspended (the operators' kill switch) until
 *   an operator resumes it.
 *
 * Every crossing is recorded (`limit.exceeded`: the limit, the measure, the figure reached,
 * the bound, the statement as the audit shows it) and logged. With no limit configured the
 * statement path does nothing here.
 *
 * @module
 */
import type { Logger } from '../log/logger.js';
import type { DatabaseConfig, LimitConfig } from '../config/types.js';
import type { Decision } from '../policy/index.js';
import type { Analysis } from '../sql/index.js';
import type { ErrorVerdictFields, RowLimit, SessionInfo, StatementOutcome, StatementSource } from '../contract/statement-hooks.js';
import { redactSecrets } from '../sql/secrets.js';

export type LimitMeasure = 'max_rows' | 'max_bytes' | 'rows_per_hour' | 'statements_per_minute' | 'max_estimated_rows';

/** What a read's estimate rules, before it runs. */
export type EstimateRuling =
  | { readonly refusal: ErrorVerdictFields; readonly approval?: undefined }
  | { readonly refusal?: undefined; readonly approval: { readonly rule: string; readonly reason: string; readonly approvers: { readonly groups: readonly string[]; readonly count: number } } };

/** An approval rule for a first read (see {@link LimitService.firstTouch}). */
export interface FirstTouchApproval {
  readonly rule: string;
  readonly reason: string;
  readonly approvers: { readonly groups: readonly string[]; readonly count: number };
  readonly remember: true;
}

/** The planner's row estimate of one read statement (catalog-reader.ts `estimate`). */
export type Estimate = (db: DatabaseConfig, sql: string, params: readonly (string | null)[], searchPath: readonly string[]) => Promise<number>;

/** What the limits rule for one statement. */
export type LimitRuling =
  | { readonly refusal: ErrorVerdictFields; readonly limit?: undefined; readonly onDone?: undefined }
  | { readonly refusal?: undefined; readonly limit?: RowLimit; readonly onDone?: (o: StatementOutcome) => void };

export interface LimitService {
  /** The limits named by `decision.limits`, for a statement the policy lets run. */
  check(s: SessionInfo, stmt: StatementSource, decision: Decision): LimitRuling;
  /**
   * `max_estimated_rows`: null when no such limit applies or the statement has no read; else,
   * once the reads of the string were estimated (a plain EXPLAIN each), null when all are within
   * their bounds, or what to do instead: a refusal (halt, suspend) or an approval to ask for.
   * A read Warden cannot estimate (binary parameters, code it cannot see, a plan it cannot
   * make, a search_path it is not sure of) counts as over the bound: fail closed.
   */
  estimate(s: SessionInfo, stmt: StatementSource, analysis: Analysis, decision: Decision, searchPath: readonly string[] | null | undefined): Promise<EstimateRuling | null> | null;
  /**
   * first_touch: the approvals to ask for the tables (and sensitive types) of the statement's
   * reads that the identity never read under a first_touch limit — each a rule
   * `first-touch:LIMIT:OBJECT` to remember once approved (a lasting grant). Empty when all
   * were read before (known to this instance, or covered by a grant the approval service finds).
   */
  firstTouch(s: SessionInfo, analysis: Analysis, decision: Decision): FirstTouchApproval[];
  /** The first touches of these rules were approved (or found granted): not asked again here. */
  touched(s: SessionInfo, rules: readonly string[]): void;
  /** How often each limit was crossed since start, by `limit\u0000measure`. */
  readonly exceeded: ReadonlyMap<string, number>;
  /** Stop exchanging counts (a shared {@link LimitCounters}). */
  close(): void;
}

export interface LimitServiceOptions {
  readonly limits: readonly LimitConfig[];
  readonly log: Logger;
  /** Where `limit.exceeded` records go (the audit log). */
  readonly record?: (type: string, data: Record<string, unknown>) => void;
  /** Suspend an identity (`on_exceed: suspend`); resolved late: the kill switch starts after the policy. */
  readonly suspend?: () => ((identity: string, reason: string, by: string) => Promise<unknown>) | undefined;
  /** Crossings by `limit\u0000measure` (metrics), kept across reloads by the caller; default: a map of its own. */
  readonly exceededCounts?: Map<string, number>;
  /** Takes the planner's estimates (absent: max_estimated_rows cannot be checked, and fails closed). */
  readonly estimator?: Estimate;
  /** Where the minute and hour counts are kept (default: in this process, {@link localCounters}). */
  readonly counters?: LimitCounters;
  /** The clock (tests). */
  readonly now?: () => number;
}

/**
 * The counts behind statements_per_minute and rows_per_hour, per limit and identity, over
 * fixed clock windows (`window`: the window's start, ms since the epoch). Reads and adds are
 * synchronous and cheap (they run per statement); an implementation shared by several
 * instances (the state store) adds locally and exchanges its counts in the background.
 */
export interface LimitCounters {
  /** The count of (limit, identity) in the window starting at `window` (0 for an older window). */
  get(kind: 'statements' | 'rows', limit: string, identity: string, window: number): number;
  /** Add `n` to it. */
  add(kind: 'statements' | 'rows', limit: string, identity: string, window: number, n: number): void;
  close?(): void;
}

/** Counts kept in this process only (lost on restart, not shared). */
export function localCounters(): LimitCounters {
  const windows = new Map<string, Window>();
  return {
    get: (kind, limit, identity, window) => {
      const w = windows.get(`${kind}\u0000${limit}\u0000${identity}`);
      return w !== undefined && w.start === window ? w.count : 0;
    },
    add: (kind, limit, identity, window, n) => {
      windowOf(windows, `${kind}\u0000${limit}\u0000${identity}`, window).count += n;
    },
  };
}

const MINUTE_MS = 60_000;
const HOUR_MS = 3_600_000;
/** Characters of the statement a `limit.exceeded` record carries (secrets redacted first). */
const SQL_CAP = 2048;

/** A counter over fixed clock windows (minutes, hours). */
interface Window {
  start: number;
  count: number;
}

function windowOf(map: Map<string, Window>, key: string, start: number): Window {
  let w = map.get(key);
  if (w === undefined) {
    w = { start, count: 0 };
    map.set(key, w);
  } else if (w.start !== start) {
    w.start = start;
    w.count = 0;
  }
  return w;
}

const NO_LIMITS: LimitRuling = Object.freeze({});

export function createLimitService(o: LimitServiceOptions): LimitService {
  const byName = new Map(o.limits.map((l) => [l.name, l]));
  const now = o.now ?? Date.now;
  const counters = o.counters ?? localCounters();
  const exceeded = o.exceededCounts ?? new Map<string, number>();

  const shownSql = (stmt: StatementSource): string => {
    const red = redactSecrets(stmt.sql);
    const text = red ? red.text : stmt.sql;
    return text.length > SQL_CAP ? `${text.slice(0, SQL_CAP)}…` : text;
  };

  /** A limit was crossed: counted, logged, recorded, and the identity suspended when the limit says so. */
  const crossed = (s: SessionInfo, stmt: StatementSource, l: LimitConfig, measure: LimitMeasure, figure: number | null, max: number, why?: string): void => {
    const key = `${l.name}\u0000${measure}`;
    exceeded.set(key, (exceeded.get(key) ?? 0) + 1);
    o.log.warn({ session: s.id, identity: s.identity.name, limit: l.name, measure, figure, max }, 'limit exceeded');
    o.record?.('limit.exceeded', {
      session: s.id,
      identity: s.identity.name,
      kind: s.identity.kind,
      database: s.database.name,
      limit: l.name,
      measure,
      figure,
      max,
      ...(why !== undefined ? { why } : {}),
      on_exceed: l.onExceed,
      protocol: stmt.protocol,
      sql: shownSql(stmt),
    });
    if (l.onExceed === 'suspend') {
      const suspend = o.suspend?.();
      const reason = `limit "${l.name}" exceeded: ${measure} ${figure ?? `unknown (${why ?? 'no figure'})`} > ${max}`;
      if (!suspend) {
        o.log.error({ identity: s.identity.name, limit: l.name }, 'on_exceed: suspend, but the kill switch is not running (it needs admin: or state:); the identity is not suspended');
        return;
      }
      suspend(s.identity.name, reason, `limits:${l.name}`).catch((err: Error) =>
        o.log.error({ identity: s.identity.name, limit: l.name, reason: err.message }, 'suspending an identity for a limit failed'),
      );
    }
  };

  const check = (s: SessionInfo, stmt: StatementSource, decision: Decision): LimitRuling => {
    const names = decision.limits;
    if (names === undefined || names.length === 0) return NO_LIMITS;
    const t = now();
    const minute = t - (t % MINUTE_MS);
    const hour = t - (t % HOUR_MS);
    const who = s.identity.name;
    // The bounds on this statement's results, and the limit each comes from.
    let maxRows = Infinity;
    let rowsFrom: { l: LimitConfig; measure: LimitMeasure; max: number } | undefined;
    let maxBytes = Infinity;
    let bytesFrom: LimitConfig | undefined;
    const hourly: string[] = [];
    // First every rate check (nothing counted unless the statement may run), then the counts.
    const perMinute: string[] = [];
    for (const name of names) {
      const l = byName.get(name);
      if (l === undefined) continue;
      if (l.statementsPerMinute !== undefined) {
        const count = counters.get('statements', name, who, minute);
        if (count >= l.statementsPerMinute) {
          crossed(s, stmt, l, 'statements_per_minute', count + 1, l.statementsPerMinute);
          const resets = new Date(minute + MINUTE_MS);
          return {
            refusal: {
              code: '53400',
              message: `limit "${name}": ${who} may start ${l.statementsPerMinute} statements per minute (statements_per_minute) and reached it; it resets at ${resets.toISOString()}`,
              hint: `Wait ${Math.ceil((minute + MINUTE_MS - t) / 1000)} s, or ask an operator to change the limit.`,
            },
          };
        }
        perMinute.push(name);
      }
      if (l.maxRows !== undefined && l.maxRows < maxRows) {
        maxRows = l.maxRows;
        rowsFrom = { l, measure: 'max_rows', max: l.maxRows };
      }
      if (l.rowsPerHour !== undefined) {
        hourly.push(name);
        const left = Math.max(0, l.rowsPerHour - counters.get('rows', name, who, hour));
        if (left < maxRows) {
          maxRows = left;
          rowsFrom = { l, measure: 'rows_per_hour', max: l.rowsPerHour };
        }
      }
      if (l.maxBytes !== undefined && l.maxBytes < maxBytes) {
        maxBytes = l.maxBytes;
        bytesFrom = l;
      }
    }
    for (const name of perMinute) counters.add('statements', name, who, minute, 1);
    if (maxRows === Infinity && maxBytes === Infinity) return NO_LIMITS;
    const limit: RowLimit = {
      maxRows,
      maxBytes,
      exceeded: (rows, bytes) => {
        if (rows > maxRows && rowsFrom) {
          const { l, measure, max } = rowsFrom;
          if (measure === 'rows_per_hour') {
            const used = max - maxRows;
            crossed(s, stmt, l, measure, used + rows, max);
            return {
              code: '54000',
              message: `limit "${l.name}": ${who} may receive ${max} rows per hour (rows_per_hour); this statement was halted at row ${rows} with ${used + rows - 1} rows received this hour`,
              hint: `The hour ends at ${new Date(hour + HOUR_MS).toISOString()}.`,
            };
          }
          crossed(s, stmt, l, measure, rows, max);
          return {
            code: '54000',
            message: `limit "${l.name}": a statement may return ${max} rows (max_rows); this one was halted at row ${rows}`,
            hint: 'Ask for fewer rows (a WHERE clause, LIMIT, or an aggregate).',
          };
        }
        const l = bytesFrom!;
        crossed(s, stmt, l, 'max_bytes', bytes, maxBytes);
        return {
          code: '54000',
          message: `limit "${l.name}": a statement may return ${maxBytes} bytes of results (max_bytes); this one was halted at ${bytes} bytes`,
          hint: 'Ask for fewer rows or columns.',
        };
      },
    };
    if (hourly.length === 0) return { limit };
    // Rows returned count toward the hour (those sent before a halt too).
    const onDone = (out: StatementOutcome): void => {
      const current = now();
      if (current - (current % HOUR_MS) !== hour) return;
      if (out.rows > 0) for (const name of hourly) counters.add('rows', name, who, hour, out.rows);
    };
    return { limit, onDone };
  };

  /** The reads of a query string, as PostgreSQL split it: what an estimate covers. */
  const readsOf = (analysis: Analysis): { text: string; opaque: boolean }[] | null => {
    if (!analysis.ok) return null;
    return analysis.statements.filter((x) => x.kind === 'select').map((x) => ({ text: x.text, opaque: x.opaque }));
  };

  /** Bound parameters as text; null when one is binary (not estimable). */
  const textParams = (stmt: StatementSource): (string | null)[] | null => {
    if (stmt.protocol !== 'extended') return [];
    const out: (string | null)[] = [];
    for (let i = 0; i < stmt.params.length; i++) {
      const f = stmt.paramFormats.length === 0 ? 0 : stmt.paramFormats.length === 1 ? stmt.paramFormats[0] : stmt.paramFormats[i];
      const p = stmt.params[i]!;
      if (p === null) out.push(null);
      else if (f !== 0) return null;
      else out.push(p.toString('utf8'));
    }
    return out;
  };

  const estimate = (s: SessionInfo, stmt: StatementSource, analysis: Analysis, decision: Decision, searchPath: readonly string[] | null | undefined): Promise<EstimateRuling | null> | null => {
    const names = decision.limits;
    if (names === undefined) return null;
    const bound = names.map((n) => byName.get(n)).filter((l): l is LimitConfig => l?.maxEstimatedRows !== undefined);
    if (bound.length === 0) return null;
    const reads = readsOf(analysis);
    if (reads !== null && reads.length === 0) return null;
    const run = async (): Promise<EstimateRuling | null> => {
      // The reads' estimates summed (a string's results add up); null with why when not estimable.
      let rows: number | null = null;
      let why: string | undefined;
      const params = textParams(stmt);
      if (reads === null) why = 'Warden could not parse the statement';
      else if (reads.some((r) => r.opaque)) why = 'the statement runs code Warden cannot see';
      else if (params === null) why = 'a parameter is in binary format';
      else if (!searchPath) why = "the session's search_path is not known for sure";
      else if (!o.estimator) why = 'no estimator is running';
      else {
        try {
          rows = 0;
          for (const r of reads) rows += await o.estimator(s.database, r.text, reads.length === 1 ? params : [], searchPath);
        } catch (err) {
          rows = null;
          why = `PostgreSQL could not plan it apart from the session (${(err as Error).message})`;
        }
      }
      for (const l of bound) {
        const max = l.maxEstimatedRows!;
        if (rows !== null && rows <= max) continue;
        crossed(s, stmt, l, 'max_estimated_rows', rows === null ? null : Math.round(rows), max, why);
        const figure = rows === null ? `no estimate (${why})` : `an estimated ${Math.round(rows)} rows`;
        if (l.onExceed === 'approve' && l.approvers) {
          return { approval: { rule: `limit:${l.name}`, reason: `${figure}; max_estimated_rows is ${max}`, approvers: l.approvers } };
        }
        return {
          refusal: {
            code: '54000',
            message: `limit "${l.name}": a read may be expected to return ${max} rows (max_estimated_rows); this one has ${figure}, so it was not run`,
            hint: 'Narrow the read (a WHERE clause, LIMIT), or ask for the limit to be raised.',
          },
        };
      }
      return null;
    };
    return run();
  };

  /** First touches approved, per identity and database: `first-touch:LIMIT:OBJECT` rules. */
  const known = new Map<string, Set<string>>();
  const knownOf = (s: SessionInfo): Set<string> => {
    const k = `${s.identity.name}\u0000${s.database.name}`;
    let set = known.get(k);
    if (!set) {
      set = new Set();
      known.set(k, set);
    }
    return set;
  };

  const firstTouch = (s: SessionInfo, analysis: Analysis, decision: Decision): FirstTouchApproval[] => {
    const names = decision.limits;
    if (names === undefined) return [];
    const out: FirstTouchApproval[] = [];
    for (const name of names) {
      const l = byName.get(name);
      if (l?.firstTouch === undefined || !l.approvers) continue;
      const objects = new Set<string>();
      if (analysis.ok) for (const x of analysis.statements) for (const r of x.reads) objects.add(r.name);
      // An unparsable string reads what it reads: one rule for "anything", asked every time it comes.
      else objects.add('(unparsable statement)');
      for (const t of decision.sensitiveTypes) objects.add(`sensitive type ${t}`);
      const have = knownOf(s);
      for (const obj of objects) {
        const rule = `first-touch:${name}:${obj}`;
        if (have.has(rule)) continue;
        out.push({ rule, reason: `the first read of ${obj} by ${s.identity.name} (limit "${name}", first_touch)`, approvers: l.approvers, remember: true });
      }
    }
    return out;
  };

  const touched = (s: SessionInfo, rules: readonly string[]): void => {
    const have = knownOf(s);
    for (const r of rules) if (r.startsWith('first-touch:') && !r.endsWith(':(unparsable statement)')) have.add(r);
  };

  return { check, estimate, firstTouch, touched, exceeded, close: () => counters.close?.() };
}
