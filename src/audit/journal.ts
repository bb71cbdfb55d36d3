/**
 * The audit journal: the append-only files an indexed store's records are
 * durable in before anything else happens to them.
 *
 * The hot path of the audit log is one `write()` per event-loop turn of every
 * record that turn produced (already chained and encoded as JSON lines), plus —
 * at `durability: fsync` — one `fdatasync` on libuv's thread pool that covers
 * them all (group commit). The search index (SQLite) is filled from these files
 * later, in large batches, by a low-priority worker (see `journal-indexer.ts`),
 * and rebuilt from them after a crash: the files are the record of truth until a
 * segment has been indexed and is deleted.
 *
 * ## Files
 * Beside the store file `BASE` (e.g. `audit.db`), one journal per chain
 * (instance), so a CLI writing its own chain never contends with Warden's:
 * - `BASE.journal-<ID>-<NNNNNN>`: segments of JSON lines, one record per line
 *   (the record's canonical JSON including its hash); `<ID>` is the first 16 hex
 *   characters of SHA-256 of the instance name, `<NNNNNN>` counts up from 1.
 * - `BASE.journal-<ID>.lock`: the writing process' pid while it writes.
 *
 * Only the writer appends and creates segments; only an indexer deletes a
 * segment, once it is fully indexed and a later one exists. A torn last line (a
 * crash in the middle of a write that was never acknowledged) is cut when the
 * writer opens the journal; readers ignore it.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import nodePath from 'node:path';

/** A segment is closed and the next one begun when it grows beyond this. */
export const SEGMENT_BYTES = 64 * 1024 * 1024;
/** fdatasyncs in flight at once at most (libuv's pool has 4 threads; the indexer and DNS use it too). */
const MAX_SYNCS = 2;

export interface JournalSegment {
  /** The chain's journal id (hash of the instance name). */
  id: string;
  /** 1, 2, 3…: the segment's number within its journal. */
  n: number;
  file: string;
}

/** The id of an instance's journal. */
export function journalId(instance: string): string {
  return crypto.createHash('sha256').update(instance, 'utf8').digest('hex').slice(0, 16);
}

const SEGMENT_RE = /\.journal-([0-9a-f]{16})-(\d{6,})$/;

/** Every journal segment beside `base`, ordered by journal id and number. */
export function listSegments(base: string): JournalSegment[] {
  const dir = nodePath.dirname(base);
  const prefix = `${nodePath.basename(base)}.journal-`;
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: JournalSegment[] = [];
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const m = SEGMENT_RE.exec(name);
    if (!m || name.length !== prefix.length + m[1].length + 1 + m[2].length) continue;
    out.push({ id: m[1], n: Number(m[2]), file: nodePath.join(dir, name) });
  }
  return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : a.n - b.n));
}

export function segmentFile(base: string, id: string, n: number): string {
  return `${base}.journal-${id}-${String(n).padStart(6, '0')}`;
}

/** A position in one journal: a segment number and a byte offset in it. */
export interface JournalPosition {
  n: number;
  offset: number;
}

/**
 * Complete lines of a segment from `offset` on (a torn last line is left out).
 * Returns the lines and the offset just after the last complete one.
 */
export function readSegmentLines(file: string, offset: number, maxBytes = Infinity): { lines: string[]; end: number } {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { lines: [], end: offset };
    throw err;
  }
  try {
    const size = fs.fstatSync(fd).size;
    const len = Math.min(size - offset, maxBytes);
    if (len <= 0) return { lines: [], end: offset };
    const buf = Buffer.allocUnsafe(len);
    let got = 0;
    while (got < len) {
      const n = fs.readSync(fd, buf, got, len - got, offset + got);
      if (n === 0) break;
      got += n;
    }
    const last = got > 0 ? buf.lastIndexOf(0x0a, got - 1) : -1;
    if (last < 0) {
      // A line longer than the chunk: read on until its end.
      return got === len && offset + len < size ? readSegmentLines(file, offset, len * 2) : { lines: [], end: offset };
    }
    const text = buf.toString('utf8', 0, last);
    return { lines: text === '' ? [''] : text.split('\n'), end: offset + last + 1 };
  } finally {
    fs.closeSync(fd);
  }
}

/** Thrown when another live process writes the same chain's journal. */
export class JournalLockedError extends Error {
  constructor(lock: string, pid: number) {
    super(
      pid === process.pid
        ? `this process already writes this audit chain (${lock})`
        : `another Warden process (pid ${pid}) is writing this audit chain (${lock}); give each Warden its own audit.instance`,
    );
    this.name = 'DuplicateSeqError';
  }
}

function alive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Locks this process holds. A lock file naming this process' pid that is not in here was left by
 * an earlier process that had the same pid (a container's pid 1 restarted): it is stale.
 */
const held = new Set<string>();

/** Takes the journal's lock file; a lock left by a dead process is taken over. */
function takeLock(lock: string): void {
  const key = nodePath.resolve(lock);
  if (held.has(key)) throw new JournalLockedError(lock, process.pid);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = fs.openSync(lock, 'wx', 0o600);
      fs.writeSync(fd, `${process.pid}\n`);
      fs.closeSync(fd);
      held.add(key);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let pid = NaN;
    try {
      pid = Number.parseInt(fs.readFileSync(lock, 'utf8'), 10);
    } catch {
      // vanished meanwhile: try again
    }
    if (alive(pid)) throw new JournalLockedError(lock, pid);
    try {
      fs.unlinkSync(lock);
    } catch {
      // someone else took it over: the next attempt decides
    }
  }
  throw new Error(`cannot take the audit journal lock ${lock}`);
}

function releaseLock(lock: string): void {
  held.delete(nodePath.resolve(lock));
  try {
    fs.unlinkSync(lock);
  } catch {
    // already gone
  }
}

function syncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // not supported on this platform: the file itself is synced
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/**
 * Length of the complete lines of a file (cut after its last `\n`).
 */
function completeLength(fd: number, size: number): number {
  const buf = Buffer.allocUnsafe(64 * 1024);
  for (let end = size; end > 0; ) {
    const len = Math.min(buf.length, end);
    const start = end - len;
    const n = fs.readSync(fd, buf, 0, len, start);
    const i = buf.subarray(0, n).lastIndexOf(0x0a);
    if (i !== -1) return start + i + 1;
    end = start;
  }
  return 0;
}

/** The last complete line of a file, or null. */
export function lastLine(file: string): string | null {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  try {
    const size = fs.fstatSync(fd).size;
    const end = completeLength(fd, size);
    if (end === 0) return null;
    // Search back for the line's start.
    let start = 0;
    const buf = Buffer.allocUnsafe(64 * 1024);
    for (let to = end - 1; to > 0; ) {
      const len = Math.min(buf.length, to);
      const from = to - len;
      const n = fs.readSync(fd, buf, 0, len, from);
      const i = buf.subarray(0, n).lastIndexOf(0x0a);
      if (i !== -1) {
        start = from + i + 1;
        break;
      }
      to = from;
    }
    const out = Buffer.allocUnsafe(end - 1 - start);
    fs.readSync(fd, out, 0, out.length, start);
    return out.toString('utf8');
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The writing end of one chain's journal. Not thread-safe; one per process and
 * chain (the lock file enforces it across processes).
 */
export class JournalWriter {
  readonly base: string;
  readonly instance: string;
  readonly id: string;
  readonly lock: string;
  readonly fsync: boolean;
  #fd: number;
  #n: number;
  /** Bytes of complete, acknowledged-or-pending lines in the current segment. */
  #size: number;
  /** Set when a failed write could not be cut back: appends fail until it can. */
  #cutTo: number | null = null;
  #closed = false;
  /** Bytes written in all, and how many of them a completed fdatasync covers. */
  #written = 0;
  #synced = 0;
  /** fdatasyncs in flight, and how far the latest of them reaches. */
  #syncing = 0;
  #inflightCover = 0;
  /** Who waits for a sync to cover `target` bytes written. */
  #waiters: { target: number; resolve: () => void; reject: (err: Error) => void; promise: Promise<void> }[] = [];
  /** Descriptors of segments rotated away while a sync used them. */
  #retired: number[] = [];
  #failed: Error | null = null;

  private constructor(base: string, instance: string, id: string, lock: string, fsyncOn: boolean, fd: number, n: number, size: number) {
    this.base = base;
    this.instance = instance;
    this.id = id;
    this.lock = lock;
    this.fsync = fsyncOn;
    this.#fd = fd;
    this.#n = n;
    this.#size = size;
  }

  /** Opens (creating) an instance's journal beside `base`, taking its lock and cutting a torn tail. */
  static open(base: string, instance: string, o: { durability: 'fsync' | 'os' }): JournalWriter {
    const id = journalId(instance);
    const lock = `${base}.journal-${id}.lock`;
    takeLock(lock);
    try {
      const mine = listSegments(base).filter((s) => s.id === id);
      const n = mine.length > 0 ? mine[mine.length - 1].n : 1;
      const file = segmentFile(base, id, n);
      const fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_APPEND, 0o600);
      try {
        const size = fs.fstatSync(fd).size;
        let keep = size;
        if (size > 0) {
          const rfd = fs.openSync(file, 'r');
          try {
            keep = completeLength(rfd, size);
          } finally {
            fs.closeSync(rfd);
          }
          if (keep < size) {
            fs.ftruncateSync(fd, keep);
            fs.fdatasyncSync(fd);
          }
        }
        if (mine.length === 0) syncDir(nodePath.dirname(base));
        return new JournalWriter(base, instance, id, lock, o.durability === 'fsync', fd, n, keep);
      } catch (err) {
        fs.closeSync(fd);
        throw err;
      }
    } catch (err) {
      releaseLock(lock);
      throw err;
    }
  }

  /** The end of what was appended: the current segment and its size. */
  get position(): JournalPosition {
    return { n: this.#n, offset: this.#size };
  }

  /** The last complete line of this chain's journal (its head record), or null when it has none. */
  lastLine(): string | null {
    for (const s of listSegments(this.base).filter((x) => x.id === this.id).reverse()) {
      const l = lastLine(s.file);
      if (l !== null) return l;
    }
    return null;
  }

  /**
   * Appends complete lines with one write, and returns like {@link durable}:
   * null when they are as durable as configured already, else a promise.
   */
  append(text: string): Promise<void> | null {
    this.write(text);
    return this.durable();
  }

  /**
   * Writes complete lines with one `write()` (they are in the OS when it
   * returns). On failure the segment is cut back to what it held before, so a
   * failed write leaves no trace, and the error is thrown.
   */
  write(text: string): void {
    if (this.#closed) throw new Error('audit journal is closed');
    if (this.#failed) throw new Error(`audit journal sync failed (${this.#failed.message}); not written`);
    if (this.#cutTo !== null) {
      fs.ftruncateSync(this.#fd, this.#cutTo);
      this.#size = this.#cutTo;
      this.#cutTo = null;
    }
    if (this.#size >= SEGMENT_BYTES) this.#rotate();
    const before = this.#size;
    const length = Buffer.byteLength(text, 'utf8');
    try {
      // A string is written without a Buffer of our own; a short write goes on from where it stopped.
      let off = fs.writeSync(this.#fd, text, null, 'utf8');
      if (off < length) {
        const buf = Buffer.from(text, 'utf8');
        while (off < length) off += fs.writeSync(this.#fd, buf, off, length - off);
      }
    } catch (err) {
      this.#cut(before);
      throw err;
    }
    this.#size = before + length;
    this.#written += length;
  }

  /**
   * Null when everything written so far is as durable as configured (`os`:
   * it is in the OS), else a promise that resolves once an `fdatasync` that
   * started after the last write has completed. Syncs are shared: at most
   * two run at once, and the writes made meanwhile wait for the next one, which
   * starts as soon as one ends (group commit). When a sync fails, the journal
   * is cut back to what the last good sync covered, every waiter is rejected,
   * and writes fail until {@link reset}.
   */
  durable(): Promise<void> | null {
    if (!this.fsync || this.#synced >= this.#written) return null;
    if (this.#failed) return Promise.reject(this.#failed);
    // Writers write once per event-loop turn (the audit log stages a turn's records), so the sync
    // starts now: it covers everything written so far, and the writes made while it runs wait
    // for the next one (group commit).
    const target = this.#written;
    const last = this.#waiters.length > 0 ? this.#waiters[this.#waiters.length - 1] : undefined;
    if (last && last.target === target) return last.promise;
    const waiter = { target, resolve: (): void => undefined, reject: (_err: Error): void => undefined, promise: null as unknown as Promise<void> };
    waiter.promise = new Promise<void>((resolve, reject) => {
      waiter.resolve = resolve;
      waiter.reject = reject;
    });
    this.#waiters.push(waiter);
    this.#kick();
    return waiter.promise;
  }

  /** After a failed sync: accept writes again (the caller resumed its chain from {@link lastLine}). */
  reset(): void {
    this.#failed = null;
  }

  /** Whether a failed sync waits for {@link reset}. */
  get failed(): boolean {
    return this.#failed !== null;
  }

  #kick(): void {
    if (this.#failed || this.#waiters.length === 0) return;
    // A new sync only when someone waits for what the syncs in flight do not cover, and at most a
    // few at once: a write need not wait for the sync before it to end (the file system's own
    // journal commits concurrent syncs together).
    if (this.#syncing >= MAX_SYNCS || this.#inflightCover >= this.#written) return;
    this.#syncing++;
    const covered = this.#written;
    this.#inflightCover = covered;
    const fd = this.#fd;
    fs.fdatasync(fd, (err) => {
      this.#syncing--;
      if (this.#syncing === 0) for (const old of this.#retired.splice(0)) fs.close(old, () => undefined);
      if (this.#closed) return;
      if (err) {
        this.#syncFailed(err);
        return;
      }
      if (covered > this.#synced) this.#synced = covered;
      const waiting = this.#waiters;
      this.#waiters = [];
      for (const w of waiting) {
        if (w.target <= this.#synced) w.resolve();
        else this.#waiters.push(w);
      }
      this.#kick();
    });
  }

  #syncFailed(err: Error): void {
    // After a failed fdatasync the page cache cannot be trusted: what it should have covered is cut.
    const unsynced = this.#written - this.#synced;
    this.#cut(Math.max(0, this.#size - unsynced));
    this.#written = this.#synced;
    this.#inflightCover = this.#synced;
    this.#failed = err;
    const waiting = this.#waiters;
    this.#waiters = [];
    for (const w of waiting) w.reject(err);
  }

  #cut(to: number): void {
    try {
      fs.ftruncateSync(this.#fd, to);
      this.#size = to;
    } catch {
      this.#cutTo = to;
    }
  }

  #rotate(): void {
    const next = this.#n + 1;
    const fd = fs.openSync(segmentFile(this.base, this.id, next), fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_APPEND, 0o600);
    if (this.fsync) {
      fs.fdatasyncSync(this.#fd);
      this.#synced = this.#written;
      syncDir(nodePath.dirname(this.base));
    }
    // A sync in flight still uses the old descriptor: close it after that.
    if (this.#syncing > 0) this.#retired.push(this.#fd);
    else fs.closeSync(this.#fd);
    this.#fd = fd;
    this.#n = next;
    this.#size = 0;
  }

  /** The end of what a completed sync covers (everything written, at `os`). */
  get durablePosition(): JournalPosition {
    return { n: this.#n, offset: Math.max(0, this.#size - (this.#written - this.#synced)) };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      if (this.fsync && !this.#failed) {
        fs.fdatasyncSync(this.#fd);
        this.#synced = this.#written;
        const waiting = this.#waiters;
        this.#waiters = [];
        for (const w of waiting) w.resolve();
      }
    } finally {
      if (this.#syncing > 0) this.#retired.push(this.#fd);
      else fs.closeSync(this.#fd);
      releaseLock(this.lock);
    }
  }

}
