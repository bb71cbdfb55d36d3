/**
 * The single per-statement interception point of a Warden session.
 *
 * For every statement — a simple Query string, or an extended-protocol Bind
 * (with the SQL of the statement it binds) — the session asks the hook for a
 * verdict *before* anything is forwarded. Policy, masking, approvals and audit
 * plug in here; the relay itself knows nothing about them.
 *
 * This is the contract between the relay (proxy/) and what plugs into it
 * (governance/, masking/, app.ts): it lives apart from both, so neither folder
 * imports the other.
 */
import type { FieldDescription, PgErrorFields, TxStatus } from '../wire/index.js';
import type { DatabaseConfig, IdentityConfig } from '../config/types.js';
import type { UnreadableText } from '../wire/client-text.js';

/** How a session's client authenticated. */
export interface SessionAuth {
  readonly method: 'password' | 'token' | 'oidc';
  /** The token's id (method token). */
  readonly tokenId?: string;
  /** When the credential stops being valid: the session ends at its next statement after it. */
  readonly expiresAt?: Date;
  /** The user an agent acts for (a token's --on-behalf-of, an OIDC `act` claim's subject). */
  readonly onBehalfOf?: string;
}

export interface SessionInfo {
  /** Warden's session id (also on every log line). */
  readonly id: string;
  readonly identity: IdentityConfig;
  /** How the client authenticated (password, token, OIDC), with the credential's expiry. */
  readonly auth: SessionAuth;
  readonly database: DatabaseConfig;
  readonly clientAddress: string;
  readonly clientPort: number;
  readonly tls: boolean;
  /** Startup parameters the client sent (user, database, application_name, ...), minus `options`. */
  readonly startupParams: ReadonlyMap<string, string>;
  /** `warden.*` settings from the startup options (name without the prefix): ticket, reason, ... */
  readonly wardenSettings: ReadonlyMap<string, string>;
  /** Latest ParameterStatus values reported by the upstream. */
  readonly parameters: ReadonlyMap<string, string>;
  /** Transaction status from the latest ReadyForQuery. */
  readonly txStatus: TxStatus;
  /** The upstream session's search_path when it started (read by Warden; the protocol does not report it). */
  readonly upstreamSearchPath?: string;
  /**
   * Be told when the client cancels its statement (CancelRequest) or the session
   * ends — e.g. while a verdict is pending. Returns a function that unsubscribes.
   */
  onInterrupt(listener: (why: 'cancel' | 'closed') => void): () => void;
  /**
   * The statement being decided may change how PostgreSQL reads later texts
   * (client_encoding, standard_conforming_strings, or effects Warden cannot see):
   * until the session is next idle, only texts that read the same either way are accepted.
   */
  lexingMayChange?(): void;
  /**
   * Send the client a NoticeResponse now — between two of the upstream's messages, as
   * PostgreSQL may send one at any time — e.g. while the statement being decided is held for
   * an approval. Nothing is sent once the session has ended.
   */
  notice?(fields: Omit<PgErrorFields, 'severity'> & { readonly severity: 'NOTICE' | 'WARNING' | 'INFO' }): void;
  /**
   * Run a read-only catalog query on the session's own upstream connection,
   * inside its open transaction block (in a savepoint, released afterwards), so
   * it sees the session's uncommitted objects and never waits on its locks.
   * Only while the statement being decided is held (a pending verdict) and
   * nothing of the client is in flight. Resolves null when the session is not
   * in a transaction block at such a point (read elsewhere then); rejects when
   * the query fails.
   */
  readInTransaction?(sql: string, params: readonly (string | null)[]): Promise<{ rows: Record<string, unknown>[] } | null>;
}

export type StatementSource =
  | { readonly protocol: 'simple'; readonly sql: string; readonly unreadable?: UnreadableText }
  | {
      readonly protocol: 'extended';
      readonly sql: string;
      /**
       * Set when Warden cannot read the text exactly as PostgreSQL will (client_encoding,
       * standard_conforming_strings: see wire/client-text.ts); `sql` is then only a best effort
       * for the record, and the statement must be refused with this error.
       */
      readonly unreadable?: UnreadableText;
      readonly statementName: string;
      readonly portal: string;
      readonly paramTypes: readonly number[];
      readonly paramFormats: readonly number[];
      /** Views into the Bind message: copy them if you keep them. */
      readonly params: readonly (Buffer | null)[];
    };

/** Rewrites the DataRows of one statement's results. */
export interface RowRewriter {
  /** Each RowDescription of the result (a simple query string may have several result sets). */
  describe(fields: readonly FieldDescription[]): void;
  /** Return `raw` unchanged, or a new encoded DataRow message to send instead. */
  rewrite(raw: Buffer, body: Buffer): Buffer;
  /** The statement's error: return fields to send instead (e.g. with values scrubbed), or undefined to pass it on. */
  error?(fields: PgErrorFields): PgErrorFields | undefined;
  /** What the statement's outcome (the audit) records of the error `error` was just given; undefined: the fields themselves. */
  recordError?(fields: PgErrorFields): PgErrorFields | undefined;
  /** A NoticeResponse (NOTICE, WARNING, INFO, ...) that arrived while the statement ran: fields to send instead, or undefined to pass it on. */
  notice?(fields: PgErrorFields): PgErrorFields | undefined;
  /**
   * COPY ... TO output: set, each CopyData of the statement goes through `copyData` (whole
   * messages). `copyOut` sees the CopyOutResponse's overall format (0 text, 1 binary) first.
   */
  copyOut?(format: number, columns: number): void;
  /** Return `raw` unchanged, or a new encoded CopyData message (or null: send nothing). */
  copyData?(raw: Buffer, body: Buffer): Buffer | null;
}

/**
 * A bound on one statement's results (`limits:` max_rows, max_bytes, rows_per_hour). The
 * session counts the DataRow and CopyData messages it sends; the one that would cross the
 * bound is not sent: the client gets `exceeded`'s error instead (SQLSTATE 54000) and nothing
 * more of the statement, the upstream statement is cancelled, and the session stays usable.
 */
export interface RowLimit {
  /** Rows (DataRow or CopyData messages) the statement may return. */
  readonly maxRows: number;
  /** Bytes of those messages it may return. */
  readonly maxBytes: number;
  /** The figures the statement would reach with the next message: the error the client gets. Called once. */
  exceeded(rows: number, bytes: number): ErrorVerdictFields;
}

export interface StatementOutcome {
  /** Command tags of the statements that completed (CommandComplete), in order. */
  readonly tags: readonly string[];
  /** The error that ended it, if any (already what the client saw). */
  readonly error?: PgErrorFields;
  /** DataRows sent to the client. */
  readonly rows: number;
}

export type ErrorVerdictFields = Omit<PgErrorFields, 'severity'>;

export type Verdict =
  | {
      readonly action: 'forward';
      readonly rows?: RowRewriter;
      /** Masking applied: the names of the result columns masked, filled as results are described. */
      readonly masking?: { readonly columns: string[] };
      /** Called once when the statement's responses are complete (or it was discarded). */
      readonly onDone?: (outcome: StatementOutcome) => void;
      /**
       * The statement may run before this resolves, but nothing of it reaches the client until
       * then (its audit record becoming durable while it executes). When it rejects, the
       * session ends without showing the result. Only for statements nobody else can observe
       * before the client does (see `governance/statement-audit.ts`).
       */
      readonly durable?: Promise<void>;
      /** Halt the statement once its results cross this bound (see {@link RowLimit}). */
      readonly limit?: RowLimit;
    }
  | {
      readonly action: 'error';
      /** What the client receives instead of the statement's result (severity ERROR). */
      readonly error: ErrorVerdictFields;
      /** End the session with this error as FATAL (e.g. its credential expired). */
      readonly fatal?: boolean;
      readonly onDone?: (outcome: StatementOutcome) => void;
    };

export const FORWARD: Verdict = Object.freeze({ action: 'forward' as const });

export interface StatementHook {
  (session: SessionInfo, statement: StatementSource): Verdict | Promise<Verdict>;
}

/** A login that did not succeed (wrong password, unknown identity, or refused by the rate limit). */
export interface LoginFailure {
  /** The user name the client gave (may not be a known identity). */
  readonly identity: string;
  readonly clientAddress: string;
  readonly database?: string;
  readonly reason: 'authentication failed' | 'rate limited' | 'identity suspended';
  readonly tls: boolean;
}

/** Takes a statement's duration in seconds (a metrics histogram: plain numbers, no allocation). */
export interface StatementTimer {
  observe(seconds: number): void;
}

/** Where a session's statement times go (see {@link SessionHooks.timers}). */
export interface StatementTimers {
  /** From the statement reaching Warden to its forwarding upstream (or its refusal). */
  readonly overhead: StatementTimer;
  /** From its forwarding to its completion (the tracker's end of the statement). */
  readonly upstream: StatementTimer;
}

export interface SessionHooks {
  /** The timers of a database's sessions, asked once per session (metrics); absent: nothing is timed. */
  readonly timers?: (database: DatabaseConfig) => StatementTimers;
  /** Decide each statement. Absent: every statement is forwarded unchanged. */
  readonly statement?: StatementHook;
  /** A session finished its startup and is relaying. */
  readonly sessionStart?: (session: SessionInfo) => void;
  /** A session ended (either side closed). */
  readonly sessionEnd?: (session: SessionInfo, reason: string) => void;
  /** A client failed to log in. */
  readonly loginFailed?: (event: LoginFailure) => void;
}
