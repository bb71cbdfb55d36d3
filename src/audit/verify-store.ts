/**
 * Verification of a whole store: every instance's chain with its stored and
 * exported checkpoints, starting after records a retention run pruned (as the
 * chain's own `audit.pruned` record attests), and, for stores with a search
 * index, that index against the hashed records (index-check.ts) in the same pass.
 */
import type { KeyObject } from 'node:crypto';
import { chainVerifier, type AuditRecord, type ChainHead, type Checkpoint, type VerifyReport } from './chain.js';
import { indexChecker, type IndexCheckSummary } from './index-check.js';
import type { AuditStore } from './store.js';

/**
 * Where verification of an instance's chain starts: at GENESIS, or after the
 * records a retention run pruned, as the `audit.pruned` record in the chain
 * (itself covered by the chain) says.
 */
export async function startOf(store: AuditStore, instance: string): Promise<ChainHead | undefined> {
  let first: AuditRecord | undefined;
  for await (const r of store.chain(instance)) {
    first = r;
    break;
  }
  if (!first || first.seq <= 1) return undefined;
  for await (const p of store.query({ instance, types: ['audit.pruned'] })) {
    const d = p.data as { through_seq?: unknown; through_hash?: unknown };
    if (d.through_seq === first.seq - 1 && d.through_hash === first.prev) return { seq: first.seq - 1, hash: first.prev };
  }
  return undefined;
}

export interface InstanceVerification {
  instance: string;
  /** Chain, checkpoint and (`index-mismatch`) search-index problems. */
  report: VerifyReport;
  checkpoints: number;
  startAfter?: ChainHead;
  /** What the search-index check covered; absent for stores without an index (jsonl). */
  index?: IndexCheckSummary;
}

export async function verifyStore(
  store: AuditStore,
  o: { instance?: string; checkpoints?: Checkpoint[]; publicKey?: KeyObject },
): Promise<InstanceVerification[]> {
  const fromFile = o.checkpoints ?? [];
  let instances: string[];
  if (o.instance) instances = [o.instance];
  else {
    const withRecords = await store.instances();
    // Instances only the index names (terms of records that do not exist) are checked too.
    const indexOnly = store.indexInstances ? await store.indexInstances() : [];
    instances = [...new Set([...withRecords, ...indexOnly, ...fromFile.map((c) => c.instance)])].sort();
  }
  const results: InstanceVerification[] = [];
  for (const instance of instances) {
    const stored = await store.checkpoints(instance);
    const all = [...stored, ...fromFile.filter((c) => c.instance === instance)];
    const startAfter = await startOf(store, instance);
    const v = chainVerifier({ instance, checkpoints: all, publicKey: o.publicKey, startAfter });
    // The index is compared up to the head seen now: records appended while we read are not.
    const head = store.indexEntries ? await store.head(instance) : null;
    const ix = store.indexEntries
      ? indexChecker(store.indexEntries(instance), {
          instance,
          throughSeq: head?.seq ?? 0,
          headNow: async () => (await store.head(instance))?.seq ?? 0,
        })
      : undefined;
    let n = 0;
    try {
      for await (const r of store.chain(instance)) {
        v.push(r);
        if (ix) await ix.push(r, n);
        n++;
      }
    } catch (err) {
      await ix?.abort();
      throw err;
    }
    const report = v.finish();
    let index: IndexCheckSummary | undefined;
    if (ix) {
      const checked = await ix.finish(n);
      index = checked.summary;
      if (checked.problems.length > 0) {
        report.problems.push(...checked.problems);
        report.ok = false;
      }
    }
    results.push({ instance, report, checkpoints: all.length, startAfter, index });
  }
  return results;
}
