/**
 * One statement's way through governance, top to bottom, its verdict built once:
 *
 * 1. **guard**: a text Warden cannot read as PostgreSQL will (see
 *    wire/client-text.ts) is refused before anything else;
 * 2. **policy**: the statement's analysis and decision, and what the policy
 *    rules ({@link Ruling}: refused, or what to carry out), from the policy step
 *    (statement-policy.ts);
 * 3. **approval**: an `approve` decision waits for its request (or a grant);
 * 4. **masking**: a `mask` decision (or an approved one that also masks) gets
 *    its row rewriter, or is refused when masking cannot cover it;
 * 5. **audit**: the statement is recorded (statement.begin before it runs,
 *    statement.end when it completes), refused ones too.
 *
 * Each step either ends the statement with a refusal or hands on; steps 3–5 are
 * asynchronous only when they have to be (a plain `allow` stays synchronous:
 * this runs for every statement).
 *
 * @module
 */
import type { Logger } from '../log/logger.js';
import type { Analysis } from '../sql/index.js';
import type { Decision } from '../policy/index.js';
import {
  FORWARD,
  type ErrorVerdictFields,
  type SessionHooks,
  type SessionInfo,
  type StatementOutcome,
  type StatementSource,
  type Verdict,
} from '../contract/statement-hooks.js';
import { LEXING_SETTINGS } from '../wire/client-text.js';
import type { ApprovalService } from './approvals.js';
import type { MaskingService } from './masking.js';
import type { StatementAuditor } from './statement-audit.js';
import type { EstimateRuling, LimitRuling, LimitService } from './limits.js';

/** What the policy step rules for one statement. */
export interface Ruling {
  readonly analysis: Analysis;
  readonly decision: Decision;
  /** Refused by the policy: denied, or an approval or masking this Warden cannot carry out. */
  readonly refusal?: ErrorVerdictFields;
  /** Keeps the session's facts (search_path, prepared statements, caches) in step once it ran; never with a refusal. */
  readonly onDone?: (outcome: StatementOutcome) => void;
  /** The session's search_path when the statement was decided (null: not known for sure); set when limits apply. */
  readonly searchPath?: readonly string[] | null;
}

/** The policy step: per-session state, analysis and decision. */
export interface PolicyStep {
  rule(s: SessionInfo, stmt: StatementSource): Ruling | Promise<Ruling>;
  sessionStart(s: SessionInfo): void;
  sessionEnd(s: SessionInfo): void;
}

/** Counters since start, shared with the policy step. */
export interface PipelineStats {
  decided: number;
  refused: number;
  /** Told of every statement ruled (decision null: refused before the policy, its text unreadable): the metrics' counters by label. */
  ruled?: (s: SessionInfo, decision: Decision | null) => void;
}

export interface PipelineOptions {
  readonly policy: PolicyStep;
  readonly stats: PipelineStats;
  readonly log: Logger;
  readonly approvals?: ApprovalService;
  readonly masking?: MaskingService;
  readonly auditor?: StatementAuditor;
  /** `limits:` (absent: none configured). */
  readonly limits?: LimitService;
}

/**
 * Whether running the statement may change how PostgreSQL reads the session's
 * later texts: it sets client_encoding or standard_conforming_strings, sets or
 * resets settings Warden cannot name, or has effects Warden cannot see.
 */
function mayChangeLexing(a: Analysis): boolean {
  if (!a.ok) return false;
  if (a.opaque) return true;
  for (const x of a.statements) {
    if (x.resetAll || x.kind === 'do' || x.kind === 'call') return true;
    for (const c of x.sets) if (c.name === '*' || LEXING_SETTINGS.has(c.name)) return true;
  }
  return false;
}

/** `f(x)` now, or once `x` resolves. */
function then<T, U>(x: T | Promise<T>, f: (v: T) => U | Promise<U>): U | Promise<U> {
  return x instanceof Promise ? x.then(f) : f(x);
}

/** The session hooks of the pipeline: `statement` runs the steps; session start and end reach the policy and the audit. */
export function statementPipeline(o: PipelineOptions): SessionHooks {
  const { policy, stats, log, approvals, masking, auditor, limits } = o;

  const statement = (s: SessionInfo, stmt: StatementSource): Verdict | Promise<Verdict> => {
    if (stmt.unreadable) return unreadable(s, stmt, stmt.unreadable);
    return then(policy.rule(s, stmt), (r) => ruled(s, stmt, r));
  };

  /** 1. The guard: a text Warden cannot read as PostgreSQL will is refused, and recorded. */
  const unreadable = (s: SessionInfo, stmt: StatementSource, error: NonNullable<StatementSource['unreadable']>): Verdict | Promise<Verdict> => {
    stats.decided++;
    stats.refused++;
    stats.ruled?.(s, null);
    log.info({ session: s.id, identity: s.identity.name, code: error.code, message: error.message }, 'statement refused: Warden cannot read it as PostgreSQL will');
    const verdict: Verdict = { action: 'error', error };
    return auditor ? auditor.statement(s, stmt, { ok: false, sql: stmt.sql, error: error.message }, null, verdict) : verdict;
  };

  /** 2. After the policy: the verdict, then 5. the audit. */
  const ruled = (s: SessionInfo, stmt: StatementSource, r: Ruling): Verdict | Promise<Verdict> => {
    if (mayChangeLexing(r.analysis)) s.lexingMayChange?.();
    stats.ruled?.(s, r.decision);
    const verdict = verdictOf(s, stmt, r);
    if (!auditor) return verdict;
    return then(verdict, (v) => auditor.statement(s, stmt, r.analysis, r.decision, v));
  };

  const verdictOf = (s: SessionInfo, stmt: StatementSource, r: Ruling): Verdict | Promise<Verdict> => {
    if (r.refusal) return { action: 'error', error: r.refusal };
    // 2b. Limits: a rate crossed refuses now; bounds on the results ride on the verdict.
    const lim = limits !== undefined && r.decision.limits !== undefined ? limits.check(s, stmt, r.decision) : undefined;
    if (lim?.refusal) {
      stats.refused++;
      log.info({ session: s.id, identity: s.identity.name }, 'statement refused: a limit was reached');
      return { action: 'error', error: lim.refusal };
    }
    // 2c. max_estimated_rows: the reads are estimated (a plain EXPLAIN) before they run.
    // 2d. first_touch: a first read of a table (or sensitive type) asks the limit's approvers, once.
    const first = limits !== undefined && r.decision.limits !== undefined ? limits.firstTouch(s, r.analysis, r.decision) : [];
    const rr = first.length === 0 ? r : { ...r, decision: { ...r.decision, approvals: [...r.decision.approvals, ...first] } };
    const est = limits !== undefined && r.decision.limits !== undefined ? limits.estimate(s, stmt, r.analysis, r.decision, r.searchPath) : null;
    const v = est === null ? onward(s, stmt, rr) : est.then((e) => (e === null ? onward(s, stmt, rr) : estimated(s, stmt, rr, e)));
    return lim === undefined || (lim.limit === undefined && lim.onDone === undefined) ? v : then(v, (x) => bounded(x, lim));
  };

  /** 3–4: approval when the decision (or a limit) asks for it, then masking. */
  const onward = (s: SessionInfo, stmt: StatementSource, r: Ruling): Verdict | Promise<Verdict> => {
    const byLimit = r.decision.approvals.some((a) => a.remember);
    if (byLimit && !approvals) return notRunning(r.decision.approvals.find((a) => a.remember)!.rule, 'the first read of what it reads');
    return r.decision.action === 'approve' || byLimit ? approved(s, stmt, r) : masked(s, r);
  };

  /** A limit routes to an approval that this Warden cannot ask for. */
  const notRunning = (rule: string, what: string): Verdict => {
    stats.refused++;
    return {
      action: 'error',
      error: {
        code: '54000',
        message: `${rule.replace(/^(limit|first-touch):([^:]*).*$/, 'limit "$2"')} holds this statement for an approval (${what}), but approvals are not running; the statement was not run`,
        hint: 'Approvals need admin: (and state: to survive restarts); restart Warden after adding them.',
      },
    };
  };

  /** A read over its estimate: refused, or held for the limit's approvers (with any the rules ask for). */
  const estimated = (s: SessionInfo, stmt: StatementSource, r: Ruling, e: EstimateRuling): Verdict | Promise<Verdict> => {
    if (e.refusal) {
      stats.refused++;
      return { action: 'error', error: e.refusal };
    }
    if (!approvals) return notRunning(e.approval.rule, e.approval.reason);
    return approved(s, stmt, { ...r, decision: { ...r.decision, approvals: [...r.decision.approvals, e.approval] } });
  };

  /** The verdict with the limits' bound on its results, and their count of rows when it is done. */
  const bounded = (v: Verdict, lim: Exclude<LimitRuling, { refusal: ErrorVerdictFields }>): Verdict => {
    if (v.action !== 'forward') return v;
    const d1 = v.onDone;
    const d2 = lim.onDone;
    const onDone = d1 && d2 ? (out: StatementOutcome): void => (d1(out), d2(out)) : (d1 ?? d2);
    return { ...v, ...(lim.limit ? { limit: lim.limit } : {}), ...(onDone ? { onDone } : {}) };
  };

  /** 3. Approval: once approved (or covered by a grant), on to masking. */
  const approved = async (s: SessionInfo, stmt: StatementSource, r: Ruling): Promise<Verdict> => {
    const a = await approvals!.approve(s, stmt, r.analysis, r.decision);
    if (!a.approved) {
      stats.refused++;
      return { action: 'error', error: a.error };
    }
    // First reads approved (or granted before): not asked again on this instance.
    if (limits !== undefined && r.decision.approvals.some((x) => x.remember)) limits.touched(s, r.decision.approvals.map((x) => x.rule));
    return masked(s, r);
  };

  /** 4. Masking, when the decision asks for it and masking is configured; else the statement runs as it is. */
  const masked = (s: SessionInfo, r: Ruling): Verdict | Promise<Verdict> => {
    const d = r.decision;
    const masks = d.action === 'mask' || (d.action === 'approve' && d.masked);
    if (!masks || !masking) return r.onDone ? { action: 'forward', onDone: r.onDone } : FORWARD;
    return then(masking.verdict(s, r.analysis, d), (v): Verdict => {
      if (v.action === 'error') {
        stats.refused++;
        log.info({ session: s.id, identity: s.identity.name, rule: d.decisive }, 'statement refused: masking cannot cover it');
        return v;
      }
      return r.onDone ? { ...v, onDone: r.onDone } : v;
    });
  };

  return {
    statement,
    sessionStart: (s) => {
      policy.sessionStart(s);
      auditor?.sessionStart(s);
    },
    sessionEnd: (s, reason) => {
      policy.sessionEnd(s);
      auditor?.sessionEnd(s, reason);
    },
    ...(auditor ? { loginFailed: (e) => auditor.loginFailed(e) } : {}),
  };
}
