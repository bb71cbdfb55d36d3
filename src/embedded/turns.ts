/**
 * The bookkeeping behind the PGlite turn gate (see pglite-gate.ts): PGlite is
 * one backend shared by every connection, so connections must take turns —
 * a turn lasts from a connection's first message until the backend is idle
 * again (ReadyForQuery 'I') with nothing of that connection's left unanswered —
 * and each turn starts with the connection's own session settings. Pure.
 */
import { F, parseStartupOptions } from '../wire/index.js';
import { parseStatements } from '../sql/parser.js';

/** A FIFO mutex over connections: one owner, the others wait in order. */
export class TurnQueue<T> {
  #owner: T | null = null;
  readonly #waiting: { who: T; grant: () => void }[] = [];

  get owner(): T | null {
    return this.#owner;
  }

  get waiting(): number {
    return this.#waiting.length;
  }

  /** Ask for the turn; `grant` runs (synchronously when free) once `who` has it. Idempotent while pending. */
  request(who: T, grant: () => void): void {
    if (this.#owner === who || this.#waiting.some((w) => w.who === who)) return;
    if (this.#owner === null) {
      this.#owner = who;
      grant();
      return;
    }
    this.#waiting.push({ who, grant });
  }

  /** Give the turn up (or stop waiting for it); the next in line gets it. */
  release(who: T): void {
    const i = this.#waiting.findIndex((w) => w.who === who);
    if (i >= 0) this.#waiting.splice(i, 1);
    if (this.#owner !== who) return;
    this.#owner = null;
    const next = this.#waiting.shift();
    if (next) {
      this.#owner = next.who;
      next.grant();
    }
  }
}

/**
 * Where one connection's conversation with the backend stands, from the
 * messages it sent and the ReadyForQuery messages it got back: whether it may
 * give up its turn.
 */
export class ConversationState {
  /** ReadyForQuery messages still to come for what was sent. */
  outstanding = 0;
  /** Extended-protocol messages sent since the last Sync (a batch not closed yet). */
  openBatch = false;
  /** The transaction status of the last ReadyForQuery. */
  status: 'I' | 'T' | 'E' = 'I';

  /** The client started sending a message of this type. True when it is answered by a ReadyForQuery of its own. */
  sent(type: number): boolean {
    switch (type) {
      case F.Query:
      case F.Sync:
      case F.FunctionCall:
        this.outstanding++;
        this.openBatch = false;
        return true;
      // Part of a COPY the outstanding Query (or Execute) is running; a Flush asks for nothing.
      case F.CopyData:
      case F.CopyDone:
      case F.CopyFail:
      case F.Flush:
        return false;
      default:
        this.openBatch = true;
        return false;
    }
  }

  /** The startup packet: answered by a ReadyForQuery like a query. */
  sentStartup(): void {
    this.outstanding++;
  }

  ready(status: number): void {
    if (this.outstanding > 0) this.outstanding--;
    this.status = status === 0x54 ? 'T' : status === 0x45 ? 'E' : 'I';
  }

  /** Idle outside a transaction with nothing pending: another connection may have the backend. */
  get idle(): boolean {
    return this.outstanding === 0 && !this.openBatch && this.status === 'I';
  }
}

/** Startup parameters that are not settings. */
const NOT_SETTINGS = new Set(['user', 'database', 'options', 'replication']);

/**
 * The session settings a startup packet asks for: its parameters (other than
 * user, database, options) and the `-c name=value` settings in `options`, the
 * latter winning — what PostgreSQL would apply at backend start.
 */
export function startupSettings(params: ReadonlyMap<string, string>): [string, string][] {
  const out = new Map<string, string>();
  for (const [k, v] of params) if (!NOT_SETTINGS.has(k)) out.set(k, v);
  const options = params.get('options');
  if (options) for (const [k, v] of parseStartupOptions(options).settings) out.set(k, v);
  return [...out];
}

const lit = (s: string): string => `'${s.replace(/'/g, "''")}'`;

/** What a connection changed in its session (SET): read when its turn ends, to restore at its next turn. */
export const SNAPSHOT_SQL = "SELECT name, setting FROM pg_catalog.pg_settings WHERE source = 'session'";

/** Back to the defaults, whoever set what before: the first statement of every turn that follows another connection's. */
export const RESET_SQL = 'RESET ALL; RESET ROLE';

/** One setting for this session (`set_config(..., false)`: until changed, not just this transaction). */
export function setConfigSql(name: string, value: string): string {
  return `SELECT pg_catalog.set_config(${lit(name)}, ${lit(value)}, false)`;
}

/**
 * The settings to apply at the start of a connection's turn: those from its
 * startup packet, then what it SET itself during its earlier turns (read with
 * SNAPSHOT_SQL), which override them.
 */
export function turnSettings(startup: readonly [string, string][], snapshot: readonly [string, string][] | undefined): [string, string][] {
  const out = new Map(startup);
  for (const [k, v] of snapshot ?? []) out.set(k, v);
  return [...out];
}

/**
 * Whether a query string runs `COPY ... FROM STDIN`, which PGlite cannot
 * serve over its socket (it reads the rows before they arrive, fails with
 * "unexpected EOF", and its backend is lost for every connection). Needs the
 * SQL parser loaded; SQL that does not parse is PGlite's to reject.
 */
export function copiesFromStdin(sql: string): boolean {
  if (!/copy/i.test(sql)) return false;
  const parsed = parseStatements(sql);
  if (!parsed.ok) return false;
  return parsed.statements.some((s) => {
    const copy = s.stmt.CopyStmt as { is_from?: boolean; filename?: string } | undefined;
    return copy !== undefined && copy.is_from === true && copy.filename === undefined;
  });
}

/** What runs instead of a COPY FROM STDIN: fails like a statement, with the reason (SQLSTATE 0A000). */
export const COPY_FROM_STDIN_REFUSAL =
  "DO $warden$BEGIN RAISE EXCEPTION USING ERRCODE = 'feature_not_supported', " +
  "MESSAGE = 'COPY FROM STDIN is not supported by the embedded PGlite', " +
  "HINT = 'Load rows with INSERT, or run the demo with PostgreSQL installed (WARDEN_DEMO_UPSTREAM=postgresql).'; END$warden$";
