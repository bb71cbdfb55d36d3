/**
 * Verification of a whole store: every instance's chain with its stored and
 * exported checkpoints, starting after records a retention run pruned (as the
 * chain's own `audit.pruned` record attests).
 */
import type { KeyObject } from 'node:crypto';
import { chainVerifier, type AuditRecord, type ChainHead, type Checkpoint, type VerifyReport } from './chain.js';
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
  report: VerifyReport;
  checkpoints: number;
  startAfter?: ChainHead;
}

export async function verifyStore(
  store: AuditStore,
  o: { instance?: string; checkpoints?: Checkpoint[]; publicKey?: KeyObject },
): Promise<InstanceVerification[]> {
  const fromFile = o.checkpoints ?? [];
  const instances = o.instance ? [o.instance] : [...new Set([...(await store.instances()), ...fromFile.map((c) => c.instance)])].sort();
  const results: InstanceVerification[] = [];
  for (const instance of instances) {
    const stored = await store.checkpoints(instance);
    const all = [...stored, ...fromFile.filter((c) => c.instance === instance)];
    const startAfter = await startOf(store, instance);
    const v = chainVerifier({ instance, checkpoints: all, publicKey: o.publicKey, startAfter });
    for await (const r of store.chain(instance)) v.push(r);
    results.push({ instance, report: v.finish(), checkpoints: all.length, startAfter });
  }
  return results;
}

