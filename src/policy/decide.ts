/**
 * The policy decision: (identity, session, analysed statement) → decision. Pure.
 *
 * For each statement of the query string:
 * 1. every rule is evaluated; a rule applies when its match definitely holds,
 *    or — for `deny`, `approve` and `mask` rules — when it possibly holds
 *    (fail-closed: an opaque statement, an unqualified name that could be in a
 *    matching schema, a `*` column). An `allow` rule applies only when it
 *    definitely holds, so uncertainty never widens access;
 * 2. the built-in session-safety check denies a statement that would let the
 *    client escape its identity (SET ROLE, SET SESSION AUTHORIZATION, RESET ROLE,
 *    RESET ALL, DISCARD ALL, set_config('role'|'session_authorization'|unknown),
 *    changing a `warden.*` setting, ALTER SYSTEM, ALTER ROLE/DATABASE ... SET role
 *    or warden.*), unless an `allow` rule that definitely matches the statement
 *    lists the class explicitly in its top-level `match.statement`: `set` for
 *    session settings, `alter` for ALTER SYSTEM / ALTER ROLE|DATABASE ... SET;
 * 3. the strictest action of the applying rules wins (deny > approve > mask >
 *    allow); with no applying rule, the default action.
 *
 * The whole string gets the strictest of its statements' decisions.
 *
 * A string PostgreSQL's parser rejects is denied when any rule could apply to it
 * (its identity/session keys hold; statement keys are unknown) or the default
 * is deny; otherwise it is allowed so the server reports the syntax error.
 *
 * @module
 */
import type { RuleAction } from '../config/types.js';
import type { StatementAnalysis } from '../sql/types.js';
import type { CompiledPolicy, CompiledRule, EvalContext } from './compile.js';
import { MAYBE, YES } from './patterns.js';
import { sensitiveTypesOfStatement } from './sensitive.js';
import {
  BUILTIN_RULES,
  type Decision,
  type DecisionInput,
  type RuleMatchRecord,
  type StatementDecision,
} from './types.js';

/** Strictness rank: deny > approve > mask > allow. */
export const STRICTNESS: Readonly<Record<RuleAction, number>> = { allow: 1, mask: 2, approve: 3, deny: 4 };

/** The stricter of two actions. */
export function stricter(a: RuleAction, b: RuleAction): RuleAction {
  return STRICTNESS[a] >= STRICTNESS[b] ? a : b;
}

/** A session-safety violation of a statement. */
export interface SafetyViolation {
  readonly message: string;
  /** The class an allow rule must list in `match.statement` to allow it explicitly. */
  readonly requires: 'set' | 'alter';
}

function isGuarded(name: string): boolean {
  return name === 'role' || name === 'session_authorization' || name === '*' || name.startsWith('warden.');
}

/** The ways a statement would let the client escape its identity (empty when none). */
export function sessionSafetyViolations(s: StatementAnalysis): SafetyViolation[] {
  const out: SafetyViolation[] = [];
  const seen = new Set<string>();
  const add = (message: string, requires: 'set' | 'alter') => {
    if (seen.has(message)) return;
    seen.add(message);
    out.push({ message, requires });
  };
  if (s.roleChange) add('changing the session role or authorization would escape the Warden identity', 'set');
  if (s.resetAll) add('RESET ALL / DISCARD ALL resets the session settings Warden relies on', 'set');
  for (const c of s.sets) {
    if ((c.via === 'set' || c.via === 'reset' || c.via === 'set_config') && c.name.startsWith('warden.')) {
      add(`changing ${c.name} is reserved to Warden`, 'set');
    }
    if ((c.via === 'alter-role' || c.via === 'alter-database') && isGuarded(c.name)) {
      add(`ALTER ${c.via === 'alter-role' ? 'ROLE' : 'DATABASE'} ... SET ${c.name === '*' ? 'ALL' : c.name} changes the identity of later sessions`, 'alter');
    }
  }
  if (s.alterSystem) add('ALTER SYSTEM changes the server configuration', 'alter');
  return out;
}

const VERB: Readonly<Record<RuleAction, string>> = {
  deny: 'denied',
  approve: 'requires approval',
  mask: 'masked',
  allow: 'allowed',
};

function ruleReason(action: RuleAction, rule: string, reason?: string): string {
  if (rule === BUILTIN_RULES.default) return `${VERB[action]} by default: no rule matched`;
  return `${VERB[action]} by rule "${rule}"${reason ? `: ${reason}` : ''}`;
}

function sortedTypes(m: ReadonlyMap<string, boolean>): string[] {
  return [...m.keys()].sort();
}

function decideStatement(s: StatementAnalysis, input: DecisionInput, policy: CompiledPolicy): StatementDecision {
  const sensitive = sensitiveTypesOfStatement(s, policy.sensitive);
  for (const t of input.sensitiveTypes ?? []) sensitive.set(t, true);
  const ctx: EvalContext = { identity: input.identity, session: input.session, statement: s, sensitive };
  const records: { rule: CompiledRule | undefined; rec: RuleMatchRecord }[] = [];
  const definite: CompiledRule[] = [];
  for (const rule of policy.rules) {
    const r = rule.match.evaluate(ctx);
    if (r.tri === YES) definite.push(rule);
    const applies = r.tri === YES || (r.tri === MAYBE && rule.action !== 'allow');
    if (!applies) continue;
    records.push({
      rule,
      rec: {
        rule: rule.name,
        action: rule.action,
        ...(rule.reason !== undefined ? { reason: rule.reason } : {}),
        why: [...r.why],
        statement: s.index,
        certain: r.tri === YES,
        ...(rule.approvers !== undefined ? { approvers: rule.approvers } : {}),
      },
    });
  }
  for (const v of sessionSafetyViolations(s)) {
    const override = definite.find((r) => r.action === 'allow' && r.statementList.has(v.requires));
    if (override) {
      const entry = records.find((e) => e.rule === override);
      if (entry) entry.rec = { ...entry.rec, why: [...entry.rec.why, `explicitly allows: ${v.message}`] };
      continue;
    }
    records.push({
      rule: undefined,
      rec: {
        rule: BUILTIN_RULES.sessionSafety,
        action: 'deny',
        reason: v.message,
        why: [`built-in session safety: ${v.message} (an allow rule listing "${v.requires}" in match.statement can allow it)`],
        statement: s.index,
        certain: true,
      },
    });
  }
  const matched = records.map((e) => Object.freeze(e.rec));
  // A refusal or a hold that comes from what Warden cannot see says what that is.
  const unseen = (action: RuleAction, certain: boolean): string =>
    s.opaque && !certain && (action === 'deny' || action === 'approve') ? `; Warden cannot see all it would do: ${s.opaqueReasons.join('; ')}` : '';
  if (matched.length === 0) {
    const action = policy.defaultAction;
    return {
      index: s.index,
      action,
      decisive: BUILTIN_RULES.default,
      reason: ruleReason(action, BUILTIN_RULES.default) + unseen(action, false),
      matched,
      sensitiveTypes: sortedTypes(sensitive),
    };
  }
  let action: RuleAction = 'allow';
  for (const m of matched) action = stricter(action, m.action);
  const decisive = matched.find((m) => m.action === action)!;
  return {
    index: s.index,
    action,
    decisive: decisive.rule,
    reason: ruleReason(action, decisive.rule, decisive.reason) + unseen(action, decisive.certain),
    matched,
    sensitiveTypes: sortedTypes(sensitive),
  };
}

function freezeDecision(d: Decision): Decision {
  return Object.freeze(d);
}

/**
 * The limits that apply to a query string: each whose match holds or may hold (fail closed: a
 * limit is a bound, so "maybe" binds) for one of its statements, or for the string itself when it
 * could not be parsed. Empty (and costing nothing) when no limit is configured.
 */
function limitsOf(input: DecisionInput, policy: CompiledPolicy, statements: readonly StatementAnalysis[] | null): string[] {
  const out: string[] = [];
  if (policy.limits.length === 0) return out;
  for (const l of policy.limits) {
    if (statements === null) {
      if (l.match.evaluate({ identity: input.identity, session: input.session, statement: null, sensitive: null }).tri >= MAYBE) out.push(l.name);
      continue;
    }
    for (const s of statements) {
      const sensitive = sensitiveTypesOfStatement(s, policy.sensitive);
      for (const t of input.sensitiveTypes ?? []) sensitive.set(t, true);
      if (l.match.evaluate({ identity: input.identity, session: input.session, statement: s, sensitive }).tri >= MAYBE) {
        out.push(l.name);
        break;
      }
    }
  }
  return out;
}

/** `d` with the limits that apply, when there are any. */
function withLimits(d: Decision, limits: readonly string[]): Decision {
  return limits.length > 0 ? { ...d, limits } : d;
}

/**
 * Decides what happens to a query string.
 *
 * @param input identity, session context and the analysis of the string
 * @param policy from {@link compilePolicy}
 */
export function decide(input: DecisionInput, policy: CompiledPolicy): Decision {
  const { analysis } = input;
  if (!analysis.ok) {
    const ctx: EvalContext = { identity: input.identity, session: input.session, statement: null, sensitive: null };
    const could = policy.rules.filter((r) => r.match.evaluate(ctx).tri >= MAYBE).map((r) => r.name);
    const deny = could.length > 0 || policy.defaultAction === 'deny';
    const action: RuleAction = deny ? 'deny' : 'allow';
    const why = could.length
      ? `rule${could.length > 1 ? 's' : ''} ${could.map((n) => `"${n}"`).join(', ')} could apply to it`
      : policy.defaultAction === 'deny'
        ? 'the default action is deny'
        : 'no rule could apply to it';
    const reason = deny
      ? `denied: Warden could not parse the statement (${analysis.error}) and ${why}`
      : `allowed: Warden could not parse the statement (${analysis.error}) but ${why}; the server reports the error`;
    const rec: RuleMatchRecord = {
      rule: BUILTIN_RULES.unparsable,
      action,
      reason: deny ? `could not parse the statement: ${analysis.error}` : 'could not parse the statement',
      why: [why],
      statement: 0,
      certain: true,
    };
    const decisive = deny ? BUILTIN_RULES.unparsable : BUILTIN_RULES.default;
    const matched = deny ? [rec] : [];
    return freezeDecision(withLimits({
      action,
      reason,
      decisive,
      decisiveStatement: 0,
      matched,
      statements: [{ index: 0, action, decisive, reason, matched, sensitiveTypes: [...policy.sensitive.types].sort() }],
      masked: false,
      approvals: [],
      sensitiveTypes: [...policy.sensitive.types].sort(),
    }, limitsOf(input, policy, null)));
  }
  if (analysis.statements.length === 0) {
    return freezeDecision({
      action: 'allow',
      reason: 'allowed: empty query',
      decisive: BUILTIN_RULES.default,
      matched: [],
      statements: [],
      masked: false,
      approvals: [],
      sensitiveTypes: [],
    });
  }
  const statements = analysis.statements.map((s) => decideStatement(s, input, policy));
  let action: RuleAction = 'allow';
  for (const d of statements) action = stricter(action, d.action);
  const decisiveStmt = statements.find((d) => d.action === action)!;
  const n = statements.length;
  const reason = n > 1 ? `${decisiveStmt.reason} (statement ${decisiveStmt.index + 1} of ${n})` : decisiveStmt.reason;
  const matched = statements.flatMap((d) => d.matched);
  const approvals: Decision['approvals'][number][] = [];
  for (const m of matched) {
    if (m.action !== 'approve' || approvals.some((a) => a.rule === m.rule)) continue;
    approvals.push({
      rule: m.rule,
      ...(m.reason !== undefined ? { reason: m.reason } : {}),
      ...(m.approvers !== undefined ? { approvers: m.approvers } : {}),
    });
  }
  const types = new Set<string>();
  for (const d of statements) for (const t of d.sensitiveTypes) types.add(t);
  return freezeDecision(withLimits({
    action,
    reason,
    decisive: decisiveStmt.decisive,
    decisiveStatement: decisiveStmt.index,
    matched,
    statements,
    masked: action !== 'deny' && matched.some((m) => m.action === 'mask'),
    approvals,
    sensitiveTypes: [...types].sort(),
  }, limitsOf(input, policy, analysis.statements)));
}
