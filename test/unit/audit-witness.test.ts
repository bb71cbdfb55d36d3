/**
 * Checkpoint witnesses (audit/witness.ts): a file witness appends signed
 * checkpoints (0600) and reads them back; failures are logged and counted and
 * never reach the caller; the AuditLog publishes every checkpoint it signs; a
 * cut tail (records and stored checkpoints) is caught with the witness.
 */
import crypto from 'node:crypto';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signCheckpoint, verifyCheckpointSignature, type Checkpoint } from '../../src/audit/chain.js';
import { AuditLog } from '../../src/audit/log.js';
import { openSqliteStore } from '../../src/audit/store-sqlite.js';
import { verifyStore } from '../../src/audit/verify-store.js';
import { createWitnesses, openWitness, WitnessSet, witnessedCheckpoints, type CheckpointWitness } from '../../src/audit/witness.js';
import { silentLogger } from '../../src/log/logger.js';

let dir: string;
let umask: number;
const key = crypto.generateKeyPairSync('ed25519').privateKey;
const cp = (instance: string, seq: number): Checkpoint => signCheckpoint({ instance, seq, hash: crypto.createHash('sha256').update(`${instance}${seq}`).digest('hex') }, key);

function errorLog(): { lines: { obj: Record<string, unknown>; msg: string }[]; error(obj: object, msg: string): void; warn(obj: object, msg: string): void } {
  const lines: { obj: Record<string, unknown>; msg: string }[] = [];
  return { lines, error: (obj, msg) => void lines.push({ obj: obj as Record<string, unknown>, msg }), warn: () => undefined };
}

beforeAll(() => {
  umask = process.umask(0o022);
  dir = mkdtempSync(path.join(os.tmpdir(), 'warden-witness-'));
});
afterAll(() => {
  process.umask(umask);
  rmSync(dir, { recursive: true, force: true });
});

describe('file witness', () => {
  it('is created 0600 when opened, appends one JSON line per checkpoint, and reads them back (per instance)', async () => {
    const file = path.join(dir, 'cp.jsonl');
    const w = openWitness({ kind: 'file', path: file });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(w.readable).toBe(true);
    expect(w.description).toBe(`file:${file}`);
    const a = [cp('a', 10), cp('b', 3), cp('a', 20)];
    for (const c of a) await w.publish(c);
    await w.close();
    // The format `warden audit checkpoints` prints (so verify --checkpoints FILE reads it too).
    expect(readFileSync(file, 'utf8')).toBe(a.map((c) => `${JSON.stringify(c)}\n`).join(''));
    const r = openWitness({ kind: 'file', path: file }, { readOnly: true });
    expect(await r.read()).toEqual(a);
    expect(await r.read('a')).toEqual([a[0], a[2]]);
    expect(verifyCheckpointSignature((await r.read('b'))[0], crypto.createPublicKey(key))).toBe(true);
  });

  it('after a torn write (no final newline) the next checkpoint starts on its own line; the fragment is skipped', async () => {
    const file = path.join(dir, 'torn.jsonl');
    const w = openWitness({ kind: 'file', path: file });
    await w.publish(cp('a', 1));
    await w.close();
    appendFileSync(file, '{"instance":"a","seq":2,"ha');
    const again = openWitness({ kind: 'file', path: file });
    await again.publish(cp('a', 3));
    await again.close();
    expect((await again.read()).map((c) => c.seq)).toEqual([1, 3]);
  });

  it('reading a witness that is gone is an error naming it (read-only opens create nothing)', async () => {
    const file = path.join(dir, 'gone.jsonl');
    const w = openWitness({ kind: 'file', path: file }, { readOnly: true });
    await expect(w.read()).rejects.toThrow(`${file} does not exist`);
  });

  it('a missing directory fails at open (Warden does not start), naming it', () => {
    const file = path.join(dir, 'no-such-volume', 'cp.jsonl');
    expect(() => createWitnesses([{ kind: 'file', path: file }])).toThrow(`audit witness file ${file}: directory ${path.dirname(file)} does not exist`);
  });
});

describe('WitnessSet', () => {
  it('never rejects: a failing witness is logged with a clear line and counted, the others still get the checkpoint', async () => {
    const good = path.join(dir, 'good.jsonl');
    const failing: CheckpointWitness = {
      description: 'file:/broken',
      readable: true,
      publish: () => Promise.reject(new Error('EIO: i/o error')),
      read: () => Promise.resolve([]),
      close: () => Promise.resolve(),
    };
    const log = errorLog();
    const set = new WitnessSet([failing, openWitness({ kind: 'file', path: good })], log as never);
    await expect(set.publish(cp('x', 7))).resolves.toBeUndefined();
    expect(set.stats).toMatchObject({ published: 1, failures: 1, lastError: 'file:/broken: EIO: i/o error' });
    expect(log.lines).toEqual([{ obj: { witness: 'file:/broken', instance: 'x', seq: 7, reason: 'EIO: i/o error' }, msg: 'audit witness file:/broken: checkpoint x#7 not written: EIO: i/o error' }]);
    expect(set.readable).toHaveLength(2);
    // The same head signed twice (racing checkpoint() calls) is witnessed once.
    const again = cp('x', 7);
    await set.publish({ ...again, ts: new Date(Date.now() + 1000).toISOString() });
    expect(set.stats.published).toBe(1);
    await set.close();
    expect((await openWitness({ kind: 'file', path: good }, { readOnly: true }).read()).map((c) => c.seq)).toEqual([7]);
  });

  it('a webhook gets { checkpoints: [cp] }; a webhook that fails is retried, then counted', async () => {
    const got: unknown[] = [];
    let fail = 0;
    const server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        if (fail > 0) {
          fail--;
          res.writeHead(503).end();
          return;
        }
        got.push(JSON.parse(body));
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/cp`;
    try {
      const log = errorLog();
      const set = createWitnesses([{ kind: 'webhook', url }], { log: log as never });
      expect(set.readable).toHaveLength(0);
      const c = cp('w', 5);
      fail = 1;
      await set.publish(c);
      expect(got).toEqual([{ checkpoints: [c] }]);
      expect(set.stats.failures).toBe(0);
      fail = 3;
      await set.publish(cp('w', 6));
      expect(set.stats).toMatchObject({ published: 1, failures: 1 });
      expect(log.lines[0].msg).toBe(`audit witness webhook ${url}: checkpoint w#6 not written: HTTP 503`);
    } finally {
      server.close();
    }
  });
});

describe('AuditLog with a witness', () => {
  it('publishes every checkpoint it signs; a cut tail (records and stored checkpoints) is truncated against the witness', async () => {
    const db = path.join(dir, 'audit.db');
    const wfile = path.join(dir, 'log-witness.jsonl');
    const store = await openSqliteStore(db, { durability: 'os' });
    const witness = createWitnesses([{ kind: 'file', path: wfile }], { store });
    const log = await AuditLog.open({ store, instance: 'w1', onFailure: 'block', log: silentLogger(), signingKey: key, witness });
    for (let i = 0; i < 30; i++) {
      await log.writeAhead('statement.begin', { session: 's1', identity: 'alice', sql: `SELECT ${i}` });
      if (i % 10 === 9) await log.checkpoint();
    }
    await log.close();
    const published = await openWitness({ kind: 'file', path: wfile }, { readOnly: true }).read();
    expect(published.map((c) => c.seq)).toEqual([10, 20, 30]);
    expect(witness.stats).toMatchObject({ published: 3, failures: 0 });

    // Cut the tail: records after 15 and every checkpoint beyond them.
    const raw = new Database(db);
    raw.prepare('DELETE FROM records WHERE seq > 15').run();
    raw.prepare('DELETE FROM checkpoints WHERE seq > 15').run();
    raw.close();

    const reader = await openSqliteStore(db, { readOnly: true });
    try {
      const publicKey = crypto.createPublicKey(key);
      const alone = await verifyStore(reader, { publicKey });
      expect(alone[0].report.ok).toBe(true); // without the witness the cut is invisible
      const w = await witnessedCheckpoints(reader, [openWitness({ kind: 'file', path: wfile }, { readOnly: true })]);
      expect(w.readings).toEqual([{ description: `file:${wfile}`, checkpoints: 3, otherInstances: 0 }]);
      const withWitness = await verifyStore(reader, { publicKey, checkpoints: w.checkpoints });
      expect(withWitness[0].report.ok).toBe(false);
      expect(withWitness[0].report.problems).toContainEqual(expect.objectContaining({ kind: 'truncated', seq: 30 }));
      expect(withWitness[0].report.problems).toContainEqual(expect.objectContaining({ kind: 'truncated', seq: 20 }));
    } finally {
      await reader.close();
    }
  });

  it('witnessedCheckpoints uses the store instances and the own instance, and counts the others', async () => {
    const db = path.join(dir, 'two.db');
    const store = await openSqliteStore(db, { durability: 'os' });
    const log = await AuditLog.open({ store, instance: 'here', onFailure: 'block', log: silentLogger() });
    await log.writeAhead('statement.begin', { sql: 'SELECT 1' });
    await log.close();
    const wfile = path.join(dir, 'shared.jsonl');
    const w = openWitness({ kind: 'file', path: wfile });
    for (const c of [cp('here', 1), cp('elsewhere', 4), cp('me', 9)]) await w.publish(c);
    await w.close();
    const reader = await openSqliteStore(db, { readOnly: true });
    try {
      const r = await witnessedCheckpoints(reader, [openWitness({ kind: 'file', path: wfile }, { readOnly: true })], { ownInstance: 'me' });
      expect(r.checkpoints.map((c) => c.instance)).toEqual(['here', 'me']);
      expect(r.readings[0]).toMatchObject({ checkpoints: 2, otherInstances: 1 });
      // The own instance has no record left at all: its whole chain is reported cut.
      const v = await verifyStore(reader, { checkpoints: r.checkpoints });
      expect(v.find((x) => x.instance === 'me')?.report.problems).toContainEqual(expect.objectContaining({ kind: 'truncated', seq: 9 }));
      const one = await witnessedCheckpoints(reader, [openWitness({ kind: 'file', path: wfile }, { readOnly: true })], { instance: 'elsewhere' });
      expect(one.checkpoints.map((c) => c.seq)).toEqual([4]);
    } finally {
      await reader.close();
    }
  });
});
