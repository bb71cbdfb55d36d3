/**
 * The audit log Warden writes to: chains records (chain.ts), group-commits them
 * to a store, signs checkpoints and streams durable records to sinks.
 *
 * ## One write per turn, group commit
 * On a store with a journal (sqlite), records are sealed when they are made and
 * staged; the records of one event-loop turn are written with one `write()` at
 * its end (a microtask), and at `durability: fsync` one shared fdatasync covers
 * them ({@link AuditLog.writeNow}). Other stores: records queue up while one
 * batch is being written; when the write is done the whole queue becomes the next
 * batch, so under load one commit covers many statements. Seqs and hashes are
 * assigned before the write, so a write that fails is cut and the head goes back
 * to the record before it: no hole in the chain.
 *
 * ## Write-ahead and failure
 * {@link AuditLog.writeAhead} resolves once the record is durable; the proxy only
 * forwards the statement then. When the store fails:
 * - `block` (default): write-ahead records of the failed batch are rejected
 *   ({@link AuditUnavailableError}) and their statements refused; other records
 *   (completions, session ends) are kept and retried with backoff.
 * - `continue`: every record is kept and retried; statements run meanwhile.
 * Kept records are bounded ({@link MAX_BACKLOG}); beyond that the oldest are
 * dropped, counted, and an `audit.records_lost` record says how many once the
 * store is back.
 */
import crypto, { type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { AuditConfig } from '../config/types.js';
import type { Logger } from '../log/logger.js';
import { CanonicalText, canonicalJson, type EncodableValue } from './canonical.js';
import { ChainWriter, GENESIS, recordOf, signCheckpoint, type AuditRecord, type ChainHead, type Checkpoint, type SealedRecord } from './chain.js';
import type { AuditStore, DirectJournal } from './store.js';
import { openAuditStore } from './open.js';
import type { AuditSink } from './sinks.js';
import { createSinks } from './sinks.js';
import { createWitnesses, type WitnessSet } from './witness.js';
import { AUDIT_WRITE_BUCKETS, FixedHistogram } from '../util/histogram.js';

/** Records kept in memory while the store fails. */
export const MAX_BACKLOG = 100_000;
/** Records nobody waits for are written at the latest this long after they arrive. */
const LAZY_FLUSH_MS = 20;
/** A write that takes longer than this fails (the store is considered unavailable). */
const WRITE_TIMEOUT_MS = 10_000;

export type AuditData = Record<string, EncodableValue | undefined>;

export class AuditUnavailableError extends Error {
  constructor(reason: string) {
    super(`audit log unavailable (${reason})`);
    this.name = 'AuditUnavailableError';
  }
}

interface Entry {
  type: string;
  /** The data's canonical JSON, encoded when the record is made. */
  dataJson: string;
  /** Milliseconds since the epoch. */
  ts: number;
  /** Write-ahead: its caller waits and is refused if the write fails. */
  gate: boolean;
  resolve?: (seq: number) => void;
  reject?: (err: Error) => void;
}

/** A promise with its settling functions; a failure nobody holds is not an unhandled rejection. */
interface Settlable {
  promise: Promise<void>;
  resolve: () => void;
  reject: (err: Error) => void;
}

function settlable(): Settlable {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Whoever holds the promise handles its failure; the log must not crash on one nobody holds.
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

/** Records staged in one event-loop turn (see `AuditLog.writeNow`). */
interface Turn {
  /** The chain's head before the turn's first record: where it goes back to when the write fails. */
  before: ChainHead;
  text: string;
  records: SealedRecord[];
  /** Per record: its queue entry when nobody waits for it (kept and retried on failure), else null. */
  entries: (Entry | null)[];
  /** Settles once the turn's records are written (in the OS). */
  written: Settlable;
  /** At `durability: fsync`: settles once an fdatasync covers them. */
  synced: Settlable | null;
}

function rejectTurn(turn: Turn, err: Error): void {
  turn.written.reject(err);
  turn.synced?.reject(err);
}

export interface AuditLogOptions {
  store: AuditStore;
  instance: string;
  onFailure: 'block' | 'continue';
  log: Logger;
  signingKey?: KeyObject;
  checkpointEvery?: number;
  checkpointIntervalMs?: number;
  retentionMs?: number;
  sinks?: AuditSink[];
  /** Checkpoint witnesses (audit.witness): every signed checkpoint is also published there. */
  witness?: WitnessSet;
}

export interface AuditStats {
  written: number;
  batches: number;
  failures: number;
  lost: number;
  backlog: number;
  healthy: boolean;
  lastError?: string;
  /** Seconds for records to become durable: a batch written (and synced), or a turn's records under one fdatasync (metrics). */
  readonly writeSeconds: FixedHistogram;
}

export class AuditLog {
  readonly store: AuditStore;
  readonly instance: string;
  readonly onFailure: 'block' | 'continue';
  #chain: ChainWriter;
  /** The store's synchronous path (journal), when it has one. */
  #direct: DirectJournal | null;
  #queue: Entry[] = [];
  #writing: Promise<void> | null = null;
  #retryTimer: NodeJS.Timeout | null = null;
  #lazyTimer: NodeJS.Timeout | null = null;
  #backoffMs = 0;
  #closed = false;
  #lostPending = 0;
  #sinceCheckpoint = 0;
  #lastCheckpoint: ChainHead;
  #checkpointTimer: NodeJS.Timeout | null = null;
  #retentionTimer: NodeJS.Timeout | null = null;
  readonly #o: AuditLogOptions;
  readonly stats: AuditStats = { written: 0, batches: 0, failures: 0, lost: 0, backlog: 0, healthy: true, writeSeconds: new FixedHistogram(AUDIT_WRITE_BUCKETS) };

  private constructor(o: AuditLogOptions, head: ChainHead | null) {
    this.#o = o;
    this.store = o.store;
    this.instance = o.instance;
    this.onFailure = o.onFailure;
    this.#chain = new ChainWriter({ instance: o.instance, last: head ?? undefined });
    this.#direct = o.store.direct?.(o.instance) ?? null;
    this.#lastCheckpoint = this.#chain.head;
    if (o.signingKey) {
      const every = o.checkpointIntervalMs ?? 60_000;
      this.#checkpointTimer = setInterval(() => void this.checkpoint().catch(() => undefined), every);
      this.#checkpointTimer.unref();
    }
    if (o.retentionMs !== undefined) {
      const run = () => void this.prune(new Date(Date.now() - o.retentionMs!)).catch((err: Error) => o.log.error({ reason: err.message }, 'audit retention failed'));
      this.#retentionTimer = setInterval(run, Math.min(o.retentionMs, 3_600_000));
      this.#retentionTimer.unref();
    }
  }

  /** Opens the log on a store, resuming the instance's chain where it ends. */
  static async open(o: AuditLogOptions): Promise<AuditLog> {
    const head = o.store.openChain ? await o.store.openChain(o.instance) : await o.store.head(o.instance);
    return new AuditLog(o, head);
  }

  /** The last durable record of this instance's chain. */
  get head(): ChainHead {
    return this.#chain.head;
  }

  /** The public half of the checkpoint signing key, when there is one. */
  get publicKey(): KeyObject | undefined {
    return this.#o.signingKey ? crypto.createPublicKey(this.#o.signingKey) : undefined;
  }

  /**
   * Write-ahead: resolves with the record's seq once it is durable. In `block`
   * mode rejects with {@link AuditUnavailableError} when it cannot be written;
   * in `continue` mode resolves at once (seq 0) when the store is failing.
   */
  writeAhead(type: string, data: AuditData | CanonicalText): Promise<number> {
    if (this.#closed) return Promise.reject(new AuditUnavailableError('Warden is shutting down'));
    const dataJson = this.#encode(type, data);
    if (dataJson === null) return Promise.reject(new AuditUnavailableError('record not encodable'));
    if (this.onFailure === 'continue' && !this.stats.healthy) {
      this.#enqueue({ type, dataJson, ts: Date.now(), gate: false });
      return Promise.resolve(0);
    }
    return new Promise<number>((resolve, reject) => {
      this.#enqueue({ type, dataJson, ts: Date.now(), gate: this.onFailure === 'block', resolve, reject });
    });
  }

  /** Records an event without waiting; it is kept and retried while the store fails. */
  record(type: string, data: AuditData | CanonicalText): void {
    if (this.#closed) {
      this.#o.log.error({ type }, 'audit record after close dropped');
      return;
    }
    const dataJson = this.#encode(type, data);
    if (dataJson === null) return;
    const ts = Date.now();
    // On the hot path it rides with this turn's write; while anything is queued it queues behind it.
    if (this.#direct && this.stats.healthy && this.#queue.length === 0 && !this.#writing && !this.#retryTimer) {
      this.#stage(type, dataJson, isoNow(ts), { type, dataJson, ts, gate: false });
    } else {
      this.#enqueue({ type, dataJson, ts, gate: false });
    }
  }

  /** The data's canonical JSON; null (logged, counted as lost) when it is not encodable: a bug in an event builder. */
  #encode(type: string, data: AuditData | CanonicalText): string | null {
    if (data instanceof CanonicalText) return data.text;
    try {
      return canonicalJson(data);
    } catch (err) {
      this.stats.lost++;
      this.#o.log.error({ type, reason: (err as Error).message }, 'audit record not encodable');
      return null;
    }
  }

  #enqueue(e: Entry): void {
    this.#queue.push(e);
    if (this.#queue.length > MAX_BACKLOG) {
      const dropped = this.#queue.splice(0, this.#queue.length - MAX_BACKLOG);
      for (const d of dropped) d.reject?.(new AuditUnavailableError('audit backlog full'));
      this.#lostPending += dropped.length;
      this.stats.lost += dropped.length;
      this.#o.log.error({ dropped: dropped.length }, 'audit backlog full: records dropped');
    }
    this.stats.backlog = this.#queue.length;
    // A waiting write-ahead record does not wait for the backoff, nor for the lazy flush.
    const urgent = e.gate || e.resolve !== undefined;
    if (urgent && this.#retryTimer) {
      clearTimeout(this.#retryTimer);
      this.#retryTimer = null;
    }
    if (urgent && this.#lazyTimer) {
      clearTimeout(this.#lazyTimer);
      this.#lazyTimer = null;
    }
    if (this.#writing || this.#retryTimer) return;
    if (urgent) {
      this.#writing = this.#drain();
    } else if (!this.#lazyTimer) {
      // Nobody waits for this record: let it ride with the next write-ahead record's
      // commit (one commit instead of two), or go on its own shortly.
      this.#lazyTimer = setTimeout(() => {
        this.#lazyTimer = null;
        if (!this.#writing && !this.#retryTimer && this.#queue.length > 0) this.#writing = this.#drain();
      }, LAZY_FLUSH_MS);
      this.#lazyTimer.unref();
    }
  }

  async #drain(): Promise<void> {
    // Let the current event-loop turn add its records to this batch.
    await new Promise<void>((r) => setImmediate(r));
    while (this.#queue.length > 0) {
      if (this.#lostPending > 0) {
        const data = { count: this.#lostPending, reason: this.stats.lastError ?? 'backlog full' };
        this.#queue.unshift({ type: 'audit.records_lost', dataJson: canonicalJson(data), ts: Date.now(), gate: false });
        this.#lostPending = 0;
      }
      // Records staged in this turn were sealed first: they are written first.
      this.#writeTurn();
      const batch = this.#queue;
      this.#queue = [];
      this.stats.backlog = 0;
      const before = this.#chain.head;
      const records: SealedRecord[] = new Array<SealedRecord>(batch.length);
      let lastMs = NaN;
      let lastTs = '';
      for (let i = 0; i < batch.length; i++) {
        const e = batch[i];
        if (e.ts !== lastMs) {
          lastMs = e.ts;
          lastTs = new Date(e.ts).toISOString();
        }
        records[i] = this.#chain.seal(e.type, e.dataJson, lastTs);
      }
      // The journal (sqlite): written now, durable (at fsync) once a shared fdatasync covers it,
      // no waiting here. Other stores: committed before the next batch is formed.
      const direct = this.#direct;
      const t0 = performance.now();
      try {
        if (direct) {
          let text = '';
          for (const r of records) text += r.line;
          direct.write(text);
        } else {
          const store = this.store;
          const written = store.appendSealed ? store.appendSealed(records) : store.append(records.map(recordOf));
          if (written) await withTimeout(written, WRITE_TIMEOUT_MS);
        }
      } catch (err) {
        this.#chain = new ChainWriter({ instance: this.instance, last: before });
        this.#failed(batch, err as Error);
        if (this.#queue.length > 0 && !this.#queue.some((e) => e.gate)) {
          this.#scheduleRetry();
          this.#writing = null;
          return;
        }
        continue;
      }
      this.#written(records);
      const durable = direct?.durable() ?? null;
      if (!durable) {
        this.stats.writeSeconds.observe((performance.now() - t0) / 1000);
        this.#durable(batch, records);
        continue;
      }
      this.#pendingDurable = durable;
      durable.then(
        () => {
          this.stats.writeSeconds.observe((performance.now() - t0) / 1000);
          this.#durable(batch, records);
        },
        (err: Error) => {
          this.#syncFailed(err);
          for (const e of batch) {
            if (e.gate) e.reject?.(new AuditUnavailableError(err.message));
            else e.resolve?.(0);
          }
        },
      );
    }
    this.#writing = null;
  }

  /** Bookkeeping once records are written (part of the chain). */
  #written(records: readonly SealedRecord[]): void {
    this.stats.written += records.length;
    this.stats.batches++;
    if (!this.stats.healthy) this.#o.log.warn({ store: this.store.description }, 'audit store writable again');
    this.stats.healthy = true;
    this.stats.lastError = undefined;
    this.#backoffMs = 0;
    this.#sinceCheckpoint += records.length;
    if (this.#o.signingKey && this.#sinceCheckpoint >= (this.#o.checkpointEvery ?? 1000)) void this.checkpoint().catch(() => undefined);
  }

  /** Records are durable: their waiters go on, and the streams get them. */
  #durable(batch: readonly Entry[] | null, records: readonly SealedRecord[]): void {
    if (batch) {
      for (let i = 0; i < batch.length; i++) {
        const e = batch[i];
        e.resolve?.(records[i].seq);
      }
    }
    const sinks = this.#o.sinks;
    if (sinks && sinks.length > 0) {
      const objects = records.map(recordOf);
      for (const s of sinks) s.send(objects);
    }
  }

  /**
   * A shared fdatasync failed: the journal was cut back to the last durable
   * record. Resume the chain there; what was cut (records nobody waited for)
   * is counted as lost and said so in an `audit.records_lost` record.
   */
  #syncFailed(err: Error): void {
    const direct = this.#direct;
    if (!direct || !direct.failed) return; // handled already
    this.stats.failures++;
    this.stats.healthy = false;
    this.stats.lastError = err.message;
    this.#o.log.error({ store: this.store.description, reason: err.message }, 'audit journal sync failed; records since the last durable one are cut');
    let head: ChainHead | null = null;
    try {
      head = direct.resume();
    } catch (e) {
      this.#o.log.error({ reason: (e as Error).message }, 'audit journal cannot be resumed');
      this.#direct = null;
      return;
    }
    const last = head ?? { seq: 0, hash: GENESIS };
    // Records staged since were sealed on records that are now cut: not written, kept or refused.
    const staged = this.#turn?.records.length ?? 0;
    this.#dropTurn(err);
    const lost = this.#chain.head.seq - staged - last.seq;
    this.#chain = new ChainWriter({ instance: this.instance, last });
    if (lost > 0) {
      this.#lostPending += lost;
      this.stats.lost += lost;
    }
    // Let the records_lost record (and so the store's health) come soon.
    if (!this.#writing && !this.#retryTimer) this.#scheduleRetry();
  }

  /**
   * The hot path (a store with a journal, healthy): seals the record now and
   * stages it; every record staged in this event-loop turn (and the records
   * nobody waits for) is written with one `write()` at the end of the turn (a
   * microtask), then — at `durability: fsync` — made durable by one shared
   * fdatasync (group commit). Returns the record's seq, `written` (resolves once
   * the record is in the OS) and `durable` (once it is as durable as
   * configured: the same promise at `os`); both reject with
   * {@link AuditUnavailableError} when the write or sync fails. Null when this
   * path is not available: use {@link writeAhead}, which queues, retries and
   * refuses as configured.
   */
  writeNow(type: string, data: AuditData | CanonicalText): { seq: number; written: Promise<void>; durable: Promise<void> } | null {
    const direct = this.#direct;
    if (!direct || this.#closed || !this.stats.healthy) return null;
    const dataJson = this.#encode(type, data);
    if (dataJson === null) return null;
    const rec = this.#stage(type, dataJson, isoNow(Date.now()), null);
    const turn = this.#turn!;
    return { seq: rec.seq, written: turn.written.promise, durable: (turn.synced ?? turn.written).promise };
  }

  /** Seals a record onto the chain and adds it to this turn's write (scheduling the write when it is the first). */
  #stage(type: string, dataJson: string, ts: string, entry: Entry | null): SealedRecord {
    let turn = this.#turn;
    if (!turn) {
      turn = { before: this.#chain.head, text: '', records: [], entries: [], written: settlable(), synced: this.#direct?.syncs ? settlable() : null };
      this.#turn = turn;
      queueMicrotask(this.#writeTurn);
    }
    const rec = this.#chain.seal(type, dataJson, ts);
    turn.text += rec.line;
    turn.records.push(rec);
    turn.entries.push(entry);
    return rec;
  }

  /** Writes the turn's staged records with one write (see {@link writeNow}). */
  readonly #writeTurn = (): void => {
    const turn = this.#turn;
    if (!turn) return;
    this.#turn = null;
    const direct = this.#direct;
    const t0 = performance.now();
    try {
      if (!direct) throw new Error('the audit journal is not available');
      direct.write(turn.text);
    } catch (err) {
      this.#chain = new ChainWriter({ instance: this.instance, last: turn.before });
      this.#failed(this.#requeue(turn), err as Error);
      rejectTurn(turn, new AuditUnavailableError((err as Error).message));
      return;
    }
    const records = turn.records;
    this.#written(records);
    turn.written.resolve();
    const durable = direct.durable();
    if (!durable) {
      this.stats.writeSeconds.observe((performance.now() - t0) / 1000);
      this.#durable(null, records);
      turn.synced?.resolve();
      return;
    }
    this.#pendingDurable = durable.then(
      () => {
        this.stats.writeSeconds.observe((performance.now() - t0) / 1000);
        this.#durable(null, records);
        turn.synced?.resolve();
      },
      (err: Error) => {
        this.#syncFailed(err);
        turn.synced?.reject(new AuditUnavailableError(err.message));
      },
    );
  };

  /** The entries of a turn's records that nobody waits for, to be kept and retried like queued ones. */
  #requeue(turn: Turn): Entry[] {
    const out: Entry[] = [];
    for (const e of turn.entries) if (e) out.push(e);
    return out;
  }

  /** A sync failed and the chain was resumed elsewhere: records staged on the old head are not written. */
  #dropTurn(err: Error): void {
    const turn = this.#turn;
    if (!turn) return;
    this.#turn = null;
    const kept = this.#requeue(turn);
    if (kept.length > 0) {
      this.#queue = kept.concat(this.#queue);
      this.stats.backlog = this.#queue.length;
    }
    rejectTurn(turn, new AuditUnavailableError(err.message));
  }

  #failed(batch: Entry[], err: Error): void {
    this.stats.failures++;
    const reason = err.message;
    if (this.stats.healthy || this.stats.lastError !== reason) this.#o.log.error({ store: this.store.description, reason }, 'audit write failed');
    this.stats.healthy = false;
    this.stats.lastError = reason;
    const keep: Entry[] = [];
    for (const e of batch) {
      if (e.gate) {
        e.reject?.(new AuditUnavailableError(reason));
        continue;
      }
      // `continue` mode: a statement waiting on its record runs without it; the record is retried.
      e.resolve?.(0);
      e.resolve = undefined;
      e.reject = undefined;
      keep.push(e);
    }
    // Kept records go first, in their original order.
    this.#queue = keep.concat(this.#queue);
    this.stats.backlog = this.#queue.length;
  }

  #scheduleRetry(): void {
    this.#backoffMs = Math.min(this.#backoffMs ? this.#backoffMs * 2 : 100, 5_000);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      if (!this.#writing && this.#queue.length > 0) this.#writing = this.#drain();
    }, this.#backoffMs);
    this.#retryTimer.unref();
  }

  /** Waits until everything queued so far was written (or failed). */
  async flush(): Promise<void> {
    this.#writeTurn();
    if (this.#lazyTimer) {
      clearTimeout(this.#lazyTimer);
      this.#lazyTimer = null;
      if (!this.#writing && !this.#retryTimer && this.#queue.length > 0) this.#writing = this.#drain();
    }
    while (this.#writing) await this.#writing;
    // What the synchronous path wrote: durable, or failed and handled.
    const pending = this.#pendingDurable;
    if (pending) await pending.catch(() => undefined);
  }

  #checkpointing: Promise<Checkpoint | null> = Promise.resolve(null);
  /** The latest durability promise of the synchronous path (see {@link flush}). */
  #pendingDurable: Promise<void> | null = null;
  /** This event-loop turn's staged records, written by one write at its end (see {@link writeNow}). */
  #turn: Turn | null = null;

  /**
   * Signs and stores a checkpoint of the current head (no-op without a key or
   * new records). Calls are serialized, so one head is never signed twice.
   */
  checkpoint(): Promise<Checkpoint | null> {
    const run = this.#checkpointing.catch(() => null).then(() => this.#checkpoint());
    this.#checkpointing = run;
    return run;
  }

  async #checkpoint(): Promise<Checkpoint | null> {
    const key = this.#o.signingKey;
    if (!key) return null;
    await this.flush();
    const head = this.#chain.head;
    if (head.seq === 0 || head.seq === this.#lastCheckpoint.seq) return null;
    const cp = signCheckpoint({ instance: this.instance, seq: head.seq, hash: head.hash }, key);
    await this.store.saveCheckpoint(cp);
    this.#lastCheckpoint = head;
    this.#sinceCheckpoint = 0;
    // Also to the independent witnesses; never throws (failures are logged and counted).
    await this.#o.witness?.publish(cp);
    return cp;
  }

  /**
   * Deletes records older than `before` and records that it did: the
   * `audit.pruned` record names the last deleted record, so verification can
   * start after it and a deletion at the front is still detected.
   */
  async prune(before: Date): Promise<number> {
    await this.flush();
    let last: AuditRecord | undefined;
    for await (const r of this.store.query({ instance: this.instance, until: before.toISOString(), descending: true, limit: 1 })) last = r;
    if (!last) return 0;
    await this.writeAhead('audit.pruned', { before: before.toISOString(), through_seq: last.seq, through_hash: last.hash });
    const n = await this.store.prune(before.toISOString(), this.instance);
    this.#o.log.info({ before: before.toISOString(), records: n }, 'audit records pruned');
    return n;
  }

  async close(finalRecord?: { type: string; data: AuditData }): Promise<void> {
    if (this.#closed) return;
    if (finalRecord) this.record(finalRecord.type, finalRecord.data);
    this.#closed = true;
    if (this.#checkpointTimer) clearInterval(this.#checkpointTimer);
    if (this.#retentionTimer) clearInterval(this.#retentionTimer);
    if (this.#retryTimer) {
      clearTimeout(this.#retryTimer);
      this.#retryTimer = null;
      this.#writing = this.#drain();
    }
    await this.flush();
    if (this.#queue.length > 0) this.#o.log.error({ records: this.#queue.length }, 'audit records not written at shutdown');
    try {
      await this.checkpoint();
    } catch (err) {
      this.#o.log.error({ reason: (err as Error).message }, 'final audit checkpoint failed');
    }
    for (const s of this.#o.sinks ?? []) await s.close();
    await this.#o.witness?.close();
    await this.store.close();
  }
}

/** `new Date(ms).toISOString()`, computed once per millisecond: records of a busy turn share their time stamp. */
let isoMs = NaN;
let isoText = '';
function isoNow(ms: number): string {
  if (ms !== isoMs) {
    isoMs = ms;
    isoText = new Date(ms).toISOString();
  }
  return isoText;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      t = setTimeout(() => reject(new Error(`write took longer than ${ms / 1000} s`)), ms);
      t.unref();
    }),
  ]).finally(() => clearTimeout(t));
}

/** Reads an Ed25519 private key (PEM, PKCS#8) for signing checkpoints. */
export function loadSigningKey(file: string): KeyObject {
  let pem: Buffer;
  try {
    pem = readFileSync(file);
  } catch (err) {
    throw new Error(`audit.signing_key: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let key: KeyObject;
  try {
    key = crypto.createPrivateKey(pem);
  } catch {
    throw new Error(`audit.signing_key: ${file} is not a PEM private key`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`audit.signing_key: ${file} is a ${key.asymmetricKeyType ?? 'unknown'} key; an Ed25519 key is required`);
  return key;
}

/** Default chain name of this process: host name and listen port. */
export function defaultInstanceName(port: number): string {
  return `${hostname()}:${port}`;
}

/** Opens the configured store and the log on it. */
export async function openAuditLog(cfg: AuditConfig, o: { instance: string; log: Logger }): Promise<AuditLog> {
  const signingKey = cfg.signingKey ? loadSigningKey(cfg.signingKey) : undefined;
  const store = await openAuditStore(cfg.store, { durability: cfg.durability });
  // The sqlite store's indexer reports records it could not index (another writer, an edited journal).
  const indexed = store as { onIndexProblem?: (problem: string) => void };
  if ('onIndexProblem' in indexed) indexed.onIndexProblem = (problem) => o.log.error({ store: store.description, problem }, 'audit index problem');
  let witness: WitnessSet | undefined;
  try {
    witness = cfg.witness ? createWitnesses(cfg.witness, { log: o.log, store }) : undefined;
    return await AuditLog.open({
      store,
      instance: o.instance,
      onFailure: cfg.onFailure,
      log: o.log,
      signingKey,
      checkpointEvery: cfg.checkpointEvery,
      checkpointIntervalMs: cfg.checkpointIntervalMs,
      retentionMs: cfg.retentionMs,
      sinks: createSinks(cfg.stream, o.log),
      witness,
    });
  } catch (err) {
    await witness?.close();
    await store.close();
    throw err;
  }
}
