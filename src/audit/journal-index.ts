/**
 * Fills the SQLite search index (the `records` and `terms` tables) from the
 * audit journals (journal.ts), in large transactions, off the hot path.
 *
 * Where each journal has been indexed up to is kept in the `meta` table
 * (`journal:<id>` → `<segment>:<offset>`) in the same transaction as the rows,
 * so after a crash indexing resumes exactly where it stopped; inserting a
 * record that is already indexed is a no-op, so a replay is harmless. A
 * segment is deleted once it is fully indexed, committed, and a later segment
 * of its journal exists (its writer has moved on).
 *
 * Which journals an indexer may read how far:
 * - its own process' journal, up to the writer's durable watermark (never a
 *   record whose write could still be cut back after a failed fdatasync);
 * - a journal whose writer is gone (no live process holds its lock): all of it.
 */
import fs from 'node:fs';
import type Database from 'better-sqlite3';
import { listSegments, readSegmentLines, type JournalPosition, type JournalSegment } from './journal.js';
import { indexTermsOf } from './store.js';
import type { AuditRecord } from './chain.js';

/** Bytes of journal read per transaction. */
const CHUNK_BYTES = 2 * 1024 * 1024;

export interface IndexStep {
  /** Records indexed in this step. */
  indexed: number;
  /** Whether everything readable was indexed (nothing left to do now). */
  caughtUp: boolean;
  /** Records whose (instance, seq) was indexed before with another hash (a second writer, or tampering). */
  conflicts: string[];
}

/** A record line's fields as the index stores them; null when the line is not a record. */
export function indexRowOf(line: string): { r: AuditRecord; dataText: string } | null {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return null;
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return null;
  const r = v as Partial<AuditRecord>;
  if (
    typeof r.seq !== 'number' ||
    typeof r.ts !== 'string' ||
    typeof r.instance !== 'string' ||
    typeof r.type !== 'string' ||
    typeof r.prev !== 'string' ||
    typeof r.hash !== 'string' ||
    r.data === null ||
    typeof r.data !== 'object' ||
    Array.isArray(r.data)
  ) {
    return null;
  }
  // The data exactly as it was hashed: the line is canonical JSON, data its first member.
  const end = line.lastIndexOf(',"hash":"');
  const dataText = line.startsWith('{"data":') && end > 8 ? line.slice(8, end) : JSON.stringify(r.data);
  return { r: r as AuditRecord, dataText };
}

export function parsePosition(text: string | undefined): JournalPosition | null {
  if (!text) return null;
  const m = /^(\d+):(\d+)$/.exec(text);
  return m ? { n: Number(m[1]), offset: Number(m[2]) } : null;
}

/** Where each journal is indexed up to (from the index's meta table). */
export function indexedPositions(db: Database.Database): Map<string, JournalPosition> {
  const out = new Map<string, JournalPosition>();
  const rows = db.prepare("SELECT key, value FROM meta WHERE key LIKE 'journal:%'").all() as { key: string; value: string }[];
  for (const row of rows) {
    const p = parsePosition(row.value);
    if (p) out.set(row.key.slice('journal:'.length), p);
  }
  return out;
}

/** Whether a live process other than this one holds a journal's lock. */
export function lockedByOther(base: string, id: string): boolean {
  let text: string;
  try {
    text = fs.readFileSync(`${base}.journal-${id}.lock`, 'utf8');
  } catch {
    return false;
  }
  const pid = Number.parseInt(text, 10);
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class JournalIndexer {
  readonly #db: Database.Database;
  readonly #base: string;
  readonly #insert: Database.Statement;
  readonly #term: Database.Statement;
  readonly #existing: Database.Statement;
  readonly #setPos: Database.Statement;

  constructor(db: Database.Database, base: string) {
    this.#db = db;
    this.#base = base;
    this.#insert = db.prepare(
      'INSERT OR IGNORE INTO records (instance, seq, ts, type, data, prev, hash, identity, session) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
    this.#term = db.prepare('INSERT OR IGNORE INTO terms (kind, value, instance, seq) VALUES (?, ?, ?, ?)');
    this.#existing = db.prepare('SELECT hash FROM records WHERE instance = ? AND seq = ?').pluck();
    this.#setPos = db.prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)');
  }

  /**
   * Indexes up to one chunk of every journal. `own` is this process' journal
   * with its durable watermark; other journals are read only when their writer
   * is gone.
   */
  step(own?: { id: string; durable: () => JournalPosition }): IndexStep {
    const segments = listSegments(this.#base);
    const byId = new Map<string, JournalSegment[]>();
    for (const s of segments) {
      const l = byId.get(s.id);
      if (l) l.push(s);
      else byId.set(s.id, [s]);
    }
    const out: IndexStep = { indexed: 0, caughtUp: true, conflicts: [] };
    const unlink: string[] = [];
    const tx = this.#db.transaction(() => {
      const positions = indexedPositions(this.#db);
      for (const [id, segs] of byId) {
        const limit = own && own.id === id ? own.durable() : lockedByOther(this.#base, id) ? null : { n: Infinity, offset: Infinity };
        if (limit === null) continue;
        let pos = positions.get(id) ?? { n: segs[0].n, offset: 0 };
        for (const s of segs) {
          if (s.n < pos.n) {
            unlink.push(s.file); // indexed and left behind by a crash between commit and unlink
            continue;
          }
          if (s.n > pos.n) pos = { n: s.n, offset: 0 };
          if (s.n > limit.n) break;
          const max = s.n === limit.n ? Math.min(CHUNK_BYTES, limit.offset - pos.offset) : CHUNK_BYTES;
          const { lines, end } = max > 0 ? readSegmentLines(s.file, pos.offset, max) : { lines: [], end: pos.offset };
          for (const line of lines) this.#index(line, out);
          if (end !== pos.offset) {
            pos = { n: s.n, offset: end };
            this.#setPos.run(`journal:${id}`, `${pos.n}:${pos.offset}`);
          }
          const later = segs.some((x) => x.n > s.n);
          if (lines.length > 0 && max >= CHUNK_BYTES) out.caughtUp = false;
          if (lines.length > 0) break; // one chunk per journal and step
          if (!later) break;
          // Nothing left in this segment and its writer has moved on: done with it.
          pos = { n: s.n + 1, offset: 0 };
          this.#setPos.run(`journal:${id}`, `${pos.n}:0`);
          unlink.push(s.file);
          out.caughtUp = false;
        }
      }
    });
    tx.immediate();
    // What those segments held must be on disk in the index before they go (its commits are not
    // synced one by one: the journal, not the index, is where records are durable).
    if (unlink.length > 0) this.#db.pragma('wal_checkpoint(FULL)');
    for (const f of unlink) {
      try {
        fs.unlinkSync(f);
      } catch {
        // gone already
      }
    }
    return out;
  }

  #index(line: string, out: IndexStep): void {
    if (line === '') return;
    const row = indexRowOf(line);
    if (!row) {
      out.conflicts.push(`not a record line: ${line.slice(0, 80)}`);
      return;
    }
    const { r, dataText } = row;
    const t = indexTermsOf(r);
    const res = this.#insert.run(r.instance, r.seq, r.ts, r.type, dataText, r.prev, r.hash, t.identity ?? null, t.session ?? null);
    if (res.changes === 0) {
      const had = this.#existing.get(r.instance, r.seq) as string | undefined;
      if (had !== r.hash) out.conflicts.push(`record ${r.seq} of instance "${r.instance}" is indexed with another hash`);
      return;
    }
    out.indexed++;
    for (const v of t.tables) this.#term.run('table', v, r.instance, r.seq);
    for (const v of t.actions) this.#term.run('action', v, r.instance, r.seq);
  }
}
