/**
 * `sqlite:` state store (better-sqlite3): tokens, approval requests and their
 * decisions, just-in-time grants, in one file that several processes may
 * open at once (two Wardens on one host, the CLI).
 *
 * - WAL, `synchronous = FULL` (a commit is on disk before it is acknowledged),
 *   `busy_timeout = 5000` (a writer waits up to 5 s for another one).
 * - Read-modify-write (addDecision) runs in a `BEGIN IMMEDIATE` transaction:
 *   the write lock is taken before the read, so two processes deciding the
 *   same request at once serialize instead of losing a decision. Single
 *   conditional updates (setStatus, revoke*) are atomic on their own.
 * - The file is created with mode 0600 when missing (SQLite gives its -wal
 *   and -shm files the same mode); its directory must exist. A group- or
 *   world-writable directory, or an existing file others may read, is warned
 *   about (util/private-file.ts).
 * - Limit counters (`syncLimitCounts`, every 500 ms while limits count) are written without an
 *   fsync and wait at most 100 ms for another process's write lock: they run on the event loop.
 * - `watch()` polls the watched requests' `version` every 250 ms: one cheap
 *   indexed SELECT, which also sees changes made by other processes.
 *
 * The API is synchronous underneath; methods return Promises to fit StateStore.
 */
import { createPrivateFile } from '../util/private-file.js';
import Database from 'better-sqlite3';
import {
  GRANT_COLUMNS,
  REQUEST_COLUMNS,
  REQUEST_INSERT_COLUMNS,
  RequestWatchers,
  STATE_SCHEMA_VERSION,
  StateStoreError,
  TOKEN_COLUMNS,
  alreadyDecided,
  applyDecision,
  assertStatus,
  checkDecision,
  checkLimit,
  checkWindowStart,
  duplicateId,
  grantValues,
  isoTime,
  mergeLimitCounts,
  newRequest,
  requestValues,
  toDecision,
  toGrant,
  toLimitCount,
  toRequest,
  toSuspension,
  toToken,
  tokenValues,
  type DecisionRow,
  type GrantRow,
  type LimitCountRow,
  type RequestRow,
  type SuspensionRow,
  type TokenRow,
} from './common.js';
import type {
  ApprovalDecision,
  ApprovalRequest,
  ApprovalStatus,
  GrantRecord,
  LimitCount,
  LimitCountKind,
  NewApprovalRequest,
  StateStore,
  SuspensionRecord,
  TokenRecord,
} from './types.js';

const POLL_MS = 250;

const STATUS_CHECK = "status IN ('pending', 'approved', 'denied', 'expired', 'cancelled', 'used')";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
  id TEXT PRIMARY KEY,
  identity TEXT NOT NULL,
  on_behalf_of TEXT,
  scope TEXT,
  verifier TEXT NOT NULL,
  created_at TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  revoked_at TEXT,
  issued_by TEXT
);
CREATE INDEX IF NOT EXISTS tokens_identity ON tokens (identity, created_at);
CREATE INDEX IF NOT EXISTS tokens_created ON tokens (created_at);
CREATE TABLE IF NOT EXISTS approval_requests (
  id TEXT PRIMARY KEY,
  status TEXT NOT NULL CHECK (${STATUS_CHECK}),
  identity TEXT NOT NULL,
  on_behalf_of TEXT,
  "database" TEXT NOT NULL,
  environment TEXT,
  sql TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  params TEXT CHECK (params IS NULL OR json_valid(params)),
  rules TEXT NOT NULL CHECK (json_valid(rules)),
  tables TEXT NOT NULL CHECK (json_valid(tables)),
  classes TEXT NOT NULL CHECK (json_valid(classes)),
  intent TEXT NOT NULL CHECK (json_valid(intent)),
  instance TEXT NOT NULL,
  session TEXT,
  mode TEXT NOT NULL CHECK (mode IN ('hold', 'reject')),
  created_at TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  decided_at TEXT,
  grant_minutes INTEGER,
  version INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS requests_status_created ON approval_requests (status, created_at);
CREATE INDEX IF NOT EXISTS requests_created ON approval_requests (created_at);
CREATE INDEX IF NOT EXISTS requests_identity_fingerprint ON approval_requests (identity, fingerprint, status);
CREATE TABLE IF NOT EXISTS approval_decisions (
  request_id TEXT NOT NULL REFERENCES approval_requests (id) ON DELETE CASCADE,
  approver TEXT NOT NULL,
  decision TEXT NOT NULL CHECK (decision IN ('approve', 'deny')),
  reason TEXT NOT NULL,
  at TEXT NOT NULL,
  ord INTEGER NOT NULL,
  PRIMARY KEY (request_id, approver)
);
CREATE TABLE IF NOT EXISTS grants (
  id TEXT PRIMARY KEY,
  identity TEXT NOT NULL,
  rule TEXT NOT NULL,
  "database" TEXT,
  request_id TEXT NOT NULL,
  created_at TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  revoked_at TEXT
);
CREATE INDEX IF NOT EXISTS grants_identity_expiry ON grants (identity, expires_at);
CREATE INDEX IF NOT EXISTS grants_expiry ON grants (expires_at);
CREATE INDEX IF NOT EXISTS grants_created ON grants (created_at);
CREATE TABLE IF NOT EXISTS suspensions (
  identity TEXT PRIMARY KEY,
  reason TEXT NOT NULL,
  suspended_by TEXT NOT NULL,
  suspended_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS limit_counters (
  kind TEXT NOT NULL CHECK (kind IN ('statements', 'rows')),
  limit_name TEXT NOT NULL,
  identity TEXT NOT NULL,
  window_start INTEGER NOT NULL,
  count INTEGER NOT NULL,
  PRIMARY KEY (kind, limit_name, identity, window_start)
);
CREATE INDEX IF NOT EXISTS limit_counters_window ON limit_counters (kind, window_start);
`;

const cols = (names: readonly string[]): string => names.map((c) => `"${c}"`).join(', ');
const marks = (n: number): string => Array.from({ length: n }, () => '?').join(', ');

type Bind = string | number | null;

function isUniqueViolation(err: unknown): boolean {
  return err instanceof Database.SqliteError && (err.code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || err.code === 'SQLITE_CONSTRAINT_UNIQUE');
}

/** Creates `file` with mode 0600 unless it exists (see util/private-file.ts); its directory must exist. Returns the absolute path. */
function prepareFile(file: string): string {
  return createPrivateFile(file, { what: 'sqlite state store' }).path;
}

/** Opens (creating if needed) the state database at `file`, or an in-memory one for `:memory:`. */
export async function openSqliteState(file: string): Promise<StateStore> {
  if (typeof file !== 'string' || file.trim() === '') throw new Error('sqlite state store: needs a file path (or :memory:)');
  const target = file === ':memory:' ? file : prepareFile(file);
  const description = `sqlite:${target}`;
  let db: Database.Database;
  try {
    db = new Database(target);
  } catch (err) {
    throw new Error(`${description}: open failed: ${(err as Error).message}`);
  }
  try {
    db.pragma('busy_timeout = 5000');
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    initSchema(db, description);
    return new SqliteStateStore(db, description);
  } catch (err) {
    db.close();
    if (err instanceof StateStoreError) throw err;
    throw new Error(`${description}: open failed: ${(err as Error).message}`);
  }
}

/** Creates the tables (idempotent, under the write lock) and checks the schema version. */
function initSchema(db: Database.Database, description: string): void {
  db.transaction(() => {
    const hasMeta = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").get() !== undefined;
    const hasOther = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name <> 'meta'").get() !== undefined;
    if (!hasMeta && hasOther) throw new StateStoreError(`${description}: not a Warden state database (it has other tables)`);
    db.exec(SCHEMA);
    db.prepare('INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)').run('state_schema_version', String(STATE_SCHEMA_VERSION));
    const v = db.prepare('SELECT value FROM meta WHERE key = ?').pluck().get('state_schema_version') as string | undefined;
    if (v !== String(STATE_SCHEMA_VERSION)) {
      throw new StateStoreError(
        `${description}: state schema version ${v ?? 'missing'} is not supported (this Warden uses ${STATE_SCHEMA_VERSION})` +
          (v !== undefined && Number(v) > STATE_SCHEMA_VERSION ? '; it was created by a newer Warden' : ''),
      );
    }
  }).immediate();
}

class SqliteStateStore implements StateStore {
  readonly description: string;
  readonly #db: Database.Database;
  readonly #watchers: RequestWatchers;
  #closed = false;

  readonly #insertToken: Database.Statement;
  readonly #getToken: Database.Statement;
  readonly #revokeToken: Database.Statement;
  readonly #insertRequest: Database.Statement;
  readonly #getRequest: Database.Statement;
  readonly #decisionsOf: Database.Statement;
  readonly #insertDecision: Database.Statement;
  readonly #decide: Database.Statement;
  readonly #setStatus: Database.Statement;
  readonly #findApproved: Database.Statement;
  readonly #insertGrant: Database.Statement;
  readonly #activeGrants: Database.Statement;
  readonly #revokeGrant: Database.Statement;
  readonly #version: Database.Statement;
  readonly #versions: Database.Statement;
  readonly #addLimitCount: Database.Statement;
  readonly #pruneLimitCounts: Database.Statement;
  readonly #readLimitCounts: Database.Statement;
  readonly #syncLimitCountsTx: Database.Transaction<(adds: readonly LimitCount[], pruneBefore: number | undefined) => void>;

  /** Reads a request and its decisions in one snapshot. */
  readonly #readRequestTx: (id: string) => ApprovalRequest | null;
  readonly #readRequestsTx: (stmt: Database.Statement, args: readonly Bind[]) => ApprovalRequest[];
  readonly #addDecisionTx: Database.Transaction<
    (id: string, d: ApprovalDecision, next: (r: ApprovalRequest) => ApprovalStatus) => ApprovalRequest
  >;

  constructor(db: Database.Database, description: string) {
    this.#db = db;
    this.description = description;
    const R = cols(REQUEST_COLUMNS);
    this.#insertToken = db.prepare(`INSERT INTO tokens (${cols(TOKEN_COLUMNS)}) VALUES (${marks(TOKEN_COLUMNS.length)})`);
    this.#getToken = db.prepare('SELECT * FROM tokens WHERE id = ?');
    this.#revokeToken = db.prepare('UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL');
    this.#insertRequest = db.prepare(
      `INSERT INTO approval_requests (${cols(REQUEST_INSERT_COLUMNS)}, status, version) VALUES (${marks(REQUEST_INSERT_COLUMNS.length)}, 'pending', 1)`,
    );
    this.#getRequest = db.prepare(`SELECT ${R} FROM approval_requests WHERE id = ?`);
    this.#decisionsOf = db.prepare(
      'SELECT request_id, approver, decision, reason, at FROM approval_decisions WHERE request_id IN (SELECT value FROM json_each(?)) ORDER BY request_id, ord',
    );
    this.#insertDecision = db.prepare('INSERT INTO approval_decisions (request_id, approver, decision, reason, at, ord) VALUES (?, ?, ?, ?, ?, ?)');
    this.#decide = db.prepare('UPDATE approval_requests SET status = ?, decided_at = ?, version = version + 1 WHERE id = ?');
    this.#setStatus = db.prepare(
      'UPDATE approval_requests SET status = ?, decided_at = COALESCE(decided_at, ?), version = version + 1 WHERE id = ? AND status = ?',
    );
    this.#findApproved = db.prepare(
      `SELECT ${R} FROM approval_requests
        WHERE identity = ? AND fingerprint = ? AND status = 'approved' AND mode = 'reject' AND expires_at > ?
        ORDER BY created_at DESC, id DESC LIMIT 1`,
    );
    this.#insertGrant = db.prepare(`INSERT INTO grants (${cols(GRANT_COLUMNS)}) VALUES (${marks(GRANT_COLUMNS.length)})`);
    this.#activeGrants = db.prepare(
      `SELECT * FROM grants WHERE identity = ? AND revoked_at IS NULL AND expires_at > ? ORDER BY created_at DESC, id DESC`,
    );
    this.#revokeGrant = db.prepare('UPDATE grants SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL');
    this.#version = db.prepare('SELECT version FROM approval_requests WHERE id = ?').pluck();
    this.#versions = db.prepare('SELECT id, version FROM approval_requests WHERE id IN (SELECT value FROM json_each(?))');
    this.#addLimitCount = db.prepare(
      `INSERT INTO limit_counters (kind, limit_name, identity, window_start, count) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (kind, limit_name, identity, window_start) DO UPDATE SET count = count + excluded.count`,
    );
    this.#pruneLimitCounts = db.prepare('DELETE FROM limit_counters WHERE window_start < ?');
    this.#readLimitCounts = db.prepare(
      "SELECT * FROM limit_counters WHERE (kind = 'statements' AND window_start >= ?) OR (kind = 'rows' AND window_start >= ?)",
    );
    this.#syncLimitCountsTx = db.transaction((adds: readonly LimitCount[], pruneBefore: number | undefined) => {
      for (const a of adds) this.#addLimitCount.run(a.kind, a.limit, a.identity, a.window, a.count);
      if (pruneBefore !== undefined) this.#pruneLimitCounts.run(pruneBefore);
    });

    this.#readRequestTx = db.transaction((id: string) => {
      const row = this.#getRequest.get(id) as RequestRow | undefined;
      return row ? this.#withDecisions([row])[0] : null;
    });
    this.#readRequestsTx = db.transaction((stmt: Database.Statement, args: readonly Bind[]) => {
      const rows = stmt.all(...args) as RequestRow[];
      return this.#withDecisions(rows);
    });
    this.#addDecisionTx = db.transaction((id: string, d: ApprovalDecision, next: (r: ApprovalRequest) => ApprovalStatus) => {
      const row = this.#getRequest.get(id) as RequestRow | undefined;
      const current = row ? this.#withDecisions([row])[0] : null;
      const after = applyDecision(id, current, d, next);
      try {
        this.#insertDecision.run(id, d.approver, d.decision, d.reason, d.at, after.decisions.length - 1);
      } catch (err) {
        if (isUniqueViolation(err)) throw alreadyDecided(d.approver, id);
        throw err;
      }
      this.#decide.run(after.status, after.decidedAt ?? null, id);
      return after;
    });

    this.#watchers = new RequestWatchers(POLL_MS, (ids) => this.#versionsOf(ids));
  }

  #withDecisions(rows: readonly RequestRow[]): ApprovalRequest[] {
    if (rows.length === 0) return [];
    const byId = new Map<string, ApprovalDecision[]>();
    for (const d of this.#decisionsOf.all(JSON.stringify(rows.map((r) => r.id))) as DecisionRow[]) {
      let list = byId.get(d.request_id);
      if (!list) byId.set(d.request_id, (list = []));
      list.push(toDecision(d));
    }
    return rows.map((r) => toRequest(r, byId.get(r.id) ?? []));
  }

  #versionsOf(ids: readonly string[]): Map<string, number> {
    const out = new Map<string, number>();
    if (this.#closed) return out;
    for (const r of this.#versions.all(JSON.stringify(ids)) as { id: string; version: number }[]) out.set(r.id, Number(r.version));
    return out;
  }

  /** Runs `fn` now; its result or error as a Promise (SQLite errors named after the store and the operation). */
  #do<T>(what: string, fn: () => T): Promise<T> {
    try {
      if (this.#closed) throw new StateStoreError(`${this.description}: store is closed`);
      return Promise.resolve(fn());
    } catch (err) {
      if (err instanceof Database.SqliteError) {
        return Promise.reject(Object.assign(new Error(`${this.description}: ${what} failed: ${err.message}`, { cause: err }), { code: err.code }));
      }
      return Promise.reject(err);
    }
  }

  /* Tokens --------------------------------------------------------------------------------- */

  putToken(t: TokenRecord): Promise<void> {
    return this.#do('putToken', () => {
      try {
        this.#insertToken.run(...tokenValues(t));
      } catch (err) {
        if (isUniqueViolation(err)) throw duplicateId('token', t.id);
        throw err;
      }
    });
  }

  getToken(id: string): Promise<TokenRecord | null> {
    return this.#do('getToken', () => {
      const r = this.#getToken.get(id) as TokenRow | undefined;
      return r ? toToken(r) : null;
    });
  }

  listTokens(o: { identity?: string; all?: boolean } = {}): Promise<TokenRecord[]> {
    return this.#do('listTokens', () => {
      const where: string[] = [];
      const args: Bind[] = [];
      if (o.identity !== undefined) (where.push('identity = ?'), args.push(o.identity));
      if (!o.all) (where.push('revoked_at IS NULL AND expires_at > ?'), args.push(new Date().toISOString()));
      const sql = `SELECT * FROM tokens ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, id DESC`;
      return (this.#db.prepare(sql).all(...args) as TokenRow[]).map(toToken);
    });
  }

  revokeToken(id: string, at: string): Promise<boolean> {
    return this.#do('revokeToken', () => this.#revokeToken.run(isoTime(at, 'revocation'), id).changes === 1);
  }

  /* Approval requests ---------------------------------------------------------------------- */

  createRequest(r: NewApprovalRequest): Promise<ApprovalRequest> {
    return this.#do('createRequest', () => {
      try {
        this.#insertRequest.run(...requestValues(r));
      } catch (err) {
        if (isUniqueViolation(err)) throw duplicateId('approval request', r.id);
        throw err;
      }
      return newRequest(r);
    });
  }

  getRequest(id: string): Promise<ApprovalRequest | null> {
    return this.#do('getRequest', () => this.#readRequestTx(id));
  }

  listRequests(o: { status?: ApprovalStatus; identity?: string; limit?: number } = {}): Promise<ApprovalRequest[]> {
    return this.#do('listRequests', () => {
      const where: string[] = [];
      const args: Bind[] = [];
      if (o.status !== undefined) (where.push('status = ?'), args.push(assertStatus(o.status, 'filter')));
      if (o.identity !== undefined) (where.push('identity = ?'), args.push(o.identity));
      const limit = checkLimit(o.limit);
      const sql =
        `SELECT ${cols(REQUEST_COLUMNS)} FROM approval_requests ${where.length ? `WHERE ${where.join(' AND ')}` : ''}` +
        ` ORDER BY created_at DESC, id DESC${limit === undefined ? '' : ` LIMIT ${limit}`}`;
      return this.#readRequestsTx(this.#db.prepare(sql), args);
    });
  }

  addDecision(id: string, d: ApprovalDecision, next: (r: ApprovalRequest) => ApprovalStatus): Promise<ApprovalRequest> {
    return this.#do('addDecision', () => this.#addDecisionTx.immediate(id, checkDecision(d), next));
  }

  setStatus(id: string, from: ApprovalStatus, to: ApprovalStatus, at: string): Promise<boolean> {
    return this.#do('setStatus', () => {
      assertStatus(from, 'from');
      assertStatus(to, 'to');
      return this.#setStatus.run(to, isoTime(at, 'status change'), id, from).changes === 1;
    });
  }

  findApproved(identity: string, fingerprint: string, now: string): Promise<ApprovalRequest | null> {
    return this.#do('findApproved', () => {
      const rows = this.#readRequestsTx(this.#findApproved, [identity, fingerprint, isoTime(now, 'now')]);
      return rows[0] ?? null;
    });
  }

  /* Grants --------------------------------------------------------------------------------- */

  putGrant(g: GrantRecord): Promise<void> {
    return this.#do('putGrant', () => {
      try {
        this.#insertGrant.run(...grantValues(g));
      } catch (err) {
        if (isUniqueViolation(err)) throw duplicateId('grant', g.id);
        throw err;
      }
    });
  }

  activeGrants(identity: string, now: string): Promise<GrantRecord[]> {
    return this.#do('activeGrants', () => (this.#activeGrants.all(identity, isoTime(now, 'now')) as GrantRow[]).map(toGrant));
  }

  listGrants(o: { all?: boolean } = {}): Promise<GrantRecord[]> {
    return this.#do('listGrants', () => {
      const sql = o.all
        ? 'SELECT * FROM grants ORDER BY created_at DESC, id DESC'
        : 'SELECT * FROM grants WHERE revoked_at IS NULL AND expires_at > ? ORDER BY created_at DESC, id DESC';
      const rows = (o.all ? this.#db.prepare(sql).all() : this.#db.prepare(sql).all(new Date().toISOString())) as GrantRow[];
      return rows.map(toGrant);
    });
  }

  revokeGrant(id: string, at: string): Promise<boolean> {
    return this.#do('revokeGrant', () => this.#revokeGrant.run(isoTime(at, 'revocation'), id).changes === 1);
  }

  /* Suspensions ---------------------------------------------------------------------------- */

  putSuspension(x: SuspensionRecord): Promise<SuspensionRecord> {
    return this.#do('putSuspension', () => {
      this.#db
        .prepare(
          `INSERT INTO suspensions (identity, reason, suspended_by, suspended_at) VALUES (?, ?, ?, ?)
           ON CONFLICT (identity) DO UPDATE SET reason = excluded.reason, suspended_by = excluded.suspended_by, suspended_at = excluded.suspended_at`,
        )
        .run(x.identity, x.reason, x.suspendedBy, isoTime(x.suspendedAt, 'suspension'));
      return x;
    });
  }

  deleteSuspension(identity: string): Promise<SuspensionRecord | null> {
    return this.#do('deleteSuspension', () => {
      const row = this.#db.prepare('DELETE FROM suspensions WHERE identity = ? RETURNING *').get(identity) as SuspensionRow | undefined;
      return row ? toSuspension(row) : null;
    });
  }

  listSuspensions(): Promise<SuspensionRecord[]> {
    return this.#do('listSuspensions', () => (this.#db.prepare('SELECT * FROM suspensions ORDER BY identity').all() as SuspensionRow[]).map(toSuspension));
  }

  /* Limit counters ------------------------------------------------------------------------- */

  syncLimitCounts(adds: readonly LimitCount[], since: Readonly<Record<LimitCountKind, number>>, pruneBefore?: number): Promise<LimitCount[]> {
    return this.#do('syncLimitCounts', () => {
      const merged = mergeLimitCounts(adds);
      const prune = pruneBefore === undefined ? undefined : checkWindowStart(pruneBefore, 'pruneBefore');
      // The write lock only when there is something to write (a read alone never waits for a writer, WAL).
      // This runs every half second on the event loop while limits count, so: without an fsync
      // (synchronous NORMAL: still atomic and consistent; a power loss may lose the last
      // increments), and waiting at most 100 ms for another process's write lock (else it fails,
      // and the caller keeps the adds for its next exchange).
      if (merged.length > 0 || prune !== undefined) {
        this.#db.pragma('synchronous = NORMAL');
        this.#db.pragma('busy_timeout = 100');
        try {
          this.#syncLimitCountsTx.immediate(merged, prune);
        } finally {
          this.#db.pragma('busy_timeout = 5000');
          this.#db.pragma('synchronous = FULL');
        }
      }
      const rows = this.#readLimitCounts.all(checkWindowStart(since.statements, 'since'), checkWindowStart(since.rows, 'since')) as LimitCountRow[];
      return rows.map(toLimitCount);
    });
  }

  /* Watching ------------------------------------------------------------------------------- */

  watch(requestId: string, onChange: () => void): () => void {
    if (this.#closed) throw new StateStoreError(`${this.description}: store is closed`);
    const v = this.#version.get(requestId) as number | undefined;
    return this.#watchers.add(requestId, onChange, v === undefined ? 0 : Number(v));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#watchers.close();
    this.#db.close();
  }
}
