/**
 * What the sqlite and postgres state stores share: the row layout (snake_case
 * columns, JSON text for arrays / objects), record <-> row mapping, time
 * normalization, the error messages of the approval rules, and the watcher
 * that turns "versions seen by a poll / a notification" into `onChange` calls.
 *
 * Times are stored as `Date.prototype.toISOString()` text (normalized on
 * write), so they compare and sort correctly as plain strings.
 */
import type {
  ApprovalDecision,
  ApprovalRequest,
  ApprovalStatus,
  GrantRecord,
  LimitCount,
  LimitCountKind,
  NewApprovalRequest,
  SuspensionRecord,
  TokenRecord,
} from './types.js';

export const STATE_SCHEMA_VERSION = 1;

/** The NOTIFY channel (postgres) on which request changes are announced (payload: the request id). */
export const REQUEST_CHANNEL = 'warden_state_requests';
/** NOTIFY channel announcing a change of the suspensions (postgres store). */
export const SUSPENSION_CHANNEL = 'warden_state_suspensions';

const STATUSES: ReadonlySet<string> = new Set<ApprovalStatus>(['pending', 'approved', 'denied', 'expired', 'cancelled', 'used']);

/** An error of the store's own rules (not found, not pending, already decided, ...): its message is meant for users. */
export class StateStoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StateStoreError';
  }
}

export function assertStatus(s: string, what: string): ApprovalStatus {
  if (!STATUSES.has(s)) throw new StateStoreError(`invalid ${what} status ${JSON.stringify(s)}`);
  return s as ApprovalStatus;
}

export function requestNotFound(id: string): StateStoreError {
  return new StateStoreError(`approval request ${id} not found`);
}

export function notPending(id: string, status: string): StateStoreError {
  return new StateStoreError(`approval request ${id} is ${status}, not pending`);
}

export function alreadyDecided(approver: string, id: string): StateStoreError {
  return new StateStoreError(`${approver} already decided request ${id}`);
}

export function duplicateId(kind: string, id: string): StateStoreError {
  return new StateStoreError(`${kind} ${id} already exists`);
}

/** `s` as `toISOString()` text; throws on an unparsable time. */
export function isoTime(s: string, what: string): string {
  const d = new Date(s);
  if (typeof s !== 'string' || Number.isNaN(d.getTime())) throw new StateStoreError(`invalid ${what} time ${JSON.stringify(s)}`);
  return d.toISOString();
}

function optIso(s: string | undefined, what: string): string | null {
  return s === undefined ? null : isoTime(s, what);
}

/** A positive limit, or undefined (no limit). */
export function checkLimit(limit: number | undefined): number | undefined {
  if (limit === undefined) return undefined;
  if (!Number.isSafeInteger(limit) || limit < 1) throw new StateStoreError(`invalid limit ${String(limit)} (expected a positive integer)`);
  return limit;
}

/** Drops the keys whose value is undefined (records come back without absent optional fields). */
function compact<T extends object>(o: T): T {
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined) delete o[k];
  return o;
}

const opt = (v: string | null): string | undefined => v ?? undefined;

function parseJson<T>(text: string | null, what: string): T {
  if (text === null) throw new StateStoreError(`state store: ${what} is missing`);
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new StateStoreError(`state store: ${what} is not valid JSON`);
  }
}

/* ------------------------------------------------------------------------------------------ */
/* Tokens                                                                                      */
/* ------------------------------------------------------------------------------------------ */

export const TOKEN_COLUMNS = ['id', 'identity', 'on_behalf_of', 'scope', 'verifier', 'created_at', 'expires_at', 'revoked_at', 'issued_by'] as const;

export interface TokenRow {
  id: string;
  identity: string;
  on_behalf_of: string | null;
  scope: string | null;
  verifier: string;
  created_at: string;
  expires_at: string;
  revoked_at: string | null;
  issued_by: string | null;
}

/** The values of TOKEN_COLUMNS, in order. */
export function tokenValues(t: TokenRecord): (string | null)[] {
  return [
    t.id,
    t.identity,
    t.onBehalfOf ?? null,
    t.scope ?? null,
    t.verifier,
    isoTime(t.createdAt, 'token createdAt'),
    isoTime(t.expiresAt, 'token expiresAt'),
    optIso(t.revokedAt, 'token revokedAt'),
    t.issuedBy ?? null,
  ];
}

export function toToken(r: TokenRow): TokenRecord {
  return compact({
    id: r.id,
    identity: r.identity,
    onBehalfOf: opt(r.on_behalf_of),
    scope: opt(r.scope),
    verifier: r.verifier,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    revokedAt: opt(r.revoked_at),
    issuedBy: opt(r.issued_by),
  });
}

/* ------------------------------------------------------------------------------------------ */
/* Approval requests                                                                           */
/* ------------------------------------------------------------------------------------------ */

/** Columns written by createRequest (status, decided_at and version are set by the store). */
export const REQUEST_INSERT_COLUMNS = [
  'id',
  'identity',
  'on_behalf_of',
  'database',
  'environment',
  'sql',
  'fingerprint',
  'params',
  'rules',
  'tables',
  'classes',
  'intent',
  'instance',
  'session',
  'mode',
  'created_at',
  'expires_at',
  'grant_minutes',
] as const;

export const REQUEST_COLUMNS = [...REQUEST_INSERT_COLUMNS, 'status', 'decided_at', 'version'] as const;

export interface RequestRow {
  id: string;
  identity: string;
  on_behalf_of: string | null;
  database: string;
  environment: string | null;
  sql: string;
  fingerprint: string;
  params: string | null;
  rules: string;
  tables: string;
  classes: string;
  intent: string;
  instance: string;
  session: string | null;
  mode: string;
  created_at: string;
  expires_at: string;
  grant_minutes: number | null;
  status: string;
  decided_at: string | null;
  /** Incremented by every change (decision, status): what watchers compare. */
  version: number | string;
}

/** The values of REQUEST_INSERT_COLUMNS, in order. */
export function requestValues(r: NewApprovalRequest): (string | number | null)[] {
  if (r.mode !== 'hold' && r.mode !== 'reject') throw new StateStoreError(`invalid request mode ${JSON.stringify(r.mode)}`);
  if (r.grantMinutes !== undefined && (!Number.isSafeInteger(r.grantMinutes) || r.grantMinutes < 1)) {
    throw new StateStoreError(`invalid grantMinutes ${String(r.grantMinutes)} (expected a positive integer)`);
  }
  return [
    r.id,
    r.identity,
    r.onBehalfOf ?? null,
    r.database,
    r.environment ?? null,
    r.sql,
    r.fingerprint,
    r.params === undefined ? null : JSON.stringify(r.params),
    JSON.stringify(r.rules),
    JSON.stringify(r.tables),
    JSON.stringify(r.classes),
    JSON.stringify(r.intent),
    r.instance,
    r.session ?? null,
    r.mode,
    isoTime(r.createdAt, 'request createdAt'),
    isoTime(r.expiresAt, 'request expiresAt'),
    r.grantMinutes ?? null,
  ];
}

export function toRequest(r: RequestRow, decisions: readonly ApprovalDecision[]): ApprovalRequest {
  const what = (col: string): string => `request ${r.id} ${col}`;
  return compact({
    id: r.id,
    status: assertStatus(r.status, what('stored')),
    identity: r.identity,
    onBehalfOf: opt(r.on_behalf_of),
    database: r.database,
    environment: opt(r.environment),
    sql: r.sql,
    fingerprint: r.fingerprint,
    params: r.params === null ? undefined : parseJson<(string | null)[]>(r.params, what('params')),
    rules: parseJson<ApprovalRequest['rules']>(r.rules, what('rules')),
    tables: parseJson<string[]>(r.tables, what('tables')),
    classes: parseJson<string[]>(r.classes, what('classes')),
    intent: parseJson<Record<string, string>>(r.intent, what('intent')),
    instance: r.instance,
    session: opt(r.session),
    mode: r.mode === 'hold' ? 'hold' : 'reject',
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    decidedAt: opt(r.decided_at),
    decisions,
    grantMinutes: r.grant_minutes === null ? undefined : Number(r.grant_minutes),
  });
}

/** A request just created: pending, no decisions. */
export function newRequest(r: NewApprovalRequest): ApprovalRequest {
  const v = requestValues(r);
  return compact({ ...r, createdAt: v[15] as string, expiresAt: v[16] as string, status: 'pending' as const, decisions: [] });
}

/* ------------------------------------------------------------------------------------------ */
/* Decisions                                                                                   */
/* ------------------------------------------------------------------------------------------ */

export interface DecisionRow {
  request_id: string;
  approver: string;
  decision: string;
  reason: string;
  at: string;
}

export function toDecision(r: DecisionRow): ApprovalDecision {
  return { approver: r.approver, decision: r.decision === 'deny' ? 'deny' : 'approve', reason: r.reason, at: r.at };
}

export function checkDecision(d: ApprovalDecision): ApprovalDecision {
  if (d.decision !== 'approve' && d.decision !== 'deny') throw new StateStoreError(`invalid decision ${JSON.stringify(d.decision)} (expected approve or deny)`);
  if (typeof d.approver !== 'string' || d.approver === '') throw new StateStoreError('a decision needs an approver');
  return { approver: d.approver, decision: d.decision, reason: d.reason ?? '', at: isoTime(d.at, 'decision') };
}

/**
 * The rules of addDecision, on the request as locked by the caller's transaction:
 * checks it can take `d`, and returns the request with `d` appended and the
 * status `next` chose (decidedAt set when it leaves pending).
 */
export function applyDecision(
  id: string,
  current: ApprovalRequest | null,
  d: ApprovalDecision,
  next: (r: ApprovalRequest) => ApprovalStatus,
): ApprovalRequest {
  if (!current) throw requestNotFound(id);
  if (current.status !== 'pending') throw notPending(id, current.status);
  if (current.decisions.some((x) => x.approver === d.approver)) throw alreadyDecided(d.approver, id);
  const withDecision: ApprovalRequest = { ...current, decisions: [...current.decisions, d] };
  const status = assertStatus(next(withDecision), 'next');
  return status === 'pending' ? withDecision : { ...withDecision, status, decidedAt: d.at };
}

/* ------------------------------------------------------------------------------------------ */
/* Grants                                                                                      */
/* ------------------------------------------------------------------------------------------ */

export const GRANT_COLUMNS = ['id', 'identity', 'rule', 'database', 'request_id', 'created_at', 'expires_at', 'revoked_at'] as const;

export interface GrantRow {
  id: string;
  identity: string;
  rule: string;
  database: string | null;
  request_id: string;
  created_at: string;
  expires_at: string;
  revoked_at: string | null;
}

export function grantValues(g: GrantRecord): (string | null)[] {
  return [
    g.id,
    g.identity,
    g.rule,
    g.database ?? null,
    g.requestId,
    isoTime(g.createdAt, 'grant createdAt'),
    isoTime(g.expiresAt, 'grant expiresAt'),
    optIso(g.revokedAt, 'grant revokedAt'),
  ];
}

export function toGrant(r: GrantRow): GrantRecord {
  return compact({
    id: r.id,
    identity: r.identity,
    rule: r.rule,
    database: opt(r.database),
    requestId: r.request_id,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    revokedAt: opt(r.revoked_at),
  });
}

/* ------------------------------------------------------------------------------------------ */
/* Watching requests                                                                           */
/* ------------------------------------------------------------------------------------------ */

interface Watched {
  /** Last version seen; undefined until the first look (postgres: asynchronous). */
  version: number | undefined;
  readonly callbacks: Set<() => void>;
}

/**
 * The watched requests of one store and a poll loop over them: `poll` returns
 * the current version of each id it knows (absent ids count as version 0);
 * every watcher of an id whose version went up is called. The timer runs
 * only while something is watched, and never keeps the process alive.
 */
export class RequestWatchers {
  readonly #entries = new Map<string, Watched>();
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(
    private readonly intervalMs: number,
    private readonly poll: (ids: string[]) => Map<string, number> | Promise<Map<string, number>>,
  ) {}

  /** Registers `onChange` for `id`; `version`: the version now, when known. Returns the unsubscribe. */
  add(id: string, onChange: () => void, version?: number): () => void {
    if (this.#closed) throw new StateStoreError('state store is closed');
    let e = this.#entries.get(id);
    if (!e) {
      e = { version, callbacks: new Set() };
      this.#entries.set(id, e);
    }
    // Each registration is its own entry in the set, even for the same function.
    const cb = (): void => onChange();
    e.callbacks.add(cb);
    this.#schedule();
    return () => {
      const cur = this.#entries.get(id);
      if (!cur) return;
      cur.callbacks.delete(cb);
      if (cur.callbacks.size === 0) this.#entries.delete(id);
    };
  }

  isWatched(id: string): boolean {
    return this.#entries.has(id);
  }

  ids(): string[] {
    return [...this.#entries.keys()];
  }

  /**
   * Records versions seen. `fire`: call the watchers of the ids whose version
   * went up; otherwise only move the versions forward (after a notification
   * already told them).
   */
  apply(versions: ReadonlyMap<string, number>, ids: readonly string[], fire = true): void {
    for (const id of ids) {
      const e = this.#entries.get(id);
      if (!e) continue;
      const v = versions.get(id) ?? 0;
      if (e.version === undefined) e.version = v;
      else if (v > e.version) {
        e.version = v;
        if (fire) this.fire(id);
      }
    }
  }

  /** Calls the watchers of `id` (a watcher that throws does not stop the others). */
  fire(id: string): void {
    const e = this.#entries.get(id);
    if (!e) return;
    for (const cb of [...e.callbacks]) {
      try {
        cb();
      } catch {
        // A watcher's failure is its own business.
      }
    }
  }

  /** Polls now (tests, or after a reconnect). */
  async pollNow(): Promise<void> {
    const ids = this.ids();
    if (ids.length === 0) return;
    let versions: Map<string, number>;
    try {
      versions = await this.poll(ids);
    } catch {
      return; // transient (busy database, lost connection): the next tick retries
    }
    if (!this.#closed) this.apply(versions, ids);
  }

  #schedule(): void {
    if (this.#timer || this.#closed || this.#entries.size === 0) return;
    this.#timer = setTimeout(() => {
      void this.pollNow().finally(() => {
        this.#timer = undefined;
        this.#schedule();
      });
    }, this.intervalMs);
    this.#timer.unref();
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#entries.clear();
  }
}

/** A row of the suspensions table (both stores). */
export interface SuspensionRow {
  identity: string;
  reason: string;
  suspended_by: string;
  suspended_at: string;
}

export function toSuspension(r: SuspensionRow): SuspensionRecord {
  return { identity: r.identity, reason: r.reason, suspendedBy: r.suspended_by, suspendedAt: r.suspended_at };
}

/* ------------------------------------------------------------------------------------------ */
/* Limit counters                                                                              */
/* ------------------------------------------------------------------------------------------ */

/** A row of the limit_counters table (both stores; postgres returns bigints as text). */
export interface LimitCountRow {
  kind: string;
  limit_name: string;
  identity: string;
  window_start: number | string;
  count: number | string;
}

export function toLimitCount(r: LimitCountRow): LimitCount {
  return { kind: r.kind === 'rows' ? 'rows' : 'statements', limit: r.limit_name, identity: r.identity, window: Number(r.window_start), count: Number(r.count) };
}

const KINDS: ReadonlySet<string> = new Set<LimitCountKind>(['statements', 'rows']);

/**
 * The adds checked, merged by key (one upsert may not touch a row twice) and sorted by key
 * (two instances' transactions lock their rows in the same order: no deadlock between them).
 */
export function mergeLimitCounts(adds: readonly LimitCount[]): LimitCount[] {
  const byKey = new Map<string, LimitCount>();
  for (const a of adds) {
    if (!KINDS.has(a.kind)) throw new StateStoreError(`invalid limit count kind ${JSON.stringify(a.kind)}`);
    if (!Number.isSafeInteger(a.window) || !Number.isSafeInteger(a.count) || a.count < 0) {
      throw new StateStoreError(`invalid limit count ${JSON.stringify({ window: a.window, count: a.count })}`);
    }
    if (a.count === 0) continue;
    const key = `${a.kind}\u0000${a.limit}\u0000${a.identity}\u0000${a.window}`;
    const had = byKey.get(key);
    byKey.set(key, had ? { ...had, count: had.count + a.count } : { kind: a.kind, limit: a.limit, identity: a.identity, window: a.window, count: a.count });
  }
  return [...byKey.entries()].sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0)).map((e) => e[1]);
}

export function checkWindowStart(ms: number, what: string): number {
  if (!Number.isSafeInteger(ms)) throw new StateStoreError(`invalid ${what} ${String(ms)} (expected ms since the epoch)`);
  return ms;
}
