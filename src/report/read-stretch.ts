/**
 * Reading a stretch of one chain in seq order, for the report. Any store: its
 * `chain(instance, fromSeq)`. A SQLite store (`sqlite:PATH`) is read faster:
 * the rows its index holds are fetched in batches with the data as the text it
 * was stored as (so the verifier hashes that text, verify-stretch.ts), read-only
 * from one snapshot per batch; what the index does not hold yet (the journal
 * tail) comes from the store's own `chain` as usual. When the database cannot
 * be read that way (another layout), the store's `chain` reads it all.
 */
import type { AuditRecord } from '../audit/chain.js';
import type { AuditStore } from '../audit/store.js';

export interface StretchRecord {
  /** Its `data` is {@link NOT_DECODED} until `decode()` is called (when `dataText` is given). */
  record: AuditRecord;
  /** The text the data was stored as, when the store gave it. */
  dataText?: string;
  /** Decodes the data (once) and returns it. */
  decode(): AuditRecord['data'];
}

/** The data of a record read as text and not decoded yet. */
export const NOT_DECODED: AuditRecord['data'] = Object.freeze({}) as AuditRecord['data'];

/**
 * Rows per batch. Between batches the event loop gets a turn (setImmediate), so a report made by
 * a running Warden (the admin API) holds its statements up by a few milliseconds at most.
 */
const BATCH = 1000;

export const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

type Row = [seq: number, ts: string, type: string, data: string, prev: string, hash: string];

async function openIndex(store: AuditStore): Promise<{ rows(instance: string, from: number, to: number): Row[]; max(instance: string): number | null; close(): void } | null> {
  if (!store.description.startsWith('sqlite:')) return null;
  try {
    const { default: Database } = await import('better-sqlite3');
    const db = new Database(store.description.slice('sqlite:'.length), { readonly: true, fileMustExist: true });
    const rows = db.prepare('SELECT seq, ts, type, data, prev, hash FROM records WHERE instance = ? AND seq >= ? AND seq <= ? ORDER BY seq').raw();
    const max = db.prepare('SELECT max(seq) FROM records WHERE instance = ?').pluck();
    return {
      rows: (instance, from, to) => rows.all(instance, from, to) as Row[],
      max: (instance) => (max.get(instance) as number | null) ?? null,
      close: () => db.close(),
    };
  } catch {
    return null;
  }
}

export function parsed(text: string): AuditRecord['data'] {
  try {
    const v: unknown = JSON.parse(text);
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as AuditRecord['data']) : { malformed: text };
  } catch {
    return { malformed: text };
  }
}

/** The last seq of `instance` a SQLite store's index holds (null: not a SQLite store, or not readable that way). */
export async function indexedThrough(store: AuditStore, instance: string): Promise<{ file: string; seq: number } | null> {
  const ix = await openIndex(store);
  if (!ix) return null;
  try {
    return { file: store.description.slice('sqlite:'.length), seq: ix.max(instance) ?? 0 };
  } finally {
    ix.close();
  }
}

/** Records of `instance` with fromSeq <= seq <= throughSeq, in seq order, in batches. */
export async function* readStretch(store: AuditStore, instance: string, fromSeq: number, throughSeq: number): AsyncGenerator<StretchRecord[]> {
  const ix = await openIndex(store);
  let next = fromSeq;
  if (ix) {
    try {
      const indexed = Math.min(ix.max(instance) ?? 0, throughSeq);
      while (next <= indexed) {
        const to = Math.min(indexed, next + BATCH - 1);
        const batch: StretchRecord[] = [];
        for (const [seq, ts, type, data, prev, hash] of ix.rows(instance, next, to)) {
          // The data is decoded on demand (decode()): a completion nobody waits for never is.
          const record: AuditRecord = { seq, ts, instance, type, data: NOT_DECODED, prev, hash };
          batch.push({ record, dataText: data, decode: () => (record.data === NOT_DECODED ? (record.data = parsed(data)) : record.data) });
        }
        yield batch;
        next = to + 1;
        await nextTurn();
      }
    } finally {
      ix.close();
    }
    if (next > throughSeq) return;
  }
  let batch: StretchRecord[] = [];
  for await (const r of store.chain(instance, next)) {
    if (Number.isSafeInteger(r.seq) && r.seq > throughSeq) break;
    if (Number.isSafeInteger(r.seq) && r.seq < next) continue;
    batch.push({ record: r, decode: () => r.data });
    if (batch.length >= BATCH) {
      yield batch;
      batch = [];
      await nextTurn();
    }
  }
  if (batch.length > 0) yield batch;
}
