/**
 * Worker thread that fills the SQLite search index from the audit journals
 * (journal-index.ts) and does the store's other writes (checkpoints, retention),
 * so that no SQLite write — and no wait on SQLite's lock — ever happens on the
 * proxy's event loop.
 *
 * It runs at the lowest CPU priority the OS gives a thread (nice 19 on Linux):
 * under full load the index lags and searches read the unindexed tail of the
 * journal instead (store-sqlite.ts); when the machine has room it catches up.
 *
 * Messages in: `{ id, op: 'checkpoint', cp }`, `{ id, op: 'prune', before, instance? }`,
 * `{ id, op: 'catch-up', deadlineMs }` (index everything now); out: `{ id, ok, error?, value? }`,
 * and `{ op: 'conflict', message }` for records the index already holds with another hash.
 */
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import os from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { SqliteAuditDb } from './sqlite-db.js';
import { JournalIndexer } from './journal-index.js';
import type { Checkpoint } from './chain.js';
import type { JournalPosition } from './journal.js';

interface Data {
  path: string;
  durability: 'fsync' | 'os';
  /** This process' journal id and its durable watermark (segment << 32 | offset) in a shared buffer. */
  own?: { id: string; watermark: SharedArrayBuffer };
  pollMs: number;
}

type Request =
  | { id: number; op: 'checkpoint'; cp: Checkpoint }
  | { id: number; op: 'prune'; before: string; instance?: string }
  | { id: number; op: 'catch-up'; deadlineMs: number };

const port = parentPort;
if (!port) throw new Error('journal-worker must run in a worker thread');
const data = workerData as Data;

try {
  // Linux: setpriority on a thread id sets that thread's nice value only.
  const tid = Number(fs.readlinkSync('/proc/thread-self').split('/').pop());
  if (Number.isSafeInteger(tid) && tid > 0) os.setPriority(tid, 19);
} catch {
  // not Linux, or not allowed: run at normal priority
}

let db: SqliteAuditDb | undefined;
let indexer: JournalIndexer | undefined;
function open(): JournalIndexer {
  if (!indexer) {
    // The index is not where records are durable (the journal is): its commits need no fsync of
    // their own, which would compete with the journal's. Before a journal segment is deleted the
    // index is synced (journal-index.ts). Checkpoints and retention, written here too, are synced
    // explicitly at durability fsync.
    db = new SqliteAuditDb(data.path, { durability: 'os' });
    indexer = new JournalIndexer(db.db, data.path);
  }
  return indexer;
}

const mark = data.own ? new BigInt64Array(data.own.watermark) : undefined;
const own = data.own
  ? {
      id: data.own.id,
      durable: (): JournalPosition => {
        const v = Atomics.load(mark!, 0);
        return { n: Number(v >> 32n), offset: Number(v & 0xffffffffn) };
      },
    }
  : undefined;

let timer: NodeJS.Timeout | undefined;
let lastError = '';

function step(): boolean {
  try {
    const r = open().step(own);
    for (const c of r.conflicts) port!.postMessage({ op: 'conflict', message: c });
    lastError = '';
    return !r.caughtUp;
  } catch (err) {
    const msg = (err as Error).message;
    if (msg !== lastError) port!.postMessage({ op: 'conflict', message: `indexing failed: ${msg}` });
    lastError = msg;
    return false;
  }
}

function schedule(): void {
  if (timer) clearTimeout(timer);
  timer = setTimeout(run, data.pollMs);
}

/**
 * While records keep coming, indexing takes at most this share of one core (a nice value alone
 * does not hold it back: with the kernel's autogroups, Warden's threads share one group's time).
 */
const DUTY = 0.1;
/** Steps in a row that found more than a chunk: beyond this (~64 MiB behind) it goes full speed. */
const FULL_SPEED_AFTER = 32;
let behind = 0;

function run(): void {
  timer = undefined;
  const t0 = performance.now();
  const more = step();
  const took = performance.now() - t0;
  behind = more ? behind + 1 : 0;
  const rest = behind > FULL_SPEED_AFTER ? 0 : (took * (1 - DUTY)) / DUTY;
  if (more) {
    // More to do: go on after letting messages in, and the hot path its share of the machine.
    timer = setTimeout(run, rest);
    return;
  }
  if (timer) clearTimeout(timer);
  timer = setTimeout(run, Math.max(data.pollMs, rest));
}

port.on('message', (m: Request) => {
  try {
    let value: unknown;
    if (m.op === 'checkpoint') {
      open();
      db!.saveCheckpoint(m.cp);
      if (data.durability === 'fsync') db!.db.pragma('wal_checkpoint(FULL)');
    } else if (m.op === 'prune') {
      // Only indexed records can be deleted: index what the journals hold first.
      while (step());
      value = db!.prune(m.before, m.instance);
    } else if (m.op === 'catch-up') {
      const until = Date.now() + m.deadlineMs;
      while (step() && Date.now() < until);
    }
    port.postMessage({ id: m.id, ok: true, value });
  } catch (err) {
    const e = err as Error & { code?: string };
    port.postMessage({ id: m.id, ok: false, error: e.message || 'audit index write failed', code: e.code });
  }
});

schedule();
