/**
 * `sqlite:` audit store: the default, embedded store (WAL, synchronous=FULL).
 *
 * Appends go to a worker thread holding the write connection (see
 * sqlite-worker.ts); reads use a connection on the calling thread. Read-only
 * opens (CLI verify / search / export) start no worker.
 */
import { Worker } from 'node:worker_threads';
import type { AuditRecord, ChainHead, Checkpoint } from './chain.js';
import { DuplicateSeqError, SqliteAuditDb, toStoredRow } from './sqlite-db.js';
import type { AuditQuery, AuditStore, IndexEntry } from './store.js';
import { workerScript } from '../util/worker-script.js';

interface Reply {
  id: number;
  ok: boolean;
  error?: string;
  code?: string;
  name?: string;
}

class SqliteAuditStore implements AuditStore {
  readonly description: string;
  #nextId = 1;
  readonly #pending = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  #worker: Worker | undefined;
  #closed = false;
  /** Appends run on the calling thread (no worker). */
  readonly inline: boolean;

  constructor(
    private readonly file: string,
    private readonly reader: SqliteAuditDb,
    writable: boolean,
    private readonly durability: 'fsync' | 'os' = 'fsync',
  ) {
    this.description = `sqlite:${file}`;
    this.inline = file === ':memory:' || durability === 'os';
    if (writable && !this.inline) this.#startWorker();
  }

  #startWorker(): void {
    const w = new Worker(workerScript(import.meta.url, 'sqlite-worker.js', 'audit', 'audit: sqlite worker script'), { workerData: { path: this.file, durability: this.durability } });
    w.unref();
    w.on('message', (m: Reply) => {
      const p = this.#pending.get(m.id);
      if (!p) return;
      this.#pending.delete(m.id);
      if (m.ok) p.resolve();
      else if (m.name === 'DuplicateSeqError') p.reject(Object.assign(new Error(m.error), { name: m.name }));
      else p.reject(Object.assign(new Error(`${this.description}: ${m.error}`), { code: m.code }));
    });
    const fail = (err: Error): void => {
      this.#worker = undefined;
      for (const [, p] of this.#pending) p.reject(new Error(`${this.description}: audit writer stopped: ${err.message}`));
      this.#pending.clear();
    };
    w.on('error', fail);
    w.on('exit', (code) => {
      if (!this.#closed) fail(new Error(`worker exited with code ${code}`));
    });
    this.#worker = w;
  }

  async head(instance: string): Promise<ChainHead | null> {
    return this.reader.head(instance);
  }

  append(records: readonly AuditRecord[]): Promise<void> {
    if (this.#closed) return Promise.reject(new Error(`${this.description}: store is closed`));
    // An in-memory database exists only on its own connection, and without fsync a commit is
    // cheaper than the hand-off to a thread: write on this thread.
    if (this.inline) {
      try {
        this.reader.append(records);
        return Promise.resolve();
      } catch (err) {
        return Promise.reject(err instanceof Error ? err : new Error(String(err)));
      }
    }
    if (!this.#worker) {
      if (this.reader.db.readonly) return Promise.reject(new Error(`${this.description}: opened read-only`));
      this.#startWorker();
    }
    const id = this.#nextId++;
    return new Promise<void>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      // Keep the process alive while a write is in flight.
      this.#worker!.ref();
      this.#worker!.postMessage({ id, rows: records.map(toStoredRow) });
    }).finally(() => {
      if (this.#pending.size === 0) this.#worker?.unref();
    });
  }

  async *query(q: AuditQuery): AsyncGenerator<AuditRecord> {
    yield* this.reader.query(q);
  }

  async *chain(instance: string, fromSeq?: number): AsyncGenerator<AuditRecord> {
    yield* this.reader.chain(instance, fromSeq);
  }

  async instances(): Promise<string[]> {
    return this.reader.instances();
  }

  /** The index's entries: see index-check.ts. */
  async *indexEntries(instance: string, throughSeq?: number): AsyncGenerator<IndexEntry> {
    yield* this.reader.indexEntries(instance, throughSeq);
  }

  async indexInstances(): Promise<string[]> {
    return this.reader.indexInstances();
  }

  async saveCheckpoint(cp: Checkpoint): Promise<void> {
    this.reader.saveCheckpoint(cp);
  }

  async checkpoints(instance?: string): Promise<Checkpoint[]> {
    return this.reader.checkpoints(instance);
  }

  async prune(before: string, instance?: string): Promise<number> {
    return this.reader.prune(before, instance);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const w = this.#worker;
    this.#worker = undefined;
    if (w) await w.terminate();
    this.reader.close();
  }
}

/**
 * Opens (creating when writable) a SQLite audit database. Errors name the file
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
