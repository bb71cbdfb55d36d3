/**
 * The policy on the wire: for each statement, analysis with PostgreSQL's
 * parser (cached), the code it runs (code-catalog.ts), a decision by the policy
 * engine, and the ruling the statement pipeline carries out
 * (statement-pipeline.ts: guard → policy → approval → masking → audit).
 * Fail-closed: an action this Warden cannot carry out (approval, masking of
 * sensitive values, when not configured) refuses the statement.
 *
 * The per-session state lives here: the search_path and prepared statements the
 * analysis depends on, the verdict memo, and the routines the session created.
 */
import type { RuleMatch, WardenConfig } from '../config/types.js';
import type { Logger } from '../log/logger.js';
import { AnalysisCache, PreparedStatements, parseSearchPath, type Analysis, type AnalyzeContext } from '../sql/index.js';
import { isLiteralIndependent, literalShape } from '../sql/literal-shape.js';
import { OFF_THREAD_CHARS, type AnalysisPool } from '../sql/analysis-pool.js';
import { decide, policyFromConfig, type CompiledPolicy, type Decision } from '../policy/index.js';
import { intentOf } from '../intent/sqlcommenter.js';
import type { ErrorVerdictFields, SessionHooks, SessionInfo, StatementOutcome, StatementSource } from '../contract/statement-hooks.js';
import type { StatementAuditor } from './statement-audit.js';
import type { MaskingService } from './masking.js';
import type { LimitService } from './limits.js';
import type { ApprovalService } from './approvals.js';
import { localRoutineOf, withLocal, type CodeCatalog, type InvalidationScope, type LocalRoutine, type LocalRoutines } from './code-catalog.js';
import { statementPipeline, type PipelineStats, type PolicyStep, type Ruling } from './statement-pipeline.js';

interface PolicySessionState {
  /** The session's search_path; null when unknown (unqualified names then match every schema). */
  searchPath: string[] | null;
  readonly defaultPath: string[] | null;
  readonly prepared: PreparedStatements;
  /** The analysis context, rebuilt when the search_path changes (the cache keys on its identity). */
  ctx: AnalyzeContext;
  /**
   * Rulings already reached in this session, by literal shape (when the
   * analysis holds for any literal values) or else by statement text: valid
   * while the session's context is unchanged (cleared when it changes) and only
   * for decisions that depend on nothing else (no per-statement intent, no
   * time-of-day rules, no session facts to track). Two maps, like the analysis
   * cache's: a text can look like another text's shape.
   */
  memo: { readonly byText: Map<string, Ruling>; readonly byShape: Map<string, Ruling> };
  /** The code catalog's version for the session's database when the memo was filled (a new version clears it). */
  memoVersion: number;
  /** The policy (configuration generation) that filled the memo: a reloaded one clears it. */
  generation: object;
  /** DDL ran in a transaction that is still open: the code catalog is dropped again (this much of it) once it ends. */
  ddlPending: InvalidationScope | false;
  /**
   * Functions and procedures this session created through Warden that the catalog connection
   * cannot see (yet): `pending` ones were created in the open transaction, the others in pg_temp.
   */
  local: { readonly routine: LocalRoutine; pending: boolean }[];
  /** {@link PolicySessionState.local} by name, for the code catalog. */
  localView: LocalRoutines;
}

const NO_ROUTINES: LocalRoutines = new Map();

/** Statements after which the session's routines may no longer be what it created. */
const RENAMES_ROUTINES = /\b(function|procedure|routine|aggregate|schema|extension)\b/i;

const MEMO_MAX = 512;

function usesTime(m: RuleMatch | undefined): boolean {
  if (!m) return false;
  return m.time !== undefined || usesTime(m.not) || (m.any ?? []).some(usesTime);
}

export interface StatementPolicy {
  readonly hooks: SessionHooks;
  /** Counters since start. */
  readonly stats: PipelineStats;
  readonly cache: AnalysisCache;
  readonly policy: CompiledPolicy;
  /** Decide one statement for a session (exposed for `policy explain` and tests); called code is not looked up. */
  decideFor(session: SessionInfo, sql: string): { analysis: Analysis; decision: Decision };
  /** Functions, triggers and rules read from the catalog (absent when no rule could use them). */
  readonly code?: CodeCatalog;
}

/** The services the statement pipeline uses; each absent one is not configured. */
export interface StatementPolicyOptions {
  /** The shared analysis cache (default: one of 10,000 entries). */
  readonly cache?: AnalysisCache;
  readonly auditor?: StatementAuditor;
  readonly masking?: MaskingService;
  readonly approvals?: ApprovalService;
  /** Functions, triggers and rules from the catalog (absent when no rule could use them). */
  readonly code?: CodeCatalog;
  /** Analyses texts of OFF_THREAD_CHARS or more off the event loop (absent: on it). */
  readonly pool?: AnalysisPool;
  /** Enforces `limits:` (absent: none configured). */
  readonly limits?: LimitService;
  /**
   * The policy this one replaces (a configuration reload): its sessions' state (search_path,
   * prepared statements, their own routines), counters and analysis cache carry over; the
   * rulings they memoized do not.
   */
  readonly previous?: StatementPolicy;
}

/** Each policy's per-session state, so that a reloaded policy can take it over. */
const SESSION_STATES = new WeakMap<StatementPolicy, WeakMap<SessionInfo, PolicySessionState>>();

export function createStatementPolicy(config: WardenConfig, log: Logger, o: StatementPolicyOptions = {}): StatementPolicy {
  const { auditor, masking, approvals, code, pool, previous } = o;
  const cache = o.cache ?? previous?.cache ?? new AnalysisCache({ max: 10_000 });
  const policy = policyFromConfig(config);
  const timeDependent = config.rules.some((r) => usesTime(r.match)) || (config.limits ?? []).some((l) => usesTime(l.match));
  const detect = config.sensitive?.detect ?? [];
  const sessions = (previous && SESSION_STATES.get(previous)) || new WeakMap<SessionInfo, PolicySessionState>();
  /** This policy's token in the sessions' state (see PolicySessionState.generation). */
  const generation = {};

  const stateOf = (s: SessionInfo): PolicySessionState => {
    let st = sessions.get(s);
    if (st) {
      if (st.generation !== generation) {
        // The configuration was reloaded: rulings reached under the old one no longer hold.
        st.generation = generation;
        st.memo.byText.clear();
        st.memo.byShape.clear();
      }
    } else {
      const p = s.upstreamSearchPath !== undefined ? parseSearchPath(s.upstreamSearchPath) : null;
      const prepared = new PreparedStatements();
      st = {
        searchPath: p,
        defaultPath: p,
        prepared,
        ctx: contextFor(s, p, p, prepared),
        memo: { byText: new Map(), byShape: new Map() },
        memoVersion: code ? code.version(s.database.name) : 0,
        generation,
        ddlPending: false,
        local: [],
        localView: NO_ROUTINES,
      };
      sessions.set(s, st);
    }
    return st;
  };

  const contextFor = (s: SessionInfo, path: string[] | null, def: string[] | null, prepared: PreparedStatements): AnalyzeContext => ({
    searchPath: path,
    user: s.database.upstream.user,
    defaultSearchPath: def ?? undefined,
    // A getter: the session's prepared statements change under the same context.
    get preparedStatements() {
      return prepared.view;
    },
  });

  const decideFor = (s: SessionInfo, sql: string): { analysis: Analysis; decision: Decision } =>
    decideAnalysis(s, sql, cache.analyze(sql, stateOf(s).ctx));

  const decideAnalysis = (s: SessionInfo, sql: string, analysis: Analysis): { analysis: Analysis; decision: Decision } => {
    const decision = decide(
      {
        identity: s.identity,
        session: {
          database: s.database.name,
          environment: s.database.environment,
          clientAddress: s.clientAddress,
          intent: intentOf(s.wardenSettings, sql),
          now: new Date(),
        },
        analysis,
      },
      policy,
    );
    return { analysis, decision };
  };

  /**
   * Keep the session facts the analysis depends on in step with what ran.
   *
   * The search_path is only taken as known after the one case whose effect is
   * certain: a query string that is a single, non-LOCAL SET of search_path to a
   * constant, sent with the simple protocol, that succeeded and left the
   * session outside a transaction block. Anything else that touches it — in a
   * transaction (may be rolled back), in a multi-statement string, failed (may
   * or may not have applied), the extended protocol (completion is reported
   * before Sync ends the implicit transaction) — makes it unknown, and unknown
   * resolves unqualified names against every schema (fail closed).
   */
  const afterRun = (s: SessionInfo, st: PolicySessionState, analysis: Analysis, protocol: StatementSource['protocol'], outcome: StatementOutcome): void => {
    if (!analysis.ok) return;
    st.prepared.applyQuery(analysis, !outcome.error);
    const touching = analysis.statements.filter((x) => x.searchPath !== undefined);
    if (touching.length === 0) return;
    const only = analysis.statements.length === 1 ? analysis.statements[0] : undefined;
    const certain =
      protocol === 'simple' &&
      only !== undefined &&
      !outcome.error &&
      s.txStatus === 'I' &&
      only.kind === 'set' &&
      only.searchPath !== undefined &&
      only.searchPath !== null &&
      !only.sets.some((c) => c.local);
    st.searchPath = certain && only?.searchPath ? [...only.searchPath] : null;
    st.ctx = contextFor(s, st.searchPath, st.defaultPath, st.prepared);
    st.memo.byText.clear();
    st.memo.byShape.clear();
  };

  /** Keeps the session's own routines (see PolicySessionState.local) in step with what ran. */
  const trackRoutines = (s: SessionInfo, st: PolicySessionState, analysis: Analysis, protocol: StatementSource['protocol'], o: StatementOutcome): void => {
    if (!analysis.ok) return;
    let changed = false;
    const ended = (committed: boolean): void => {
      // Committed: the catalog has them now, except pg_temp ones. Rolled back: gone.
      const keep = st.local.filter((e) => !e.pending || (committed && e.routine.schema !== null && /^pg_temp/.test(e.routine.schema)));
      for (const e of keep) e.pending = false;
      st.local = keep;
      changed = true;
    };
    for (const x of analysis.statements) {
      const r = localRoutineOf(x);
      if (r && !o.error) {
        const temp = r.schema !== null && /^pg_temp/.test(r.schema);
        const pending = s.txStatus !== 'I' || protocol === 'extended';
        if (temp || pending) {
          st.local = [...st.local.filter((e) => !(e.routine.name === r.name && e.routine.schema === r.schema)), { routine: r, pending }];
          changed = true;
        }
      } else if (
        x.opaque ||
        x.kind === 'do' ||
        x.kind === 'call' ||
        // Code defined by code it runs (a function whose body creates functions).
        (x.classes.has('code') && x.kind !== 'create') ||
        ((x.classes.has('alter') || x.classes.has('drop')) && ((x.kind !== 'alter' && x.kind !== 'drop') || RENAMES_ROUTINES.test(x.text))) ||
        x.resetAll
      ) {
        // Routines may have been renamed, moved or replaced in ways Warden does not follow: forget them (calls become opaque).
        if (st.local.length) changed = true;
        st.local = [];
      }
    }
    if (st.local.some((e) => e.pending) && analysis.statements.some((x) => x.kind === 'transaction')) {
      if (o.tags.includes('ROLLBACK') || o.tags.includes('PREPARE TRANSACTION') || (o.error && s.txStatus === 'I')) ended(false);
      else if (o.tags.includes('COMMIT') && s.txStatus === 'I') ended(true);
    }
    if (changed) st.localView = st.local.reduce<LocalRoutines>((m, e) => withLocal(m, e.routine), NO_ROUTINES);
  };

  /**
   * What the policy rules: refused (denied, or an approval or masking this Warden
   * cannot carry out), or on to the pipeline with the bookkeeping for when it ran.
   */
  const rulingOf = (s: SessionInfo, st: PolicySessionState, analysis: Analysis, protocol: StatementSource['protocol'], d: Decision): Ruling => {
    const refusal = refusalOf(analysis, d);
    if (refusal) return { analysis, decision: d, refusal };
    const onDone = trackingFor(s, st, analysis, protocol);
    // Limits that estimate a read resolve its names as the session does (null: not known for sure).
    if (d.limits !== undefined) return onDone ? { analysis, decision: d, onDone, searchPath: st.searchPath } : { analysis, decision: d, searchPath: st.searchPath };
    return onDone ? { analysis, decision: d, onDone } : { analysis, decision: d };
  };

  /** Why the policy refuses the statement; undefined when the pipeline carries the decision out. */
  const refusalOf = (analysis: Analysis, d: Decision): ErrorVerdictFields | undefined => {
    switch (d.action) {
      case 'allow':
        return undefined;
      case 'deny':
        return { code: '42501', message: d.reason };
      case 'approve': {
        if (approvals) return undefined;
        const a = d.approvals[0];
        return {
          code: '42501',
          message: `rule "${a?.rule ?? d.decisive}" requires approval${a?.reason ? `: ${a.reason}` : ''}; approvals are not running in this Warden (they start with it: a restart applies approve rules added by a reload), so the statement was not run`,
        };
      }
      case 'mask': {
        if (masking) return undefined;
        // Anything that returns rows (queries, RETURNING) could carry values the detectors would find.
        const reads =
          analysis.ok &&
          analysis.statements.some((x) => x.classes.has('read') || x.kind === 'select' || x.columns.some((c) => c.usage === 'returning'));
        if (d.sensitiveTypes.length === 0 && (detect.length === 0 || !reads)) return undefined;
        const what = d.sensitiveTypes.length > 0 ? `sensitive data (${d.sensitiveTypes.join(', ')})` : 'values that may hold sensitive data';
        return {
          code: '42501',
          message: `rule "${d.decisive}" requires masking of ${what}; masking is not available in this version of Warden, so the statement was not run`,
        };
      }
    }
  };

  /** What to keep in step once the statement ran: session facts, the masking and code catalogs after DDL. */
  const trackingFor = (
    s: SessionInfo,
    st: PolicySessionState,
    analysis: Analysis,
    protocol: StatementSource['protocol'],
  ): ((o: StatementOutcome) => void) | undefined => {
    const needsTracking =
      analysis.ok && analysis.statements.some((x) => x.searchPath !== undefined || x.prepare || x.deallocate || x.execute);
    const anyDdl = analysis.ok && (analysis.classes.has('ddl') || analysis.classes.has('drop'));
    // After DDL the sensitive columns may have changed: masking re-reads them.
    const ddl = masking !== undefined && anyDdl;
    // After DDL (or code Warden cannot see) functions, triggers and rules may have changed:
    // read again now, and once more when the transaction ends (the catalog connection
    // sees the change only after COMMIT).
    const codeDdl = code !== undefined && (anyDdl || (analysis.ok && analysis.opaque) || st.ddlPending);
    return needsTracking || ddl || codeDdl
      ? (o: StatementOutcome) => {
          if (needsTracking) afterRun(s, st, analysis, protocol, o);
          if (ddl) masking!.invalidate(s.database.name);
          if (codeDdl) {
            const own = anyDdl || (analysis.ok && analysis.opaque);
            const ended = s.txStatus === 'I' && protocol === 'simple';
            // DDL that cannot touch routines leaves them cached (migrations: ALTER TABLE, CREATE INDEX, ...).
            const touchesRoutines =
              analysis.ok &&
              analysis.statements.some(
                (x) => x.opaque || x.kind === 'do' || x.kind === 'call' || x.classes.has('code') || x.resetAll || RENAMES_ROUTINES.test(x.text),
              );
            const scope: InvalidationScope = touchesRoutines || st.ddlPending === 'all' ? 'all' : 'tables';
            // Now (autocommit), and again once the transaction that ran it has ended: the
            // catalog connection sees a change only after COMMIT. Extended protocol:
            // completion comes before Sync commits, so once more at the next statement.
            if (own || (st.ddlPending && ended)) code!.invalidate(s.database.name, scope);
            if (own && (s.txStatus !== 'I' || protocol === 'extended')) st.ddlPending = scope;
            else if (ended) st.ddlPending = false;
            trackRoutines(s, st, analysis, protocol, o);
          }
        }
      : undefined;
  };

  const stats = previous?.stats ?? { decided: 0, refused: 0 };

  /** The policy step of the pipeline: the ruling on one statement, from the memo or decided now. */
  const rule = (s: SessionInfo, stmt: StatementSource): Ruling | Promise<Ruling> => {
    stats.decided++;
    const st = stateOf(s);
    const sql = stmt.sql;
    if (code) {
      if (st.ddlPending && s.txStatus === 'I') {
        // The transaction that ran DDL has ended (the COMMIT went by without a verdict of ours).
        code.invalidate(s.database.name, st.ddlPending);
        st.ddlPending = false;
      }
      if (s.txStatus === 'I' && st.local.some((e) => e.pending)) {
        // Ended without Warden seeing how: forget what it created (calls become opaque or read from the catalog).
        st.local = st.local.filter((e) => !e.pending);
        st.localView = st.local.reduce<LocalRoutines>((m, e) => withLocal(m, e.routine), NO_ROUTINES);
      }
      const v = code.version(s.database.name);
      if (v !== st.memoVersion) {
        st.memo.byText.clear();
        st.memo.byShape.clear();
        st.memoVersion = v;
      }
    }
    // A large text is analysed on the worker thread and never memoized (its shape alone is megabytes of scanning).
    const big = pool !== undefined && sql.length >= OFF_THREAD_CHARS;
    const memoable = !big && !timeDependent && !sql.includes('/*') && !st.ddlPending;
    let shape: string | null = null;
    if (memoable) {
      // By shape first: texts with literals (inlined ids, pgbench) seldom repeat exactly.
      shape = literalShape(sql);
      const hit = (shape !== null ? st.memo.byShape.get(shape) : undefined) ?? st.memo.byText.get(sql);
      if (hit) {
        if (stmt.protocol === 'extended' && stmt.statementName !== '') st.prepared.set(stmt.statementName, hit.analysis);
        if (hit.refusal) stats.refused++;
        if (hit.refusal) log.info({ session: s.id, identity: s.identity.name, message: hit.refusal.message }, 'statement refused by policy');
        return hit;
      }
    }
    if (big) return pool.analyze(sql, st.ctx).then((raw) => withCode(s, st, stmt, raw, memoable, shape));
    return withCode(s, st, stmt, cache.analyze(sql, st.ctx), memoable, shape);
  };

  /** The code the statement runs (functions, triggers, rules): from the catalog, cached per catalog version. */
  const withCode = (s: SessionInfo, st: PolicySessionState, stmt: StatementSource, raw: Analysis, memoable: boolean, shape: string | null): Ruling | Promise<Ruling> => {
    const resolved = code ? code.resolve(s.database, raw, st.ctx, st.localView) : raw;
    if (resolved instanceof Promise) return resolved.then((a) => decideResolved(s, st, stmt, a, memoable, shape));
    return decideResolved(s, st, stmt, resolved, memoable, shape);
  };

  const decideResolved = (s: SessionInfo, st: PolicySessionState, stmt: StatementSource, resolved: Analysis, memoable: boolean, shape: string | null): Ruling => {
    const sql = stmt.sql;
    const { analysis, decision } = decideAnalysis(s, sql, resolved);
    if (stmt.protocol === 'extended' && stmt.statementName !== '') st.prepared.set(stmt.statementName, analysis);
    const ruling = rulingOf(s, st, analysis, stmt.protocol, decision);
    if (ruling.refusal) {
      stats.refused++;
      log.info({ session: s.id, identity: s.identity.name, action: decision.action, rule: decision.decisive }, 'statement refused by policy');
    }
    if (memoable && !ruling.onDone && analysis.ok && !analysis.usesPrepared && (!code || code.version(s.database.name) === st.memoVersion)) {
      // By shape only when the analysis holds for any literal values.
      const [map, key] = shape !== null && isLiteralIndependent(analysis) ? [st.memo.byShape, shape] : [st.memo.byText, sql];
      if (map.size >= MEMO_MAX) map.clear();
      map.set(key, ruling);
    }
    return ruling;
  };

  const step: PolicyStep = {
    rule,
    sessionStart: (s) => void stateOf(s),
    sessionEnd: (s) => {
      if (code && sessions.get(s)?.ddlPending) code.invalidate(s.database.name, sessions.get(s)!.ddlPending || 'all');
    },
  };
  const hooks: SessionHooks = statementPipeline({ policy: step, stats, log, approvals, masking, auditor, limits: o.limits });
  const out: StatementPolicy = { hooks, stats, cache, policy, decideFor, ...(code ? { code } : {}) };
  SESSION_STATES.set(out, sessions);
  return out;
}
