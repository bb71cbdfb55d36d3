/**
 * `postgres://` state store: what any number of Warden instances share
 * (tokens, approval requests and decisions, grants) in one PostgreSQL schema
 * (default `warden_state`).
 *
 * - The schema is created when missing, under `pg_advisory_xact_lock`, so two
 *   Wardens starting at once do not collide; an existing schema of the right
 *   version needs no DDL privilege.
 * - addDecision locks the request (`SELECT ... FOR UPDATE`) before reading its
 *   decisions, so two approvers deciding at once on two instances serialize
 *   and neither decision is lost. setStatus is one conditional
 *   `UPDATE ... WHERE status = $from`: exactly one of two racing callers wins.
 * - Changes to a request are announced with `NOTIFY warden_state_requests`
 *   (payload: the request id), in the changing transaction; changes to the
 *   suspensions with `NOTIFY warden_state_suspensions` (`watchSuspensions`). `watch()` listens
 *   on a dedicated connection and polls the watched requests' `version` every
 *   second as a fallback (a lost listener connection is reopened).
 * - Times are `toISOString()` text (`COLLATE "C"`: compares as time); arrays
 *   and objects are `json` (verbatim, unlike jsonb).
 * - A pool of at most 4 connections, plus the listener.
 * - The password never appears in `description` or in error messages.
 */
import pg from 'pg';
import {
  GRANT_COLUMNS,
  REQUEST_CHANNEL,
  SUSPENSION_CHANNEL,
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
  toGrant,
  toLimitCount,
  toRequest,
  toSuspension,
  toToken,
  tokenValues,
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
import { parsePgUrl, type PgUrlInfo } from '../util/pg-url.js';

export interface PostgresStateOptions {
  /** Schema holding the tables; default `warden_state`. */
  schema?: string;
}

const POLL_MS = 1000;
const JSON_COLUMNS: ReadonlySet<string> = new Set(['params', 'rules', 'tables', 'classes', 'intent']);

/** Opens the store at `url` (`postgres://user:password@host:port/db`), creating its schema if needed. */
export async function openPostgresState(url: string, opts: PostgresStateOptions = {}): Promise<StateStore> {
  const conn = parsePgUrl(url, 'postgres state store');
  const schema = opts.schema ?? 'warden_state';
  if (schema === '' || Buffer.byteLength(schema) > 63) {
    throw new Error(`postgres state store ${conn.description}: invalid schema name ${JSON.stringify(schema)}`);
  }
  const store = new PostgresStateStore(url, conn, schema);
  try {
    await store.init();
  } catch (err) {
    await store.close().catch(() => undefined);
    throw err instanceof StateStoreError ? err : conn.error('open failed', err);
  }
  return store;
}

type Conn = PgUrlInfo;

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** An error of the caller's own (its `next` callback): passed through unchanged. */
class Passthrough {
  constructor(readonly error: unknown) {}
}

function pgCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

const UNIQUE_VIOLATION = '23505';

function schemaSql(s: string): string {
  const statuses = "'pending', 'approved', 'denied', 'expired', 'cancelled', 'used'";
  return `
CREATE SCHEMA IF NOT EXISTS ${s};
CREATE TABLE IF NOT EXISTS ${s}.meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS ${s}.tokens (
  id text COLLATE "C" PRIMARY KEY,
  identity text COLLATE "C" NOT NULL,
  on_behalf_of text,
  scope text,
  verifier text NOT NULL,
  created_at text COLLATE "C" NOT NULL,
  expires_at text COLLATE "C" NOT NULL,
  revoked_at text COLLATE "C",
  issued_by text
);
CREATE INDEX IF NOT EXISTS tokens_identity ON ${s}.tokens (identity, created_at);
CREATE INDEX IF NOT EXISTS tokens_created ON ${s}.tokens (created_at);
CREATE TABLE IF NOT EXISTS ${s}.approval_requests (
  id text COLLATE "C" PRIMARY KEY,
  status text COLLATE "C" NOT NULL CHECK (status IN (${statuses})),
  identity text COLLATE "C" NOT NULL,
  on_behalf_of text,
  "database" text NOT NULL,
  environment text,
  sql text NOT NULL,
  fingerprint text COLLATE "C" NOT NULL,
  params json,
  rules json NOT NULL,
  tables json NOT NULL,
  classes json NOT NULL,
  intent json NOT NULL,
  instance text NOT NULL,
  session text,
  mode text NOT NULL CHECK (mode IN ('hold', 'reject')),
  created_at text COLLATE "C" NOT NULL,
  expires_at text COLLATE "C" NOT NULL,
  decided_at text COLLATE "C",
  grant_minutes integer,
  version integer NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS requests_status_created ON ${s}.approval_requests (status, created_at);
CREATE INDEX IF NOT EXISTS requests_created ON ${s}.approval_requests (created_at);
CREATE INDEX IF NOT EXISTS requests_identity_fingerprint ON ${s}.approval_requests (identity, fingerprint, status);
CREATE TABLE IF NOT EXISTS ${s}.approval_decisions (
  request_id text COLLATE "C" NOT NULL REFERENCES ${s}.approval_requests (id) ON DELETE CASCADE,
  approver text COLLATE "C" NOT NULL,
  decision text NOT NULL CHECK (decision IN ('approve', 'deny')),
  reason text NOT NULL,
  at text COLLATE "C" NOT NULL,
  ord integer NOT NULL,
  PRIMARY KEY (request_id, approver)
);
CREATE TABLE IF NOT EXISTS ${s}.grants (
  id text COLLATE "C" PRIMARY KEY,
  identity text COLLATE "C" NOT NULL,
  rule text NOT NULL,
  "database" text,
  request_id text COLLATE "C" NOT NULL,
  created_at text COLLATE "C" NOT NULL,
  expires_at text COLLATE "C" NOT NULL,
  revoked_at text COLLATE "C"
);
CREATE INDEX IF NOT EXISTS grants_identity_expiry ON ${s}.grants (identity, expires_at);
CREATE INDEX IF NOT EXISTS grants_expiry ON ${s}.grants (expires_at);
CREATE INDEX IF NOT EXISTS grants_created ON ${s}.grants (created_at);
${suspensionsSql(s)}
${limitCountersSql(s)}`;
}

/** Added after version 1 was released (issue 20's shared limit counters): like suspensionsSql. */
function limitCountersSql(s: string): string {
  return `CREATE TABLE IF NOT EXISTS ${s}.limit_counters (
  kind text COLLATE "C" NOT NULL CHECK (kind IN ('statements', 'rows')),
  limit_name text COLLATE "C" NOT NULL,
  identity text COLLATE "C" NOT NULL,
  window_start bigint NOT NULL,
  count bigint NOT NULL,
  PRIMARY KEY (kind, limit_name, identity, window_start)
);
CREATE INDEX IF NOT EXISTS limit_counters_window ON ${s}.limit_counters (kind, window_start);`;
}

/** Added after version 1 was released: created by schemaSql, and on its own in a schema that predates it. */
function suspensionsSql(s: string): string {
  return `CREATE TABLE IF NOT EXISTS ${s}.suspensions (
  identity text COLLATE "C" PRIMARY KEY,
  reason text NOT NULL,
  suspended_by text NOT NULL,
  suspended_at text COLLATE "C" NOT NULL
);`;
}

const cols = (names: readonly string[]): string => names.map((c) => `"${c}"`).join(', ');
const params = (n: number, from = 1): string => Array.from({ length: n }, (_, i) => `$${i + from}`).join(', ');

type Bind = string | number | null | readonly string[];

/** A request row with its decisions as JSON text (one statement: one snapshot). */
type RequestRowWithDecisions = RequestRow & { decisions: string };

class PostgresStateStore implements StateStore {
  readonly description: string;
  readonly #url: string;
  readonly #conn: Conn;
  readonly #schema: string;
  /** Quoted schema name, for SQL. */
  readonly #s: string;
  readonly #pool: pg.Pool;
  readonly #watchers: RequestWatchers;
  /** The LISTEN connection; null while (re)connecting or before init. */
  #listener: pg.Client | null = null;
  #listening: Promise<void> | null = null;
  #closed = false;
  /** Told of NOTIFY on the suspensions channel. */
  readonly #suspensionWatchers = new Set<() => void>();
  /** SELECT list of a request, with its decisions as a JSON array (alias r). */
  readonly #requestSelect: string;

  constructor(url: string, conn: Conn, schema: string) {
    this.#url = url;
    this.#conn = conn;
    this.description = conn.description;
    this.#schema = schema;
    this.#s = quoteIdent(schema);
    this.#pool = new pg.Pool({ connectionString: url, max: 4 });
    // An idle connection dying (server restart) must not crash the process; the next query reconnects.
    this.#pool.on('error', () => undefined);
    const list = REQUEST_COLUMNS.map((c) => (JSON_COLUMNS.has(c) ? `r."${c}"::text AS "${c}"` : `r."${c}"`)).join(', ');
    this.#requestSelect =
      `${list}, (SELECT COALESCE(json_agg(json_build_object('approver', d.approver, 'decision', d.decision, 'reason', d.reason, 'at', d.at)` +
      ` ORDER BY d.ord), '[]'::json)::text FROM ${this.#s}.approval_decisions d WHERE d.request_id = r.id) AS decisions`;
    this.#watchers = new RequestWatchers(POLL_MS, (ids) => {
      this.#ensureListener();
      return this.#versionsOf(ids);
    });
  }

  async init(): Promise<void> {
    const c = await this.#pool.connect();
    let broken = false;
    try {
      await c.query('BEGIN');
      try {
        if (!(await this.#schemaCurrent(c))) {
          // Two Wardens starting at once must not race on CREATE SCHEMA / TABLE.
          await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`warden state schema ${this.#schema}`]);
          if (!(await this.#schemaCurrent(c))) {
            await c.query(schemaSql(this.#s));
            await c.query(`INSERT INTO ${this.#s}.meta (key, value) VALUES ('state_schema_version', $1) ON CONFLICT (key) DO NOTHING`, [
              String(STATE_SCHEMA_VERSION),
            ]);
            const v = await c.query<{ value: string }>(`SELECT value FROM ${this.#s}.meta WHERE key = 'state_schema_version'`);
            const version = v.rows[0]?.value;
            if (version !== String(STATE_SCHEMA_VERSION)) {
              throw new StateStoreError(
                `${this.description}: schema "${this.#schema}" has state schema version ${version ?? 'missing'}, this Warden uses ${STATE_SCHEMA_VERSION}` +
                  (version !== undefined && Number(version) > STATE_SCHEMA_VERSION ? ' (it was created by a newer Warden)' : ''),
              );
            }
          }
        }
        const t = await c.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [`${this.#s}.suspensions`]);
        if (t.rows[0]?.t == null) {
          // A schema of version 1 made before suspensions existed: the table is added (no version change).
          await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`warden state schema ${this.#schema}`]);
          await c.query(suspensionsSql(this.#s));
        }
        const lc = await c.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [`${this.#s}.limit_counters`]);
        if (lc.rows[0]?.t == null) {
          // Likewise for the limit counters (issue 20).
          await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`warden state schema ${this.#schema}`]);
          await c.query(limitCountersSql(this.#s));
        }
        await c.query('COMMIT');
      } catch (err) {
        await c.query('ROLLBACK').catch(() => {
          broken = true;
        });
        throw err;
      }
    } finally {
      c.release(broken);
    }
    await this.#listen();
  }

  /** Whether the schema's meta table exists and says our version. */
  async #schemaCurrent(c: pg.PoolClient): Promise<boolean> {
    const t = await c.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [`${this.#s}.meta`]);
    if (t.rows[0]?.t == null) return false;
    const v = await c.query<{ value: string }>(`SELECT value FROM ${this.#s}.meta WHERE key = 'state_schema_version'`);
    return v.rows[0]?.value === String(STATE_SCHEMA_VERSION);
  }

  /* Plumbing -------------------------------------------------------------------------------- */

  #fail(what: string, err: unknown): unknown {
    if (err instanceof StateStoreError) return err;
    if (err instanceof Passthrough) return err.error;
    return this.#conn.error(what, err);
  }

  #closedError(): StateStoreError {
    return new StateStoreError(`${this.description}: store is closed`);
  }

  async #query<R extends pg.QueryResultRow>(what: string, sql: string, args: readonly Bind[] = []): Promise<pg.QueryResult<R>> {
    if (this.#closed) throw this.#closedError();
    try {
      return await this.#pool.query<R>(sql, args as unknown[]);
    } catch (err) {
      throw this.#fail(what, err);
    }
  }

  /** Runs `fn` in a transaction on one pooled connection. */
  async #tx<T>(what: string, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    if (this.#closed) throw this.#closedError();
    let c: pg.PoolClient;
    try {
      c = await this.#pool.connect();
    } catch (err) {
      throw this.#fail(what, err);
    }
    let broken = false;
    // The pool listens for errors on idle connections only: one dying while checked out (the
    // server restarting between two statements of the transaction) must not crash the process.
    const lost = (): void => {
      broken = true;
    };
    c.on('error', lost);
    try {
      await c.query('BEGIN');
      const out = await fn(c);
      await c.query('COMMIT');
      return out;
    } catch (err) {
      await c.query('ROLLBACK').catch(() => {
        broken = true;
      });
      throw this.#fail(what, err);
    } finally {
      c.removeListener('error', lost);
      c.release(broken);
    }
  }

  async #insert(what: string, kind: string, id: string, sql: string, args: readonly Bind[]): Promise<void> {
    try {
      await this.#query(what, sql, args);
    } catch (err) {
      if (pgCode(err) === UNIQUE_VIOLATION) throw duplicateId(kind, id);
      throw err;
    }
  }

  #toRequests(rows: readonly RequestRowWithDecisions[]): ApprovalRequest[] {
    return rows.map((r) => toRequest(r, JSON.parse(r.decisions) as ApprovalDecision[]));
  }

  /* Tokens --------------------------------------------------------------------------------- */

  async putToken(t: TokenRecord): Promise<void> {
    const values = tokenValues(t);
    await this.#insert('putToken', 'token', t.id, `INSERT INTO ${this.#s}.tokens (${cols(TOKEN_COLUMNS)}) VALUES (${params(values.length)})`, values);
  }

  async getToken(id: string): Promise<TokenRecord | null> {
    const r = await this.#query<TokenRow>('getToken', `SELECT * FROM ${this.#s}.tokens WHERE id = $1`, [id]);
    return r.rows[0] ? toToken(r.rows[0]) : null;
  }

  async listTokens(o: { identity?: string; all?: boolean } = {}): Promise<TokenRecord[]> {
    const where: string[] = [];
    const args: Bind[] = [];
    if (o.identity !== undefined) (args.push(o.identity), where.push(`identity = $${args.length}`));
    if (!o.all) (args.push(new Date().toISOString()), where.push(`revoked_at IS NULL AND expires_at > $${args.length}`));
    const r = await this.#query<TokenRow>(
      'listTokens',
      `SELECT * FROM ${this.#s}.tokens ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, id DESC`,
      args,
    );
    return r.rows.map(toToken);
  }

  async revokeToken(id: string, at: string): Promise<boolean> {
    const r = await this.#query('revokeToken', `UPDATE ${this.#s}.tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL`, [
      isoTime(at, 'revocation'),
      id,
    ]);
    return r.rowCount === 1;
  }

  /* Approval requests ---------------------------------------------------------------------- */

  async createRequest(r: NewApprovalRequest): Promise<ApprovalRequest> {
    const values = requestValues(r);
    await this.#insert(
      'createRequest',
      'approval request',
      r.id,
      `INSERT INTO ${this.#s}.approval_requests (${cols(REQUEST_INSERT_COLUMNS)}, status, version) VALUES (${params(values.length)}, 'pending', 1)`,
      values,
    );
    return newRequest(r);
  }

  async getRequest(id: string): Promise<ApprovalRequest | null> {
    const r = await this.#query<RequestRowWithDecisions>(
      'getRequest',
      `SELECT ${this.#requestSelect} FROM ${this.#s}.approval_requests r WHERE r.id = $1`,
      [id],
    );
    return this.#toRequests(r.rows)[0] ?? null;
  }

  async listRequests(o: { status?: ApprovalStatus; identity?: string; limit?: number } = {}): Promise<ApprovalRequest[]> {
    const where: string[] = [];
    const args: Bind[] = [];
    if (o.status !== undefined) (args.push(assertStatus(o.status, 'filter')), where.push(`r.status = $${args.length}`));
    if (o.identity !== undefined) (args.push(o.identity), where.push(`r.identity = $${args.length}`));
    const limit = checkLimit(o.limit);
    const r = await this.#query<RequestRowWithDecisions>(
      'listRequests',
      `SELECT ${this.#requestSelect} FROM ${this.#s}.approval_requests r ${where.length ? `WHERE ${where.join(' AND ')}` : ''}` +
        ` ORDER BY r.created_at DESC, r.id DESC${limit === undefined ? '' : ` LIMIT ${limit}`}`,
      args,
    );
    return this.#toRequests(r.rows);
  }

  async addDecision(id: string, decision: ApprovalDecision, next: (r: ApprovalRequest) => ApprovalStatus): Promise<ApprovalRequest> {
    const d = checkDecision(decision);
    return this.#tx('addDecision', async (c) => {
      // Lock first, then read the decisions in a new statement (a new snapshot: it sees the
      // decision of whoever held the lock before us).
      await c.query(`SELECT 1 FROM ${this.#s}.approval_requests WHERE id = $1 FOR UPDATE`, [id]);
      const cur = await c.query<RequestRowWithDecisions>(`SELECT ${this.#requestSelect} FROM ${this.#s}.approval_requests r WHERE r.id = $1`, [id]);
      let after: ApprovalRequest;
      try {
        after = applyDecision(id, this.#toRequests(cur.rows)[0] ?? null, d, next);
      } catch (err) {
        throw new Passthrough(err);
      }
      try {
        await c.query(
          `INSERT INTO ${this.#s}.approval_decisions (request_id, approver, decision, reason, at, ord) VALUES ($1, $2, $3, $4, $5, $6)`,
          [id, d.approver, d.decision, d.reason, d.at, after.decisions.length - 1],
        );
      } catch (err) {
        if (pgCode(err) === UNIQUE_VIOLATION) throw alreadyDecided(d.approver, id);
        throw err;
      }
      await c.query(`UPDATE ${this.#s}.approval_requests SET status = $2, decided_at = $3, version = version + 1 WHERE id = $1`, [
        id,
        after.status,
        after.decidedAt ?? null,
      ]);
      // Delivered at commit.
      await c.query('SELECT pg_notify($1, $2)', [REQUEST_CHANNEL, id]);
      return after;
    });
  }

  async setStatus(id: string, from: ApprovalStatus, to: ApprovalStatus, at: string): Promise<boolean> {
    assertStatus(from, 'from');
    assertStatus(to, 'to');
    // One statement: a racing caller blocks on the row lock, then re-checks `status = from` and loses.
    const r = await this.#query(
      'setStatus',
      `WITH u AS (
         UPDATE ${this.#s}.approval_requests SET status = $1, decided_at = COALESCE(decided_at, $2), version = version + 1
          WHERE id = $3 AND status = $4 RETURNING id)
       SELECT pg_notify($5, u.id) FROM u`,
      [to, isoTime(at, 'status change'), id, from, REQUEST_CHANNEL],
    );
    return r.rowCount === 1;
  }

  async findApproved(identity: string, fingerprint: string, now: string): Promise<ApprovalRequest | null> {
    const r = await this.#query<RequestRowWithDecisions>(
      'findApproved',
      `SELECT ${this.#requestSelect} FROM ${this.#s}.approval_requests r
        WHERE r.identity = $1 AND r.fingerprint = $2 AND r.status = 'approved' AND r.mode = 'reject' AND r.expires_at > $3
        ORDER BY r.created_at DESC, r.id DESC LIMIT 1`,
      [identity, fingerprint, isoTime(now, 'now')],
    );
    return this.#toRequests(r.rows)[0] ?? null;
  }

  /* Grants --------------------------------------------------------------------------------- */

  async putGrant(g: GrantRecord): Promise<void> {
    const values = grantValues(g);
    await this.#insert('putGrant', 'grant', g.id, `INSERT INTO ${this.#s}.grants (${cols(GRANT_COLUMNS)}) VALUES (${params(values.length)})`, values);
  }

  async activeGrants(identity: string, now: string): Promise<GrantRecord[]> {
    const r = await this.#query<GrantRow>(
      'activeGrants',
      `SELECT * FROM ${this.#s}.grants WHERE identity = $1 AND revoked_at IS NULL AND expires_at > $2 ORDER BY created_at DESC, id DESC`,
      [identity, isoTime(now, 'now')],
    );
    return r.rows.map(toGrant);
  }

  async listGrants(o: { all?: boolean } = {}): Promise<GrantRecord[]> {
    const r = o.all
      ? await this.#query<GrantRow>('listGrants', `SELECT * FROM ${this.#s}.grants ORDER BY created_at DESC, id DESC`)
      : await this.#query<GrantRow>(
          'listGrants',
          `SELECT * FROM ${this.#s}.grants WHERE revoked_at IS NULL AND expires_at > $1 ORDER BY created_at DESC, id DESC`,
          [new Date().toISOString()],
        );
    return r.rows.map(toGrant);
  }

  async revokeGrant(id: string, at: string): Promise<boolean> {
    const r = await this.#query('revokeGrant', `UPDATE ${this.#s}.grants SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL`, [
      isoTime(at, 'revocation'),
      id,
    ]);
    return r.rowCount === 1;
  }

  /* Limit counters ------------------------------------------------------------------------- */

  async syncLimitCounts(adds: readonly LimitCount[], since: Readonly<Record<LimitCountKind, number>>, pruneBefore?: number): Promise<LimitCount[]> {
    const merged = mergeLimitCounts(adds);
    const prune = pruneBefore === undefined ? undefined : checkWindowStart(pruneBefore, 'pruneBefore');
    const sinceArgs = [checkWindowStart(since.statements, 'since'), checkWindowStart(since.rows, 'since')];
    const read = `SELECT kind, limit_name, identity, window_start::text AS window_start, count::text AS count FROM ${this.#s}.limit_counters
       WHERE (kind = 'statements' AND window_start >= $1) OR (kind = 'rows' AND window_start >= $2)`;
    if (merged.length === 0 && prune === undefined) {
      return (await this.#query<LimitCountRow>('syncLimitCounts', read, sinceArgs)).rows.map(toLimitCount);
    }
    return this.#tx('syncLimitCounts', async (c) => {
      if (merged.length > 0) {
        // One statement for every add, in key order (see mergeLimitCounts).
        await c.query(
          `INSERT INTO ${this.#s}.limit_counters AS t (kind, limit_name, identity, window_start, count)
           SELECT u.kind, u.limit_name, u.identity, u.window_start, u.count
             FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[]) WITH ORDINALITY AS u(kind, limit_name, identity, window_start, count, ord)
            ORDER BY u.ord
           ON CONFLICT (kind, limit_name, identity, window_start) DO UPDATE SET count = t.count + EXCLUDED.count`,
          [
            merged.map((a) => a.kind),
            merged.map((a) => a.limit),
            merged.map((a) => a.identity),
            merged.map((a) => String(a.window)),
            merged.map((a) => String(a.count)),
          ],
        );
      }
      if (prune !== undefined) await c.query(`DELETE FROM ${this.#s}.limit_counters WHERE window_start < $1`, [prune]);
      return (await c.query<LimitCountRow>(read, sinceArgs)).rows.map(toLimitCount);
    });
  }

  /* Watching ------------------------------------------------------------------------------- */

  /* Suspensions ---------------------------------------------------------------------------- */

  async putSuspension(x: SuspensionRecord): Promise<SuspensionRecord> {
    await this.#tx('putSuspension', async (c) => {
      await c.query(
        `INSERT INTO ${this.#s}.suspensions (identity, reason, suspended_by, suspended_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (identity) DO UPDATE SET reason = EXCLUDED.reason, suspended_by = EXCLUDED.suspended_by, suspended_at = EXCLUDED.suspended_at`,
        [x.identity, x.reason, x.suspendedBy, isoTime(x.suspendedAt, 'suspension')],
      );
      await c.query('SELECT pg_notify($1, $2)', [SUSPENSION_CHANNEL, x.identity]);
    });
    return x;
  }

  async deleteSuspension(identity: string): Promise<SuspensionRecord | null> {
    return this.#tx('deleteSuspension', async (c) => {
      const r = await c.query<SuspensionRow>(`DELETE FROM ${this.#s}.suspensions WHERE identity = $1 RETURNING *`, [identity]);
      if (!r.rows[0]) return null;
      await c.query('SELECT pg_notify($1, $2)', [SUSPENSION_CHANNEL, identity]);
      return toSuspension(r.rows[0]);
    });
  }

  async listSuspensions(): Promise<SuspensionRecord[]> {
    // Called by each instance's poll: also reopens a lost LISTEN connection.
    if (this.#suspensionWatchers.size > 0) this.#ensureListener();
    const r = await this.#query<SuspensionRow>('listSuspensions', `SELECT * FROM ${this.#s}.suspensions ORDER BY identity`);
    return r.rows.map(toSuspension);
  }

  watchSuspensions(onChange: () => void): () => void {
    if (this.#closed) throw this.#closedError();
    const w = (): void => onChange();
    this.#suspensionWatchers.add(w);
    this.#ensureListener();
    return () => this.#suspensionWatchers.delete(w);
  }

  async #versionsOf(ids: readonly string[]): Promise<Map<string, number>> {
    const r = await this.#query<{ id: string; version: number }>(
      'watch',
      `SELECT id, version FROM ${this.#s}.approval_requests WHERE id = ANY($1::text[])`,
      [ids],
    );
    return new Map(r.rows.map((x) => [x.id, Number(x.version)]));
  }

  /** Opens the LISTEN connection (resolves once it listens). */
  #listen(): Promise<void> {
    if (this.#listening) return this.#listening;
    const c = new pg.Client({ connectionString: this.#url });
    const drop = (): void => {
      if (this.#listener === c) this.#listener = null;
      c.end().catch(() => undefined);
    };
    c.on('error', drop);
    c.on('end', drop);
    c.on('notification', (m) => {
      if (m.channel === REQUEST_CHANNEL && m.payload) this.#notified(m.payload);
      else if (m.channel === SUSPENSION_CHANNEL) for (const w of [...this.#suspensionWatchers]) w();
    });
    this.#listening = (async () => {
      try {
        await c.connect();
        await c.query(`LISTEN ${REQUEST_CHANNEL}; LISTEN ${SUSPENSION_CHANNEL}`);
        if (this.#closed) {
          await c.end().catch(() => undefined);
          return;
        }
        this.#listener = c;
      } catch (err) {
        c.end().catch(() => undefined);
        throw this.#conn.error('listen failed', err);
      } finally {
        this.#listening = null;
      }
    })();
    return this.#listening;
  }

  /** Reopens a lost listener (from the poll loop), in the background. */
  #ensureListener(): void {
    if (!this.#closed && !this.#listener && !this.#listening) this.#listen().catch(() => undefined);
  }

  /**
   * A change was announced: tell the watchers at once (even before their first
   * look at the version completed: the change may have come after watch()), then
   * move their version forward so the poll does not report it again.
   */
  #notified(id: string): void {
    if (this.#closed || !this.#watchers.isWatched(id)) return;
    this.#watchers.fire(id);
    this.#versionsOf([id]).then(
      (v) => this.#watchers.apply(v, [id], false),
      () => undefined,
    );
  }

  watch(requestId: string, onChange: () => void): () => void {
    if (this.#closed) throw this.#closedError();
    const unsubscribe = this.#watchers.add(requestId, onChange);
    // The version now (the poll compares against it); a change before it lands is told by NOTIFY.
    this.#versionsOf([requestId]).then(
      (v) => this.#watchers.apply(v, [requestId]),
      () => undefined,
    );
    this.#ensureListener();
    return unsubscribe;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#watchers.close();
    this.#suspensionWatchers.clear();
    await this.#listening?.catch(() => undefined);
    const l = this.#listener;
    this.#listener = null;
    await l?.end().catch(() => undefined);
    await this.#pool.end().catch(() => undefined);
  }
}
