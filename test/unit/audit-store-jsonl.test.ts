import crypto from 'node:crypto';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type AuditRecord, ChainWriter, signCheckpoint, verifyChain } from '../../src/audit/index.js';
import type { AuditQuery, AuditStore } from '../../src/audit/store.js';
import { openJsonlStore } from '../../src/audit/store-jsonl.js';

const T0 = Date.UTC(2026, 0, 1, 10, 0, 0);
const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519');

/** 12 records: statement.begin / statement.end alternating, 3 identities, 2 tables, deny every 4th. */
function makeRecords(instance: string, n = 12, w = new ChainWriter({ instance })): AuditRecord[] {
  const out: AuditRecord[] = [];
  for (let i = 1; i <= n; i++) {
    const identity = ['alice', 'bob', 'carol'][i % 3];
    const table = i % 2 === 0 ? 'public.customers' : 'sales.orders';
    out.push(
      w.append(
        i % 2 === 1 ? 'statement.begin' : 'statement.end',
        {
          identity,
          session: `s${i % 4}`,
          tables: [table],
          classes: [i % 4 === 0 ? 'write' : 'read'],
          kinds: [i % 4 === 0 ? 'update' : 'select'],
          decision: { action: i % 4 === 0 ? 'deny' : 'allow' },
          // Values a normalizing store (jsonb) would not give back byte-identically.
          odd: { z: 1, a: [1.5, 1e21, 0.1], 'é': '\u2028 line sep 😀', n: 12345678901234567890 },
        },
        new Date(T0 + i * 60_000),
      ),
    );
  }
  return out;
}

async function all<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

const seqs = async (store: AuditStore, q: AuditQuery): Promise<number[]> => (await all(store.query(q))).map((r) => r.seq);

describe('jsonl audit store', () => {
  let dir: string;
  let file: string;
  const open: AuditStore[] = [];
  const track = (s: AuditStore): AuditStore => (open.push(s), s);

  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'warden-jsonl-'));
    file = path.join(dir, 'audit.jsonl');
  });
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
    chmodSync(dir, 0o700);
    rmSync(dir, { recursive: true, force: true });
  });

  it('round-trips records verbatim and verifies after reopening', async () => {
    const recs = makeRecords('eu-1');
    const s = track(await openJsonlStore(file));
    expect(s.description).toBe(`jsonl:${file}`);
    expect(await s.head('eu-1')).toBeNull();
    await s.append(recs.slice(0, 5));
    await s.append(recs.slice(5));
    expect(await s.head('eu-1')).toEqual({ seq: 12, hash: recs[11].hash });
    expect(statSync(file).mode & 0o777).toBe(0o600);

    const lines = readFileSync(file, 'utf8').split('\n');
    expect(lines).toHaveLength(13);
    expect(lines[12]).toBe('');
    expect(Object.keys(JSON.parse(lines[0]) as object)).toEqual(['seq', 'ts', 'instance', 'type', 'data', 'prev', 'hash']);
    await s.close();

    const r = track(await openJsonlStore(file));
    expect(await r.head('eu-1')).toEqual({ seq: 12, hash: recs[11].hash });
    expect(await r.instances()).toEqual(['eu-1']);
    const chain = await all(r.chain('eu-1'));
    expect(chain).toEqual(recs);
    expect(verifyChain(chain)).toMatchObject({ ok: true, records: 12, lastSeq: 12 });
    expect((await all(r.chain('eu-1', 10))).map((x) => x.seq)).toEqual([10, 11, 12]);
    expect(await all(r.query({}))).toEqual(recs);

    // A writer resumes from the stored head.
    const w = new ChainWriter({ instance: 'eu-1', last: (await r.head('eu-1'))! });
    await r.append([w.append('statement.begin', { identity: 'dave' }, new Date(T0 + 13 * 60_000))]);
    expect(verifyChain(await all(r.chain('eu-1')))).toMatchObject({ ok: true, records: 13 });
  });

  it('keeps several instances apart and rejects a duplicate seq', async () => {
    const a = makeRecords('a', 4);
    const b = makeRecords('b', 3);
    const s = track(await openJsonlStore(file));
    await s.append(a.slice(0, 2));
    await s.append(b);
    await s.append(a.slice(2));
    expect(await s.instances()).toEqual(['a', 'b']);
    expect(verifyChain(await all(s.chain('a')))).toMatchObject({ ok: true, records: 4 });
    expect(verifyChain(await all(s.chain('b')))).toMatchObject({ ok: true, records: 3 });
    expect(await seqs(s, { instance: 'b' })).toEqual([1, 2, 3]);

    const other = makeRecords('a', 1);
    await expect(s.append(other)).rejects.toThrow(/another writer is using the same instance name's chain/);
    expect(await all(s.chain('a'))).toHaveLength(4);
  });

  it('cuts a torn trailing line on a writable open, and only that', async () => {
    const recs = makeRecords('eu-1', 3);
    const s = track(await openJsonlStore(file));
    await s.append(recs);
    await s.close();
    const good = readFileSync(file, 'utf8');
    appendFileSync(file, '{"seq":4,"ts":"2026-01-01T10:04:00.000Z","inst');

    // Read-only: the torn line is not shown, and not removed.
    const ro = track(await openJsonlStore(file, { readOnly: true }));
    expect(await all(ro.chain('eu-1'))).toEqual(recs);
    await expect(ro.append(makeRecords('x', 1))).rejects.toThrow(/read-only/);
    expect(readFileSync(file, 'utf8').length).toBeGreaterThan(good.length);

    const rw = track(await openJsonlStore(file));
    expect(readFileSync(file, 'utf8')).toBe(good);
    expect(await rw.head('eu-1')).toEqual({ seq: 3, hash: recs[2].hash });
    const w = new ChainWriter({ instance: 'eu-1', last: { seq: 3, hash: recs[2].hash } });
    await rw.append([w.append('statement.begin', { identity: 'alice' }, new Date(T0 + 4 * 60_000))]);
    expect(verifyChain(await all(rw.chain('eu-1')))).toMatchObject({ ok: true, records: 4 });
  });

  it('a file that is only a fragment becomes empty', async () => {
    writeFileSync(file, '{"seq":1,"ts"');
    const s = track(await openJsonlStore(file));
    expect(readFileSync(file, 'utf8')).toBe('');
    expect(await s.instances()).toEqual([]);
  });

  it('reports a corrupted line in chain() and skips it in query()', async () => {
    const recs = makeRecords('eu-1', 4);
    const s = track(await openJsonlStore(file));
    await s.append(recs);
    await s.close();
    const lines = readFileSync(file, 'utf8').split('\n');
    lines[1] = lines[1].slice(0, -20) + '#garbage';
    writeFileSync(file, lines.join('\n'));

    const r = track(await openJsonlStore(file, { readOnly: true }));
    const chain = await all(r.chain('eu-1'));
    expect(chain).toHaveLength(4);
    expect(chain[1]).toMatchObject({ seq: -1, data: { malformed: lines[1] } });
    const report = verifyChain(chain);
    expect(report.ok).toBe(false);
    expect(report.problems.some((p) => p.kind === 'hash-mismatch' && p.index === 1)).toBe(true);
    expect(report.problems.some((p) => p.kind === 'wrong-instance')).toBe(false);
    expect(await seqs(r, {})).toEqual([1, 3, 4]);
    // The garbage line names instance eu-1, so another instance's chain does not include it.
    expect(await all(r.chain('other'))).toEqual([]);
  });

  it('detects an edited record after reopening', async () => {
    const s = track(await openJsonlStore(file));
    await s.append(makeRecords('eu-1', 5));
    await s.close();
    writeFileSync(file, readFileSync(file, 'utf8').replace('"identity":"bob"', '"identity":"mallory"'));
    const r = track(await openJsonlStore(file, { readOnly: true }));
    const report = verifyChain(await all(r.chain('eu-1')));
    expect(report.ok).toBe(false);
    expect(report.problems[0]).toMatchObject({ kind: 'hash-mismatch' });
  });

  it('filters by table, action, identity, session, time, types, seq; descending and limit', async () => {
    const recs = makeRecords('eu-1');
    const s = track(await openJsonlStore(file));
    await s.append(recs);
    await s.append(makeRecords('us-1', 2));

    expect(await seqs(s, { instance: 'eu-1', table: 'public.customers' })).toEqual([2, 4, 6, 8, 10, 12]);
    expect(await seqs(s, { instance: 'eu-1', table: 'CUSTOMERS' })).toEqual([2, 4, 6, 8, 10, 12]);
    expect(await seqs(s, { instance: 'eu-1', action: 'deny' })).toEqual([4, 8, 12]);
    expect(await seqs(s, { instance: 'eu-1', action: 'update' })).toEqual([4, 8, 12]);
    expect(await seqs(s, { instance: 'eu-1', action: 'write' })).toEqual([4, 8, 12]);
    expect(await seqs(s, { instance: 'eu-1', identity: 'alice' })).toEqual([3, 6, 9, 12]);
    expect(await seqs(s, { instance: 'eu-1', session: 's1' })).toEqual([1, 5, 9]);
    expect(await seqs(s, { instance: 'eu-1', since: new Date(T0 + 10 * 60_000).toISOString() })).toEqual([10, 11, 12]);
    expect(await seqs(s, { instance: 'eu-1', until: '2026-01-01T10:03:00Z' })).toEqual([1, 2]);
    expect(await seqs(s, { instance: 'eu-1', types: ['statement.end'], fromSeq: 5, toSeq: 9 })).toEqual([6, 8]);
    expect(await seqs(s, { instance: 'eu-1', types: ['statement.'], limit: 3 })).toEqual([1, 2, 3]);
    expect(await seqs(s, { instance: 'eu-1', types: ['other.'] })).toEqual([]);
    expect(await seqs(s, { instance: 'eu-1', descending: true, limit: 4 })).toEqual([12, 11, 10, 9]);
    expect(await seqs(s, { instance: 'eu-1', descending: true, action: 'deny' })).toEqual([12, 8, 4]);
    expect(await seqs(s, { instance: 'eu-1', identity: 'alice', table: 'customers', action: 'deny' })).toEqual([12]);
    expect(await seqs(s, { limit: 0 })).toEqual([]);
    // Across instances jsonl keeps append order (time order for a live log).
    expect((await all(s.query({ identity: 'bob', descending: true, limit: 2 }))).map((r) => `${r.instance}:${r.seq}`)).toEqual([
      'us-1:1',
      'eu-1:10',
    ]);
    await expect(all(s.query({ since: 'yesterday-ish' }))).rejects.toThrow(/not a time/);
  });

  it('prunes old records; the rest verifies with startAfter and appends continue', async () => {
    const recs = makeRecords('eu-1');
    const s = track(await openJsonlStore(file));
    await s.append(recs);
    await s.append(makeRecords('us-1', 2));

    expect(await s.prune(new Date(T0 + 5 * 60_000).toISOString(), 'eu-1')).toBe(4);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const kept = await all(s.chain('eu-1'));
    expect(kept.map((r) => r.seq)).toEqual([5, 6, 7, 8, 9, 10, 11, 12]);
    expect(verifyChain(kept).ok).toBe(false);
    expect(verifyChain(kept, { startAfter: { seq: kept[0].seq - 1, hash: kept[0].prev } })).toMatchObject({ ok: true });
    expect(await all(s.chain('us-1'))).toHaveLength(2);
    expect(await s.prune('2000-01-01T00:00:00Z')).toBe(0);

    // The append handle follows the rewritten file.
    const w = new ChainWriter({ instance: 'eu-1', last: (await s.head('eu-1'))! });
    await s.append([w.append('statement.begin', { identity: 'erin' }, new Date(T0 + 20 * 60_000))]);
    await s.close();
    const r = track(await openJsonlStore(file));
    const chain = await all(r.chain('eu-1'));
    expect(chain.map((x) => x.seq)).toEqual([5, 6, 7, 8, 9, 10, 11, 12, 13]);
    expect(verifyChain(chain, { startAfter: { seq: 4, hash: recs[3].hash } }).ok).toBe(true);

    expect(await r.prune(new Date(T0 + 60 * 60_000).toISOString())).toBe(11);
    expect(await all(r.query({}))).toEqual([]);
  });

  it('stores checkpoints beside the log', async () => {
    const recs = makeRecords('eu-1', 6);
    const s = track(await openJsonlStore(file));
    await s.append(recs);
    expect(await s.checkpoints()).toEqual([]);
    const cp3 = signCheckpoint(recs[2], privateKey, new Date(T0));
    const cp6 = signCheckpoint(recs[5], privateKey, new Date(T0));
    const other = signCheckpoint(makeRecords('us-1', 1)[0], privateKey, new Date(T0));
    await s.saveCheckpoint(cp6);
    await s.saveCheckpoint(other);
    await s.saveCheckpoint(cp3);
    await s.close();
    expect(statSync(`${file}.checkpoints.jsonl`).mode & 0o777).toBe(0o600);

    const r = track(await openJsonlStore(file, { readOnly: true }));
    expect(await r.checkpoints('eu-1')).toEqual([cp3, cp6]);
    expect(await r.checkpoints()).toEqual([cp3, cp6, other]);
    const report = verifyChain(await all(r.chain('eu-1')), { checkpoints: await r.checkpoints('eu-1'), publicKey });
    expect(report).toMatchObject({ ok: true, records: 6 });
  });

  it('rejects a missing directory, a missing read-only file and use after close', async () => {
    const missing = path.join(dir, 'nope', 'audit.jsonl');
    await expect(openJsonlStore(missing)).rejects.toThrow(missing);
    await expect(openJsonlStore(missing)).rejects.toThrow(/does not exist/);
    await expect(openJsonlStore(path.join(dir, 'absent.jsonl'), { readOnly: true })).rejects.toThrow(/does not exist/);

    const notDir = path.join(dir, 'plain-file');
    writeFileSync(notDir, 'x');
    await expect(openJsonlStore(path.join(notDir, 'audit.jsonl'))).rejects.toThrow(notDir);

    const s = await openJsonlStore(file);
    await s.close();
    await expect(s.append(makeRecords('eu-1', 1))).rejects.toThrow(/closed/);
    await s.close();
  });

  it.skipIf(process.getuid?.() === 0)('rejects a path in a read-only directory', async () => {
    const ro = path.join(dir, 'ro');
    mkdirSync(ro, { mode: 0o500 });
    await expect(openJsonlStore(path.join(ro, 'audit.jsonl'))).rejects.toThrow(/permission denied/);
  });

  it('streams a large file', async () => {
    const s = track(await openJsonlStore(file));
    const w = new ChainWriter({ instance: 'big' });
    const pad = 'x'.repeat(300);
    for (let b = 0; b < 10; b++) {
      const batch: AuditRecord[] = [];
      for (let i = 0; i < 500; i++) batch.push(w.append('statement.begin', { identity: `u${i % 10}`, pad }, new Date(T0 + (b * 500 + i) * 1000)));
      await s.append(batch);
    }
    expect(statSync(file).size).toBeGreaterThan(2 * 256 * 1024);
    const r = track(await openJsonlStore(file));
    expect(await r.head('big')).toEqual(w.head);
    expect(verifyChain(await all(r.chain('big')))).toMatchObject({ ok: true, records: 5000 });
    expect(await seqs(r, { identity: 'u3', descending: true, limit: 2 })).toEqual([4994, 4984]);
    // Stopping early releases the file.
    for await (const rec of r.query({})) {
      expect(rec.seq).toBe(1);
      break;
    }
  });
});
