/**
 * Follows the request/response pairing of one session, so every message the
 * upstream sends is attributed to the client request that caused it — even
 * with pipelining. Pure: no sockets. It decides what the client receives for
 * each upstream message (pass, rewrite, replace, swallow), keeps the prepared
 * statements and portals Warden knows, and reports when each statement ends.
 *
 * PostgreSQL's rules it mirrors: after an error in the extended protocol the
 * server discards every message until Sync; a simple Query ends with its own
 * ReadyForQuery; portals end with their transaction.
 */
import {
  B,
  decodeCommandComplete,
  decodeErrorFields,
  decodeRowDescription,
  encodeError,
  type Outbox,
  type PgErrorFields,
  type TxStatus,
} from '../wire/index.js';
import type { UnreadableText } from '../wire/client-text.js';
import type { ErrorVerdictFields, RowRewriter, StatementOutcome } from './hooks.js';

/** One statement's verdict and what happened to it. */
export class StatementRun {
  /** Command tags, collected only when someone listens (onDone). */
  readonly tags: string[] | null;
  rows = 0;
  error: PgErrorFields | undefined;
  private finished = false;

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
    this.onDone?.({ tags: this.tags ?? [], rows: this.rows, error: this.error });
  }
}

export interface PreparedInfo {
  readonly sql: string;
  readonly paramTypes: readonly number[];
  /** Set when Warden could not read the text as PostgreSQL will (see wire/client-text.ts): a Bind of it is refused. */
  readonly unreadable?: UnreadableText;
}

interface Portal {
  readonly run: StatementRun;
  described: boolean;
}

type Entry =
  | { k: 'parse'; name: string; info: PreparedInfo }
  | { k: 'bind' }
  | { k: 'describe-stmt'; hidden: boolean; gotParams: boolean }
  | { k: 'describe-portal'; portal: Portal | undefined; hidden: boolean }
  | { k: 'execute'; portal: Portal | undefined }
  | { k: 'close'; target: 'S' | 'P'; name: string }
  | { k: 'sync' }
  | { k: 'query'; run: StatementRun }
  | { k: 'substitute'; run: StatementRun };

/** The tracker lost the protocol's thread: the session must end (fail closed). */
export class DesyncError extends Error {
  readonly code = '08P01';
}

export class ResponseTracker {
  private entries: Entry[] = [];
  private head = 0;
  private readonly statements = new Map<string, PreparedInfo>();
  private readonly portals = new Map<string, Portal>();
  txStatus: TxStatus = 'I';
  /** Latest ParameterStatus values. */
  readonly parameters = new Map<string, string>();

  /** Whether any portal is recorded (one with a rewriter or a listener). */
  get hasPortals(): boolean {
    return this.portals.size > 0;
  }

  get pending(): number {
    return this.entries.length - this.head;
  }

  private push(e: Entry): void {
    this.entries.push(e);
  }

  private front(): Entry | undefined {
    return this.head < this.entries.length ? this.entries[this.head] : undefined;
  }

  private pop(): void {
    this.head++;
    if (this.head === this.entries.length) {
      this.entries = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
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

  /** A Bind; a run without rewriter or listener needs no portal record (nothing will ask for it). */
  bind(portal: string, run: StatementRun): void {
    if (run.rewriter || run.onDone) this.portals.set(portal, { run, described: false });
    else if (this.portals.size > 0) this.portals.delete(portal);
    this.push({ k: 'bind' });
  }

  /** A refused statement: its error replaces the upstream's error for the injected failing message. */
  substitute(run: StatementRun): void {
    this.push({ k: 'substitute', run });
  }

  /** A refused Bind leaves no portal behind (PostgreSQL drops a portal whose Bind failed). */
  dropPortal(portal: string): void {
    this.portals.delete(portal);
  }

  /** `name` null: the portal does not matter (nothing rewrites its rows). */
  describe(target: 'S' | 'P', name: string | null, hidden = false): void {
    if (target === 'S') this.push({ k: 'describe-stmt', hidden, gotParams: false });
    else {
      const portal = name === null ? undefined : this.portals.get(name);
      if (portal) portal.described = true;
      this.push({ k: 'describe-portal', portal, hidden });
    }
  }

  /** Whether an Execute of this portal needs a hidden Describe first (a rewriter must see the columns). */
  needsDescribe(portal: string): boolean {
    const p = this.portals.get(portal);
    return p !== undefined && p.run.rewriter !== undefined && !p.described;
  }

  /** `portal` null: the portal does not matter (nothing rewrites or counts its rows). */
  execute(portal: string | null): void {
    this.push({ k: 'execute', portal: portal === null ? undefined : this.portals.get(portal) });
  }

  close(target: 'S' | 'P', name: string): void {
    if (target === 'P') this.portals.delete(name);
    this.push({ k: 'close', target, name });
  }

  sync(): void {
    this.push({ k: 'sync' });
  }

  query(run: StatementRun): void {
    this.push({ k: 'query', run });
  }

  // ---- server side --------------------------------------------------------

  /** Whether the upstream message of this type must be delivered whole (everything but bulk data, DataRow and CopyData). */
  wantsWhole(type: number): boolean {
    if (type !== B.DataRow) return type !== B.CopyData;
    const e = this.front();
    if (!e) return false;
    if (e.k === 'query') return e.run.rewriter !== undefined;
    if (e.k === 'execute') return e.portal?.run.rewriter !== undefined;
    return false;
  }

  /** A streamed (not inspected) upstream message passes through; count rows. */
  onStreamed(type: number, first: boolean): void {
    if (!first || type !== B.DataRow) return;
    const e = this.front();
    if (e?.k === 'query') e.run.rows++;
    else if (e?.k === 'execute' && e.portal) e.portal.run.rows++;
  }

  /** Drop entries the server will never answer (after an extended-protocol error) up to the Sync. */
  private discardUntilSync(): void {
    for (let e = this.front(); e && e.k !== 'sync'; e = this.front()) {
      if (e.k === 'substitute') e.run.finish();
      else if (e.k === 'execute') e.portal?.run.finish();
      this.pop();
    }
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
    const body = (): Buffer => buf.subarray(start + 5, end);
    switch (type) {
      case B.DataRow: {
        const run = e?.k === 'query' ? e.run : e?.k === 'execute' ? e.portal?.run : undefined;
        if (!run) throw new DesyncError('a data row arrived that belongs to no statement');
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
        if (e?.k === 'query') e.run.tags?.push(decodeCommandComplete(body()));
        else if (e?.k === 'execute') {
          const run = e.portal?.run;
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
        const run = this.runOf(e);
        if (run) run.error = fields;
        const scrubbed = run?.rewriter?.error?.(fields);
        out.push(scrubbed ? encodeError(scrubbed) : raw);
        if (e && e.k !== 'query' && fields.severity !== 'FATAL' && fields.severity !== 'PANIC') {
          run?.finish();
          if (e.k !== 'sync') this.pop();
          this.discardUntilSync();
        }
        return;
      }
      case B.ReadyForQuery: {
        const st = buf[start + 5];
        this.txStatus = st === 0x49 ? 'I' : st === 0x54 ? 'T' : 'E';
        if (e?.k === 'query') {
          e.run.finish();
          this.pop();
        } else if (e?.k === 'sync') {
          this.pop();
        } else throw new DesyncError('ReadyForQuery arrived that belongs to no Sync or Query');
        // Portals end with their transaction.
        if (this.txStatus === 'I' && this.portals.size > 0) this.portals.clear();
        out.pushRange(buf, start, end);
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
