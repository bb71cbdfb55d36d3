/**
 * `jsonl:` audit store: one JSON line per record in an append-only file, for
 * deployments that ship their audit log with ordinary log tooling.
 *
 * - Records: `{"seq","ts","instance","type","data","prev","hash"}` (that key
 *   order), one per line, in append order. Checkpoints go to the sibling file
 *   `<path>.checkpoints.jsonl`, one per line.
 * - `append` writes a batch with a single `write` and `datasync`s before it
 *   resolves. A crash mid-write can leave whole lines of an unacknowledged batch
 *   (valid chain records) followed by a torn last line; on the next writable
 *   open that torn tail — a trailing fragment without a final `\n` — is cut off.
 *   Readers only ever see complete lines.
 * - There is no index: `query` and `chain` stream the file (bounded memory,
 *   except `descending` without `limit`). Results come in append order, which
 *   for a live log is time order also across instances. The chain heads are found by one
 *   streaming scan at open and then kept in memory, so only one process may
 *   write a file.
 * - Files are created with mode 0600; the directory must already exist.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { type FileHandle, open, rename, stat, unlink } from 'node:fs/promises';
import nodePath from 'node:path';
import type { AuditRecord, ChainHead, Checkpoint } from './chain.js';
import { type AuditQuery, type AuditStore, matchesQuery, normalizeTime } from './store.js';

export interface JsonlStoreOptions {
  /** Open for reading only (CLI verify / search / export): no file is created, repaired or written. */
  readOnly?: boolean;
  /** `os`: do not fdatasync each batch (survives a crash of Warden, not of the machine). */
  durability?: 'fsync' | 'os';
}

/**
 * Opens (creating it unless read-only) the JSON-lines audit log at `path`.
 * Rejects when the directory does not exist, or (read-only) the file does not.
 */
export async function openJsonlStore(path: string, opts: JsonlStoreOptions = {}): Promise<AuditStore> {
  const store = await JsonlStore.open(nodePath.resolve(path), opts.readOnly === true);
  store.fsync = opts.durability !== 'os';
  return store;
}

const NL = 0x0a;
const READ_CHUNK = 256 * 1024;
const PRUNE_FLUSH = 1024 * 1024;

class JsonlStore implements AuditStore {
  readonly description: string;
  readonly #file: string;
  readonly #cpFile: string;
  readonly #readOnly: boolean;
  /** Append handle (null when read-only or closed). */
  #handle: FileHandle | null;
  #cpHandle: FileHandle | null = null;
  /** Bytes of complete, durable lines in the records file (writable mode). */
  #size: number;
  readonly #heads = new Map<string, ChainHead>();
  /** Serializes appends, checkpoint writes, prunes and close. */
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;
  /** fdatasync each appended batch before acknowledging it. */
  fsync = true;

  private constructor(file: string, readOnly: boolean, handle: FileHandle | null, size: number) {
    this.#file = file;
    this.#cpFile = `${file}.checkpoints.jsonl`;
    this.#readOnly = readOnly;
    this.#handle = handle;
    this.#size = size;
    this.description = `jsonl:${file}`;
  }

  static async open(file: string, readOnly: boolean): Promise<JsonlStore> {
    if (readOnly) {
      let size: number;
      try {
        size = (await stat(file)).size;
      } catch (err) {
        throw openError(file, err, true);
      }
      const store = new JsonlStore(file, true, null, size);
      await store.#scanHeads();
      return store;
    }
    const handle = await openAppend(file);
    try {
      const store = new JsonlStore(file, false, handle, await repairTail(file, handle));
      await store.#scanHeads();
      return store;
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  async #scanHeads(): Promise<void> {
    for await (const line of this.#lines()) {
      const r = parseRecord(line);
      if (r && Number.isSafeInteger(r.seq)) this.#heads.set(r.instance, { seq: r.seq, hash: r.hash });
    }
  }

  /** Complete lines of the records file (as of now). */
  async *#lines(): AsyncGenerator<string> {
    this.#assertOpen();
    // Writable: only what was acknowledged. Read-only: whatever is there; readLines drops a torn tail.
    const end = this.#readOnly ? (await stat(this.#file)).size : this.#size;
    yield* readLines(this.#file, end);
  }

  async head(instance: string): Promise<ChainHead | null> {
    this.#assertOpen();
    const h = this.#heads.get(instance);
    return h ? { ...h } : null;
  }

  async instances(): Promise<string[]> {
    this.#assertOpen();
    return [...this.#heads.keys()].sort();
  }

  append(records: readonly AuditRecord[]): Promise<void> {
    return this.#exclusive(async () => {
      const handle = this.#writable();
      if (records.length === 0) return;
      const heads = new Map<string, ChainHead>();
      let text = '';
      for (const r of records) {
        if (!Number.isSafeInteger(r.seq) || r.seq < 1) throw new TypeError(`${this.description}: record seq must be a positive integer, got ${String(r.seq)}`);
        const head = heads.get(r.instance) ?? this.#heads.get(r.instance);
        if (head && r.seq <= head.seq) throw duplicateSeq(this.description, r.instance, r.seq);
        heads.set(r.instance, { seq: r.seq, hash: r.hash });
        text += recordLine(r);
      }
      const buf = Buffer.from(text, 'utf8');
      try {
        await writeAll(handle, buf);
        if (this.fsync) await handle.datasync();
      } catch (err) {
        // Do not leave a torn line for the next batch to be glued onto.
        await handle.truncate(this.#size).catch(() => undefined);
        throw new Error(`${this.description}: append failed: ${errMessage(err)}`, { cause: err });
      }
      this.#size += buf.length;
      for (const [instance, h] of heads) this.#heads.set(instance, h);
    });
  }

  async *query(q: AuditQuery): AsyncGenerator<AuditRecord> {
    const norm: AuditQuery = {
      ...q,
      since: q.since === undefined ? undefined : normalizeTime(q.since),
      until: q.until === undefined ? undefined : normalizeTime(q.until),
    };
    const limit = q.limit === undefined ? Infinity : Math.max(0, Math.floor(q.limit));
    if (limit === 0) return;
    if (!q.descending) {
      let n = 0;
      for await (const line of this.#lines()) {
        const r = parseRecord(line);
        if (!r || !matchesQuery(r, norm)) continue;
        yield r;
        if (++n >= limit) return;
      }
      return;
    }
    // Newest first: keep the last `limit` matches (a ring buffer), then emit them backwards.
    const kept: AuditRecord[] = [];
    let next = 0;
    for await (const line of this.#lines()) {
      const r = parseRecord(line);
      if (!r || !matchesQuery(r, norm)) continue;
      if (kept.length < limit) kept.push(r);
      else {
        kept[next] = r;
        next = (next + 1) % limit;
      }
    }
    for (let i = kept.length - 1; i >= 0; i--) yield kept[(next + i) % kept.length];
  }

  /**
   * The instance's records in file order. A line that is not a JSON record is
   * yielded as `{ seq: -1, instance, data: { malformed: line }, ... '' }` (unless
   * it visibly names another instance) so that verification reports it.
   */
  async *chain(instance: string, fromSeq?: number): AsyncGenerator<AuditRecord> {
    let lastSeq = 0; // seq of the last well-formed record of this instance seen
    for await (const line of this.#lines()) {
      if (line.trim() === '') continue;
      let value: unknown;
      let parsed = true;
      try {
        value = JSON.parse(line);
      } catch {
        parsed = false;
      }
      if (parsed && isObject(value) && typeof value.instance === 'string') {
        if (value.instance !== instance) continue;
        if (typeof value.seq === 'number') {
          lastSeq = value.seq;
          if (fromSeq !== undefined && value.seq < fromSeq) continue;
        }
        yield value as unknown as AuditRecord; // possibly malformed: verifyChain reports it
        continue;
      }
      const owner = parsed ? undefined : instanceHint(line);
      if (owner !== undefined && owner !== instance) continue;
      if (fromSeq !== undefined && lastSeq < fromSeq - 1) continue; // before the requested range
      yield { seq: -1, ts: '', instance, type: '', data: { malformed: line }, prev: '', hash: '' };
    }
  }

  saveCheckpoint(cp: Checkpoint): Promise<void> {
    return this.#exclusive(async () => {
      this.#writable();
      if (!this.#cpHandle) {
        const h = await openAppend(this.#cpFile);
        try {
          await repairTail(this.#cpFile, h);
        } catch (err) {
          await h.close();
          throw err;
        }
        this.#cpHandle = h;
      }
      const { instance, seq, hash, ts, signature, keyId } = cp;
      try {
        await writeAll(this.#cpHandle, Buffer.from(`${JSON.stringify({ instance, seq, hash, ts, signature, keyId })}\n`, 'utf8'));
        await this.#cpHandle.datasync();
      } catch (err) {
        throw new Error(`${this.description}: saving checkpoint failed: ${errMessage(err)}`, { cause: err });
      }
    });
  }

  /** Checkpoints ordered by instance, seq; a later line for the same (instance, seq) replaces an earlier one. */
  async checkpoints(instance?: string): Promise<Checkpoint[]> {
    this.#assertOpen();
    let size: number;
    try {
      size = (await stat(this.#cpFile)).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const found = new Map<string, Checkpoint>();
    for await (const line of readLines(this.#cpFile, size)) {
      let v: unknown;
      try {
        v = JSON.parse(line);
      } catch {
        continue;
      }
      if (!isObject(v) || typeof v.instance !== 'string') continue;
      if (instance !== undefined && v.instance !== instance) continue;
      found.set(`${v.instance}\0${String(v.seq)}`, v as unknown as Checkpoint);
    }
    return [...found.values()].sort((a, b) =>
      a.instance < b.instance ? -1 : a.instance > b.instance ? 1 : Number(a.seq) - Number(b.seq),
    );
  }

  /**
   * Rewrites the file without the records with `ts < before` (of `instance`, or
   * of all instances): temp file, fsync, rename. Lines that are not records are
   * kept. Returns how many records were removed.
   *
   * Pruning cuts the front of a chain: afterwards the chain no longer starts at
   * seq 1, so verify it with `verifyChain(records, { startAfter })` where
   * `startAfter` is the `{ seq, hash }` of the last pruned record, i.e.
   * `{ seq: first.seq - 1, hash: first.prev }` of the first kept record (ideally
   * pinned by a signed checkpoint). The in-memory chain heads are kept, but if
   * every record of an instance is pruned, a later open no longer knows its head.
   */
  prune(before: string, instance?: string): Promise<number> {
    const cutoff = normalizeTime(before);
    return this.#exclusive(async () => {
      this.#writable();
      const dir = nodePath.dirname(this.#file);
      const tmp = nodePath.join(dir, `.${nodePath.basename(this.#file)}.prune-${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
      const out = await open(tmp, 'wx', 0o600);
      let removed = 0;
      let size = 0;
      try {
        let pending: string[] = [];
        let pendingLen = 0;
        const flush = async (): Promise<void> => {
          const buf = Buffer.from(pending.join(''), 'utf8');
          pending = [];
          pendingLen = 0;
          await writeAll(out, buf);
          size += buf.length;
        };
        for await (const line of readLines(this.#file, this.#size)) {
          const r = parseRecord(line);
          if (r && r.ts < cutoff && (instance === undefined || r.instance === instance)) {
            removed++;
            continue;
          }
          pending.push(`${line}\n`);
          pendingLen += line.length + 1;
          if (pendingLen >= PRUNE_FLUSH) await flush();
        }
        await flush();
        await out.sync();
      } catch (err) {
        await out.close().catch(() => undefined);
        await unlink(tmp).catch(() => undefined);
        throw new Error(`${this.description}: prune failed: ${errMessage(err)}`, { cause: err });
      }
      await out.close();
      if (removed === 0) {
        await unlink(tmp);
        return 0;
      }
      await rename(tmp, this.#file);
      await syncDir(dir);
      // The append handle still points at the replaced file.
      const old = this.#handle;
      this.#handle = await openAppend(this.#file);
      this.#size = size;
      await old?.close();
      return removed;
    });
  }

  close(): Promise<void> {
    if (this.#closed) return this.#queue.then(() => undefined);
    const done = this.#exclusive(async () => {
      const handles = [this.#handle, this.#cpHandle];
      this.#handle = null;
      this.#cpHandle = null;
      for (const h of handles) await h?.close();
    });
    this.#closed = true;
    return done;
  }

  #assertOpen(): void {
    if (this.#closed) throw new Error(`${this.description}: store is closed`);
  }

  #writable(): FileHandle {
    if (this.#readOnly) throw new Error(`${this.description}: store was opened read-only`);
    if (!this.#handle) throw new Error(`${this.description}: store is closed`);
    return this.#handle;
  }

  /** Runs `fn` after every earlier write; rejects at once when the store is already closed. */
  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new Error(`${this.description}: store is closed`));
    const run = this.#queue.then(fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }
}

/* ------------------------------------------------------------------------------------------ */
/* Files                                                                                       */
/* ------------------------------------------------------------------------------------------ */

async function openAppend(file: string): Promise<FileHandle> {
  try {
    return await open(file, 'a', 0o600);
  } catch (err) {
    throw openError(file, err, false);
  }
}

function openError(file: string, err: unknown, readOnly: boolean): Error {
  const code = (err as NodeJS.ErrnoException).code;
  let why: string;
  if (code === 'ENOENT') {
    why = readOnly ? 'the file does not exist' : `directory ${nodePath.dirname(file)} does not exist (it is not created automatically)`;
  } else if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    why = `permission denied (${code}): ${readOnly ? 'cannot read the file' : `cannot create or write the file in ${nodePath.dirname(file)}`}`;
  } else {
    why = errMessage(err);
  }
  return new Error(`jsonl audit store ${file}: ${why}`, { cause: err });
}

/**
 * Cuts a torn trailing line (no final `\n`: a crash mid-write, never acknowledged)
 * off the file; returns the length of its complete lines.
 */
async function repairTail(file: string, append: FileHandle): Promise<number> {
  const size = (await append.stat()).size;
  if (size === 0) return 0;
  const keep = await completeLength(file, size);
  if (keep < size) {
    await append.truncate(keep);
    await append.datasync();
  }
  return keep;
}

/** Length of the longest prefix of the file's first `size` bytes that ends with `\n` (0 if none). */
async function completeLength(file: string, size: number): Promise<number> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(Math.min(64 * 1024, size));
    for (let end = size; end > 0; ) {
      const len = Math.min(buf.length, end);
      const start = end - len;
      const { bytesRead } = await fh.read(buf, 0, len, start);
      const i = buf.subarray(0, bytesRead).lastIndexOf(NL);
      if (i !== -1) return start + i + 1;
      end = start;
    }
    return 0;
  } finally {
    await fh.close();
  }
}

/** Complete (`\n`-terminated) lines of the file's first `end` bytes; a trailing fragment is dropped. */
async function* readLines(file: string, end: number): AsyncGenerator<string> {
  if (end <= 0) return;
  const stream = createReadStream(file, { start: 0, end: end - 1, highWaterMark: READ_CHUNK });
  let pending: Buffer[] = [];
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let from = 0;
      for (let nl = chunk.indexOf(NL, from); nl !== -1; nl = chunk.indexOf(NL, from)) {
        const piece = chunk.subarray(from, nl);
        const line = pending.length === 0 ? piece : Buffer.concat([...pending, piece]);
        pending = [];
        from = nl + 1;
        yield line.toString('utf8');
      }
      if (from < chunk.length) pending.push(chunk.subarray(from));
    }
  } finally {
    stream.destroy();
  }
}

async function writeAll(handle: FileHandle, buf: Buffer): Promise<void> {
  for (let off = 0; off < buf.length; ) {
    const { bytesWritten } = await handle.write(buf, off, buf.length - off);
    off += bytesWritten;
  }
}

/** fsync a directory so a rename in it is durable (best effort: not every platform allows it). */
async function syncDir(dir: string): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch {
    // unsupported here; the rename itself has happened
  } finally {
    await fh?.close().catch(() => undefined);
  }
}

/* ------------------------------------------------------------------------------------------ */
/* Lines                                                                                       */
/* ------------------------------------------------------------------------------------------ */

function recordLine(r: AuditRecord): string {
  const { seq, ts, instance, type, data, prev, hash } = r;
  return `${JSON.stringify({ seq, ts, instance, type, data, prev, hash })}\n`;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** The line as a record when it has a record's shape (enough for filtering), else null. */
function parseRecord(line: string): AuditRecord | null {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return null;
  }
  if (!isObject(v)) return null;
  const ok =
    typeof v.seq === 'number' &&
    typeof v.ts === 'string' &&
    typeof v.instance === 'string' &&
    typeof v.type === 'string' &&
    isObject(v.data) &&
    typeof v.prev === 'string' &&
    typeof v.hash === 'string';
  return ok ? (v as unknown as AuditRecord) : null;
}

/** The instance a non-JSON line names (`"instance":"..."`), if it visibly names one. */
function instanceHint(line: string): string | undefined {
  const m = /"instance":("(?:[^"\\]|\\.)*")/.exec(line);
  if (!m) return undefined;
  try {
    const v: unknown = JSON.parse(m[1]);
    return typeof v === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}

function duplicateSeq(description: string, instance: string, seq: number): Error {
  const err = new Error(
    `${description}: already has record ${seq} of instance "${instance}": another writer is using the same instance name's chain (each Warden instance needs its own audit.instance)`,
  );
  err.name = 'DuplicateSeqError';
  return err;
}

function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
