/**
 * Tamper-evident core of Warden's audit log: hash-chained records and signed
 * checkpoints. Pure code — no I/O; stores feed records in and write them out.
 *
 * ## Records
 *
 * Every audit event is an {@link AuditRecord}:
 *
 * | field      | meaning                                                              |
 * |------------|----------------------------------------------------------------------|
 * | `seq`      | 1, 2, 3, … per Warden instance, no gaps                              |
 * | `ts`       | ISO-8601 timestamp (`Date.prototype.toISOString`)                    |
 * | `instance` | name of the Warden instance whose chain this is                      |
 * | `type`     | event type, e.g. `query.denied`                                      |
 * | `data`     | event payload, any JSON object                                       |
 * | `prev`     | `hash` of the previous record; 64 zeros ({@link GENESIS}) for seq 1  |
 * | `hash`     | SHA-256 (lower-case hex) of the record's canonical encoding          |
 *
 * `hash = sha256hex(canonicalJson({ seq, ts, instance, type, data, prev }))`, where
 * `canonicalJson` sorts object keys by UTF-16 code units, emits no whitespace,
 * rejects non-finite numbers and drops `undefined` members (see `canonical.ts`).
 * Other fields a store may add to a stored record are not covered by the hash.
 *
 * Because each record contains its predecessor's hash, changing any record
 * changes every later link: an edited record no longer matches its own hash, and
 * an attacker who recomputes it breaks the link from the next record.
 *
 * ## Checkpoints
 *
 * A chain alone cannot detect an attacker who rewrites the whole tail, or who
 * simply cuts it off. Periodically Warden signs a {@link Checkpoint}
 * `{ instance, seq, hash, ts }` with the instance's Ed25519 key; the signature
 * is over `canonicalJson({ instance, seq, hash, ts })`, base64-encoded, and
 * `keyId` is the first 16 hex chars of SHA-256 over the public key's SPKI DER
 * (a hint for picking the key; it is not covered by the signature, but
 * verification rejects a checkpoint whose keyId does not match the key). Exported
 * checkpoints kept elsewhere pin the chain: a later rewrite or truncation of any
 * record at or before a checkpoint is detected.
 *
 * ## Verification
 *
 * {@link verifyChain} reads records in storage order and reports every problem
 * with the record's `seq` and its 0-based position (`index`) in the input:
 *
 * - `hash-mismatch` — the stored `hash` does not match the record's content
 *   (edited), or the record is malformed (missing fields, wrong types,
 *   non-encodable data). Never throws on malformed input.
 * - `broken-link` — `prev` is not the stored hash of the record before it (or
 *   GENESIS / `startAfter.hash` for the first record): a record was deleted,
 *   inserted, reordered, or edited and re-hashed before this one.
 * - `seq-gap` — `seq` jumps forward (records missing; also when the first record
 *   is not seq 1 / `startAfter.seq + 1`).
 * - `seq-out-of-order` — `seq` is lower than one already seen and fills an
 *   earlier gap (reordered records).
 * - `duplicate-seq` — `seq` was already seen (inserted or replayed records).
 * - `wrong-instance` — a record or checkpoint belongs to another instance than
 *   `opts.instance` (default: the first record's instance).
 * - `bad-checkpoint-signature` — the checkpoint's signature does not verify
 *   with `opts.publicKey` or its keyId is another key's (signatures are only
 *   checked when a public key is given).
 * - `checkpoint-mismatch` — no record has the checkpoint's seq, or that record's
 *   hash differs from the signed one (the chain was rewritten), or the
 *   checkpoint is malformed (then `seq` is null).
 * - `truncated` — a checkpoint's seq is beyond the last record: the tail was cut.
 *
 * For checkpoint problems, `index` is the position of the record with the
 * checkpoint's seq, or the number of records when there is none. Checkpoints
 * older than `startAfter.seq` cannot be checked and are ignored.
 *
 * Memory use is independent of the chain length except for the problem list,
 * the gap bookkeeping and the records at checkpoint seqs, so a store may stream
 * records through `verifyChain` via any iterable.
 */
import crypto, { type KeyObject } from 'node:crypto';
import { canonicalJson, type JsonValue } from './canonical.js';

/** `prev` of the first record of a chain: 64 zeros. */
export const GENESIS = '0'.repeat(64);

/** One hash-chained audit record. */
export interface AuditRecord {
  seq: number;
  /** ISO-8601 timestamp. */
  ts: string;
  instance: string;
  type: string;
  data: Record<string, JsonValue>;
  /** Hex SHA-256 of the previous record; {@link GENESIS} for seq 1. */
  prev: string;
  /** Hex SHA-256 of `canonicalJson({ seq, ts, instance, type, data, prev })`. */
  hash: string;
}

/** Position in a chain: the last record's seq and hash. */
export interface ChainHead {
  seq: number;
  hash: string;
}

/** A signed statement "record `seq` of `instance` has hash `hash`". */
export interface Checkpoint {
  instance: string;
  seq: number;
  hash: string;
  /** ISO-8601 time of signing. */
  ts: string;
  /** Base64 Ed25519 signature over `canonicalJson({ instance, seq, hash, ts })`. */
  signature: string;
  /** First 16 hex chars of SHA-256 over the signing public key's SPKI DER. */
  keyId: string;
}

export type VerifyProblemKind =
  | 'hash-mismatch'
  | 'broken-link'
  | 'seq-gap'
  | 'seq-out-of-order'
  | 'duplicate-seq'
  | 'bad-checkpoint-signature'
  | 'checkpoint-mismatch'
  | 'truncated'
  | 'wrong-instance'
  /** A store's search index (identity/session columns, terms) disagrees with the hashed data (see index-check.ts). */
  | 'index-mismatch';

export interface VerifyProblem {
  /** seq of the record (or checkpoint) concerned; null when it has no valid seq. */
  seq: number | null;
  /** 0-based position in the input records (see module docs for checkpoints). */
  index: number;
  kind: VerifyProblemKind;
  message: string;
}

export interface VerifyReport {
  ok: boolean;
  /** Number of records read. */
  records: number;
  /** Highest valid seq read (or `startAfter.seq`, or 0). */
  lastSeq: number;
  problems: VerifyProblem[];
}

export interface VerifyOptions {
  /** Signed checkpoints to check the chain against. */
  checkpoints?: readonly Checkpoint[];
  /** Ed25519 public key; checkpoint signatures are checked only when given. */
  publicKey?: KeyObject;
  /** Expected instance name; defaults to the first record's instance. */
  instance?: string;
  /** The records start after this (already verified / archived) record. */
  startAfter?: ChainHead;
}

const HEX64 = /^[0-9a-f]{64}$/;
/** Text JSON encodes as itself between quotes (event types, ISO timestamps). */
const PLAIN = /^[\w.:+-]*$/;

/** SHA-256 hex of the record's canonical encoding (the fields other than `hash`). */
export function hashRecord(r: Omit<AuditRecord, 'hash'>): string {
  const { seq, ts, instance, type, data, prev } = r;
  return sha256Hex(canonicalJson({ seq, ts, instance, type, data, prev }));
}

/**
 * Produces the records of one instance's chain. Pure: `append` returns the record
 * for the caller to store and advances the in-memory head.
 */
export class ChainWriter {
  readonly instance: string;
  readonly #instanceJson: string;
  #seq: number;
  #hash: string;
  #ts = '';
  #tsJson = '""';
  #type = '';
  #typeJson = '""';

  constructor(opts: { instance: string; last?: ChainHead }) {
    if (typeof opts.instance !== 'string' || opts.instance === '') {
      throw new TypeError('ChainWriter: instance must be a non-empty string');
    }
    this.instance = opts.instance;
    this.#instanceJson = JSON.stringify(opts.instance);
    const last = opts.last ?? { seq: 0, hash: GENESIS };
    if (!Number.isSafeInteger(last.seq) || last.seq < 0) {
      throw new TypeError(`ChainWriter: last.seq must be a non-negative integer, got ${String(last.seq)}`);
    }
    if (typeof last.hash !== 'string' || !HEX64.test(last.hash)) {
      throw new TypeError('ChainWriter: last.hash must be 64 lower-case hex characters');
    }
    if (last.seq === 0 && last.hash !== GENESIS) {
      throw new TypeError('ChainWriter: last.hash must be GENESIS when last.seq is 0');
    }
    this.#seq = last.seq;
    this.#hash = last.hash;
  }

  /** The last appended (or resumed-from) record's seq and hash. */
  get head(): ChainHead {
    return { seq: this.#seq, hash: this.#hash };
  }

  /**
   * Builds the next record. `data` is deep-copied through its canonical encoding
   * (so non-JSON data throws here, before the head advances, and `undefined`
   * members are dropped).
   */
  append(type: string, data: Record<string, JsonValue | undefined>, ts: Date = new Date()): AuditRecord {
    const dataJson = canonicalJson(data);
    if (!dataJson.startsWith('{')) throw new TypeError('ChainWriter: data must be a plain object');
    return recordOf(this.seal(type, dataJson, ts.toISOString()));
  }

  /**
   * Builds the next record from data already in canonical JSON (an object's
   * encoding by `canonicalJson`), without decoding it: the hot path of the audit
   * log. The caller vouches for `dataJson` being canonical.
   */
  seal(type: string, dataJson: string, ts: string): SealedRecord {
    if (typeof type !== 'string' || type === '') throw new TypeError('ChainWriter: type must be a non-empty string');
    const seq = this.#seq + 1;
    const prev = this.#hash;
    // canonicalJson({ seq, ts, instance, type, data, prev }) with the data already encoded:
    // members in sorted key order (data, instance, prev, seq, ts, type).
    // The JSON of the last time stamp and type, kept: consecutive records mostly share them.
    if (ts !== this.#ts) {
      this.#ts = ts;
      this.#tsJson = PLAIN.test(ts) ? `"${ts}"` : JSON.stringify(ts);
    }
    if (type !== this.#type) {
      this.#type = type;
      this.#typeJson = PLAIN.test(type) ? `"${type}"` : JSON.stringify(type);
    }
    const rest = `"instance":${this.#instanceJson},"prev":"${prev}","seq":${seq},"ts":${this.#tsJson},"type":${this.#typeJson}}`;
    const hash = sha256Hex(`{"data":${dataJson},${rest}`);
    this.#seq = seq;
    this.#hash = hash;
    return { seq, ts, instance: this.instance, type, prev, hash, dataJson, line: `{"data":${dataJson},"hash":"${hash}",${rest}\n` };
  }
}

/**
 * A record as the audit log's hot path makes it: its fields, its data as
 * canonical JSON text, and `line`, the whole record (hash included, members in
 * sorted key order: canonical JSON) as one JSON line ending in `\n`.
 */
export interface SealedRecord {
  readonly seq: number;
  readonly ts: string;
  readonly instance: string;
  readonly type: string;
  readonly prev: string;
  readonly hash: string;
  readonly dataJson: string;
  readonly line: string;
}

/** The record object of a sealed record (decodes its data). */
export function recordOf(s: SealedRecord): AuditRecord {
  return { seq: s.seq, ts: s.ts, instance: s.instance, type: s.type, data: JSON.parse(s.dataJson) as Record<string, JsonValue>, prev: s.prev, hash: s.hash };
}

/** Signs a checkpoint for `record` with an Ed25519 private key. */
export function signCheckpoint(record: Pick<AuditRecord, 'instance' | 'seq' | 'hash'>, privateKey: KeyObject, ts: Date = new Date()): Checkpoint {
  if (privateKey.type !== 'private' || privateKey.asymmetricKeyType !== 'ed25519') {
    throw new TypeError('signCheckpoint: an Ed25519 private key is required');
  }
  const body = { instance: record.instance, seq: record.seq, hash: record.hash, ts: ts.toISOString() };
  const signature = crypto.sign(null, Buffer.from(canonicalJson(body), 'utf8'), privateKey).toString('base64');
  return { ...body, signature, keyId: keyIdOf(crypto.createPublicKey(privateKey)) };
}

/**
 * True when `cp` is well-formed, its keyId is `publicKey`'s and its signature
 * verifies. Never throws. A private key is accepted and its public half used.
 */
export function verifyCheckpointSignature(cp: Checkpoint, publicKey: KeyObject): boolean {
  try {
    const key = publicKey.type === 'private' ? crypto.createPublicKey(publicKey) : publicKey;
    if (key.asymmetricKeyType !== 'ed25519') return false;
    if (checkpointShapeError(cp) !== null) return false;
    if (cp.keyId !== keyIdOf(key)) return false;
    const body = canonicalJson({ instance: cp.instance, seq: cp.seq, hash: cp.hash, ts: cp.ts });
    return crypto.verify(null, Buffer.from(body, 'utf8'), key, Buffer.from(cp.signature, 'base64'));
  } catch {
    return false;
  }
}

/** keyId of an Ed25519 public key: first 16 hex chars of SHA-256 over its SPKI DER. */
export function keyIdOf(publicKey: KeyObject): string {
  const key = publicKey.type === 'private' ? crypto.createPublicKey(publicKey) : publicKey;
  return crypto.createHash('sha256').update(key.export({ type: 'spki', format: 'der' })).digest('hex').slice(0, 16);
}

/** Verifies a chain (in storage order) and optional checkpoints. Never throws on malformed records. */
export function verifyChain(records: Iterable<AuditRecord>, opts: VerifyOptions = {}): VerifyReport {
  const v = chainVerifier(opts);
  for (const raw of records) v.push(raw);
  return v.finish();
}

/** {@link verifyChain} over records read asynchronously (a store), in bounded memory. */
export async function verifyChainAsync(records: AsyncIterable<AuditRecord>, opts: VerifyOptions = {}): Promise<VerifyReport> {
  const v = chainVerifier(opts);
  for await (const raw of records) v.push(raw);
  return v.finish();
}

/** Incremental verifier: push records in storage order, then finish. */
export function chainVerifier(opts: VerifyOptions = {}): { push(raw: AuditRecord): void; finish(): VerifyReport } {
  const problems: VerifyProblem[] = [];
  const start: ChainHead = opts.startAfter ?? { seq: 0, hash: GENESIS };
  const checkpoints: readonly unknown[] = Array.isArray(opts.checkpoints) ? opts.checkpoints : [];
  const cpSeqs = new Set<number>();
  for (const cp of checkpoints) {
    if (checkpointShapeError(cp) === null) cpSeqs.add((cp as Checkpoint).seq);
  }
  /** seq → positions and stored hashes, only for seqs some checkpoint refers to. */
  const atCheckpoint = new Map<number, { index: number; hash: unknown }[]>();

  let instance: string | undefined = opts.instance;
  let highSeq = start.seq; // highest valid seq seen
  const missing: [number, number][] = []; // inclusive seq ranges skipped by gaps, not yet seen
  let prevHash: unknown = start.hash; // stored hash of the previous record
  let prevLabel = start.seq === 0 ? 'GENESIS' : `record ${start.seq}`;
  let index = -1;

  const push = (raw: AuditRecord): void => {
    index++;
    const rec: Partial<Record<keyof AuditRecord, unknown>> =
      raw !== null && typeof raw === 'object' ? (raw as Partial<Record<keyof AuditRecord, unknown>>) : {};
    const seqValid = Number.isSafeInteger(rec.seq) && (rec.seq as number) > 0;
    const seq = seqValid ? (rec.seq as number) : null;
    const label = seq !== null ? `record ${seq}` : `record #${index} (no valid seq)`;
    const report = (kind: VerifyProblemKind, message: string): void => {
      problems.push({ seq, index, kind, message });
    };

    // 1. Content vs. stored hash (also catches malformed records).
    const shape = recordShapeError(raw);
    if (shape !== null) {
      report('hash-mismatch', `${label}: malformed record (${shape})`);
    } else {
      let computed: string | null = null;
      let encodeError = '';
      try {
        computed = hashRecord(raw);
      } catch (err) {
        encodeError = err instanceof Error ? err.message : String(err);
      }
      if (computed === null) {
        report('hash-mismatch', `${label}: content cannot be canonically encoded (${encodeError})`);
      } else if (computed !== raw.hash) {
        report(
          'hash-mismatch',
          `${label}: stored hash ${short(raw.hash)} does not match its content (${short(computed)}) (edited?)`,
        );
      }
    }

    // 2. Instance.
    if (typeof rec.instance === 'string') {
      if (instance === undefined) instance = rec.instance;
      else if (rec.instance !== instance) {
        report('wrong-instance', `${label}: belongs to instance ${JSON.stringify(rec.instance)}, expected ${JSON.stringify(instance)}`);
      }
    }

    // 3. Sequence numbers.
    if (seq !== null) {
      if (seq === highSeq + 1) {
        highSeq = seq;
      } else if (seq > highSeq + 1) {
        const lost = seq - highSeq - 1;
        report(
          'seq-gap',
          index === 0
            ? `${label}: chain starts at seq ${seq}, expected ${highSeq + 1} (${lost} record(s) missing before it)`
            : `${label}: seq jumps from ${highSeq} to ${seq} (${lost} record(s) missing)`,
        );
        missing.push([highSeq + 1, seq - 1]);
        highSeq = seq;
      } else if (takeMissing(missing, seq)) {
        report('seq-out-of-order', `${label}: appears after record ${highSeq} (records reordered?)`);
      } else if (seq > start.seq) {
        report('duplicate-seq', `${label}: seq ${seq} appears more than once (inserted record?)`);
      } else {
        report('seq-out-of-order', `${label}: seq ${seq} is not after the chain start ${start.seq}`);
      }
    }

    // 4. Link to the previous record.
    if (typeof rec.prev === 'string' && typeof prevHash === 'string' && rec.prev !== prevHash) {
      report(
        'broken-link',
        `${label}: prev ${short(rec.prev)} does not match the hash ${short(prevHash)} of ${prevLabel} before it (record deleted, inserted, reordered or re-hashed?)`,
      );
    }
    prevHash = rec.hash;
    prevLabel = label;

    if (seq !== null && cpSeqs.has(seq)) {
      const list = atCheckpoint.get(seq) ?? [];
      list.push({ index, hash: rec.hash });
      atCheckpoint.set(seq, list);
    }
  };

  const finish = (): VerifyReport => {
  const recordCount = index + 1;

  // 5. Checkpoints.
  checkpoints.forEach((raw, i) => {
    const shape = checkpointShapeError(raw);
    if (shape !== null) {
      problems.push({ seq: null, index: recordCount, kind: 'checkpoint-mismatch', message: `checkpoint #${i}: malformed (${shape})` });
      return;
    }
    const cp = raw as Checkpoint;
    const found = atCheckpoint.get(cp.seq);
    const at = found?.[0]?.index ?? recordCount;
    const report = (kind: VerifyProblemKind, message: string): void => {
      problems.push({ seq: cp.seq, index: at, kind, message });
    };
    const label = `checkpoint at seq ${cp.seq} (signed ${cp.ts})`;
    if (opts.publicKey !== undefined && !verifyCheckpointSignature(cp, opts.publicKey)) {
      let expectedKeyId = '?';
      try {
        expectedKeyId = keyIdOf(opts.publicKey);
      } catch {
        // unusable key: reported below as a bad signature
      }
      report(
        'bad-checkpoint-signature',
        cp.keyId !== expectedKeyId
          ? `${label}: signed by key ${cp.keyId}, expected key ${expectedKeyId}`
          : `${label}: signature does not verify with key ${expectedKeyId} (forged or altered checkpoint)`,
      );
    }
    if (instance !== undefined && cp.instance !== instance) {
      report('wrong-instance', `${label}: belongs to instance ${JSON.stringify(cp.instance)}, expected ${JSON.stringify(instance)}`);
      return;
    }
    if (cp.seq === start.seq) {
      if (cp.hash !== start.hash) {
        report('checkpoint-mismatch', `${label}: signed hash ${short(cp.hash)} differs from the chain start hash ${short(start.hash)}`);
      }
      return;
    }
    if (cp.seq < start.seq) return; // predates the verified range
    if (cp.seq > highSeq) {
      report(
        'truncated',
        `${label}: is beyond the last record ${highSeq}; at least ${cp.seq - highSeq} record(s) were cut from the tail`,
      );
      return;
    }
    if (found === undefined) {
      report('checkpoint-mismatch', `${label}: no record with seq ${cp.seq} exists (deleted?)`);
      return;
    }
    if (!found.some((f) => f.hash === cp.hash)) {
      const stored = found[0]?.hash;
      report(
        'checkpoint-mismatch',
        `${label}: signed hash ${short(cp.hash)} differs from record ${cp.seq}'s hash ${typeof stored === 'string' ? short(stored) : '(missing)'} (chain rewritten?)`,
      );
    }
  });

  return { ok: problems.length === 0, records: recordCount, lastSeq: highSeq, problems };
  };
  return { push, finish };
}

/** One-shot SHA-256 (`crypto.hash`, Node ≥ 20.12: no Hash object per record), else a Hash. */
const oneShot = (crypto as { hash?: (algorithm: string, data: string, encoding: 'hex') => string }).hash;
function sha256Hex(text: string): string {
  return oneShot ? oneShot('sha256', text, 'hex') : crypto.createHash('sha256').update(text, 'utf8').digest('hex');
}

function short(hash: string): string {
  return hash.length > 12 ? `${hash.slice(0, 12)}…` : JSON.stringify(hash);
}

/** Removes `seq` from the missing ranges; true when it was missing. */
function takeMissing(missing: [number, number][], seq: number): boolean {
  for (let i = 0; i < missing.length; i++) {
    const [lo, hi] = missing[i];
    if (seq < lo || seq > hi) continue;
    const replacement: [number, number][] = [];
    if (lo <= seq - 1) replacement.push([lo, seq - 1]);
    if (seq + 1 <= hi) replacement.push([seq + 1, hi]);
    missing.splice(i, 1, ...replacement);
    return true;
  }
  return false;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function recordShapeError(r: unknown): string | null {
  if (!isPlainObject(r)) return `not an object: ${r === null ? 'null' : Array.isArray(r) ? 'array' : typeof r}`;
  const bad: string[] = [];
  if (!Number.isSafeInteger(r.seq) || (r.seq as number) < 1) bad.push('seq');
  for (const f of ['ts', 'instance', 'type'] as const) if (typeof r[f] !== 'string') bad.push(f);
  if (!isPlainObject(r.data)) bad.push('data');
  for (const f of ['prev', 'hash'] as const) {
    if (typeof r[f] !== 'string' || !HEX64.test(r[f] as string)) bad.push(f);
  }
  return bad.length === 0 ? null : `invalid or missing ${bad.join(', ')}`;
}

function checkpointShapeError(c: unknown): string | null {
  if (!isPlainObject(c)) return 'not an object';
  const bad: string[] = [];
  if (typeof c.instance !== 'string') bad.push('instance');
  if (!Number.isSafeInteger(c.seq) || (c.seq as number) < 0) bad.push('seq');
  if (typeof c.hash !== 'string' || !HEX64.test(c.hash)) bad.push('hash');
  for (const f of ['ts', 'signature', 'keyId'] as const) if (typeof c[f] !== 'string') bad.push(f);
  return bad.length === 0 ? null : `invalid or missing ${bad.join(', ')}`;
}
