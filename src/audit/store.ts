/**
 * What every audit store (sqlite, postgres, jsonl) provides. A store holds the
 * hash-chained records of one or more Warden instances (one chain each) and
 * their signed checkpoints; it never computes hashes itself — records arrive
 * complete from the {@link ChainWriter} and are stored verbatim.
 *
 * Durability contract: when `append` resolves, the records are on stable
 * storage (fsync'd / committed), all of them or none (a batch is atomic). The
 * writer calls `append` with one batch at a time (group commit), never
 * concurrently.
 */
import type { AuditRecord, ChainHead, Checkpoint, SealedRecord } from './chain.js';

/** See {@link AuditStore.direct}. */
export interface DirectJournal {
  /** Writes complete record lines (in the OS when it returns); throws, leaving no trace, on failure. */
  write(text: string): void;
  /** Null when what was written is as durable as configured, else a promise (group-committed fdatasync). */
  durable(): Promise<void> | null;
  /** Whether written records wait for an fdatasync (`durability: fsync`) before they are durable. */
  readonly syncs: boolean;
  /** Whether a failed sync cut the journal back and waits for {@link resume}. */
  readonly failed: boolean;
  /** After a failed sync: accept writes again; returns the chain's head as the journal now ends. */
  resume(): ChainHead | null;
}

/** Search filters; every given filter must hold. */
export interface AuditQuery {
  /** Only this instance's chain (default: all). */
  instance?: string;
  /** Record seq range (inclusive), for an instance's chain. */
  fromSeq?: number;
  toSeq?: number;
  /** ISO-8601 or Date: records with ts >= since / ts < until. */
  since?: string;
  until?: string;
  /** Event types, e.g. `statement.begin` or a prefix ending in `.` (`statement.`). */
  types?: string[];
  identity?: string;
  session?: string;
  /** A table (`schema.table`, or a bare `table` matching any schema) the statement read or changed. */
  table?: string;
  /**
   * An action: a decision (`allow`, `deny`, `mask`, `approve`), a statement class
   * (`read`, `write`, `ddl`, `drop`, ...) or a statement kind (`select`, `update`, ...).
   */
  action?: string;
  /** Newest first (default: oldest first). */
  descending?: boolean;
  limit?: number;
}

/**
 * Index terms a store keeps for fast search, derived from a record's data by
 * {@link indexTermsOf}. Stores that index (sqlite, postgres) keep them in a side
 * table; jsonl scans.
 */
export interface IndexTerms {
  identity?: string;
  session?: string;
  tables: string[];
  actions: string[];
}

/**
 * A store's search index at one seq, as stored (not derived): what verification
 * compares with {@link indexTermsOf} of the record (see index-check.ts).
 */
export interface IndexEntry {
  seq: number;
  /** Whether a record row has this seq (false: only terms point at it). */
  record: boolean;
  /** The record row's search columns (null when empty or when there is no row). */
  identity: string | null;
  session: string | null;
  /** The terms at this seq, whatever their kind. */
  terms: { kind: string; value: string }[];
}

export interface AuditStore {
  /** `sqlite:/abs/path`, `postgres://host/db` (no password), `jsonl:/abs/path`. */
  readonly description: string;
  /** The last record of an instance's chain, or null when it has none. */
  head(instance: string): Promise<ChainHead | null>;
  /**
   * For a store the audit log writes to: prepares writing the instance's chain
   * (e.g. takes its journal's lock) and returns its head like `head`.
   */
  openChain?(instance: string): Promise<ChainHead | null>;
  /**
   * The audit log's synchronous path, when the store has one (the sqlite
   * store's journal): write sealed lines now, learn when they are durable.
   * Null when the store cannot write this instance's chain that way.
   */
  direct?(instance: string): DirectJournal | null;
  /** Durably store a batch of consecutive records (atomically). */
  append(records: readonly AuditRecord[]): Promise<void>;
  /**
   * The audit log's hot path, when the store has one: stores sealed records
   * (see `SealedRecord`) without decoding them. Returns null when they are
   * already as durable as configured, else a promise that resolves when they
   * are. A failed batch leaves no trace. Same contract as `append` otherwise.
   */
  appendSealed?(records: readonly SealedRecord[]): Promise<void> | null;
  /** Records matching the query, in seq order per instance (ts order across instances). */
  query(q: AuditQuery): AsyncIterable<AuditRecord>;
  /** Every record of one instance's chain in storage order, for verification (includes malformed rows as best it can). */
  chain(instance: string, fromSeq?: number): AsyncIterable<AuditRecord>;
  /** Instances with records in this store. */
  instances(): Promise<string[]>;
  /**
   * Stores with a search index (sqlite, postgres): the index of one instance's
   * chain, one entry per seq that has a record row or terms, in seq order (up to
   * `throughSeq`), in batches, read in one streaming pass, for verification.
   */
  indexEntries?(instance: string, throughSeq?: number): AsyncIterable<IndexEntry[]>;
  /** Stores with a search index: the instances its terms name (including any without records). */
  indexInstances?(): Promise<string[]>;
  saveCheckpoint(cp: Checkpoint): Promise<void>;
  checkpoints(instance?: string): Promise<Checkpoint[]>;
  /** Delete records with ts older than `before` (retention); returns how many. Checkpoints are kept. */
  prune(before: string, instance?: string): Promise<number>;
  close(): Promise<void>;
}

/** Lower-case index terms of a record (see {@link IndexTerms}). */
export function indexTermsOf(r: Pick<AuditRecord, 'data'>): IndexTerms {
  const d = r.data as Record<string, unknown>;
  const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
  const list = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string' && x !== '') : []);
  const tables = new Set<string>();
  for (const t of list(d.tables)) tables.add(t.toLowerCase());
  const actions = new Set<string>();
  const decision = d.decision as Record<string, unknown> | undefined;
  if (decision && typeof decision === 'object') {
    const a = str(decision.action);
    if (a) actions.add(a.toLowerCase());
  }
  for (const a of list(d.classes)) actions.add(a.toLowerCase());
  for (const a of list(d.kinds)) actions.add(a.toLowerCase());
  return { identity: str(d.identity), session: str(d.session), tables: [...tables], actions: [...actions] };
}

/** Whether a record passes the query's filters (for stores that scan, and to double-check). */
export function matchesQuery(r: AuditRecord, q: AuditQuery): boolean {
  if (q.instance !== undefined && r.instance !== q.instance) return false;
  if (q.fromSeq !== undefined && r.seq < q.fromSeq) return false;
  if (q.toSeq !== undefined && r.seq > q.toSeq) return false;
  if (q.since !== undefined && r.ts < normalizeTime(q.since)) return false;
  if (q.until !== undefined && r.ts >= normalizeTime(q.until)) return false;
  if (q.types && q.types.length > 0 && !q.types.some((t) => (t.endsWith('.') ? r.type.startsWith(t) : r.type === t))) return false;
  if (q.identity !== undefined || q.session !== undefined || q.table !== undefined || q.action !== undefined) {
    const terms = indexTermsOf(r);
    if (q.identity !== undefined && terms.identity !== q.identity) return false;
    if (q.session !== undefined && terms.session !== q.session) return false;
    if (q.table !== undefined && !terms.tables.some((t) => tableMatches(t, q.table!))) return false;
    if (q.action !== undefined && !terms.actions.includes(q.action.toLowerCase())) return false;
  }
  return true;
}

/** An ISO-8601 time in the form records use (`toISOString`), so string comparison orders correctly. */
export function normalizeTime(t: string): string {
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) throw new RangeError(`not a time: "${t}" (expected ISO-8601, e.g. 2026-11-27T10:00:00Z)`);
  return d.toISOString();
}

/**
 * Whether an indexed table name matches a `table` filter: `schema.table`
 * exactly, or a bare `table` in any schema (case-insensitive).
 */
export function tableMatches(indexed: string, filter: string): boolean {
  const f = filter.toLowerCase();
  if (indexed === f) return true;
  return !f.includes('.') && indexed.endsWith(`.${f}`);
}
