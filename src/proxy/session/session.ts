/**
 * One client session after startup: relays messages between the client and
 * its upstream connection, asking the statement hook about every statement
 * before it is forwarded. Streams with backpressure in both directions, so
 * memory stays bounded whatever the result size.
 */
import type { Logger } from '../../log/logger.js';
import type { DatabaseConfig, IdentityConfig } from '../../config/types.js';
import {
  B,
  F,
  Framer,
  Outbox,
  ProtocolError,
  decodeBind,
  decodeExecute,
  decodeParse,
  decodeQueryAt,
  decodeTarget,
  encodeError,
  encodeErrorLike,
  encodeParse,
  encodeSync,
  encodeTerminate,
  type PgErrorFields,
  type TxStatus,
} from '../../wire/index.js';
import { MessageWriter } from '../../wire/writer.js';
import { ClientText } from '../../wire/client-text.js';
import { InternalCollector, RELEASE, ROLLBACK, SAVEPOINT, encodeInternalQuery, type InternalResult } from './internal-query.js';
import { FORWARD, type SessionHooks, type SessionInfo, type StatementSource, type Verdict } from '../../contract/statement-hooks.js';
import type { SessionAuth, StatementTimers } from '../../contract/statement-hooks.js';
import { CopyViolation, DesyncError, ResponseTracker, StatementRun, type PreparedInfo } from './tracker.js';
import { ownBytes } from '../transport/fast-io.js';
import { NativeSocket, consumeSocket, type RelaySocket } from '../transport/native-io.js';

type Sock = RelaySocket;

/**
 * Write bytes [start, end) of `b`, which may be a transient read chunk: Node's
 * sockets need a copy, the native one copies only what it must keep.
 */
function send(sock: Sock, b: Buffer, start: number, end: number): boolean {
  if (sock instanceof NativeSocket) return sock.write(b, start, end);
  return sock.write(ownBytes(start === 0 && end === b.length ? b : b.subarray(start, end)));
}

/**
 * What Warden sends upstream in place of a refused statement: a Parse that
 * always fails. The upstream then behaves exactly as if the statement had
 * failed — an open transaction block is aborted, the rest of an extended
 * batch is discarded until Sync — and Warden replaces its error with the
 * refusal. The statement name avoids touching the client's unnamed statement.
 */
const REFUSAL_PARSE = encodeParse('warden_refused', "SELECT 'statement refused by Warden'::pg_catalog.int4");
const SYNC = encodeSync();
const FLUSH = new MessageWriter().begin(F.Flush).end().toBuffer();
/** How long a client that broke the protocol waits for the answers to its earlier requests before its FATAL. */
const VIOLATION_GRACE_MS = 1_000;
/** Responses held for a pending audit record beyond this pause the upstream (see `Session.holdUntil`). */
const MAX_HELD_BYTES = 1024 * 1024;

/**
 * A statement nobody observes (no rewriter, no onDone — always so without a
 * statement hook, and for most allowed statements): one shared run stands for
 * all of them, since nothing of it is ever read. Saves an allocation per statement.
 */
const NO_HOOK_RUN = new StatementRun(undefined, undefined);
/** Bytes of a client's later messages kept (read, not yet processed) while a verdict is pending. */
const PENDING_READ_CAP = 64 * 1024;
/** How long a halted statement's session waits for its cancel request to be handled, at most. */
const HALT_CANCEL_WAIT_MS = 2000;
const NO_HOOK_STATEMENT = Object.freeze({ sql: '', paramTypes: [] as number[] });

/**
 * The frontend message types PostgreSQL accepts once a session has started
 * (postgres.c, SocketBackend): any other type byte — a StartupMessage,
 * SSLRequest or CancelRequest sent again (type 0), a PasswordMessage — is
 * answered with FATAL 08P01 as soon as it arrives.
 */
const SESSION_TYPES = new Uint8Array(256);
for (const t of [F.Query, F.FunctionCall, F.Terminate, F.Bind, F.Parse, F.Close, F.Describe, F.Execute, F.Flush, F.Sync, F.CopyData, F.CopyDone, F.CopyFail]) {
  SESSION_TYPES[t] = 1;
}
/** Types that may be long (statements, parameters, COPY data); every other one is at most {@link SMALL_MESSAGE_LIMIT} bytes, as in PostgreSQL. */
const LARGE_TYPES = new Uint8Array(256);
for (const t of [F.Query, F.FunctionCall, F.Bind, F.Parse, F.CopyData]) LARGE_TYPES[t] = 1;
/** PostgreSQL's PQ_SMALL_MESSAGE_LIMIT. */
const SMALL_MESSAGE_LIMIT = 10_000;

/** The message a verdict applies to (see Session.decide). */
type MessageKind = 0 | 1 | 2;
const QUERY: MessageKind = 0;
const BIND: MessageKind = 1;
const EXECUTE: MessageKind = 2;

/** How long Warden's own catalog read may wait for the session to be quiet, or run. */
const INTERNAL_TIMEOUT_MS = 5_000;

/** Parse bodies up to this size are remembered for the next Parse (one per session). */
const LAST_PARSE_MAX = 4096;

function encodeDescribePortal(name: string): Buffer {
  return new MessageWriter().begin(F.Describe).byte('P'.charCodeAt(0)).cstring(name).end().toBuffer();
}

/**
 * The reasons a session ends that it acts on (a lost upstream is reported to the
 * client; a Terminate is passed on, not sent again; neither cancels a running
 * statement). Any other reason is free text (an error, a FATAL message). The
 * reason is logged and recorded in the audit's session.end as is.
 */
export const END_REASON = Object.freeze({
  clientTerminate: 'client sent Terminate',
  clientClosed: 'client closed the connection',
  upstreamClosed: 'upstream closed the connection',
} as const);

export type SessionState = 'idle' | 'active' | 'active (COPY)' | 'idle in transaction' | 'idle in transaction (aborted)' | 'deciding' | 'closed';

/** See {@link Session.activity}. */
export interface SessionActivity {
  readonly state: SessionState;
  /** The latest statement decided (null before the first, or without a statement hook), as the client sent it. */
  readonly statement: string | null;
  /** When it was sent (ms since the epoch); null when statements are not timed (no metrics timers). */
  readonly statementAt: number | null;
  /** The client connection's TLS version (`TLSv1.3`), null without TLS. */
  readonly tlsVersion: string | null;
}

export interface SessionOptions {
  id: string;
  client: Sock;
  upstream: Sock;
  identity: IdentityConfig;
  database: DatabaseConfig;
  auth: SessionAuth;
  clientAddress: string;
  clientPort: number;
  tls: boolean;
  startupParams: ReadonlyMap<string, string>;
  wardenSettings: ReadonlyMap<string, string>;
  parameters: Map<string, string>;
  txStatus: TxStatus;
  upstreamSearchPath?: string;
  hooks: SessionHooks;
  log: Logger;
  maxMessageSize: number;
  /** Bytes from the client already read after startup. */
  clientLeftover: Buffer;
  upstreamLeftover: Buffer;
  onClose: (reason: string) => void;
}

export class Session implements SessionInfo {
  readonly id: string;
  readonly identity: IdentityConfig;
  readonly database: DatabaseConfig;
  readonly auth: SessionAuth;
  readonly clientAddress: string;
  readonly clientPort: number;
  readonly tls: boolean;
  readonly startupParams: ReadonlyMap<string, string>;
  readonly wardenSettings: ReadonlyMap<string, string>;
  readonly upstreamSearchPath?: string;

  private readonly client: Sock;
  private readonly upstream: Sock;
  private readonly hooks: SessionHooks;
  private readonly log: Logger;
  private readonly tracker = new ResponseTracker();
  private readonly clientFramer: Framer;
  private readonly serverFramer: Framer;
  private readonly toUpstream = new Outbox();
  private readonly toClient = new Outbox();
  /** The last Parse message's body and its decoding (see onClientMessage), valid for one reading of texts. */
  private lastParse: { readonly bytes: Buffer; readonly name: string; readonly info: PreparedInfo; readonly epoch: number } | null = null;
  /** How PostgreSQL will read this session's SQL texts (client_encoding, standard_conforming_strings). */
  private readonly text: ClientText;
  private waitingForHook = false;
  /** The client broke the protocol: the FATAL it gets once the requests before it are answered. */
  private violation: Omit<PgErrorFields, 'severity'> | null = null;
  private upstreamFull = false;
  private clientFull = false;
  /**
   * Responses are held back from the client until this resolves: the audit
   * record of a statement forwarded before it was durable (see
   * `Verdict.durable`). The latest one; records become durable in order.
   */
  private gate: Promise<void> | null = null;
  /** Bytes for the client held while a gate is pending (copies: the read buffers are reused). */
  private held: Buffer[] = [];
  private heldBytes = 0;
  /** Too much held: the upstream is paused until the gate opens. */
  private heldFull = false;
  private closed = false;
  private upstreamFatal = false;
  private readonly onClose: (reason: string) => void;
  /** Metrics: where statement times go (undefined: nothing is timed), and when the latest statement was forwarded. */
  private readonly timers: StatementTimers | undefined;
  private sentAt = 0;
  /** When the session started relaying (ms since the epoch), for `warden sessions list`. */
  readonly startedAt = Date.now();
  /**
   * The latest statement asked about and when (see {@link activity}): two field writes per
   * statement, no clock read of its own (the metrics' `t0`, performance.now(); 0 without timers).
   */
  private current: StatementSource | null = null;
  private currentAt = 0;

  constructor(o: SessionOptions) {
    this.id = o.id;
    this.identity = o.identity;
    this.auth = o.auth;
    this.database = o.database;
    this.clientAddress = o.clientAddress;
    this.clientPort = o.clientPort;
    this.tls = o.tls;
    this.startupParams = o.startupParams;
    this.wardenSettings = o.wardenSettings;
    this.upstreamSearchPath = o.upstreamSearchPath;
    this.client = o.client;
    this.upstream = o.upstream;
    this.hooks = o.hooks;
    this.log = o.log;
    this.onClose = o.onClose;
    this.timers = o.hooks.timers?.(o.database);
    this.pendingClient = o.clientLeftover;
    this.pendingUpstream = o.upstreamLeftover;
    for (const [k, v] of o.parameters) this.tracker.parameters.set(k, v);
    this.tracker.txStatus = o.txStatus;
    this.tracker.onHalt = () => this.halted();
    this.text = new ClientText(o.parameters);

    const max = o.maxMessageSize;
    const small = Math.min(max, SMALL_MESSAGE_LIMIT);
    this.clientFramer = new Framer(
      {
        wantsWhole: (t) => t !== F.CopyData,
        onMessage: (t, buf, start, end) => this.onClientMessage(t, buf, start, end),
        onStream: (_t, buf, start, end) => this.toUpstream.pushRange(buf, start, end),
      },
      (t) => (LARGE_TYPES[t] === 1 ? max : small),
      SESSION_TYPES,
    );
    this.serverFramer = new Framer({
      wantsWhole: (t) => this.tracker.wantsWhole(t),
      onMessage: (t, buf, start, end) => this.onServerMessage(t, buf, start, end),
      onStream: (t, buf, start, end, first) => {
        this.tracker.onStreamed(t, first);
        this.toClient.pushRange(buf, start, end);
      },
    });
  }

  get parameters(): ReadonlyMap<string, string> {
    return this.tracker.parameters;
  }

  get txStatus(): TxStatus {
    return this.tracker.txStatus;
  }

  /** Start relaying. */
  start(): void {
    const { client, upstream } = this;
    consumeSocket(client, (buf, start, end) => this.fromClient(buf, start, end));
    consumeSocket(upstream, (buf, start, end) => this.fromUpstream(buf, start, end));
    client.on('drain', () => {
      this.clientFull = false;
      this.updateFlow();
    });
    upstream.on('drain', () => {
      this.upstreamFull = false;
      this.updateFlow();
    });
    client.on('error', (err) => this.end(`client error: ${err.message}`));
    upstream.on('error', (err) => this.end(`upstream error: ${err.message}`));
    client.on('close', () => this.end(END_REASON.clientClosed));
    upstream.on('close', () => this.end(END_REASON.upstreamClosed));
    this.hooks.sessionStart?.(this);
    if (this.pendingUpstream.length) this.fromUpstream(this.pendingUpstream, 0, this.pendingUpstream.length);
    if (this.pendingClient.length) this.fromClient(this.pendingClient, 0, this.pendingClient.length);
    this.pendingClient = this.pendingUpstream = Buffer.alloc(0);
    this.updateFlow();
  }

  private pendingClient: Buffer;
  private pendingUpstream: Buffer;

  /** Forward a CancelRequest to this session's upstream backend (set by the server). */
  cancel: () => void = () => undefined;

  readonly #interruptListeners = new Set<(why: 'cancel' | 'closed') => void>();

  get isClosed(): boolean {
    return this.closed;
  }

  /** Be told when the client cancels (CancelRequest) or the session ends, e.g. while a verdict is pending. */
  onInterrupt(listener: (why: 'cancel' | 'closed') => void): () => void {
    this.#interruptListeners.add(listener);
    return () => this.#interruptListeners.delete(listener);
  }

  /** Tell the listeners (see {@link onInterrupt}). */
  interrupt(why: 'cancel' | 'closed'): void {
    for (const l of [...this.#interruptListeners]) {
      try {
        l(why);
      } catch (err) {
        this.log.error({ err }, 'interrupt listener failed');
      }
    }
  }

  /**
   * What the session is doing, read on demand (`warden sessions list`): its state like
   * pg_stat_activity's (`deciding`: a verdict is pending, e.g. an approval), the latest
   * statement's text as the client sent it (callers redact it) and when it was sent.
   */
  activity(): SessionActivity {
    const state: SessionState = this.closed
      ? 'closed'
      : this.waitingForHook
        ? 'deciding'
        : this.tracker.copyIn
          ? 'active (COPY)'
          : this.tracker.pending > 0
            ? 'active'
            : this.tracker.txStatus === 'T'
              ? 'idle in transaction'
              : this.tracker.txStatus === 'E'
                ? 'idle in transaction (aborted)'
                : 'idle';
    const c = this.current;
    const client = this.client as { getProtocol?: () => string | null };
    const tlsVersion = this.tls && typeof client.getProtocol === 'function' ? client.getProtocol() : null;
    const at = c && this.currentAt > 0 ? Math.round(performance.timeOrigin + this.currentAt) : null;
    return { state, statement: c ? c.sql : null, statementAt: at, tlsVersion };
  }

  // ---- flow control --------------------------------------------------------

  private updateFlow(): void {
    if (this.closed) return;
    // While a verdict is pending (an approval may take minutes) the client is still read, up to
    // PENDING_READ_CAP bytes kept unprocessed by the framer: so a client that goes away is seen
    // (its request is cancelled, nothing runs for it) rather than waited for.
    const hold = this.waitingForHook && this.clientFramer.buffered >= PENDING_READ_CAP;
    if (hold || this.upstreamFull || this.violation) this.client.pause();
    else this.client.resume();
    if (this.clientFull || this.heldFull) this.upstream.pause();
    else this.upstream.resume();
  }

  private flushUpstream(): void {
    const out = this.toUpstream;
    const b = out.takeRange();
    if (b && !this.upstream.destroyed && !send(this.upstream, b, out.rangeStart, out.rangeEnd)) {
      this.upstreamFull = true;
      this.updateFlow();
    }
  }

  private flushClient(): void {
    const out = this.toClient;
    const b = out.takeRange();
    if (!b) return;
    if (this.gate) {
      this.held.push(Buffer.from(b.subarray(out.rangeStart, out.rangeEnd)));
      this.heldBytes += out.rangeEnd - out.rangeStart;
      if (this.heldBytes > MAX_HELD_BYTES && !this.heldFull) {
        this.heldFull = true;
        this.updateFlow();
      }
      return;
    }
    if (!this.client.destroyed && !send(this.client, b, out.rangeStart, out.rangeEnd)) {
      this.clientFull = true;
      this.updateFlow();
    }
  }

  /**
   * Hold every response from now on until `durable` resolves (the statement's
   * audit record is on stable storage); when it rejects, nothing held is sent
   * and the session ends with 58030: the statement ran (a read, which changed
   * nothing) but Warden cannot show its result unrecorded.
   */
  private holdUntil(durable: Promise<void>): void {
    this.gate = durable;
    durable.then(
      () => {
        if (this.gate !== durable || this.closed) return;
        this.gate = null;
        const held = this.held;
        this.held = [];
        this.heldBytes = 0;
        if (held.length > 0 && !this.client.destroyed) {
          const b = held.length === 1 ? held[0] : Buffer.concat(held);
          if (!send(this.client, b, 0, b.length)) this.clientFull = true;
        }
        if (this.heldFull) this.heldFull = false;
        this.updateFlow();
      },
      (err: unknown) => {
        this.held = [];
        this.heldBytes = 0;
        this.fatal({
          code: '58030',
          message: `audit log unavailable (${err instanceof Error ? err.message : String(err)}); the statement's result was withheld and the session ended`,
          hint: 'Warden shows no result whose audit record is not durable. Reconnect when the audit store is writable.',
        });
      },
    );
  }

  // ---- client → upstream ---------------------------------------------------

  private fromClient(buf: Buffer, start: number, end: number): void {
    if (this.closed || this.violation) return;
    try {
      this.clientFramer.push(buf, start, end);
    } catch (err) {
      this.protocolFailure(err);
      return;
    }
    // Client messages only ever produce bytes for the upstream (refusals come back from it).
    this.flushUpstream();
    if (this.waitingForHook) this.updateFlow();
  }

  /** Returns false to pause the client framer while an asynchronous verdict is pending. */
  private onClientMessage(type: number, buf: Buffer, start: number, end: number): boolean {
    if (this.closed) return false;
    if (this.tracker.copyIn) {
      // The upstream reads COPY data: PostgreSQL ignores Sync and Flush now and ends the
      // session on anything else (Warden does so itself, before the message goes anywhere).
      if (type === F.Sync || type === F.Flush) {
        this.toUpstream.pushRange(buf, start, end);
        return true;
      }
      if (type !== F.CopyDone && type !== F.CopyFail && type !== F.Terminate) {
        throw new ProtocolError(`unexpected message type 0x${type.toString(16).toUpperCase().padStart(2, '0')} during COPY from stdin`);
      }
    }
    if (this.tracker.skipping && type !== F.Sync && type !== F.Terminate) {
      // The upstream is discarding every message until Sync after an error in this extended
      // batch: like PostgreSQL, Warden ignores the message — nothing to decide, nothing to send.
      return true;
    }
    if (type === F.Query) {
      if (!this.hooks.statement) {
        // The relay-only hot path: nothing to decide, nothing to decode.
        this.tracker.query(NO_HOOK_RUN);
        this.toUpstream.pushRange(buf, start, end);
        return true;
      }
      const sql = decodeQueryAt(buf, start, end);
      if (this.text.fast) return this.decide({ protocol: 'simple', sql }, buf, start, end);
      const read = this.text.read(buf, start + 5, end - 1);
      const stmt: StatementSource = typeof read === 'string' ? { protocol: 'simple', sql: read } : { protocol: 'simple', sql, unreadable: read };
      return this.decide(stmt, buf, start, end);
    }
    // Views of the message are made only where a decoder needs one: this runs for every message.
    const bodyAt = start + 5;
    switch (type) {
      case F.Parse: {
        if (!this.hooks.statement) {
          this.tracker.parse('', NO_HOOK_STATEMENT);
          this.toUpstream.pushRange(buf, start, end);
          return true;
        }
        // Clients re-send the same Parse (an unnamed statement per execution): same bytes, same decoding.
        const last = this.lastParse;
        const len = end - bodyAt;
        const epoch = this.text.epoch;
        if (last !== null && last.epoch === epoch && last.bytes.length === len && buf.compare(last.bytes, 0, len, bodyAt, end) === 0) {
          this.tracker.parse(last.name, last.info);
        } else {
          const p = decodeParse(buf.subarray(bodyAt, end));
          const info: PreparedInfo = Object.freeze(this.text.fast ? { sql: p.sql, paramTypes: Object.freeze(p.paramTypes) } : this.readParse(p.sql, p.paramTypes, buf, bodyAt));
          this.tracker.parse(p.name, info);
          if (len <= LAST_PARSE_MAX) this.lastParse = { bytes: Buffer.from(buf.subarray(bodyAt, end)), name: p.name, info, epoch };
        }
        this.toUpstream.pushRange(buf, start, end);
        return true;
      }
      case F.Bind: {
        if (!this.hooks.statement) {
          this.tracker.bindUndecided();
          this.toUpstream.pushRange(buf, start, end);
          return true;
        }
        const b = decodeBind(buf.subarray(bodyAt, end));
        const info = this.tracker.lookupStatement(b.statement);
        if (!info) {
          this.applyBind(buf, start, end, b.portal, {
            action: 'error',
            error: { code: '26000', message: `prepared statement "${b.statement}" does not exist` },
          });
          return true;
        }
        return this.decide(
          {
            protocol: 'extended',
            sql: info.sql,
            unreadable: info.unreadable,
            statementName: b.statement,
            portal: b.portal,
            paramTypes: info.paramTypes,
            paramFormats: b.paramFormats,
            params: b.params,
          },
          buf,
          start,
          end,
        );
      }
      case F.Execute: {
        if (!this.hooks.statement) {
          this.tracker.execute(null);
          this.toUpstream.pushRange(buf, start, end);
          return true;
        }
        // The unnamed portal (nearly every Execute) without decoding.
        const portal = end > bodyAt && buf[bodyAt] === 0 ? '' : decodeExecute(buf.subarray(bodyAt, end)).portal;
        if (this.tracker.trusted(portal)) {
          // The portal of a Bind Warden decided: that verdict covers it.
          if (this.tracker.needsDescribe(portal)) {
            this.toUpstream.push(encodeDescribePortal(portal));
            this.tracker.describe('P', portal, true);
          }
          this.tracker.execute(portal);
          this.toUpstream.pushRange(buf, start, end);
          return true;
        }
        return this.decideExecute(portal, buf, start, end);
      }
      case F.Describe: {
        const what = end > bodyAt ? buf[bodyAt] : -1;
        if (!this.hooks.statement && (what === 0x53 || what === 0x50)) {
          this.tracker.describe(what === 0x53 ? 'S' : 'P', null);
          this.toUpstream.pushRange(buf, start, end);
          return true;
        }
        if (what === 0x50 && end === bodyAt + 2 && buf[bodyAt + 1] === 0) {
          this.tracker.describe('P', '');
          this.toUpstream.pushRange(buf, start, end);
          return true;
        }
        const { target, name } = decodeTarget(buf.subarray(bodyAt, end), 'Describe');
        this.tracker.describe(target, name);
        this.toUpstream.pushRange(buf, start, end);
        return true;
      }
      case F.Close: {
        const { target, name } = decodeTarget(buf.subarray(bodyAt, end), 'Close');
        this.tracker.close(target, name);
        this.toUpstream.pushRange(buf, start, end);
        return true;
      }
      case F.Sync:
        this.tracker.sync();
        this.toUpstream.pushRange(buf, start, end);
        return true;
      case F.CopyDone:
      case F.CopyFail:
        this.tracker.copyEnd();
        this.toUpstream.pushRange(buf, start, end);
        return true;
      case F.Flush:
      case F.CopyData:
        this.toUpstream.pushRange(buf, start, end);
        return true;
      case F.FunctionCall: {
        // The fast-path function call runs a function by OID, out of sight of statement analysis.
        const run = new StatementRun(undefined, undefined, {
          code: '42501',
          message: 'the function call protocol message is not allowed through Warden',
          hint: 'Call the function with a SQL statement instead.',
        });
        if (!this.hooks.statement) {
          this.tracker.query(new StatementRun(undefined, undefined));
          this.toUpstream.pushRange(buf, start, end);
          return true;
        }
        this.refuse(run, true);
        return true;
      }
      case F.Terminate:
        this.toUpstream.pushRange(buf, start, end);
        this.flushUpstream();
        this.end(END_REASON.clientTerminate);
        return false;
      default:
        throw new ProtocolError(`invalid frontend message type ${type}`);
    }
  }

  /** A Parse's text as PostgreSQL will read it (off the fast path): its bytes follow the statement name. */
  private readParse(lossy: string, paramTypes: number[], buf: Buffer, bodyAt: number): PreparedInfo {
    const from = buf.indexOf(0, bodyAt) + 1;
    const read = this.text.read(buf, from, buf.indexOf(0, from));
    return typeof read === 'string'
      ? { sql: read, paramTypes: Object.freeze(paramTypes) }
      : { sql: lossy, paramTypes: Object.freeze(paramTypes), unreadable: read };
  }

  /** Called when nothing is pending upstream any more (see readInTransaction). */
  private quietWaiters: (() => void)[] = [];
  /** Internal reads run one at a time. */
  private internalChain: Promise<unknown> = Promise.resolve();

  /** See {@link SessionInfo.readInTransaction}. */
  readInTransaction(sql: string, params: readonly (string | null)[]): Promise<{ rows: Record<string, unknown>[] } | null> {
    const run = this.internalChain.then(() => this.readNow(sql, params));
    this.internalChain = run.catch(() => undefined);
    return run;
  }

  private async readNow(sql: string, params: readonly (string | null)[]): Promise<{ rows: Record<string, unknown>[] } | null> {
    // Mid extended batch (a Parse sent, its Bind being decided): fine as long as nothing ran since
    // the ReadyForQuery that reported the transaction block; the upstream answers what it has on Flush.
    if (this.tracker.unsynced) {
      if (!this.tracker.statusCurrent || this.tracker.txStatus !== 'T') return null;
      this.toUpstream.push(FLUSH);
      this.flushUpstream();
    }
    if (!(await this.quiet())) return null;
    if (this.tracker.txStatus !== 'T' || !this.tracker.statusCurrent) return null;
    const savepoint = this.internal(SAVEPOINT);
    const query = this.internal(encodeInternalQuery(sql, params));
    // A catalog read that hangs (a lock held by another session): cancel it; the savepoint undoes its error.
    const timer = setTimeout(() => this.cancel(), INTERNAL_TIMEOUT_MS);
    let answer: InternalResult;
    try {
      const opened = await savepoint;
      answer = await query;
      if (opened.error || opened.status !== 'T') throw new Error(`could not open a savepoint: ${opened.error ?? opened.status}`);
    } finally {
      clearTimeout(timer);
    }
    if (answer.status !== 'T') await this.internal(ROLLBACK);
    const closed = await this.internal(RELEASE);
    if (closed.status !== 'T') {
      this.log.error({ status: closed.status, err: closed.error }, 'an internal catalog read left the transaction in a wrong state');
      this.fatal({ code: 'XX000', message: 'Warden could not restore the transaction after reading the catalog; the session was ended' });
      throw new Error('the session was ended');
    }
    if (answer.error) throw new Error(answer.error);
    return { rows: answer.rows };
  }

  /** Send an internal request; resolves with its answer (at its ReadyForQuery). */
  private internal(bytes: Buffer): Promise<InternalResult> {
    return new Promise((resolve) => {
      // The session may end first: the answer then never comes.
      const off = this.onInterrupt((why) => {
        if (why === 'closed') resolve({ rows: [], error: 'the session ended', status: 'E' });
      });
      const c = new InternalCollector((r) => {
        off();
        resolve(r);
      });
      this.tracker.internal(c.sink);
      this.toUpstream.push(bytes);
      this.flushUpstream();
    });
  }

  /** Resolves true once nothing of the client's is pending upstream; false when that cannot come (an open batch, the end). */
  private quiet(): Promise<boolean> {
    const idle = (): boolean | null => (this.closed || this.tracker.skipping ? false : this.tracker.pending === 0 ? true : null);
    const now = idle();
    if (now !== null) return Promise.resolve(now);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.quietWaiters = this.quietWaiters.filter((w) => w !== waiter);
        resolve(false);
      }, INTERNAL_TIMEOUT_MS);
      const waiter = (): void => {
        clearTimeout(timer);
        resolve(idle() === true);
      };
      this.quietWaiters.push(waiter);
    });
  }

  /** See {@link SessionInfo.lexingMayChange}. */
  lexingMayChange(): void {
    this.text.mayChange();
  }

  /** Notices waiting for the upstream's streamed message to end (see {@link notice}). */
  private noticesDue: Buffer[] | null = null;

  /** See {@link SessionInfo.notice}: now, or once the message being streamed to the client has ended. */
  notice(fields: Omit<PgErrorFields, 'severity'> & { readonly severity: 'NOTICE' | 'WARNING' | 'INFO' }): void {
    if (this.closed) return;
    (this.noticesDue ??= []).push(encodeErrorLike(B.NoticeResponse, fields));
    if (!this.serverFramer.midMessage) this.sendNoticesDue();
  }

  private sendNoticesDue(): void {
    const due = this.noticesDue!;
    this.noticesDue = null;
    for (const n of due) this.toClient.push(n);
    this.flushClient();
  }

  /**
   * An Execute of a portal {@link ResponseTracker.trusted} does not vouch for:
   * a SQL cursor (DECLARE, WITH HOLD, a function's refcursor), or a portal of a
   * Bind whose record another statement, a transaction end or a failed Bind
   * made uncertain. A named portal is decided as the equivalent FETCH (same
   * analysis, policy, masking and audit); the unnamed portal, which only a
   * Bind creates, is refused.
   */
  private decideExecute(portal: string, buf: Buffer, start: number, end: number): boolean {
    if (portal === '') {
      this.applyExecute(buf, start, end, portal, {
        action: 'error',
        error: {
          code: '0A000',
          message: 'Warden cannot tell which statement the unnamed portal holds now (another statement ran, or a Sync was sent, since its Bind), so the Execute was not run',
          hint: 'Send a Bind again before the Execute, or use a named cursor and FETCH.',
        },
      });
      return true;
    }
    const { maxRows } = decodeExecute(buf.subarray(start + 5, end));
    const sql = `FETCH FORWARD ${maxRows > 0 ? maxRows : 'ALL'} FROM "${portal.replace(/"/g, '""')}"`;
    const stmt: StatementSource = { protocol: 'extended', sql, statementName: '', portal, paramTypes: [], paramFormats: [], params: [] };
    return this.decide(stmt, buf, start, end, EXECUTE);
  }

  /**
   * Ask the hook about the statement whose message (a Query, a Bind, or an
   * Execute decided on its own) is bytes [start, end) of `buf`; apply
   * synchronously when it answers synchronously (the hot path), otherwise
   * pause the client until the verdict arrives. Ranges and no closures: this
   * runs for every statement.
   */
  private decide(stmt: StatementSource, buf: Buffer, start: number, end: number, kind: MessageKind = stmt.protocol === 'simple' ? QUERY : BIND): boolean {
    const hook = this.hooks.statement;
    const t0 = this.timers !== undefined ? performance.now() : 0;
    this.current = stmt;
    this.currentAt = t0;
    if (!hook) {
      this.apply(kind, stmt, buf, start, end, FORWARD, t0);
      return true;
    }
    let v: Verdict | Promise<Verdict>;
    try {
      v = hook(this, stmt);
    } catch (err) {
      this.apply(kind, stmt, buf, start, end, this.hookFailure(err), t0);
      return true;
    }
    if (!(v instanceof Promise)) {
      this.apply(kind, stmt, buf, start, end, v, t0);
      return true;
    }
    // The message outlives this read: keep a copy of it. The hook reads the statement's bind
    // parameters after its own awaits too (the audit record, an approval request): they are
    // views of the read buffer, which the next read of any socket overwrites, so they become
    // copies now, in the array the hook holds.
    const kept = Buffer.from(buf.subarray(start, end));
    if (stmt.protocol === 'extended') {
      const params = stmt.params as (Buffer | null)[];
      for (let i = 0; i < params.length; i++) {
        const p = params[i];
        if (p) params[i] = Buffer.from(p);
      }
    }
    this.waitingForHook = true;
    this.updateFlow();
    v.catch((err: unknown) => this.hookFailure(err)).then((verdict) => {
      if (this.closed) return;
      this.waitingForHook = false;
      try {
        this.apply(kind, stmt, kept, 0, kept.length, verdict, t0);
        if (this.closed) return;
        this.clientFramer.resume();
      } catch (err) {
        this.protocolFailure(err);
        return;
      }
      this.flushUpstream();
      this.flushClient();
      this.updateFlow();
    });
    return false;
  }

  private hookFailure(err: unknown): Verdict {
    this.log.error({ err }, 'statement hook failed; refusing the statement');
    return {
      action: 'error',
      error: { code: 'XX000', message: 'Warden could not decide on this statement, so it was not run', detail: 'internal error in Warden; see its log' },
    };
  }

  /** Carry out the verdict on the statement's message, bytes [start, end) of `buf`; `t0`: when it arrived (metrics). */
  private apply(kind: MessageKind, stmt: StatementSource, buf: Buffer, start: number, end: number, v: Verdict, t0: number): void {
    const timers = this.timers;
    if (timers !== undefined) {
      this.sentAt = performance.now();
      timers.overhead.observe((this.sentAt - t0) / 1000);
    }
    if (stmt.protocol === 'simple') this.applyQuery(buf, start, end, v);
    else if (kind === BIND) this.applyBind(buf, start, end, stmt.portal, v);
    else this.applyExecute(buf, start, end, stmt.portal, v);
  }

  private applyExecute(buf: Buffer, start: number, end: number, portal: string, v: Verdict): void {
    if (v.action === 'error' && v.fatal) {
      this.fatal(v.error);
      return;
    }
    if (v.action === 'forward') {
      if (v.durable) this.holdUntil(v.durable);
      const run = this.timed(new StatementRun(v.rows, v.onDone));
      if (v.limit) run.limit = v.limit;
      // The rewriter must see the columns: a hidden Describe of the portal first.
      if (run.rewriter) this.toUpstream.push(encodeDescribePortal(portal));
      this.tracker.executeDecided(run, run.rewriter !== undefined);
      this.toUpstream.pushRange(buf, start, end);
    } else {
      this.refuse(new StatementRun(undefined, v.onDone, v.error), false);
    }
  }

  private applyQuery(buf: Buffer, start: number, end: number, v: Verdict): void {
    if (v.action === 'error' && v.fatal) {
      this.fatal(v.error);
      return;
    }
    if (v.action === 'forward') {
      if (v.durable) this.holdUntil(v.durable);
      this.tracker.query(this.runFor(v));
      this.toUpstream.pushRange(buf, start, end);
    } else {
      this.refuse(new StatementRun(undefined, v.onDone, v.error), true);
    }
  }

  private applyBind(buf: Buffer, start: number, end: number, portal: string, v: Verdict): void {
    if (v.action === 'error' && v.fatal) {
      this.fatal(v.error);
      return;
    }
    if (v.action === 'forward') {
      if (v.durable) this.holdUntil(v.durable);
      this.tracker.bind(portal, this.runFor(v));
      this.toUpstream.pushRange(buf, start, end);
    } else {
      this.tracker.dropPortal(portal);
      this.refuse(new StatementRun(undefined, v.onDone, v.error), false);
    }
  }

  /** The run of a forwarded Query or Bind: the shared no-op one when nothing needs it. */
  private runFor(v: Extract<Verdict, { action: 'forward' }>): StatementRun {
    if (this.timers === undefined && v.rows === undefined && v.onDone === undefined && v.limit === undefined) return NO_HOOK_RUN;
    const run = this.timed(new StatementRun(v.rows, v.onDone));
    if (v.limit) run.limit = v.limit;
    return run;
  }

  /**
   * A statement crossed its limit (the tracker sent the client its error and mutes the rest):
   * cancel it upstream. What the client gets next (the ReadyForQuery) waits until the cancel
   * request was handled (PostgreSQL signals the backend, then closes the cancel connection), so
   * a cancel landing late can never hit the client's next statement; at most HALT_CANCEL_WAIT_MS.
   */
  private halted(): void {
    const cancelled = this.cancelUpstream().catch((err: Error) => this.log.warn({ reason: err.message }, 'cancelling a halted statement upstream failed'));
    const bounded = Promise.race([cancelled, new Promise<void>((r) => setTimeout(r, HALT_CANCEL_WAIT_MS).unref())]).then(() => undefined);
    const prior = this.gate;
    this.holdUntil(prior ? Promise.all([prior, bounded]).then(() => undefined) : bounded);
  }

  /** Send a CancelRequest for this session's upstream backend (set by the server); resolves once it was handled. */
  cancelUpstream: () => Promise<void> = () => Promise.resolve();

  /** A forwarded statement's run, timed from now to its completion (metrics on). */
  private timed(run: StatementRun): StatementRun {
    if (this.timers !== undefined) {
      run.sentAt = this.sentAt;
      run.timer = this.timers.upstream;
    }
    return run;
  }

  /** Send the always-failing Parse instead of a refused statement (plus Sync for a simple query). */
  private refuse(run: StatementRun, withSync: boolean): void {
    this.tracker.substitute(run);
    this.toUpstream.push(REFUSAL_PARSE);
    if (withSync) {
      this.tracker.sync();
      this.toUpstream.push(SYNC);
    }
  }

  // ---- upstream → client ---------------------------------------------------

  private fromUpstream(buf: Buffer, start: number, end: number): void {
    if (this.closed) return;
    try {
      this.serverFramer.push(buf, start, end);
    } catch (err) {
      this.flushClient();
      if (err instanceof CopyViolation) {
        this.log.warn({ err: err.message }, 'protocol violation by the client during COPY');
        this.fatal({ code: '08P01', message: err.message });
      } else if (err instanceof DesyncError) {
        this.log.error({ err: err.message }, 'protocol tracking lost; ending the session');
        this.fatal({ code: '08P01', message: 'Warden lost track of the protocol state and ended the session' });
      } else {
        this.log.error({ err }, 'invalid data from the upstream; ending the session');
        this.fatal({ code: '08P01', message: 'invalid data from the upstream server' });
      }
      return;
    }
    this.flushClient();
    if (this.noticesDue !== null && !this.serverFramer.midMessage) this.sendNoticesDue();
    if (this.violation && this.tracker.pending === 0) this.fatal(this.violation);
  }

  private onServerMessage(type: number, buf: Buffer, start: number, end: number): void {
    if (type === B.ErrorResponse && this.isFatal(buf, start + 5)) this.upstreamFatal = true;
    this.tracker.onMessage(type, buf, start, end, this.toClient);
    if (this.quietWaiters.length > 0 && this.tracker.pending === 0) {
      const waiters = this.quietWaiters;
      this.quietWaiters = [];
      for (const w of waiters) w();
    }
    if (type === B.ParameterStatus) this.text.update(this.tracker.parameters);
    else if (type === B.ReadyForQuery && !this.text.isSettled && this.tracker.pending === 0 && this.tracker.txStatus === 'I') this.text.settle();
  }

  private isFatal(buf: Buffer, at: number): boolean {
    // Field 'S' comes first in PostgreSQL's ErrorResponse.
    const sev = buf.toString('latin1', at + 1, at + 6);
    return buf[at] === 0x53 && (sev === 'FATAL' || sev === 'PANIC');
  }

  // ---- endings -------------------------------------------------------------

  private protocolFailure(err: unknown): void {
    if (err instanceof ProtocolError) {
      this.log.warn({ err: err.message }, 'protocol violation by the client');
      // Like PostgreSQL, which answers the messages before the bad one first: what was framed
      // before it goes upstream, the client is not read any more, and the FATAL follows the
      // answers (at once when nothing is pending).
      // A Flush makes the upstream send what it holds back until Sync; a statement still
      // running after VIOLATION_GRACE_MS is not waited for (the session ends, cancelling it).
      const f = { code: '08P01', message: err.message };
      if (this.tracker.pending === 0 || this.tracker.copyIn || this.upstream.destroyed) {
        this.flushUpstream();
        this.fatal(f);
      } else {
        this.violation = f;
        this.toUpstream.push(FLUSH);
        this.flushUpstream();
        this.updateFlow();
        setTimeout(() => this.fatal(f), VIOLATION_GRACE_MS).unref();
      }
    } else {
      this.log.error({ err }, 'session failed');
      this.fatal({ code: 'XX000', message: 'internal error in Warden; the session was ended' });
    }
  }

  /** Send a FATAL error to the client and end the session. */
  fatal(f: Omit<PgErrorFields, 'severity'>): void {
    if (this.closed) return;
    if (!this.client.destroyed) this.client.write(encodeError({ ...f, severity: 'FATAL' }));
    this.end(f.message);
  }

  /** End both sides. Idempotent. */
  end(reason: string): void {
    if (this.closed) return;
    if (reason === END_REASON.upstreamClosed && !this.upstreamFatal && !this.client.destroyed) {
      this.client.write(
        encodeError({
          severity: 'FATAL',
          code: '08006',
          message: `the connection to database "${this.database.name}" was lost`,
        }),
      );
    }
    this.closed = true;
    this.interrupt('closed');
    // A client that vanished mid-statement: stop the statement upstream instead of letting it
    // run to completion (PostgreSQL only notices a gone client when it next writes).
    if (reason !== END_REASON.clientTerminate && reason !== END_REASON.upstreamClosed && this.tracker.pending > 0) {
      this.cancel();
    }
    this.tracker.abandon(reason);
    if (!this.upstream.destroyed) {
      if (reason !== END_REASON.clientTerminate) this.upstream.write(encodeTerminate());
      this.upstream.end();
    }
    if (!this.client.destroyed) this.client.end();
    // Do not wait forever for peers that never close.
    setTimeout(() => {
      this.client.destroy();
      this.upstream.destroy();
    }, 5_000).unref();
    this.log.debug({ reason }, 'session ended');
    this.hooks.sessionEnd?.(this, reason);
    this.onClose(reason);
  }
}
