/**
 * Verifies a stretch of a SQLite store's chain in a worker thread while the
 * report's main thread reads the same rows for its figures (build.ts): the
 * hashing is off the main thread — and off the event loop of a running Warden
 * that makes a report through its admin API. Same verifier, same rows (records
 * are only ever appended, and the stretch ends at or before the indexed head).
 */
import crypto from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import type { AuditRecord, ChainHead, Checkpoint } from '../audit/chain.js';
import { stretchVerifier } from './verify-stretch.js';
import { NOT_DECODED, parsed } from './read-stretch.js';

export interface VerifyJob {
  file: string;
  instance: string;
  fromSeq: number;
  throughSeq: number;
  startAfter: ChainHead;
  checkpoints: Checkpoint[];
  /** SPKI PEM of the checkpoints' key. */
  publicKey?: string;
}

const port = parentPort;
if (!port) throw new Error('verify-worker must run in a worker thread');
const job = workerData as VerifyJob;
try {
  const v = stretchVerifier({ instance: job.instance, startAfter: job.startAfter, checkpoints: job.checkpoints, publicKey: job.publicKey ? crypto.createPublicKey(job.publicKey) : undefined });
  const db = new Database(job.file, { readonly: true, fileMustExist: true });
  try {
    const q = db.prepare('SELECT seq, ts, type, data, prev, hash FROM records WHERE instance = ? AND seq >= ? AND seq <= ? ORDER BY seq').raw();
    for (let next = job.fromSeq; next <= job.throughSeq; next += 5000) {
      for (const [seq, ts, type, data, prev, hash] of q.all(job.instance, next, Math.min(job.throughSeq, next + 4999)) as [number, string, string, string, string, string][]) {
        const record: AuditRecord = { seq, ts, instance: job.instance, type, data: NOT_DECODED, prev, hash };
        v.push(record, data, () => (record.data === NOT_DECODED ? (record.data = parsed(data)) : record.data));
      }
    }
  } finally {
    db.close();
  }
  port.postMessage({ ok: true, report: v.finish() });
} catch (err) {
  port.postMessage({ ok: false, error: (err as Error).message });
}
