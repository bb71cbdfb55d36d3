/**
 * `sqlite:` audit store: the default, embedded store.
 *
 * Two parts (see docs/audit.md "Durability"):
 * - **The journal** (journal.ts): the writing Warden's records, appended with
 *   one `write()` per event-loop turn (and at `durability: fsync` one
 *   `fdatasync` per group) before any statement they gate runs. This is where
 *   a record is durable.
 * - **The index**: the SQLite database (WAL), filled from the journals in large
 *   batches by a low-priority worker thread (journal-worker.ts), which also
 *   writes checkpoints and runs retention. Fully indexed journal segments are
 *   deleted.
 *
 * Readers (CLI, admin API, verification) see both: what is indexed, plus the
 * journals' tail that is not yet, so every durable record is found whether or
 * not the index has caught up. Read-only opens start no worker and write
 * nothing. `:memory:` (tests) writes to SQLite directly on the calling thread.
 */
import { Worker } from 'node:worker_threads';
import { recordOf, type AuditRecord, type ChainHead, type Checkpoint, type SealedRecord } from './chain.js';
import { DuplicateSeqError, SqliteAuditDb } from './sqlite-db.js';
import { matchesQuery, normalizeTime, type AuditQuery, type AuditStore, type IndexEntry, type DirectJournal } from './store.js';
import { JournalWriter, listSegments, readSegmentLines } from './journal.js';
import { indexRowOf, indexedPositions } from './journal-index.js';
import { workerScript } from '../util/worker-script.js';

interface Reply {
  id?: number;
  op?: 'conflict';
  ok?: boolean;
  error?: string;
  code?: string;
  value?: unknown;
  message?: string;
}

/** How often the indexer looks for new journal lines. */
const INDEX_POLL_MS = 200;
/** How long close() lets the indexer catch up before leaving the rest for the next start. */
const CLOSE_CATCH_UP_MS = 3_000;

/** A journal line that is not a record: verification reports it. */
function malformed(instance: string, line: string): AuditRecord {
  return { seq: -1, ts: '', instance, type: '', data: { malformed: line }, prev: '', hash: '' };
}

interface TailLine {
  /** The record, or null for a line that is not one. */
  r: AuditRecord | null;
  line: string;
}

class SqliteAuditStore implements AuditStore {
  readonly description: string;
  #nextId = 1;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  #worker: Worker | undefined;
  #journal: JournalWriter | undefined;
  #watermark: BigInt64Array | undefined;
  #closed = false;
  /** Called with problems the indexer reports (records indexed with another hash, failures). */
  onIndexProblem: (message: string) => void = () => undefined;

  constructor(
    private readonly file: string,
    private readonly reader: SqliteAuditDb,
    private readonly writable: boolean,
    private readonly durability: 'fsync' | 'os' = 'fsync',
  ) {
    this.description = `sqlite:${file}`;
  }

  get memory(): boolean {
    return this.file === ':memory:';
  }

  #startWorker(own: { id: string; watermark: SharedArrayBuffer } | undefined): void {
    if (this.#worker) {
      // Restarted with this process' journal: what the old one was asked fails and is retried by its caller.
      void this.#worker.terminate().catch(() => undefined);
    }
    const w = new Worker(workerScript(import.meta.url, 'journal-worker.js', 'audit', 'audit: journal worker script'), {
      workerData: { path: this.file, durability: this.durability, own, pollMs: INDEX_POLL_MS },
    });
    w.unref();
    w.on('message', (m: Reply) => {
      if (m.op === 'conflict') {
        this.onIndexProblem(m.message ?? 'audit index problem');
        return;
      }
      const p = m.id === undefined ? undefined : this.#pending.get(m.id);
      if (!p) return;
      this.#pending.delete(m.id!);
      if (m.ok) p.resolve(m.value);
      else p.reject(Object.assign(new Error(`${this.description}: ${m.error}`), { code: m.code }));
    });
    const fail = (err: Error): void => {
      if (this.#worker === w) this.#worker = undefined;
      for (const [, p] of this.#pending) p.reject(new Error(`${this.description}: audit index writer stopped: ${err.message}`));
      this.#pending.clear();
    };
    w.on('error', fail);
    w.on('exit', (code) => {
      if (!this.#closed) fail(new Error(`worker exited with code ${code}`));
    });
    this.#worker = w;
  }

  #ask(msg: Record<string, unknown>): Promise<unknown> {
    if (this.#closed) return Promise.reject(new Error(`${this.description}: store is closed`));
    if (!this.writable) return Promise.reject(new Error(`${this.description}: opened read-only`));
    if (!this.#worker) this.#startWorker(this.#ownData());
    const id = this.#nextId++;
    const w = this.#worker!;
    return new Promise<unknown>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      w.ref();
      w.postMessage({ ...msg, id });
    }).finally(() => {
      if (this.#pending.size === 0) this.#worker?.unref();
    });
  }

  #ownData(): { id: string; watermark: SharedArrayBuffer } | undefined {
    return this.#journal && this.#watermark ? { id: this.#journal.id, watermark: this.#watermark.buffer as SharedArrayBuffer } : undefined;
  }

  /** Opens this instance's journal (taking its lock): the first append does it. */
  #journalFor(instance: string): JournalWriter {
    if (this.#journal) {
      if (this.#journal.instance !== instance) throw new Error(`${this.description}: this store writes the chain "${this.#journal.instance}", not "${instance}"`);
      return this.#journal;
    }
    const j = JournalWriter.open(this.file, instance, { durability: this.durability });
    this.#journal = j;
    const sab = new SharedArrayBuffer(8);
    this.#watermark = new BigInt64Array(sab);
    this.#publish(j.position);
    // The indexer now also reads this journal, up to the watermark.
    this.#startWorker(this.#ownData());
    return j;
  }

  #publish(p: { n: number; offset: number }): void {
    if (this.#watermark) Atomics.store(this.#watermark, 0, (BigInt(p.n) << 32n) | BigInt(p.offset));
  }

  async head(instance: string): Promise<ChainHead | null> {
    const tail = this.#tail();
    for (let i = tail.length - 1; i >= 0; i--) {
      const r = tail[i].r;
      if (r && r.instance === instance) return { seq: r.seq, hash: r.hash };
    }
    return this.reader.head(instance);
  }

  /**
   * Opens the instance's journal for appending and returns its head: the last
   * record of its journal, else the index's. Called by the audit log at start.
   */
  async openChain(instance: string): Promise<ChainHead | null> {
    if (!this.writable || this.memory) return this.head(instance);
    const j = this.#journalFor(instance);
    const line = j.lastLine();
    const row = line === null ? null : indexRowOf(line);
    if (row && row.r.instance === instance) return { seq: row.r.seq, hash: row.r.hash };
    return this.head(instance);
  }

  append(records: readonly AuditRecord[]): Promise<void> {
    if (this.#closed) return Promise.reject(new Error(`${this.description}: store is closed`));
    if (!this.writable) return Promise.reject(new Error(`${this.description}: opened read-only`));
    if (records.length === 0) return Promise.resolve();
    if (this.memory) {
      try {
        this.reader.append(records);
        return Promise.resolve();
      } catch (err) {
        return Promise.reject(err instanceof Error ? err : new Error(String(err)));
      }
    }
    // Records made elsewhere (tests, imports): encode them as the hot path does.
    const sealed = records.map((r): SealedRecord => {
      const dataJson = JSON.stringify(r.data);
      const rest = `"instance":${JSON.stringify(r.instance)},"prev":${JSON.stringify(r.prev)},"seq":${r.seq},"ts":${JSON.stringify(r.ts)},"type":${JSON.stringify(r.type)}}`;
      return { seq: r.seq, ts: r.ts, instance: r.instance, type: r.type, prev: r.prev, hash: r.hash, dataJson, line: `{"data":${dataJson},"hash":${JSON.stringify(r.hash)},${rest}\n` };
    });
    try {
      return this.appendSealed(sealed) ?? Promise.resolve();
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  direct(instance: string): DirectJournal | null {
    if (!this.writable || this.memory || this.#closed) return null;
    const j = this.#journalFor(instance);
    const publish = (): void => this.#publish(j.durablePosition);
    // The journal shares one promise per event-loop turn: so does this.
    let last: Promise<void> | null = null;
    let lastPublished: Promise<void> | null = null;
    return {
      write: (text: string): void => {
        j.write(text);
        if (!j.fsync) this.#publish(j.position);
      },
      durable: (): Promise<void> | null => {
        const p = j.durable();
        if (!p) return null;
        if (p !== last) {
          last = p;
          lastPublished = p.then(publish);
        }
        return lastPublished;
      },
      syncs: j.fsync,
      get failed(): boolean {
        return j.failed;
      },
      resume: (): ChainHead | null => {
        j.reset();
        this.#publish(j.durablePosition);
        const row = indexRowOf(j.lastLine() ?? '');
        return row && row.r.instance === instance ? { seq: row.r.seq, hash: row.r.hash } : this.reader.head(instance);
      },
    };
  }

  appendSealed(records: readonly SealedRecord[]): Promise<void> | null {
    if (this.#closed) throw new Error(`${this.description}: store is closed`);
    if (!this.writable) throw new Error(`${this.description}: opened read-only`);
    if (records.length === 0) return null;
    if (this.memory) {
      this.reader.append(records.map(recordOf));
      return null;
    }
    const j = this.#journalFor(records[0].instance);
    let text = '';
    for (const r of records) text += r.line;
    let done: Promise<void> | null;
    try {
      done = j.append(text);
    } catch (err) {
      throw new Error(`${this.description}: journal write failed: ${(err as Error).message}`);
    }
    if (done === null) {
      this.#publish(j.position);
      return null;
    }
    return done.then(
      () => this.#publish(j.position),
      (err: Error) => {
        throw new Error(`${this.description}: journal fdatasync failed: ${err.message}`);
      },
    );
  }

  /**
   * The journals' lines the index does not have yet, in journal order (per
   * journal id, segment, offset), as of now. Lines of a segment deleted
   * meanwhile are in the index by then.
   */
  #tail(): TailLine[] {
    if (this.memory) return [];
    const positions = indexedPositions(this.reader.db);
    const out: TailLine[] = [];
    for (const s of listSegments(this.file)) {
      const p = positions.get(s.id);
      if (p && s.n < p.n) continue;
      const from = p && s.n === p.n ? p.offset : 0;
      const { lines } = readSegmentLines(s.file, from);
      for (const line of lines) {
        if (line === '') continue;
        const row = indexRowOf(line);
        out.push({ r: row ? row.r : null, line });
      }
    }
    return out;
  }

  async *query(q: AuditQuery): AsyncGenerator<AuditRecord> {
    const limit = q.limit === undefined ? Infinity : Math.max(0, Math.floor(q.limit));
    if (limit === 0) return;
    const norm: AuditQuery = {
      ...q,
      since: q.since === undefined ? undefined : normalizeTime(q.since),
      until: q.until === undefined ? undefined : normalizeTime(q.until),
    };
    // Tail first, then the index: a record indexed in between is in both and is yielded once.
    const tail = this.#tail()
      .map((t) => t.r)
      .filter((r): r is AuditRecord => r !== null && matchesQuery(r, norm));
    const cmp = orderOf(q);
    tail.sort(cmp);
    let n = 0;
    let i = 0;
    for (const r of this.reader.query({ ...q, limit: q.limit === undefined ? undefined : limit })) {
      while (i < tail.length && cmp(tail[i], r) < 0) {
        yield tail[i++];
        if (++n >= limit) return;
      }
      if (i < tail.length && cmp(tail[i], r) === 0) i++;
      yield r;
      if (++n >= limit) return;
    }
    while (i < tail.length) {
      yield tail[i++];
      if (++n >= limit) return;
    }
  }

  async *chain(instance: string, fromSeq?: number): AsyncGenerator<AuditRecord> {
    const tail = this.#tail().filter((t) => (t.r ? t.r.instance === instance : lineNames(t.line, instance)));
    const pendingHash = new Map<number, string>();
    for (const t of tail) if (t.r) pendingHash.set(t.r.seq, t.r.hash);
    const indexed = new Set<number>();
    for (const r of this.reader.chain(instance, fromSeq)) {
      if (pendingHash.get(r.seq) === r.hash) indexed.add(r.seq);
      yield r;
    }
    for (const t of tail) {
      if (!t.r) {
        yield malformed(instance, t.line);
        continue;
      }
      if (indexed.has(t.r.seq)) continue;
      if (fromSeq !== undefined && t.r.seq < fromSeq) continue;
      yield t.r;
    }
  }

  async instances(): Promise<string[]> {
    const names = new Set(this.reader.instances());
    for (const t of this.#tail()) if (t.r) names.add(t.r.instance);
    return [...names].sort();
  }

  /** The index's entries (not the journal tail, which is not indexed yet): see index-check.ts. */
  async *indexEntries(instance: string, throughSeq?: number): AsyncGenerator<IndexEntry[]> {
    yield* this.reader.indexEntries(instance, throughSeq);
  }

  async indexInstances(): Promise<string[]> {
    return this.reader.indexInstances();
  }

  async saveCheckpoint(cp: Checkpoint): Promise<void> {
    if (this.memory) return this.reader.saveCheckpoint(cp);
    await this.#ask({ op: 'checkpoint', cp });
  }

  async checkpoints(instance?: string): Promise<Checkpoint[]> {
    return this.reader.checkpoints(instance);
  }

  async prune(before: string, instance?: string): Promise<number> {
    if (this.memory) return this.reader.prune(before, instance);
    return (await this.#ask({ op: 'prune', before, instance })) as number;
  }

  /** Indexes what the journals hold now (bounded by `ms`); for tests and orderly shutdown. */
  async catchUp(ms = CLOSE_CATCH_UP_MS): Promise<void> {
    if (!this.writable || this.memory) return;
    await this.#ask({ op: 'catch-up', deadlineMs: ms });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    try {
      this.#journal?.close();
    } finally {
      try {
        if (this.#worker) await this.catchUp().catch(() => undefined);
      } finally {
        this.#closed = true;
        const w = this.#worker;
        this.#worker = undefined;
        if (w) await w.terminate();
        this.reader.close();
      }
    }
  }
}

/** Whether a line that is not a record visibly names this instance (or names none). */
function lineNames(line: string, instance: string): boolean {
  const m = /"instance":("(?:[^"\\]|\\.)*")/.exec(line);
  if (!m) return true;
  try {
    return JSON.parse(m[1]) === instance;
  } catch {
    return true;
  }
}

/** The order a query's results come in (as the index orders them). */
function orderOf(q: AuditQuery): (a: AuditRecord, b: AuditRecord) => number {
  const dir = q.descending ? -1 : 1;
  if (q.instance !== undefined) return (a, b) => dir * (a.seq - b.seq);
  return (a, b) => {
    if (a.ts !== b.ts) return dir * (a.ts < b.ts ? -1 : 1);
    if (a.instance !== b.instance) return dir * (a.instance < b.instance ? -1 : 1);
    return dir * (a.seq - b.seq);
  };
}

/**
 * Opens (creating when writable) a SQLite audit store. Errors name the file
 * (missing directory, not writable, not a Warden database).
 */
export async function openSqliteStore(file: string, opts: { readOnly?: boolean; durability?: 'fsync' | 'os' } = {}): Promise<AuditStore> {
  let reader: SqliteAuditDb;
  try {
    reader = new SqliteAuditDb(file, { readOnly: opts.readOnly, durability: opts.durability });
  } catch (err) {
    throw new Error(`sqlite:${file}: ${(err as Error).message}`);
  }
  return new SqliteAuditStore(file, reader, !opts.readOnly, opts.durability ?? 'fsync');
}

export { DuplicateSeqError };
