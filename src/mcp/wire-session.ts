/**
 * An MCP session's way to the database: a PostgreSQL client of Warden's own
 * listener, logged in as the caller's identity with the caller's token (or JWT)
 * as the password. Every statement an agent sends therefore goes through the
 * very code the wire protocol goes through — analysis, policy, limits, masking,
 * approvals, audit — and nothing here decides anything: this module only carries
 * statements and turns replies into JSON.
 *
 * One connection per database per MCP session, reused; statements on one
 * connection run one after the other.
 *
 * Approvals: when Warden holds a statement for approval it sends a NOTICE at once
 * (request id, approvers). The call then returns a `pending` outcome at once and
 * the held statement keeps waiting on its own connection in the background (the
 * session opens a fresh connection for its next statements). When it is approved
 * Warden runs it — once, on that connection — and its result is kept until the
 * agent asks for it (`approval_status`, or the identical `query` again). It is
 * never sent a second time by this module. In `approvals.mode: reject` Warden
 * refuses at once with the request id; the agent repeats the identical statement
 * once approved, and Warden runs it once.
 */
import pg from 'pg';
import { analyzeSql, initSqlParser } from '../sql/index.js';
import type { NoticeMessage } from 'pg-protocol/dist/messages.js';

/** The JSON of one result set. */
export interface ResultSet {
  command: string;
  rowCount: number | null;
  columns: { name: string; type: string }[];
  rows: (string | null)[][];
  /** True when rows beyond the cap were received and dropped here (Warden's own limits still applied on the wire). */
  truncated: boolean;
}

export interface WireError {
  code: string;
  message: string;
  detail?: string;
  hint?: string;
}

export interface PendingApproval {
  request: string;
  mode: 'hold' | 'reject';
  message: string;
  approvers?: string;
  hint?: string;
}

export type RunOutcome =
  | { kind: 'result'; sets: ResultSet[]; notices: string[] }
  | { kind: 'pending'; pending: PendingApproval }
  | { kind: 'error'; error: WireError };

export interface WireTarget {
  host: string;
  port: number;
  user: string;
  password: string;
  ssl?: pg.ClientConfig['ssl'];
  /** Extra startup parameters (e.g. `options`). */
  options?: string;
}

/** Type names of the usual built-in types; others are read from pg_type once. */
const BUILTIN_TYPES: Record<number, string> = {
  16: 'boolean', 17: 'bytea', 18: '"char"', 19: 'name', 20: 'bigint', 21: 'smallint', 23: 'integer', 25: 'text', 26: 'oid',
  114: 'json', 142: 'xml', 700: 'real', 701: 'double precision', 869: 'inet', 1042: 'character', 1043: 'character varying',
  1082: 'date', 1083: 'time without time zone', 1114: 'timestamp without time zone', 1184: 'timestamp with time zone',
  1186: 'interval', 1700: 'numeric', 2950: 'uuid', 3802: 'jsonb', 1009: 'text[]', 1007: 'integer[]', 1016: 'bigint[]', 705: 'unknown',
};

/** Values exactly as the wire returned them (text format), never parsed into JS types. */
const RAW_TYPES = { getTypeParser: () => (v: string) => v } as unknown as pg.CustomTypesConfig;

/** A statement that may change a session setting; only those are analysed (a false positive, such as UPDATE ... SET, costs a parse). */
const MAY_SET = /\b(?:set|reset|set_config)\b/i;

/** A session-level setting change: its name and, for a constant, its new value (null: reset). */
interface Change {
  name: string;
  value?: string | null;
}

const NO_CHANGES: readonly Change[] = Object.freeze([]);

/**
 * The session-level settings a statement string changes (SET, RESET, set_config(..., false)), by
 * Warden's own analysis; `*` when one cannot be known (a set_config whose name is not a constant).
 */
async function settingsChangedBy(sql: string): Promise<Change[]> {
  if (!MAY_SET.test(sql)) return [];
  await initSqlParser();
  const a = analyzeSql(sql, { searchPath: ['public'], user: 'warden' });
  if (!a.ok) return [];
  // role, session_authorization and warden.* are never changed by a client (session safety refuses it).
  const refused = (n: string): boolean => n === 'role' || n === 'session_authorization' || n.startsWith('warden.');
  return a.statements.flatMap((st) =>
    st.sets
      .filter((c) => !c.local && (c.via === 'set' || c.via === 'reset' || c.via === 'set_config') && !refused(c.name))
      .map((c) => ({ name: c.name, ...(c.value !== undefined ? { value: c.value } : {}) })),
  );
}

/**
 * A custom setting (`myapp.tenant`, with a dot) is carried by the value the statement gave it, not
 * read back: masking answers a read of a custom setting with fake values (it could hold a stashed
 * masked value), for every column of that statement. Built-in settings are read back with
 * current_setting(), which gives their canonical text (a search_path's quoting included).
 */
const isCustom = (name: string): boolean => name.includes('.') || name === '*';

/** A text literal (standard_conforming_strings is on since PostgreSQL 9.1; E'' is not needed). */
const literal = (s: string): string => `'${s.replace(/'/g, "''")}'`;

/** What a connection opened after a hold starts from: the settings to set again, or why they are not known. */
type Carry = { settings: [string, string][] } | { unknown: string };

const HELD = /statement held for approval: request (apr_[A-Za-z0-9_]+)/;
const REJECTED = /request (apr_[A-Za-z0-9_]+) was created/;

export function wireError(err: unknown): WireError {
  const e = err as Partial<pg.DatabaseError> & { message?: string };
  if (typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code)) {
    return { code: e.code, message: e.message ?? 'error', ...(e.detail ? { detail: e.detail } : {}), ...(e.hint ? { hint: e.hint } : {}) };
  }
  // Not a PostgreSQL error (connection refused, closed...): the message only, never a stack.
  return { code: '08006', message: `connection to Warden failed: ${e.message ?? String(err)}` };
}

interface Conn {
  client: pg.Client;
  ready: Promise<void>;
  /** Statements on this connection run one after the other. */
  tail: Promise<unknown>;
  dead: boolean;
  /** Transaction status of the latest ReadyForQuery: I (idle), T (in a transaction), E (failed transaction). */
  tx: string;
  /** A statement of an open transaction held for approval on this connection: the session's next calls are refused until it ends. */
  heldInTx?: string;
  /** Called with each NOTICE while a statement runs. */
  onNotice?: (n: NoticeMessage) => void;
  /**
   * The session's settings (`SET`, `set_config`) as of its latest idle moment after a statement
   * that may have changed one: what a connection opened after a hold sets again.
   */
  settings: [string, string][];
  /** The built-in settings the session's statements changed (names, from Warden's own analysis of them). */
  names: Set<string>;
  /** Custom settings the session set, with the value given (see isCustom); `pendingCustom`: set in the open transaction. */
  custom: Map<string, string>;
  pendingCustom: Map<string, string | null>;
  /** Why a custom setting's value is not known (a non-constant value or name). */
  customUnknown?: string;
  /** A statement that changed a setting ran since `settings` was read. */
  dirty: boolean;
  /** Why `settings` could not be read (then they cannot be carried over). */
  settingsUnknown?: string;
  /**
   * The calls waiting behind a statement on this connection; woken when a statement is held, so
   * that they stop waiting. (A set, not a promise raced by every call: a race adds a reaction to
   * a promise that may never settle, one per call, for the whole session.)
   */
  waiters: Set<() => void>;
  /** Calls that took this connection's tail and have not settled it yet. */
  queued: number;
  /** Logged in (and its settings set again): `ready` has resolved. */
  connected: boolean;
}

interface Held {
  request: string;
  key: string;
  pending: PendingApproval;
  /** Set when the held statement finished (ran, or was refused). */
  outcome?: RunOutcome;
  done: Promise<RunOutcome>;
}

function heldInTxError(database: string, request: string): RunOutcome {
  return {
    kind: 'error',
    error: {
      code: '55000',
      message: `a statement of your open transaction on ${database} is waiting for approval request ${request}: the transaction goes on once it is decided (call approval_status)`,
    },
  };
}

/** Wakes the calls waiting behind a statement on `c` (it was held: they must not wait behind it). */
function wakeWaiters(c: Conn): void {
  for (const wake of c.waiters) wake();
  c.waiters.clear();
}

export class WireSession {
  private readonly conns = new Map<string, Conn>();
  private readonly held = new Map<string, Held>();
  private readonly types = new Map<number, string>();
  private closed = false;
  /** Connections of held statements, ended with the session (Warden then withdraws their requests). */
  private readonly waiting = new Set<pg.Client>();
  /** Settings the next connection to a database sets again (its previous one went to a held statement). */
  private readonly carry = new Map<string, Carry>();
  /** Held statements whose result was handed out (approval_status then says `used`). */
  private readonly handed = new Set<string>();

  constructor(private readonly target: WireTarget) {}

  private conn(database: string): Conn {
    const existing = this.conns.get(database);
    if (existing && !existing.dead) return existing;
    const client = new pg.Client({
      host: this.target.host,
      port: this.target.port,
      user: this.target.user,
      password: this.target.password,
      database,
      ssl: this.target.ssl,
      types: RAW_TYPES,
      application_name: 'warden-mcp',
      ...(this.target.options ? { options: this.target.options } : {}),
    });
    const c: Conn = { client, ready: Promise.resolve(), tail: Promise.resolve(), dead: false, tx: 'I', settings: [], names: new Set(), custom: new Map(), pendingCustom: new Map(), dirty: false, waiters: new Set(), queued: 0, connected: false };
    client.on('error', () => (c.dead = true));
    client.on('end', () => (c.dead = true));
    client.on('notice', (n) => c.onNotice?.(n));
    // node-postgres does not expose the transaction status; its connection emits every ReadyForQuery.
    (client as unknown as { connection: { on(e: 'readyForQuery', f: (m: { status: string }) => void): void } }).connection.on('readyForQuery', (m) => (c.tx = m.status));
    const carry = this.carry.get(database);
    c.ready = client.connect().then(
      async () => {
        if (carry) await this.restore(c, database, carry);
        c.connected = true;
      },
      (err: unknown) => {
        c.dead = true;
        throw err;
      },
    );
    this.conns.set(database, c);
    return c;
  }

  /**
   * Sets again, on a connection opened after a hold, the settings the session had (one
   * statement of set_config() calls, through Warden like any other). When they cannot be set
   * (or were not known), the connection is refused with the reason: no statement runs with
   * settings other than those the agent set; the next call starts from the defaults.
   */
  private async restore(c: Conn, database: string, carry: Carry): Promise<void> {
    this.carry.delete(database);
    const fail = (why: string): never => {
      c.dead = true;
      void c.client.end().catch(() => undefined);
      throw Object.assign(new Error(`your session settings could not be carried over to a new connection after the held statement (${why}); nothing ran: run your SET statements again, then this call`), { code: '55000' });
    };
    if ('unknown' in carry) fail(`they could not be read: ${carry.unknown}`);
    const settings = (carry as { settings: [string, string][] }).settings;
    if (settings.length === 0) return;
    const sql = `SELECT ${settings.map(([n, v]) => `pg_catalog.set_config(${literal(n)}, ${literal(v)}, false)`).join(', ')}`;
    // A policy that holds this for approval would leave the call waiting: give the connection up instead.
    let held = false;
    c.onNotice = (n) => {
      if (!HELD.test(n.message ?? '')) return;
      held = true;
      void c.client.end().catch(() => undefined);
    };
    try {
      await c.client.query(sql);
      c.onNotice = undefined;
      c.settings = settings;
      for (const [n, v] of settings) {
        if (isCustom(n)) c.custom.set(n, v);
        else c.names.add(n);
      }
    } catch (err) {
      c.onNotice = undefined;
      fail(held ? 'setting them again is held for approval by your policy' : wireError(err).message);
    }
  }

  /** Notes the settings a statement that ran changed (built-ins: to be read back; custom ones: their value). */
  private record(c: Conn, changes: readonly Change[], o: Extract<RunOutcome, { kind: 'result' }>): void {
    for (const ch of changes) {
      if (!isCustom(ch.name)) {
        c.names.add(ch.name);
        c.dirty = true;
      } else if (ch.name === '*' || ch.value === undefined) {
        c.customUnknown = ch.name === '*' ? 'a set_config() whose setting name is not a constant' : `a value of ${ch.name} that is not a constant`;
      } else {
        c.pendingCustom.set(ch.name, ch.value);
        c.dirty = true;
      }
    }
    if (c.tx !== 'I') return; // a transaction is open: its SETs count once it commits
    if (!o.sets.some((r) => r.command === 'ROLLBACK')) {
      for (const [n, v] of c.pendingCustom) {
        if (v === null) c.custom.delete(n);
        else c.custom.set(n, v);
      }
    }
    c.pendingCustom.clear();
  }

  /**
   * Reads the session's settings after a statement that may have changed one, when no
   * transaction is open. It is a statement of the caller's identity like any other (decided and
   * audited by Warden). Should a policy hold it for approval, the connection is given up (Warden
   * withdraws the request) and the next call is refused with the reason rather than waiting.
   */
  private async snapshot(c: Conn, database: string): Promise<void> {
    if (!c.dirty || c.tx !== 'I' || c.dead) return;
    c.dirty = false;
    const names = [...c.names];
    if (names.length === 0) {
      c.settings = [...c.custom];
      return;
    }
    // current_setting() of each setting changed (masking refuses reading all of pg_settings: custom settings could stash masked values).
    const sql = `SELECT ${names.map((n) => `pg_catalog.current_setting(${literal(n)}, true)`).join(', ')}`;
    c.onNotice = (n) => {
      if (!HELD.test(n.message ?? '')) return;
      c.settingsUnknown = 'reading them with current_setting() is held for approval by your policy';
      c.dead = true;
      if (this.conns.get(database) === c) this.conns.delete(database);
      this.carry.set(database, { unknown: c.settingsUnknown });
      void c.client.end().catch(() => undefined);
    };
    try {
      const r = await c.client.query<(string | null)[]>({ text: sql, rowMode: 'array' } as pg.QueryConfig);
      const row = r.rows[0] ?? [];
      c.settings = [...names.flatMap((n, i) => (row[i] === null || row[i] === undefined ? [] : [[n, row[i]!] as [string, string]])), ...c.custom];
      c.settingsUnknown = undefined;
    } catch (err) {
      c.settingsUnknown ??= wireError(err).message;
    } finally {
      c.onNotice = undefined;
    }
  }

  private async typeName(c: Conn, oid: number): Promise<string> {
    const known = BUILTIN_TYPES[oid] ?? this.types.get(oid);
    if (known) return known;
    try {
      const r = await c.client.query<{ t: string }>({ text: 'SELECT format_type($1::oid, NULL) AS t', values: [String(oid)] });
      const t = r.rows[0]?.t ?? `oid ${oid}`;
      this.types.set(oid, t);
      return t;
    } catch {
      return `oid ${oid}`;
    }
  }

  /** A statement's key for "the identical statement again". */
  static keyOf(database: string, sql: string, params: readonly unknown[]): string {
    return JSON.stringify([database, sql, params]);
  }

  /**
   * Runs `sql` (with `params`: the extended protocol; without: the simple protocol, so a
   * multi-statement string is one query string, as psql would send it) on `database`.
   * `key` identifies the identical statement for approvals already waiting (default:
   * {@link WireSession.keyOf} of the database, the SQL and the params, made only when a statement
   * is or gets held).
   */
  async run(database: string, sql: string, params: readonly (string | number | boolean | null)[] | undefined, cap: number, key?: string): Promise<RunOutcome> {
    const keyNow = (): string => (key ??= WireSession.keyOf(database, sql, params ?? []));
    if (this.closed) return { kind: 'error', error: { code: '08003', message: 'the MCP session is closed' } };
    for (const h of this.held.values()) {
      if (h.key !== keyNow()) continue;
      if (!h.outcome) return { kind: 'pending', pending: h.pending };
      this.handOut(h.request);
      return h.outcome;
    }
    let c: Conn;
    let settle!: () => void;
    for (;;) {
      c = this.conn(database);
      if (c.heldInTx) return heldInTxError(database, c.heldInTx);
      const prev = c.tail;
      const idle = c.queued === 0;
      const conn = c;
      conn.queued++;
      c.tail = new Promise<void>((r) => {
        let done = false;
        settle = () => {
          if (done) return;
          done = true;
          conn.queued--;
          r();
        };
      });
      // No statement before this one on the connection (all settled): nothing to wait for.
      if (idle) break;
      // Wait for the statements before this one — or for one of them to be held for approval,
      // in which case this call must not wait behind it (see the module doc).
      let wake!: () => void;
      const woken = new Promise<void>((r) => (wake = r));
      c.waiters.add(wake);
      prev.then(wake, wake);
      await woken;
      c.waiters.delete(wake);
      if (c.heldInTx) {
        settle();
        return heldInTxError(database, c.heldInTx);
      }
      if (this.conns.get(database) !== c && !c.dead) {
        settle(); // detached for a held statement: use the session's new connection
        continue;
      }
      await prev.catch(() => undefined);
      break;
    }
    try {
      if (!c.connected) await c.ready;
    } catch (err) {
      settle();
      return { kind: 'error', error: wireError(err) };
    }
    const notices: string[] = [];
    const inTx = c.tx !== 'I';
    let onHeld!: (p: PendingApproval) => void;
    const heldSeen = new Promise<PendingApproval>((r) => (onHeld = r));
    c.onNotice = (n) => {
      const m = HELD.exec(n.message ?? '');
      if (m) onHeld({ request: m[1]!, mode: 'hold', message: n.message!, ...(n.detail ? { approvers: n.detail } : {}), ...(n.hint ? { hint: n.hint } : {}) });
      else if (notices.length < 20) notices.push(n.message ?? '');
    };
    // Most statements cannot change a setting: no analysis, and no wait for it.
    const changes = MAY_SET.test(sql) ? await settingsChangedBy(sql).catch((): Change[] => [{ name: '*' }]) : NO_CHANGES;
    const running = this.execute(c, sql, params, cap, notices)
      .then(async (o) => {
        c.onNotice = undefined;
        if (o.kind === 'result') this.record(c, changes, o);
        if (this.conns.get(database) === c) await this.snapshot(c, database);
        return o;
      })
      .finally(() => {
        c.onNotice = undefined;
        settle();
      });
    const first = await Promise.race([running.then((o) => ({ o })), heldSeen.then((p) => ({ p }))]);
    if ('o' in first) {
      const o = first.o;
      if (o.kind === 'error' && o.error.code === '42501') {
        const m = REJECTED.exec(o.error.message);
        if (m) return { kind: 'pending', pending: { request: m[1]!, mode: 'reject', message: o.error.message, ...(o.error.detail ? { approvers: o.error.detail } : {}) } };
      }
      return o;
    }
    const h: Held = { request: first.p.request, key: keyNow(), pending: first.p, done: running };
    this.held.set(h.request, h);
    if (inTx) {
      // Inside a transaction the connection stays the session's (the transaction is its state);
      // other calls on it are refused until the held statement is decided.
      c.heldInTx = h.request;
      const conn = c;
      wakeWaiters(c);
      void running.then((o) => {
        h.outcome = o;
        conn.heldInTx = undefined;
      });
      return { kind: 'pending', pending: first.p };
    }
    // Held outside a transaction: this connection now belongs to the waiting statement; later
    // calls get a new one, and it is closed once the statement ended.
    if (this.conns.get(database) === c) {
      this.conns.delete(database);
      // The next connection sets again what the agent set on this one (the held statement's own changes stay with it).
      const unknown = c.settingsUnknown ?? c.customUnknown;
      if (unknown !== undefined) this.carry.set(database, { unknown });
      else if (c.settings.length > 0) this.carry.set(database, { settings: c.settings });
    }
    wakeWaiters(c);
    this.waiting.add(c.client);
    void running.then((o) => {
      // A string that left a transaction open: closing the connection rolls it back; say so.
      if (o.kind === 'result' && c.tx !== 'I') o.notices.push('the transaction this statement string left open was rolled back: the held statement ran on its own connection, which is closed now (send BEGIN ... COMMIT in one string, or BEGIN in its own call)');
      h.outcome = o;
      this.waiting.delete(c.client);
      void c.client.end().catch(() => undefined);
    });
    return { kind: 'pending', pending: first.p };
  }

  /** Logs in to `database` (without running anything): the error when the listener refuses. */
  async login(database: string): Promise<WireError | undefined> {
    try {
      await this.conn(database).ready;
      return undefined;
    } catch (err) {
      return wireError(err);
    }
  }

  /** A held statement of this session: still pending, or its outcome (handed out once). */
  status(request: string): { known: false } | { known: true; outcome: RunOutcome } {
    const h = this.held.get(request);
    if (!h) return { known: false };
    if (!h.outcome) return { known: true, outcome: { kind: 'pending', pending: h.pending } };
    this.handOut(request);
    return { known: true, outcome: h.outcome };
  }

  private handOut(request: string): void {
    this.held.delete(request);
    this.handed.add(request);
  }

  /** Whether a held statement of this session ran and its result was handed out. */
  handedOut(request: string): boolean {
    return this.handed.has(request);
  }

  /** Waits up to `ms` for a held statement to finish (tests, and `approval_status` with wait). */
  async wait(request: string, ms: number): Promise<void> {
    const h = this.held.get(request);
    if (!h || h.outcome) return;
    await Promise.race([h.done.then(() => undefined), new Promise<void>((r) => setTimeout(r, ms).unref())]);
    // the outcome is set in a then() of `done`: let it run
    await new Promise<void>((r) => setImmediate(r));
  }

  private execute(c: Conn, sql: string, params: readonly (string | number | boolean | null)[] | undefined, cap: number, notices: string[]): Promise<RunOutcome> {
    return new Promise<RunOutcome>((resolve) => {
      const q = new pg.Query({ text: sql, ...(params !== undefined ? { values: params as unknown[] } : {}), rowMode: 'array' } as pg.QueryConfig);
      const rows = new Map<unknown, (string | null)[][]>();
      const dropped = new Map<unknown, number>();
      let kept = 0;
      q.on('row', (row: (string | null)[], result: unknown) => {
        if (kept < cap) {
          let list = rows.get(result);
          if (!list) rows.set(result, (list = []));
          list.push(row);
          kept++;
        } else dropped.set(result, (dropped.get(result) ?? 0) + 1);
      });
      q.on('error', (err: Error) => resolve({ kind: 'error', error: wireError(err) }));
      q.on('end', (res: pg.QueryResult | pg.QueryResult[]) => {
        const all = Array.isArray(res) ? res : [res];
        const set = (r: pg.QueryResult, columns: ResultSet['columns']): ResultSet => ({ command: r.command, rowCount: r.rowCount, columns, rows: rows.get(r) ?? [], truncated: (dropped.get(r) ?? 0) > 0 });
        // Type names known already (built-in, or read before): the result at once, without a wait per column.
        const known = all.map((r) => {
          const fields = r.fields ?? [];
          const columns: ResultSet['columns'] = new Array(fields.length);
          for (let i = 0; i < fields.length; i++) {
            const type = BUILTIN_TYPES[fields[i]!.dataTypeID] ?? this.types.get(fields[i]!.dataTypeID);
            if (type === undefined) return undefined;
            columns[i] = { name: fields[i]!.name, type };
          }
          return columns;
        });
        if (known.every((k) => k !== undefined)) {
          resolve({ kind: 'result', sets: all.map((r, i) => set(r, known[i]!)), notices });
          return;
        }
        void (async () => {
          const sets: ResultSet[] = [];
          for (const r of all) {
            const columns: ResultSet['columns'] = [];
            for (const f of r.fields ?? []) columns.push({ name: f.name, type: await this.typeName(c, f.dataTypeID) });
            sets.push(set(r, columns));
          }
          resolve({ kind: 'result', sets, notices });
        })();
      });
      c.client.query(q as never);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...[...this.conns.values()].map((c) => c.client), ...this.waiting];
    this.conns.clear();
    this.waiting.clear();
    await Promise.all(all.map((c) => c.end().catch(() => undefined)));
  }
}
