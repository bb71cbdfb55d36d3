/**
 * Follows the request/response pairing of one session, so every message the
 * upstream sends is attributed to the client request that caused it — even
 * with pipelining. Pure: no sockets. It decides what the client receives for
 * each upstream message (pass, rewrite, replace, swallow), keeps the prepared
 * statements and portals Warden knows, and reports when each statement ends.
 *
 * PostgreSQL's rules it mirrors: after an error in the extended protocol the
 * server discards every message until Sync — including messages the client
 * sends after the error arrived, when no Sync was sent yet (see `skipping`);
 * a simple Query ends with its own ReadyForQuery; portals end with their
 * transaction.
 *
 * It also says which Executes run a portal Warden saw bound (see `trusted`):
 * every other Execute must be decided on its own.
 */
import {
  B,
  decodeCommandComplete,
  decodeErrorFields,
  decodeRowDescription,
  encodeError,
  encodeErrorLike,
  Outbox,
  type PgErrorFields,
  type TxStatus,
} from '../../wire/index.js';
import type { UnreadableText } from '../../wire/client-text.js';
import type { ErrorVerdictFields, RowLimit, RowRewriter, StatementOutcome, StatementTimer } from '../../contract/statement-hooks.js';

/** One statement's verdict and what happened to it. */
export class StatementRun {
  /** Command tags, collected only when someone listens (onDone). */
  readonly tags: string[] | null;
  rows = 0;
  error: PgErrorFields | undefined;
  private finished = false;
  /** Metrics: set when the statement was forwarded (performance.now()); its upstream time is observed at finish. */
  sentAt = 0;
  timer: StatementTimer | undefined = undefined;
  /** A bound on the rows and bytes of its results (limits): crossing it halts the statement. */
  limit: RowLimit | undefined = undefined;
  /** Result bytes (DataRow, CopyData messages) sent to the client, counted when there is a limit. */
  bytes = 0;
  /** Set when the statement was halted by its limit: the error the client got instead of the rest. */
  halted: PgErrorFields | undefined = undefined;

  constructor(
    readonly rewriter: RowRewriter | undefined,
    readonly onDone: ((o: StatementOutcome) => void) | undefined,
    /** Set for a statement Warden refused: its error replaces the upstream's. */
    readonly substitute?: ErrorVerdictFields,
  ) {
    this.tags = onDone ? [] : null;
  }

  finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.timer !== undefined) this.timer.observe((performance.now() - this.sentAt) / 1000);
    this.onDone?.({ tags: this.tags ?? [], rows: this.rows, error: this.error });
  }
}

export interface PreparedInfo {
  readonly sql: string;
  readonly paramTypes: readonly number[];
  /** Set when Warden could not read the text as PostgreSQL will (see wire/client-text.ts): a Bind of it is refused. */
  readonly unreadable?: UnreadableText;
}

/** A portal Warden bound (a forwarded Bind), or the stand-in for an Execute decided on its own. */
interface Portal {
  readonly run: StatementRun;
  described: boolean;
  /** Syncs and Queries sent before its Bind (see `trusted`). */
  readonly segment: number;
  /** The upstream answered its Bind with BindComplete. */
  confirmed: boolean;
  /** Statements executed before its Bind or its latest Execute (see `trusted`). */
  epoch: number;
}

type Entry =
  | { k: 'parse'; name: string; info: PreparedInfo }
  | { k: 'bind'; portal: Portal | undefined; name: string }
  | { k: 'describe-stmt'; hidden: boolean; gotParams: boolean }
  | { k: 'describe-portal'; portal: Portal | undefined; hidden: boolean }
  | { k: 'execute'; portal: Portal | undefined; at: number }
  | { k: 'close'; target: 'S' | 'P'; name: string }
  | { k: 'sync'; segment: number }
  | { k: 'query'; run: StatementRun; segment: number; at: number }
  | { k: 'substitute'; run: StatementRun }
  | { k: 'internal'; sink: InternalSink };

/**
 * Receives every upstream message answering a request of Warden's own (see
 * `internal`), up to and including its ReadyForQuery; nothing of it reaches the
 * client. Notifications and ParameterStatus, which the upstream may send at any
 * time, still go to the client.
 */
export type InternalSink = (type: number, body: Buffer) => void;

/** The tracker lost the protocol's thread: the session must end (fail closed). */
export class DesyncError extends Error {
  readonly code = '08P01';
}

/** The client sent a message other than COPY data while the upstream was reading COPY data. */
export class CopyViolation extends DesyncError {}

/**
 * The outcome recorded for a statement PostgreSQL never ran because an
 * earlier message of its extended-protocol batch failed (it skips messages up
 * to Sync). The client sees nothing for it, as with PostgreSQL.
 */
export const SKIPPED: PgErrorFields = Object.freeze({
  severity: 'ERROR',
  code: '25P02',
  message: 'not run: an earlier message of the same extended-protocol batch failed, so PostgreSQL skipped the messages up to Sync',
});

/** Where a halted statement's remaining answers go: nowhere. */
class MutedOutbox extends Outbox {
  override pushRange(): void {}
  override push(): void {}
}
const MUTED: Outbox = new MutedOutbox();

export class ResponseTracker {
  private entries: Entry[] = [];
  private head = 0;
  private readonly statements = new Map<string, PreparedInfo>();
  /** Named portals Warden bound; the unnamed one apart (it is bound for nearly every statement). */
  private readonly portals = new Map<string, Portal>();
  private unnamed: Portal | undefined;
  /** Syncs and Queries sent so far. */
  private segment = 0;
  /** Statements executed so far (Queries and Executes sent). */
  private epoch = 0;
  /**
   * The upstream is discarding messages until the next Sync, and Warden has
   * not sent that Sync yet: an extended-protocol error arrived after
   * everything sent so far. Requests sent meanwhile get no answer.
   */
  skipping = false;
  /**
   * The upstream is reading COPY data and the client has not ended it yet: only CopyData,
   * CopyDone, CopyFail (and Sync and Flush, which PostgreSQL ignores then) are valid.
   */
  copyIn = false;
  /** Position of `entries[0]` in the session's sequence of requests. */
  private base = 0;
  /** Positions at which the client ended COPY input (CopyDone, CopyFail), not yet matched. */
  private readonly copyEnds: number[] = [];
  /** Extended-protocol messages were sent since the last Sync or Query: an implicit or explicit transaction's batch is open. */
  unsynced = false;
  /** The statement that completed last (CommandComplete): notices and errors at a Sync (COMMIT) belong to it. */
  private recent: StatementRun | undefined;
  /** `epoch` when the latest ReadyForQuery arrived (see `statusCurrent`). */
  private readyEpoch = 0;
  /**
   * A statement was halted by its limit: the client got its error, and nothing more of the
   * upstream's answers reaches it until the next ReadyForQuery (only ParameterStatus and
   * notifications, which belong to no statement, still do).
   */
  private muted = false;
  /** Told when a statement is halted (the session cancels it upstream). */
  onHalt: ((run: StatementRun) => void) | undefined = undefined;

  /** Whether `txStatus` is still the transaction status: no statement was sent since the ReadyForQuery that reported it. */
  get statusCurrent(): boolean {
    return this.readyEpoch === this.epoch;
  }
  txStatus: TxStatus = 'I';
  /** Latest ParameterStatus values. */
  readonly parameters = new Map<string, string>();

  private portalNamed(name: string): Portal | undefined {
    return name === '' ? this.unnamed : this.portals.get(name);
  }

  private forget(name: string, only?: Portal): void {
    if (name === '') {
      if (only === undefined || this.unnamed === only) this.unnamed = undefined;
    } else if (only === undefined || this.portals.get(name) === only) this.portals.delete(name);
  }

  /**
   * Whether an Execute of portal `name` now surely runs the portal of a Bind
   * Warden decided and forwarded, so that Bind's verdict covers it. The
   * allowlist (anything else is decided on its own, see session.ts):
   *
   * 1. Warden forwarded a Bind of `name` in this session, and since then the
   *    client sent no Close of it, Warden refused no Bind of it, the upstream
   *    did not fail that Bind, and no ReadyForQuery with status idle (the
   *    transaction ended) answered a Sync or Query sent after it;
   * 2. no statement was executed since that Bind (no Query, no Execute of
   *    another portal, no Execute of this name decided on its own): any
   *    statement may end the transaction, CLOSE the portal, or DECLARE or open
   *    (a function's refcursor) another portal of the same name — WITH HOLD
   *    cursors outlive transactions. Executes of the portal under this rule
   *    do not count, so a driver fetching in chunks keeps its portal;
   * 3. the upstream confirmed the Bind (BindComplete), or no Sync was sent
   *    since it — then if the Bind fails, PostgreSQL skips the Execute too.
   *
   * Pipelining: rules 2 and 3 hold on what was *sent*, so a ReadyForQuery
   * still on its way cannot make a stale record look current.
   */
  trusted(name: string): boolean {
    const p = this.portalNamed(name);
    return p !== undefined && p.epoch === this.epoch && (p.confirmed || p.segment === this.segment);
  }

  get pending(): number {
    return this.entries.length - this.head;
  }

  private push(e: Entry): void {
    if (e.k !== 'sync' && e.k !== 'query' && e.k !== 'substitute' && e.k !== 'internal') this.unsynced = true;
    if (this.skipping) {
      // PostgreSQL discards it unanswered (it is skipping until Sync).
      const run = e.k === 'query' || e.k === 'substitute' ? e.run : e.k === 'execute' ? e.portal?.run : undefined;
      if (run) this.skipRun(run);
      return;
    }
    this.entries.push(e);
  }

  private skipRun(run: StatementRun): void {
    if (!run.onDone) return; // nobody listens (and the run may be shared)
    if (!run.error) run.error = SKIPPED;
    run.finish();
  }

  private front(): Entry | undefined {
    return this.head < this.entries.length ? this.entries[this.head] : undefined;
  }

  private pop(): void {
    this.head++;
    if (this.head === this.entries.length) {
      this.base += this.entries.length;
      this.entries = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.base += this.head;
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }

  /** The position the next request will have in the session's sequence of requests. */
  private get nextAt(): number {
    return this.base + this.entries.length;
  }

  // ---- COPY FROM STDIN ------------------------------------------------------
  //
  // While the upstream reads COPY data, PostgreSQL ignores Sync and Flush and ends the
  // connection (FATAL 08P01) on any other message but CopyData, CopyDone and CopyFail. The
  // client may have sent messages after the COPY statement before the CopyInResponse came
  // back; those are known by their position relative to the client's CopyDone/CopyFail.

  /** The client sent CopyDone or CopyFail: positions at which the COPY input ended. */
  copyEnd(): void {
    this.copyEnds.push(this.nextAt);
    this.copyIn = false;
  }

  /**
   * The upstream started reading COPY data for the front request (`at`): drop the Syncs the
   * client sent since (PostgreSQL ignores them); any other request sent before the client
   * ended the COPY is a protocol violation PostgreSQL ends the session for.
   */
  private copyStarted(at: number): void {
    while (this.copyEnds.length > 0 && this.copyEnds[0] <= at) this.copyEnds.shift();
    const end = this.copyEnds.length > 0 ? this.copyEnds[0] : Number.POSITIVE_INFINITY;
    for (let i = this.head + 1; i < this.entries.length && this.base + i < end; ) {
      const e = this.entries[i];
      if (e.k !== 'sync') throw new CopyViolation(`unexpected message during COPY from stdin (${e.k})`);
      this.entries.splice(i, 1);
      // Positions after it move down by one: so do the recorded ends.
      for (let j = 0; j < this.copyEnds.length; j++) if (this.copyEnds[j] > this.base + i) this.copyEnds[j]--;
    }
    this.copyIn = end === Number.POSITIVE_INFINITY;
  }

  // ---- client side: called as requests are forwarded ----------------------

  /** The SQL a Bind to `name` would run: the latest Parse in flight, else the known statement. */
  lookupStatement(name: string): PreparedInfo | undefined {
    for (let i = this.entries.length - 1; i >= this.head; i--) {
      const e = this.entries[i];
      if (e.k === 'parse' && e.name === name) return e.info;
      if (e.k === 'close' && e.target === 'S' && e.name === name) return undefined;
    }
    return this.statements.get(name);
  }

  parse(name: string, info: PreparedInfo): void {
    this.push({ k: 'parse', name, info });
  }

  /** A Bind Warden decided and forwarded: its portal now runs under `run` (see `trusted`). */
  bind(portal: string, run: StatementRun): void {
    if (this.skipping) {
      // The upstream ignores this Bind: whatever portal of this name exists, it is not this one.
      this.forget(portal);
      this.skipRun(run);
      return;
    }
    const p: Portal = { run, described: false, segment: this.segment, confirmed: false, epoch: this.epoch };
    if (portal === '') this.unnamed = p;
    else this.portals.set(portal, p);
    this.push({ k: 'bind', portal: p, name: portal });
  }

  /** A Bind in a session without a statement hook: nothing is decided, no portal is recorded. */
  bindUndecided(): void {
    this.push({ k: 'bind', portal: undefined, name: '' });
  }

  /** A refused statement: its error replaces the upstream's error for the injected failing message. */
  substitute(run: StatementRun): void {
    this.push({ k: 'substitute', run });
  }

  /** A refused Bind: Warden knows nothing of the portal of that name any more. */
  dropPortal(portal: string): void {
    this.forget(portal);
  }

  /** `name` null: the portal does not matter (nothing rewrites its rows). */
  describe(target: 'S' | 'P', name: string | null, hidden = false): void {
    if (target === 'S') this.push({ k: 'describe-stmt', hidden, gotParams: false });
    else {
      // Only a trusted record is the portal being described.
      const portal = name !== null && this.trusted(name) ? this.portalNamed(name) : undefined;
      if (portal && !this.skipping) portal.described = true;
      this.push({ k: 'describe-portal', portal, hidden });
    }
  }

  /** Whether an Execute of this (trusted) portal needs a hidden Describe first (a rewriter must see the columns). */
  needsDescribe(portal: string): boolean {
    const p = this.portalNamed(portal);
    return p !== undefined && p.run.rewriter !== undefined && !p.described;
  }

  /**
   * An Execute of a trusted portal (`trusted`), under its Bind's verdict;
   * `portal` null: in a session without a statement hook (nothing is decided).
   */
  execute(portal: string | null): void {
    this.epoch++;
    let p: Portal | undefined;
    if (portal !== null) {
      p = this.portalNamed(portal);
      if (p) p.epoch = this.epoch;
    }
    this.push({ k: 'execute', portal: p, at: this.nextAt });
  }

  /**
   * An Execute decided on its own (the portal is not one `trusted` vouches
   * for): its rows go through `run`. With `describe`, a hidden Describe of the
   * portal goes first (the run's rewriter must see the columns).
   */
  executeDecided(run: StatementRun, describe: boolean): void {
    const p: Portal = { run, described: describe, segment: this.segment, confirmed: true, epoch: -1 };
    if (describe) this.push({ k: 'describe-portal', portal: p, hidden: true });
    this.epoch++;
    this.push({ k: 'execute', portal: p, at: this.nextAt });
  }

  close(target: 'S' | 'P', name: string): void {
    if (target === 'P') this.forget(name);
    this.push({ k: 'close', target, name });
  }

  sync(): void {
    this.skipping = false;
    this.unsynced = false;
    this.push({ k: 'sync', segment: this.segment++ });
  }

  /**
   * A request of Warden's own (a Query, or extended messages ending with
   * Sync), sent only while nothing of the client's is pending: every upstream message up
   * to its ReadyForQuery goes to `sink` instead of the client.
   */
  internal(sink: InternalSink): void {
    if (this.skipping || this.entries.slice(this.head).some((e) => e.k !== 'internal')) {
      throw new Error('an internal request needs a session with nothing of the client pending');
    }
    this.entries.push({ k: 'internal', sink });
  }

  query(run: StatementRun): void {
    this.epoch++;
    this.unsynced = false;
    this.push({ k: 'query', run, segment: this.segment++, at: this.nextAt });
  }

  // ---- server side --------------------------------------------------------

  /** Whether the upstream message of this type must be delivered whole (everything but bulk data, DataRow and CopyData). */
  wantsWhole(type: number): boolean {
    // Muted, or bound by a limit: each result message is looked at (dropped, or counted).
    if (this.muted) return true;
    if (type === B.CopyData && this.runOf(this.front())?.limit !== undefined) return true;
    if (type !== B.DataRow) return type !== B.CopyData || this.runOf(this.front())?.rewriter?.copyData !== undefined;
    const e = this.front();
    if (!e) return false;
    if (e.k === 'internal') return true;
    if (e.k === 'query') return e.run.rewriter !== undefined || e.run.limit !== undefined;
    if (e.k === 'execute') return e.portal?.run.rewriter !== undefined || e.portal?.run.limit !== undefined;
    return false;
  }

  /**
   * A result message (DataRow, CopyData) of `run`, which has a limit, of `size` bytes: false when
   * it may be sent; true when it crosses the limit — the statement is halted there: the client
   * gets the limit's error instead of it (in `out`), and nothing more until ReadyForQuery.
   */
  private crossesLimit(run: StatementRun, size: number, out: Outbox): boolean {
    const limit = run.limit!;
    const rows = run.rows + 1;
    const bytes = run.bytes + size;
    if (rows <= limit.maxRows && bytes <= limit.maxBytes) {
      run.bytes = bytes;
      return false;
    }
    const fields: PgErrorFields = { severity: 'ERROR', ...limit.exceeded(rows, bytes) };
    run.halted = fields;
    run.error = fields;
    out.push(encodeError(fields));
    this.muted = true;
    this.onHalt?.(run);
    return true;
  }

  /** A streamed (not inspected) upstream message passes through; count rows. */
  onStreamed(type: number, first: boolean): void {
    if (!first || type !== B.DataRow) return;
    const e = this.front();
    if (e?.k === 'query') e.run.rows++;
    else if (e?.k === 'execute' && e.portal) e.portal.run.rows++;
  }

  /**
   * Drop entries the server will never answer (after an extended-protocol
   * error) up to the Sync; when no Sync was sent yet, everything sent until
   * the next one is discarded as well (`skipping`).
   */
  private discardUntilSync(): void {
    let e = this.front();
    for (; e && e.k !== 'sync'; e = this.front()) {
      if (e.k === 'substitute' || e.k === 'query') this.skipRun(e.run);
      else if (e.k === 'execute' && e.portal) this.skipRun(e.portal.run);
      else if (e.k === 'bind' && e.portal) this.forget(e.name, e.portal);
      this.pop();
    }
    if (!e) this.skipping = true;
  }

  /** The transaction of the requests up to segment `segment` ended: so did their portals. */
  private portalsEnded(segment: number): void {
    if (this.unnamed && this.unnamed.segment <= segment) this.unnamed = undefined;
    if (this.portals.size === 0) return;
    for (const [name, p] of this.portals) if (p.segment <= segment) this.portals.delete(name);
  }

  private runOf(e: Entry | undefined): StatementRun | undefined {
    if (!e) return undefined;
    if (e.k === 'query' || e.k === 'substitute') return e.run;
    if (e.k === 'execute' || e.k === 'describe-portal') return e.portal?.run;
    return undefined;
  }

  /**
   * Handle one whole upstream message, bytes [start, end) of `buf` (header
   * included); append what the client should receive to `out`. The common
   * messages are handled without allocating.
   */
  onMessage(type: number, buf: Buffer, start: number, end: number, out: Outbox): void {
    const e = this.front();
    if (this.muted && type !== B.ReadyForQuery && type !== B.ParameterStatus && type !== B.NotificationResponse) {
      // A halted statement's remaining answers: tracked as usual, sent nowhere. COPY FROM STDIN
      // would wait for data the client was told not to send: fail closed (the session ends).
      if (type === B.CopyInResponse) throw new DesyncError('COPY FROM STDIN started after a statement of the same request was halted by a limit');
      out = MUTED;
    }
    const body = (): Buffer => buf.subarray(start + 5, end);
    if (e?.k === 'internal' && type !== B.NotificationResponse && type !== B.ParameterStatus) {
      e.sink(type, body());
      if (type === B.ReadyForQuery) {
        const st = buf[start + 5];
        this.txStatus = st === 0x49 ? 'I' : st === 0x54 ? 'T' : 'E';
        this.pop();
      }
      return;
    }
    switch (type) {
      case B.DataRow: {
        const run = e?.k === 'query' ? e.run : e?.k === 'execute' ? e.portal?.run : undefined;
        if (!run) throw new DesyncError('a data row arrived that belongs to no statement');
        if (run.limit !== undefined && (run.halted !== undefined || this.crossesLimit(run, end - start, out))) return;
        run.rows++;
        if (run.rewriter) {
          const raw = buf.subarray(start, end);
          out.push(run.rewriter.rewrite(raw, raw.subarray(5)));
        } else out.pushRange(buf, start, end);
        return;
      }
      case B.RowDescription: {
        if (e?.k === 'query') {
          e.run.rewriter?.describe(decodeRowDescription(body()));
          out.pushRange(buf, start, end);
          return;
        }
        if (e?.k === 'describe-portal') {
          e.portal?.run.rewriter?.describe(decodeRowDescription(body()));
          if (!e.hidden) out.pushRange(buf, start, end);
          this.pop();
          return;
        }
        if (e?.k === 'describe-stmt') {
          if (!e.hidden) out.pushRange(buf, start, end);
          this.pop();
          return;
        }
        throw new DesyncError('a row description arrived that belongs to no request');
      }
      case B.NoData:
        if (e?.k === 'describe-portal' || e?.k === 'describe-stmt') {
          if (!e.hidden) out.pushRange(buf, start, end);
          this.pop();
          return;
        }
        throw new DesyncError('NoData arrived that belongs to no Describe');
      case B.ParameterDescription:
        if (e?.k !== 'describe-stmt') throw new DesyncError('ParameterDescription arrived that belongs to no Describe');
        if (!e.hidden) out.pushRange(buf, start, end);
        return;
      case B.ParseComplete:
        if (e?.k !== 'parse') throw new DesyncError('ParseComplete arrived that belongs to no Parse');
        this.statements.set(e.name, e.info);
        out.pushRange(buf, start, end);
        this.pop();
        return;
      case B.BindComplete:
        if (e?.k !== 'bind') throw new DesyncError('BindComplete arrived that belongs to no Bind');
        if (e.portal) e.portal.confirmed = true;
        out.pushRange(buf, start, end);
        this.pop();
        return;
      case B.CloseComplete:
        if (e?.k !== 'close') throw new DesyncError('CloseComplete arrived that belongs to no Close');
        if (e.target === 'S') this.statements.delete(e.name);
        out.pushRange(buf, start, end);
        this.pop();
        return;
      case B.CommandComplete: {
        this.copyIn = false;
        if (e?.k === 'query') {
          e.run.tags?.push(decodeCommandComplete(body()));
          this.recent = e.run;
        } else if (e?.k === 'execute') {
          const run = e.portal?.run;
          this.recent = run;
          run?.tags?.push(decodeCommandComplete(body()));
          run?.finish();
          this.pop();
        } else throw new DesyncError('CommandComplete arrived that belongs to no statement');
        out.pushRange(buf, start, end);
        return;
      }
      case B.EmptyQueryResponse:
        if (e?.k === 'execute') {
          e.portal?.run.finish();
          this.pop();
        } else if (e?.k !== 'query') throw new DesyncError('EmptyQueryResponse arrived that belongs to no statement');
        out.pushRange(buf, start, end);
        return;
      case B.PortalSuspended:
        if (e?.k !== 'execute') throw new DesyncError('PortalSuspended arrived that belongs to no Execute');
        out.pushRange(buf, start, end);
        this.pop();
        return;
      case B.ErrorResponse: {
        this.copyIn = false;
        const raw = buf.subarray(start, end);
        const fields = decodeErrorFields(raw.subarray(5));
        if (e?.k === 'substitute') {
          e.run.error = { severity: 'ERROR', ...e.run.substitute! };
          out.push(encodeError(e.run.substitute!));
          e.run.finish();
          this.pop();
          this.discardUntilSync();
          return;
        }
        const run = this.runOf(e) ?? (e?.k === 'bind' ? e.portal?.run : e?.k === 'sync' ? this.recent : undefined);
        const scrubbed = run?.rewriter?.error?.(fields);
        // A halted statement's outcome is its halt (the cancel's 57014 that may follow is not what the client saw).
        if (run && run.halted === undefined) run.error = run.rewriter?.recordError?.(fields) ?? fields;
        out.push(scrubbed ? encodeErrorLike(B.ErrorResponse, scrubbed) : raw);
        if (e && e.k !== 'query' && fields.severity !== 'FATAL' && fields.severity !== 'PANIC') {
          run?.finish();
          // A failed Bind leaves no portal Warden can vouch for (an older one of that name may remain).
          if (e.k === 'bind' && e.portal) this.forget(e.name, e.portal);
          if (e.k !== 'sync') this.pop();
          this.discardUntilSync();
        }
        return;
      }
      case B.ReadyForQuery: {
        this.recent = undefined;
        this.muted = false;
        const st = buf[start + 5];
        this.txStatus = st === 0x49 ? 'I' : st === 0x54 ? 'T' : 'E';
        let segment: number;
        if (e?.k === 'query') {
          e.run.finish();
          segment = e.segment;
          this.pop();
        } else if (e?.k === 'sync') {
          segment = e.segment;
          this.pop();
        } else throw new DesyncError('ReadyForQuery arrived that belongs to no Sync or Query');
        // Portals end with their transaction: those bound before this Sync (later ones are in a later one).
        if (this.txStatus === 'I') this.portalsEnded(segment);
        if (this.pending === 0) this.readyEpoch = this.epoch;
        out.pushRange(buf, start, end);
        return;
      }
      case B.CopyInResponse:
        if (e?.k === 'query' || e?.k === 'execute') this.copyStarted(e.at);
        out.pushRange(buf, start, end);
        return;
      case B.CopyOutResponse: {
        const rw = this.runOf(e)?.rewriter;
        if (rw?.copyOut) {
          const b = body();
          rw.copyOut(b.length > 0 ? b[0]! : 0, b.length >= 3 ? b.readUInt16BE(1) : 0);
        }
        out.pushRange(buf, start, end);
        return;
      }
      case B.CopyData: {
        const limited = this.runOf(e);
        // COPY ... TO STDOUT sends a row per CopyData: a limit counts them as it counts DataRows.
        if (limited?.limit !== undefined) {
          if (limited.halted !== undefined || this.crossesLimit(limited, end - start, out)) return;
          limited.rows++;
        }
        const rw = this.runOf(e)?.rewriter;
        if (rw?.copyData) {
          const raw = buf.subarray(start, end);
          const next = rw.copyData(raw, raw.subarray(5));
          if (next) out.push(next);
        } else out.pushRange(buf, start, end);
        return;
      }
      case B.NoticeResponse: {
        // Asynchronous in the protocol: it belongs to the statement in flight (at a Sync, the
        // last one that completed: deferred triggers run at COMMIT).
        const run = this.runOf(e) ?? (e?.k === 'bind' ? e.portal?.run : e?.k === 'sync' ? this.recent : undefined);
        const rw = run?.rewriter;
        const replaced = rw?.notice ? rw.notice(decodeErrorFields(buf.subarray(start + 5, end))) : undefined;
        if (replaced) out.push(encodeErrorLike(B.NoticeResponse, replaced));
        else out.pushRange(buf, start, end);
        return;
      }
      case B.ParameterStatus: {
        const b = body();
        const nul = b.indexOf(0);
        const stop = b.indexOf(0, nul + 1);
        if (nul > 0 && stop > nul) this.parameters.set(b.toString('utf8', 0, nul), b.toString('utf8', nul + 1, stop));
        out.pushRange(buf, start, end);
        return;
      }
      default:
        // Notices, notifications, COPY sub-protocol, function-call results: pass through.
        out.pushRange(buf, start, end);
    }
  }

  /** The session ended: report every statement still open. */
  abandon(reason: string): void {
    for (let e = this.front(); e; e = this.front()) {
      const run = this.runOf(e);
      if (run && !run.error) run.error = { severity: 'FATAL', code: '08006', message: reason };
      run?.finish();
      this.pop();
    }
  }
}
