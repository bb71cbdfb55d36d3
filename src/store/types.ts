/**
 * Warden's state store: what several Warden instances share (tokens,
 * approval requests and decisions, just-in-time grants). `sqlite:` for one
 * instance, `postgres://` for several. All times are ISO-8601 strings
 * (`Date.prototype.toISOString`), all ids opaque strings.
 */

/** A short-lived login token (stored hashed; the secret itself is never stored). */
export interface TokenRecord {
  /** Public id, shown in lists and used to revoke (e.g. `tok_3f9a...`). */
  readonly id: string;
  readonly identity: string;
  readonly onBehalfOf?: string;
  /** Database name the token is limited to; absent: any. */
  readonly scope?: string;
  /** SCRAM-SHA-256 verifier of the token secret (PostgreSQL's text format). */
  readonly verifier: string;
  readonly createdAt: string;
  readonly expiresAt: string;
  readonly revokedAt?: string;
  /** Who issued it (CLI user / identity), for the audit. */
  readonly issuedBy?: string;
}

export type ApprovalStatus = 'pending' | 'approved' | 'denied' | 'expired' | 'cancelled' | 'used';

export interface ApprovalDecision {
  readonly approver: string;
  readonly decision: 'approve' | 'deny';
  readonly reason: string;
  readonly at: string;
}

/** A request for a statement (or a grant) to be approved. */
export interface ApprovalRequest {
  readonly id: string;
  readonly status: ApprovalStatus;
  readonly identity: string;
  readonly onBehalfOf?: string;
  readonly database: string;
  readonly environment?: string;
  /** The statement as the audit records it (sensitive constants normalized). */
  readonly sql: string;
  /** Identical-statement key for reject mode: hash of normalized text + parameters. */
  readonly fingerprint: string;
  /** Bind parameters as recorded (masked where sensitive). */
  readonly params?: readonly (string | null)[];
  /** Rules that asked for approval, with their reasons and approvers. */
  readonly rules: readonly { readonly rule: string; readonly reason?: string; readonly groups: readonly string[]; readonly count: number; readonly remember?: boolean }[];
  /** Tables and statement classes from the analysis. */
  readonly tables: readonly string[];
  readonly classes: readonly string[];
  readonly intent: Readonly<Record<string, string>>;
  /** Instance and session that hold the statement (hold mode). */
  readonly instance: string;
  readonly session?: string;
  readonly mode: 'hold' | 'reject';
  readonly createdAt: string;
  readonly expiresAt: string;
  readonly decidedAt?: string;
  readonly decisions: readonly ApprovalDecision[];
  /** For an approval given as a grant: minutes the grant lasts. */
  readonly grantMinutes?: number;
}

/** A just-in-time grant: `identity` may run statements matching `rule` until `expiresAt`. */
export interface GrantRecord {
  readonly id: string;
  readonly identity: string;
  readonly rule: string;
  readonly database?: string;
  readonly requestId: string;
  readonly createdAt: string;
  readonly expiresAt: string;
  readonly revokedAt?: string;
}

/** An identity an operator suspended: its sessions end and its logins are refused until it is resumed. */
export interface SuspensionRecord {
  readonly identity: string;
  readonly reason: string;
  /** Who suspended it (an operator's identity, or `limits` for issue 20's on_exceed). */
  readonly suspendedBy: string;
  readonly suspendedAt: string;
}

/** What a limit counts (issue 20): statements per minute, rows per hour. */
export type LimitCountKind = 'statements' | 'rows';

/** A count of one limit for one identity over one clock window (docs/limits-counters.md). */
export interface LimitCount {
  readonly kind: LimitCountKind;
  readonly limit: string;
  readonly identity: string;
  /** The window's start, ms since the epoch (a whole minute for statements, a whole hour for rows). */
  readonly window: number;
  readonly count: number;
}

export interface NewApprovalRequest extends Omit<ApprovalRequest, 'status' | 'decisions' | 'decidedAt'> {}

export interface StateStore {
  readonly description: string;

  // Tokens
  putToken(t: TokenRecord): Promise<void>;
  getToken(id: string): Promise<TokenRecord | null>;
  /** Tokens, newest first; `all` includes expired and revoked ones. */
  listTokens(o?: { identity?: string; all?: boolean }): Promise<TokenRecord[]>;
  /** Sets revokedAt; false when there is no such token (or it was already revoked). */
  revokeToken(id: string, at: string): Promise<boolean>;

  // Approvals
  createRequest(r: NewApprovalRequest): Promise<ApprovalRequest>;
  getRequest(id: string): Promise<ApprovalRequest | null>;
  listRequests(o?: { status?: ApprovalStatus; identity?: string; limit?: number }): Promise<ApprovalRequest[]>;
  /**
   * Adds a decision atomically (two approvers at once on two instances must not
   * lose one): returns the request after it. Rejects when the request is not
   * pending, or the approver already decided it.
   */
  addDecision(id: string, d: ApprovalDecision, next: (r: ApprovalRequest) => ApprovalStatus): Promise<ApprovalRequest>;
  /** Moves a request from `from` (usually pending) to `to`; false when it was not in `from` (someone else won). */
  setStatus(id: string, from: ApprovalStatus, to: ApprovalStatus, at: string): Promise<boolean>;
  /** An approved, unused, unexpired reject-mode request of this identity for this fingerprint. */
  findApproved(identity: string, fingerprint: string, now: string): Promise<ApprovalRequest | null>;

  // Grants
  putGrant(g: GrantRecord): Promise<void>;
  /** Grants of an identity that are valid at `now` (not expired, not revoked). */
  activeGrants(identity: string, now: string): Promise<GrantRecord[]>;
  listGrants(o?: { all?: boolean }): Promise<GrantRecord[]>;
  revokeGrant(id: string, at: string): Promise<boolean>;

  // Suspensions (one row per suspended identity; resuming deletes it)
  /** Suspends (or re-suspends with a new reason); returns the record as stored. */
  putSuspension(s: SuspensionRecord): Promise<SuspensionRecord>;
  /** Lifts a suspension; returns what was lifted, or null when the identity was not suspended. */
  deleteSuspension(identity: string): Promise<SuspensionRecord | null>;
  /** Every current suspension (a small table: read whole by each instance's poll). */
  listSuspensions(): Promise<SuspensionRecord[]>;
  /**
   * Calls `onChange` soon after the suspensions change, whichever instance changed them
   * (postgres: LISTEN/NOTIFY). Returns the unsubscribe. Optional: stores without it are only
   * polled; a call may be spurious, and a lost notification is caught by the caller's poll.
   */
  watchSuspensions?(onChange: () => void): () => void;

  // Limit counters (shared by the instances: rows_per_hour, statements_per_minute)
  /**
   * One exchange of the limit counters, in one transaction: adds each of `adds` to its stored
   * count (an atomic increment: instances adding at once lose nothing), deletes the windows that
   * started before `pruneBefore` (when given), then returns the totals of the windows that
   * started at or after `since[kind]`, the adds included. Rejected: nothing was added.
   */
  syncLimitCounts(
    adds: readonly LimitCount[],
    since: Readonly<Record<LimitCountKind, number>>,
    pruneBefore?: number,
  ): Promise<LimitCount[]>;

  /**
   * Calls `onChange` after the request changes (a decision, a status), whichever
   * instance changed it: how an approval given on one Warden releases a
   * statement held on another. The callee re-reads the request; a call may be
   * spurious or repeated. Returns the unsubscribe. Optional: stores without it
   * are polled by the caller.
   */
  watch?(requestId: string, onChange: () => void): () => void;

  close(): Promise<void>;
}
