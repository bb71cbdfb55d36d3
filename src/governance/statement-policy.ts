/**
 * The policy on the wire: for each statement, analysis with PostgreSQL's
 * parser (cached), a decision by the policy engine, and the verdict the
 * session enforces. Fail-closed: an action this build cannot carry out
 * (approval, masking of sensitive values) refuses the statement.
 */
import type { WardenConfig } from '../config/types.js';
import type { Logger } from '../log/logger.js';
import { AnalysisCache, PreparedStatements, parseSearchPath, type Analysis } from '../sql/index.js';
import { decide, policyFromConfig, type CompiledPolicy, type Decision } from '../policy/index.js';
import { intentOf } from '../intent/sqlcommenter.js';
import type { SessionHooks, SessionInfo, StatementOutcome, StatementSource, Verdict } from '../proxy/hooks.js';

interface PolicySessionState {
  /** The session's search_path; null when unknown (unqualified names then match every schema). */
  searchPath: string[] | null;
  readonly defaultPath: string[] | null;
  readonly prepared: PreparedStatements;
}

export interface StatementPolicy {
  readonly hooks: SessionHooks;
  readonly cache: AnalysisCache;
  readonly policy: CompiledPolicy;
  /** Decide one statement for a session (exposed for `policy explain` and tests). */
  decideFor(session: SessionInfo, sql: string): { analysis: Analysis; decision: Decision };
}

const FORWARD: Verdict = Object.freeze({ action: 'forward' as const });

export function createStatementPolicy(config: WardenConfig, log: Logger, cache = new AnalysisCache({ max: 10_000 })): StatementPolicy {
  const policy = policyFromConfig(config);
  const detect = config.sensitive?.detect ?? [];
  const sessions = new WeakMap<SessionInfo, PolicySessionState>();

  const stateOf = (s: SessionInfo): PolicySessionState => {
    let st = sessions.get(s);
    if (!st) {
      const p = s.upstreamSearchPath !== undefined ? parseSearchPath(s.upstreamSearchPath) : null;
      st = { searchPath: p, defaultPath: p, prepared: new PreparedStatements() };
      sessions.set(s, st);
    }
    return st;
  };

  const decideFor = (s: SessionInfo, sql: string): { analysis: Analysis; decision: Decision } => {
    const st = stateOf(s);
    const analysis = cache.analyze(sql, {
      searchPath: st.searchPath,
      user: s.database.upstream.user,
      defaultSearchPath: st.defaultPath ?? undefined,
      preparedStatements: st.prepared.view,
    });
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

  /** Keep the session facts the analysis depends on in step with what ran. */
  const afterRun = (s: SessionInfo, st: PolicySessionState, analysis: Analysis, outcome: StatementOutcome): void => {
    if (!analysis.ok) return;
    st.prepared.applyQuery(analysis, !outcome.error);
    if (outcome.error) return;
    for (const stmt of analysis.statements) {
      if (stmt.searchPath === undefined) continue;
      // A change inside a transaction block may still be rolled back: unknown is the safe answer.
      const local = stmt.sets.some((c) => c.name === 'search_path' && c.local);
      st.searchPath = local || s.txStatus !== 'I' ? null : stmt.searchPath ? [...stmt.searchPath] : null;
    }
  };

  const toVerdict = (s: SessionInfo, st: PolicySessionState, analysis: Analysis, d: Decision): Verdict => {
    const needsTracking =
      analysis.ok && analysis.statements.some((x) => x.searchPath !== undefined || x.prepare || x.deallocate || x.execute);
    const onDone = needsTracking ? (o: StatementOutcome) => afterRun(s, st, analysis, o) : undefined;
    switch (d.action) {
      case 'allow':
        return onDone ? { action: 'forward', onDone } : FORWARD;
      case 'deny':
        return { action: 'error', error: { code: '42501', message: d.reason } };
      case 'approve': {
        const a = d.approvals[0];
        return {
          action: 'error',
          error: {
            code: '42501',
            message: `rule "${a?.rule ?? d.decisive}" requires approval${a?.reason ? `: ${a.reason}` : ''}; approvals are not available in this version of Warden, so the statement was not run`,
          },
        };
      }
      case 'mask': {
        const reads = analysis.ok && analysis.statements.some((x) => x.classes.has('read') || x.classes.has('select'));
        if (d.sensitiveTypes.length === 0 && (detect.length === 0 || !reads)) {
          return onDone ? { action: 'forward', onDone } : FORWARD;
        }
        const what = d.sensitiveTypes.length > 0 ? `sensitive data (${d.sensitiveTypes.join(', ')})` : 'values that may hold sensitive data';
        return {
          action: 'error',
          error: {
            code: '42501',
            message: `rule "${d.decisive}" requires masking of ${what}; masking is not available in this version of Warden, so the statement was not run`,
          },
        };
      }
    }
  };

  const statement = (s: SessionInfo, stmt: StatementSource): Verdict => {
    const st = stateOf(s);
    const { analysis, decision } = decideFor(s, stmt.sql);
    if (stmt.protocol === 'extended' && stmt.statementName !== '') st.prepared.set(stmt.statementName, analysis);
    if (decision.action !== 'allow') {
      log.info(
        { session: s.id, identity: s.identity.name, action: decision.action, rule: decision.decisive },
        'statement refused by policy',
      );
    }
    return toVerdict(s, st, analysis, decision);
  };

  return { hooks: { statement, sessionStart: (s) => void stateOf(s) }, cache, policy, decideFor };
}
