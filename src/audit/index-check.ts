/**
 * Verification of a store's search index against its hash-chained records.
 *
 * The sqlite and postgres stores keep, beside each record's hashed `data`, the
 * search columns `identity` and `session` and a side table of terms (kind
 * `table` or `action`, see {@link indexTermsOf}). None of that is covered by
 * the hash chain, so an edited index could hide an identity's records from
 * `warden audit search`. This check compares, for every record, the index as
 * stored with what {@link indexTermsOf} derives from the record's data:
 *
 * - the identity and session columns must equal the data's;
 * - the record's terms must be exactly the derived ones (a missing term hides
 *   the record from a search; an extra one makes it appear under a table or
 *   action it did not touch);
 * - terms that point at no record are reported too.
 *
 * It runs in one pass, merging the chain (read for hash verification anyway)
 * with the store's index entries, both in seq order ({@link AuditStore.indexEntries}):
 * no query per record. Stores without an index (jsonl) have nothing to check.
 *
 * Records appended while verification runs are not compared (the check stops at
 * the head it saw when it started; terms past it count as orphans only when they
 * are past the head at the end too); a record the index no longer has (pruned
 * meanwhile) is skipped.
 */
import type { AuditRecord, VerifyProblem } from './chain.js';
import { indexTermsOf, type IndexEntry } from './store.js';

/** Records whose index differs are reported one by one up to this many per instance, then counted. */
const DETAILED = 50;
/** Seqs named in the report of terms that point at no record. */
const ORPHAN_SEQS_SHOWN = 10;

/** What the index check covered (for the verify report). */
export interface IndexCheckSummary {
  /** Records whose index columns and terms were compared with their data. */
  records: number;
  /** Terms read from the index. */
  terms: number;
  /** Records whose index differs from their data. */
  mismatched: number;
  /** Terms that point at no record. */
  orphanTerms: number;
}

/**
 * PostgreSQL text cannot hold NUL, so the postgres store indexes values with
 * NUL replaced by U+FFFD; both sides are compared in that form.
 */
function norm(v: string | null | undefined): string | null {
  return v === undefined || v === null ? null : v.includes('\0') ? v.replace(/\0/g, '\uFFFD') : v;
}

const show = (v: string | null): string => (v === null ? 'empty' : JSON.stringify(v));

/**
 * An incremental index check: `push` every record of one instance's chain in
 * seq order (as `AuditStore.chain` yields them), then `finish`.
 */
export function indexChecker(
  entries: AsyncIterable<IndexEntry[]>,
  opts: {
    instance: string;
    /** Records past this seq (appended while verification reads) are not compared. */
    throughSeq?: number;
    /** The instance's head seq now (0 when it has no records), read at the end to tell appended records from orphan terms. */
    headNow?: () => Promise<number>;
  },
): {
  push(r: AuditRecord, index: number): Promise<void>;
  finish(records: number): Promise<{ problems: VerifyProblem[]; summary: IndexCheckSummary }>;
  /** Stops reading the index (after an error). */
  abort(): Promise<void>;
} {
  const it = entries[Symbol.asyncIterator]();
  const through = opts.throughSeq ?? Number.MAX_SAFE_INTEGER;
  const problems: VerifyProblem[] = [];
  const summary: IndexCheckSummary = { records: 0, terms: 0, mismatched: 0, orphanTerms: 0 };
  let firstUnshown: { seq: number; index: number } | undefined;
  const orphanSeqs: number[] = [];
  let orphanEntries = 0;
  let cur: IndexEntry | undefined;
  let batch: IndexEntry[] = [];
  let at = 0;
  let started = false;
  let done = false;
  let lastSeq = 0;

  /** Moves to the next entry within the batch; false when the next batch must be read first. */
  const step = (): boolean => {
    at++;
    if (at < batch.length) {
      cur = batch[at];
      summary.terms += cur.terms.length;
      return true;
    }
    cur = undefined;
    return done;
  };
  /** Reads batches until there is an entry (or none are left). */
  const refill = async (): Promise<void> => {
    while (!done) {
      const n = await it.next();
      if (n.done) {
        done = true;
        return;
      }
      if (n.value.length > 0) {
        batch = n.value;
        at = 0;
        cur = batch[0];
        summary.terms += cur.terms.length;
        return;
      }
    }
  };
  const next = async (): Promise<void> => {
    if (!step()) await refill();
  };

  /** Terms-only entries past the head seen at the start: orphans unless their record was appended since. */
  const beyond: [number, number][] = [];
  const orphan = (seq: number, terms: number): void => {
    summary.orphanTerms += terms;
    orphanEntries++;
    if (orphanSeqs.length < ORPHAN_SEQS_SHOWN) orphanSeqs.push(seq);
  };
  /** An index entry no record of the chain matched. */
  const unmatched = (e: IndexEntry): void => {
    // A records row the chain did not show was appended or deleted while we read: not a finding.
    if (e.record || e.terms.length === 0) return;
    if (e.seq > through) beyond.push([e.seq, e.terms.length]);
    else orphan(e.seq, e.terms.length);
  };

  /** Whether the entry is exactly what the record derives (the common case, checked cheaply). */
  const agrees = (want: ReturnType<typeof indexTermsOf>, e: IndexEntry): boolean => {
    if (norm(e.identity) !== norm(want.identity) || norm(e.session) !== norm(want.session)) return false;
    if (e.terms.length !== want.tables.length + want.actions.length) return false;
    // Stored terms are distinct (primary key): all derived, and as many, means the same set.
    for (const t of e.terms) {
      const list = t.kind === 'table' ? want.tables : t.kind === 'action' ? want.actions : null;
      const v = norm(t.value);
      if (!list || !list.some((x) => norm(x) === v)) return false;
    }
    return true;
  };

  const compare = (r: AuditRecord, e: IndexEntry, index: number): void => {
    summary.records++;
    const want = indexTermsOf(r);
    if (agrees(want, e)) return;
    const diffs: string[] = [];
    for (const col of ['identity', 'session'] as const) {
      const stored = norm(e[col]);
      const derived = norm(want[col]);
      if (stored !== derived) diffs.push(`${col} column ${show(stored)} but its data says ${show(derived)}`);
    }
    const expected = new Set<string>();
    for (const [kind, values] of [['table', want.tables], ['action', want.actions]] as const) {
      for (const v of values) expected.add(`${kind}\0${norm(v)}`);
    }
    const seen = new Set<string>();
    for (const t of e.terms) {
      const key = `${t.kind}\0${norm(t.value)}`;
      if (seen.has(key)) continue;
      seen.add(key);
      if (!expected.has(key)) diffs.push(`terms: ${t.kind} ${JSON.stringify(t.value)} is not in its data (inserted?)`);
    }
    for (const key of expected) {
      if (!seen.has(key)) {
        const [kind, value] = key.split('\0');
        diffs.push(`terms: ${kind} ${JSON.stringify(value)} missing (deleted?)`);
      }
    }
    if (diffs.length === 0) return;
    summary.mismatched++;
    if (summary.mismatched <= DETAILED) {
      problems.push({ seq: r.seq, index, kind: 'index-mismatch', message: `record ${r.seq}: search index differs from its hashed data: ${diffs.join('; ')}` });
    } else if (!firstUnshown) {
      firstUnshown = { seq: r.seq, index };
    }
  };

  return {
    async push(r: AuditRecord, index: number): Promise<void> {
      if (!started) {
        started = true;
        await refill();
      }
      // Records out of order or beyond the head seen at the start are the chain check's business.
      if (!Number.isSafeInteger(r.seq) || r.seq <= lastSeq || r.seq > through) return;
      lastSeq = r.seq;
      while (cur && cur.seq < r.seq) {
        unmatched(cur);
        if (!step()) await refill();
      }
      if (cur && cur.seq === r.seq) {
        // Without the records row the record was deleted while we read (retention): skip it.
        if (cur.record) compare(r, cur, index);
        else unmatched(cur);
        if (!step()) await refill();
      }
    },

    async finish(records: number): Promise<{ problems: VerifyProblem[]; summary: IndexCheckSummary }> {
      try {
        if (!started) {
          started = true;
          await refill();
        }
        while (cur) {
          unmatched(cur);
          await next();
        }
      } finally {
        if (!done) await it.return?.();
      }
      if (beyond.length > 0) {
        // Records are appended in seq order with their terms: terms past the head as it is
        // now belong to no record.
        const head = opts.headNow ? await opts.headNow() : through;
        for (const [seq, n] of beyond) if (seq > head) orphan(seq, n);
      }
      if (firstUnshown) {
        problems.push({
          seq: firstUnshown.seq,
          index: firstUnshown.index,
          kind: 'index-mismatch',
          message: `and ${summary.mismatched - DETAILED} more record(s) from seq ${firstUnshown.seq} on whose search index differs from their hashed data`,
        });
      }
      if (summary.orphanTerms > 0) {
        const more = orphanEntries > orphanSeqs.length ? ', ...' : '';
        problems.push({
          seq: orphanSeqs[0] ?? null,
          index: records,
          kind: 'index-mismatch',
          message: `terms: ${summary.orphanTerms} term(s) of instance ${JSON.stringify(opts.instance)} point at records that do not exist (seq ${orphanSeqs.join(', ')}${more}) (inserted into the index, or their records deleted?)`,
        });
      }
      return { problems, summary };
    },

    async abort(): Promise<void> {
      if (done) return;
      done = true;
      await it.return?.();
    },
  };
}
