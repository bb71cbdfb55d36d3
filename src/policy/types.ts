/**
 * Public types of the policy engine.
 *
 * @module
 */
import type { IdentityKind, RuleAction } from '../config/types.js';
import type { Analysis } from '../sql/types.js';

/** Who is running the statement. */
export interface PolicyIdentity {
  readonly name: string;
  readonly kind: IdentityKind;
  readonly groups: readonly string[];
  /** The human an agent acts for, when known (informational; rules match `name`). */
  readonly onBehalfOf?: string;
}

/** Where and when. */
export interface PolicySession {
  /** The database name the client gave (a key of `databases`). */
  readonly database: string;
  /** The database's `environment` label. */
  readonly environment?: string;
  /** The client's IP address (absent for a Unix socket). */
  readonly clientAddress?: string;
  /** Intent given with the statement or the session (`ticket`, `reason`, ...). */
  readonly intent: Readonly<Record<string, string>>;
  readonly now: Date;
}

/** Input of {@link decide}. */
export interface DecisionInput {
  readonly identity: PolicyIdentity;
  readonly session: PolicySession;
  readonly analysis: Analysis;
  /**
   * Extra sensitive types known to be involved (e.g. found by value detection);
   * added to those computed from `sensitive.columns`.
   */
  readonly sensitiveTypes?: ReadonlySet<string>;
}

/** Built-in rule names that can appear in decisions. */
export const BUILTIN_RULES = {
  sessionSafety: 'warden.session-safety',
  unparsable: 'warden.unparsable',
  default: 'default',
} as const;

/** One rule that applied to a statement. */
export interface RuleMatchRecord {
  /** The rule's name, or a built-in name (`warden.session-safety`, `warden.unparsable`, `default`). */
  readonly rule: string;
  readonly action: RuleAction;
  readonly reason?: string;
  /** Why it matched, one entry per match key (`statement: drop ∈ [drop, truncate]`). */
  readonly why: readonly string[];
  /** Index of the statement in the query string. */
  readonly statement: number;
  /** False when it matched only possibly (fail-closed: opaque statement, unqualified name, `*`). */
  readonly certain: boolean;
  /** For approve rules: who may approve. */
  readonly approvers?: { readonly groups: readonly string[]; readonly count: number };
}

/** The decision for one statement. */
export interface StatementDecision {
  readonly index: number;
  readonly action: RuleAction;
  /** The rule that decided (first in config order among those with the winning action), or a built-in name. */
  readonly decisive: string;
  readonly reason: string;
  readonly matched: readonly RuleMatchRecord[];
  /** Sensitive types the statement (possibly) touches, sorted. */
  readonly sensitiveTypes: readonly string[];
}

/** The decision for a whole query string: the strictest of its statements. */
export interface Decision {
  readonly action: RuleAction;
  /** Human-readable reason, naming the decisive rule and its reason. */
  readonly reason: string;
  /** The decisive rule (see {@link StatementDecision.decisive}). */
  readonly decisive: string;
  /** Index of the statement that decided, when there is one. */
  readonly decisiveStatement?: number;
  /** Every rule that applied, to any statement. */
  readonly matched: readonly RuleMatchRecord[];
  readonly statements: readonly StatementDecision[];
  /**
   * A mask rule applied to some statement: the proxy masks sensitive output even
   * when the action is `approve` (every matching rule applies; the strictest
   * action decides whether and when the statement runs).
   */
  readonly masked: boolean;
  /** The approve rules that applied, with their approvers. */
  readonly approvals: readonly {
    readonly rule: string;
    readonly reason?: string;
    readonly approvers?: { readonly groups: readonly string[]; readonly count: number };
    /** Once approved, the identity holds a lasting grant for this rule (limits' first_touch): it is not asked again. */
    readonly remember?: boolean;
  }[];
  /** Sensitive types touched by any statement, sorted. */
  readonly sensitiveTypes: readonly string[];
  /**
   * The `limits:` that apply (config order): those whose match holds, or may hold (fail closed),
   * for some statement of the string. Absent when none does.
   */
  readonly limits?: readonly string[];
}
