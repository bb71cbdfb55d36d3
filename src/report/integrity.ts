/**
 * Integrity of the period: which records of each chain the report reads, and
 * the verification of that stretch of the chain against signed checkpoints.
 *
 * For each instance the period's records are the seq range from the first
 * record at or after `from` to the last before `to`. The stretch verified runs
 * from the last signed checkpoint before that range (the anchor: its signed
 * hash is where the chain must start; without one, the chain's start) to the
 * first signed checkpoint at or after its end (the cover: it pins every record
 * up to it; without one, the chain's head, and the records after the last
 * checkpoint are said to be unpinned). Every record of the stretch is hashed
 * and linked (chain.ts); records deleted from the period show as a seq gap, an
 * edited one as a hash mismatch, a cut tail as a checkpoint beyond the head.
 */
import type { KeyObject } from 'node:crypto';
import type { Checkpoint, ChainHead, VerifyProblem } from '../audit/chain.js';
import { GENESIS, keyIdOf, verifyCheckpointSignature } from '../audit/chain.js';
import type { AuditStore } from '../audit/store.js';
import { startOf } from '../audit/verify-store.js';

export interface CheckpointRef {
  seq: number;
  ts: string;
  keyId: string;
  /** Whether its signature was checked and holds (null: no public key to check it with). */
  signatureValid: boolean | null;
}

export interface InstanceIntegrity {
  instance: string;
  ok: boolean;
  /** First and last seq of the period's records (null when the period has none). */
  periodFirstSeq: number | null;
  periodLastSeq: number | null;
  periodRecords: number;
  /** The stretch verified (inclusive) and how many records it held. */
  verifiedFromSeq: number;
  verifiedThroughSeq: number;
  verifiedRecords: number;
  anchor: CheckpointRef | null;
  cover: CheckpointRef | null;
  /** Signed checkpoints inside the stretch, besides the anchor and the cover. */
  checkpointsWithin: number;
  /** Every checkpoint the stretch was checked against (anchor and cover included), in seq order; at most 500 (the first and last kept). */
  checkpoints: CheckpointRef[];
  /** Records of the period after the last signed checkpoint: not pinned by a signature yet. */
  unpinnedRecords: number;
  problems: VerifyProblem[];
  /** Problems not listed (more than the cap). */
  moreProblems: number;
}

export interface WitnessNote {
  description: string;
  checkpoints: number;
  error?: string;
}

export interface IntegritySection {
  id: 'integrity';
  title: string;
  /** True only when every chain's stretch verified and every witness could be read. */
  ok: boolean;
  /** One sentence for the first page. */
  verdict: string;
  signaturesChecked: boolean;
  keyId: string | null;
  witnesses: WitnessNote[];
  instances: InstanceIntegrity[];
  controls: import('./types.js').ControlRef[];
}

export interface InstancePlan {
  instance: string;
  head: ChainHead;
  periodFirstSeq: number | null;
  periodLastSeq: number | null;
  /** Verification starts after this (an anchor checkpoint, a pruned record, or GENESIS). */
  startAfter: ChainHead;
  anchor: Checkpoint | null;
  cover: Checkpoint | null;
  /** Last seq read (the cover's, or the head's). */
  throughSeq: number;
  /** The checkpoints the verifier checks. */
  checkpoints: Checkpoint[];
}

function validShape(c: Checkpoint): boolean {
  return typeof c.seq === 'number' && Number.isSafeInteger(c.seq) && c.seq >= 0 && typeof c.hash === 'string' && typeof c.instance === 'string';
}

export function checkpointRef(c: Checkpoint | null, key: KeyObject | undefined): CheckpointRef | null {
  if (!c) return null;
  let valid: boolean | null = null;
  if (key) {
    try {
      valid = verifyCheckpointSignature(c, key);
    } catch {
      valid = false;
    }
  }
  return { seq: c.seq, ts: c.ts, keyId: c.keyId, signatureValid: valid };
}

/** Which stretch of an instance's chain to read and verify for the period. */
export async function planInstance(
  store: AuditStore,
  instance: string,
  period: { from: string; to: string },
  checkpoints: readonly Checkpoint[],
  key: KeyObject | undefined,
): Promise<InstancePlan | null> {
  const head = await store.head(instance);
  if (!head) return null;
  let first: number | null = null;
  for await (const r of store.query({ instance, since: period.from, limit: 1 })) first = r.seq;
  let last: number | null = null;
  for await (const r of store.query({ instance, until: period.to, descending: true, limit: 1 })) last = r.seq;
  // The stretch to read: the period's seqs, and the link between the records around it when it holds none.
  const lo = Math.min(first ?? head.seq + 1, (last ?? 0) + 1);
  const hi = Math.max(last ?? 0, (first ?? head.seq + 1) - 1);
  const periodFirstSeq = first !== null && last !== null && first <= last ? first : null;
  const periodLastSeq = periodFirstSeq !== null ? last : null;
  const mine = checkpoints.filter((c) => c.instance === instance && validShape(c)).sort((a, b) => a.seq - b.seq);
  // Only a checkpoint whose signature holds can anchor (when there is a key to check it).
  const trusted = (c: Checkpoint): boolean => !key || checkpointRef(c, key)?.signatureValid === true;
  let anchor: Checkpoint | null = null;
  for (const c of mine) if (c.seq > 0 && c.seq <= lo - 1 && c.seq <= head.seq && trusted(c)) anchor = c;
  let startAfter: ChainHead;
  if (anchor) startAfter = { seq: anchor.seq, hash: anchor.hash };
  else startAfter = (await startOf(store, instance)) ?? { seq: 0, hash: GENESIS };
  const cover = mine.find((c) => c.seq >= hi && c.seq >= startAfter.seq) ?? null;
  const throughSeq = cover ? Math.min(cover.seq, head.seq) : head.seq;
  // A cover beyond the head is checked (and reported truncated); with no cover, every later checkpoint is.
  const checked = mine.filter((c) => c.seq >= startAfter.seq && (cover ? c.seq <= cover.seq : true));
  return { instance, head, periodFirstSeq, periodLastSeq, startAfter, anchor, cover, throughSeq, checkpoints: checked };
}

export function verdictOf(ok: boolean, instances: readonly InstanceIntegrity[], witnesses: readonly WitnessNote[], signaturesChecked: boolean): string {
  if (!ok) {
    const kinds = new Set(instances.flatMap((i) => i.problems.map((p) => p.kind)));
    const broken = witnesses.filter((w) => w.error !== undefined).map((w) => w.description);
    const parts: string[] = [];
    if (kinds.size > 0) parts.push(`the audit log FAILED verification for this period (${[...kinds].join(', ')})`);
    if (broken.length > 0) parts.push(`checkpoint witness(es) could not be read: ${broken.join(', ')}`);
    return `WARNING: ${parts.join('; ')}. Records were changed, removed or cut after they were written, so the figures of this report cannot be relied on.`;
  }
  const unpinned = instances.reduce((n, i) => n + i.unpinnedRecords, 0);
  const base = instances.length === 0 ? 'The audit log holds no records for this period.' : 'Every record of the period verified: hashes and links intact';
  if (instances.length === 0) return base;
  return `${base}${signaturesChecked ? ', signed checkpoints valid' : ' (checkpoint signatures not checked: no public key)'}${unpinned > 0 ? `; ${unpinned} record(s) at the end of the period are after the last signed checkpoint and not pinned by a signature yet` : ''}.`;
}

export { keyIdOf };
