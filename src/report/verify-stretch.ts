/**
 * Verification of a stretch of one chain, for the report: the checks of
 * `chainVerifier` (audit/chain.ts; same problem kinds and meaning) with one
 * difference: a record read with the text its data was stored as is hashed
 * from that text (`{"data":<text>,"instance":…}`, as the writer sealed it)
 * instead of being decoded and encoded again. A match proves the text is the
 * hashed canonical encoding; a mismatch is checked again the careful way
 * (`hashRecord` on the decoded data) before it is reported, so a store that
 * keeps equivalent but differently spelled JSON is not reported as edited.
 */
import crypto, { type KeyObject } from 'node:crypto';
import { hashRecord, keyIdOf, verifyCheckpointSignature, type AuditRecord, type ChainHead, type Checkpoint, type VerifyProblem, type VerifyProblemKind, type VerifyReport } from '../audit/chain.js';

const HEX64 = /^[0-9a-f]{64}$/;
const PLAIN = /^[\w.:+-]*$/;
const oneShot = (crypto as { hash?: (algorithm: string, data: string, encoding: 'hex') => string }).hash;
const sha256 = (s: string): string => (oneShot ? oneShot('sha256', s, 'hex') : crypto.createHash('sha256').update(s, 'utf8').digest('hex'));
const short = (h: unknown): string => (typeof h === 'string' && h.length > 12 ? `${h.slice(0, 12)}…` : JSON.stringify(h));

/** The hash of a record whose data is given as stored canonical text. */
export function hashFromText(r: Pick<AuditRecord, 'seq' | 'ts' | 'instance' | 'type' | 'prev'>, dataText: string): string {
  const str = (s: string): string => (PLAIN.test(s) ? `"${s}"` : JSON.stringify(s));
  return sha256(`{"data":${dataText},"instance":${JSON.stringify(r.instance)},"prev":${JSON.stringify(r.prev)},"seq":${r.seq},"ts":${str(r.ts)},"type":${str(r.type)}}`);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function shapeError(r: AuditRecord): string | null {
  const x = r as unknown as Record<string, unknown>;
  const bad: string[] = [];
  if (!Number.isSafeInteger(x.seq) || (x.seq as number) < 1) bad.push('seq');
  for (const f of ['ts', 'instance', 'type'] as const) if (typeof x[f] !== 'string') bad.push(f);
  if (!isPlainObject(x.data)) bad.push('data');
  for (const f of ['prev', 'hash'] as const) if (typeof x[f] !== 'string' || !HEX64.test(x[f] as string)) bad.push(f);
  return bad.length === 0 ? null : `invalid or missing ${bad.join(', ')}`;
}

export interface StretchVerifier {
  /** One record in storage order; `dataText`, when given, is the text its data was stored as. */
  push(r: AuditRecord, dataText?: string, decode?: () => unknown): void;
  finish(): VerifyReport;
}

export function stretchVerifier(o: { instance: string; startAfter: ChainHead; checkpoints: readonly Checkpoint[]; publicKey?: KeyObject }): StretchVerifier {
  const problems: VerifyProblem[] = [];
  const start = o.startAfter;
  const cpSeqs = new Set(o.checkpoints.map((c) => c.seq));
  const atCheckpoint = new Map<number, { index: number; hash: string }>();
  const missing: [number, number][] = [];
  let high = start.seq;
  let prevHash = start.hash;
  let prevLabel = start.seq === 0 ? 'GENESIS' : `record ${start.seq}`;
  let index = -1;
  const takeMissing = (seq: number): boolean => {
    for (let i = 0; i < missing.length; i++) {
      const [lo, hi] = missing[i];
      if (seq < lo || seq > hi) continue;
      const rest: [number, number][] = [];
      if (lo <= seq - 1) rest.push([lo, seq - 1]);
      if (seq + 1 <= hi) rest.push([seq + 1, hi]);
      missing.splice(i, 1, ...rest);
      return true;
    }
    return false;
  };
  return {
    push(r, dataText, decode) {
      index++;
      const seqValid = Number.isSafeInteger(r.seq) && r.seq > 0;
      const seq = seqValid ? r.seq : null;
      const label = seq !== null ? `record ${seq}` : `record #${index} (no valid seq)`;
      const report = (kind: VerifyProblemKind, message: string): void => void problems.push({ seq, index, kind, message });
      // A record whose stored data text hashes right is what was written: its data need not be decoded here.
      // (A SHA-256 in hex equal to `r.hash` proves `r.hash` well-formed too.)
      const textOk = dataText !== undefined && dataText.startsWith('{') && seqValid && typeof r.prev === 'string' && HEX64.test(r.prev) && typeof r.ts === 'string' && typeof r.type === 'string' && hashFromText(r, dataText) === r.hash;
      if (!textOk) decode?.();
      const shape = textOk ? null : shapeError(r);
      if (shape !== null) report('hash-mismatch', `${label}: malformed record (${shape})`);
      else if (!textOk) {
        let computed: string | null = null;
        let why = '';
        try {
          computed = hashRecord(r);
        } catch (err) {
          why = (err as Error).message;
        }
        if (computed === null) report('hash-mismatch', `${label}: content cannot be canonically encoded (${why})`);
        else if (computed !== r.hash) report('hash-mismatch', `${label}: stored hash ${short(r.hash)} does not match its content (${short(computed)}) (edited?)`);
      }
      if (typeof r.instance === 'string' && r.instance !== o.instance) report('wrong-instance', `${label}: belongs to instance ${JSON.stringify(r.instance)}, expected ${JSON.stringify(o.instance)}`);
      if (seq !== null) {
        if (seq === high + 1) high = seq;
        else if (seq > high + 1) {
          const lost = seq - high - 1;
          report('seq-gap', index === 0 ? `${label}: stretch starts at seq ${seq}, expected ${high + 1} (${lost} record(s) missing before it)` : `${label}: seq jumps from ${high} to ${seq} (${lost} record(s) missing)`);
          missing.push([high + 1, seq - 1]);
          high = seq;
        } else if (takeMissing(seq)) report('seq-out-of-order', `${label}: appears after record ${high} (records reordered?)`);
        else if (seq > start.seq) report('duplicate-seq', `${label}: seq ${seq} appears more than once (inserted record?)`);
        else report('seq-out-of-order', `${label}: seq ${seq} is not after the stretch start ${start.seq}`);
      }
      if (typeof r.prev === 'string' && r.prev !== prevHash) {
        report('broken-link', `${label}: prev ${short(r.prev)} does not match the hash ${short(prevHash)} of ${prevLabel} before it (record deleted, inserted, reordered or re-hashed?)`);
      }
      prevHash = r.hash;
      prevLabel = label;
      if (seq !== null && cpSeqs.has(seq) && !atCheckpoint.has(seq)) atCheckpoint.set(seq, { index, hash: r.hash });
    },
    finish() {
      const records = index + 1;
      for (const cp of o.checkpoints) {
        const found = atCheckpoint.get(cp.seq);
        const at = found?.index ?? records;
        const label = `checkpoint at seq ${cp.seq} (signed ${cp.ts})`;
        const report = (kind: VerifyProblemKind, message: string): void => void problems.push({ seq: cp.seq, index: at, kind, message });
        if (o.publicKey !== undefined) {
          let ok = false;
          try {
            ok = verifyCheckpointSignature(cp, o.publicKey);
          } catch {
            ok = false;
          }
          if (!ok) {
            const expected = keyIdOf(o.publicKey);
            report('bad-checkpoint-signature', cp.keyId !== expected ? `${label}: signed by key ${cp.keyId}, expected key ${expected}` : `${label}: signature does not verify with key ${expected} (forged or altered checkpoint)`);
          }
        }
        if (cp.instance !== o.instance) {
          report('wrong-instance', `${label}: belongs to instance ${JSON.stringify(cp.instance)}, expected ${JSON.stringify(o.instance)}`);
          continue;
        }
        if (cp.seq === start.seq) {
          if (cp.hash !== start.hash) report('checkpoint-mismatch', `${label}: signed hash ${short(cp.hash)} differs from the stretch start hash ${short(start.hash)}`);
          continue;
        }
        if (cp.seq < start.seq) continue;
        if (cp.seq > high) {
          report('truncated', `${label}: is beyond the last record ${high}; at least ${cp.seq - high} record(s) were cut from the tail`);
          continue;
        }
        if (!found) report('checkpoint-mismatch', `${label}: no record with seq ${cp.seq} exists (deleted?)`);
        else if (found.hash !== cp.hash) report('checkpoint-mismatch', `${label}: signed hash ${short(cp.hash)} differs from record ${cp.seq}'s hash ${short(found.hash)} (chain rewritten?)`);
      }
      return { ok: problems.length === 0, records, lastSeq: high, problems };
    },
  };
}
